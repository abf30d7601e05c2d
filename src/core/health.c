/*
 * The rise/fall verdict of one check. See health.h for the rules.
 */
#include <errno.h>
#include <string.h>

#include "core/health.h"

static const char *const state_names[_HEALTH_STATE_MAX] = {
        [HEALTH_UNKNOWN] = "unknown",
        [HEALTH_HEALTHY] = "healthy",
        [HEALTH_UNHEALTHY] = "unhealthy",
};

static bool thresholds_valid(unsigned rise, unsigned fall) {
        return rise >= 1 && rise <= HEALTH_THRESHOLD_MAX && fall >= 1 && fall <= HEALTH_THRESHOLD_MAX;
}

int health_init(struct health *h, unsigned rise, unsigned fall) {
        if (!h || !thresholds_valid(rise, fall))
                return -EINVAL;
        *h = (struct health) {
                .rise = rise,
                .fall = fall,
                .state = HEALTH_UNKNOWN,
        };
        return 0;
}

int health_set_thresholds(struct health *h, unsigned rise, unsigned fall) {
        if (!h || !thresholds_valid(rise, fall))
                return -EINVAL;
        h->rise = rise;
        h->fall = fall;
        return 0;
}

void health_reset(struct health *h, uint64_t now_us) {
        if (h->state != HEALTH_UNKNOWN)
                h->since_us = now_us;
        h->state = HEALTH_UNKNOWN;
        h->n_ok = 0;
        h->n_fail = 0;
}

/* Copies a reason, cutting it at a UTF-8 character boundary so a display never shows half a character. */
static void copy_reason(char dst[static HEALTH_REASON_MAX], const char *src) {
        size_t n;

        if (!src) {
                dst[0] = '\0';
                return;
        }
        n = strnlen(src, HEALTH_REASON_MAX - 1);
        if (src[n] != '\0')
                while (n > 0 && ((unsigned char) src[n] & 0xC0) == 0x80)
                        n--;
        memcpy(dst, src, n);
        dst[n] = '\0';
}

bool health_observe(struct health *h, const struct health_result *r, uint64_t now_us,
                    struct health_transition *ret_transition) {
        enum health_state old = h->state, new = old;

        h->has_last = true;
        h->last_ok = r->ok;
        h->last_at_us = now_us;
        h->last_latency_us = r->latency_us;
        copy_reason(h->last_reason, r->reason);
        h->n_checks++;

        /* Counters saturate at the threshold limit: a streak longer than any threshold says nothing more. */
        if (r->ok) {
                h->n_fail = 0;
                if (h->n_ok < HEALTH_THRESHOLD_MAX)
                        h->n_ok++;
                if (old != HEALTH_HEALTHY && h->n_ok >= h->rise)
                        new = HEALTH_HEALTHY;
        } else {
                h->n_failures++;
                h->n_ok = 0;
                if (h->n_fail < HEALTH_THRESHOLD_MAX)
                        h->n_fail++;
                if (old != HEALTH_UNHEALTHY && h->n_fail >= h->fall)
                        new = HEALTH_UNHEALTHY;
        }

        if (new == old)
                return false;
        h->state = new;
        h->since_us = now_us;
        if (ret_transition)
                *ret_transition = (struct health_transition) { .from = old, .to = new };
        return true;
}

const char *health_state_to_string(enum health_state s) {
        if (s < 0 || s >= _HEALTH_STATE_MAX)
                return NULL;
        return state_names[s];
}

enum health_state health_state_from_string(const char *s) {
        if (!s)
                return _HEALTH_STATE_INVALID;
        for (int i = 0; i < _HEALTH_STATE_MAX; i++)
                if (strcmp(s, state_names[i]) == 0)
                        return (enum health_state) i;
        return _HEALTH_STATE_INVALID;
}
