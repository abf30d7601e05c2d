/*
 * GCRA, see ratelimit.h. The emission interval is rounded up so that the
 * burst tolerance (limit - 1) * T lets exactly `limit` events through at
 * once and the long-run rate never exceeds limit per window.
 */
#include <errno.h>

#include "core/ratelimit.h"

int ratelimit_init(struct ratelimit *rl, unsigned limit, uint64_t window_us) {
        uint64_t t;

        if (!rl || limit < 1 || limit > RATELIMIT_LIMIT_MAX || window_us < limit ||
            window_us > RATELIMIT_WINDOW_MAX)
                return -EINVAL;
        t = window_us / limit + (window_us % limit != 0);
        *rl = (struct ratelimit) {
                .limit = limit,
                .window_us = window_us,
                .interval_us = t,
                .tolerance_us = (uint64_t) (limit - 1) * t,
        };
        return 0;
}

bool ratelimit_check(const struct ratelimit *rl, uint64_t now_us, uint64_t *ret_retry_after_us) {
        uint64_t tat = rl->tat_us > now_us ? rl->tat_us : now_us;

        if (tat - now_us <= rl->tolerance_us)
                return true;
        if (ret_retry_after_us)
                *ret_retry_after_us = tat - now_us - rl->tolerance_us;
        return false;
}

bool ratelimit_allow(struct ratelimit *rl, uint64_t now_us, uint64_t *ret_retry_after_us) {
        if (!ratelimit_check(rl, now_us, ret_retry_after_us))
                return false;
        rl->tat_us = (rl->tat_us > now_us ? rl->tat_us : now_us) + rl->interval_us;
        return true;
}

unsigned ratelimit_used(const struct ratelimit *rl, uint64_t now_us) {
        uint64_t d, n;

        if (rl->tat_us <= now_us)
                return 0;
        d = rl->tat_us - now_us;
        n = d / rl->interval_us + (d % rl->interval_us != 0);
        return n > rl->limit ? rl->limit : (unsigned) n;
}

void ratelimit_restore(struct ratelimit *rl, uint64_t tat_us, uint64_t now_us) {
        uint64_t cap = now_us + rl->tolerance_us + rl->interval_us;

        if (tat_us <= now_us)
                rl->tat_us = 0;
        else
                rl->tat_us = tat_us > cap ? cap : tat_us;
}
