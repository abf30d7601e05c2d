#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

/* Longest number accepted in a duration; more digits cannot fit in 64 bits. */
#define DURATION_DIGITS_MAX 20
/* Fraction digits that can still name a whole number of microseconds. */
#define DURATION_FRAC_MAX 18

static const struct {
        const char *name;
        uint64_t us;
} duration_units[] = {
        /* Largest first: util_format_duration picks the first exact one. */
        { "d",  USEC_PER_DAY },
        { "h",  USEC_PER_HOUR },
        { "m",  USEC_PER_MIN },
        { "s",  USEC_PER_SEC },
        { "ms", USEC_PER_MSEC },
        { "us", 1 },
};

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

/*
 * The grammar is deliberately narrow (digits, an optional fraction, one unit)
 * so that a typo such as "10 s" or "10sec" is an error, never a surprise.
 * Syntax is checked in full before any arithmetic, so a malformed string is
 * always -EINVAL even when its number would also overflow. A fraction must
 * come out to a whole number of microseconds: "1.5ms" is 1500us, "0.5us" is
 * refused rather than rounded.
 */
int util_parse_duration(const char *s, uint64_t *ret_us) {
        const char *int_start, *frac_start = NULL, *unit;
        size_t int_len, frac_len = 0;
        uint64_t unit_us = 0, whole = 0, frac = 0;
        unsigned __int128 total, part;

        if (!s)
                return -EINVAL;

        int_start = s;
        while (is_digit(*s))
                s++;
        int_len = (size_t) (s - int_start);
        if (int_len == 0)
                return -EINVAL;
        if (*s == '.') {
                frac_start = ++s;
                while (is_digit(*s))
                        s++;
                frac_len = (size_t) (s - frac_start);
                if (frac_len == 0)
                        return -EINVAL;
        }
        unit = s;
        for (size_t i = 0; i < ELEMENTSOF(duration_units); i++)
                if (strcmp(unit, duration_units[i].name) == 0) {
                        unit_us = duration_units[i].us;
                        break;
                }
        if (unit_us == 0)
                return -EINVAL;

        /* Leading zeros of the integer and trailing zeros of the fraction carry no value. */
        while (int_len > 1 && *int_start == '0') {
                int_start++;
                int_len--;
        }
        while (frac_len > 0 && frac_start[frac_len - 1] == '0')
                frac_len--;

        if (int_len > DURATION_DIGITS_MAX)
                return -ERANGE;
        for (size_t i = 0; i < int_len; i++) {
                uint64_t d = (uint64_t) (int_start[i] - '0');
                if (whole > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                whole = whole * 10 + d;
        }
        total = (unsigned __int128) whole * unit_us;

        if (frac_len > 0) {
                unsigned __int128 scale = 1;

                if (frac_len > DURATION_FRAC_MAX)
                        return -EINVAL;
                for (size_t i = 0; i < frac_len; i++) {
                        frac = frac * 10 + (uint64_t) (frac_start[i] - '0');
                        scale *= 10;
                }
                part = (unsigned __int128) frac * unit_us;
                if (part % scale != 0)
                        return -EINVAL;
                total += part / scale;
        }
        if (total > UINT64_MAX)
                return -ERANGE;

        *ret_us = (uint64_t) total;
        return 0;
}

/*
 * Picks the largest unit that divides the value exactly, so the output parses
 * back to the same number and reads naturally ("90s", "2m", "1500ms").
 */
const char *util_format_duration(uint64_t us, char *buf, size_t len) {
        if (!buf || len == 0)
                return NULL;
        if (us == 0) {
                snprintf(buf, len, "0s");
                return buf;
        }
        for (size_t i = 0; i < ELEMENTSOF(duration_units); i++)
                if (us % duration_units[i].us == 0) {
                        snprintf(buf, len, "%" PRIu64 "%s", us / duration_units[i].us, duration_units[i].name);
                        break;
                }
        return buf;
}

bool util_is_ip_literal(const char *s) {
        struct in6_addr a6;
        struct in_addr a4;

        if (!s)
                return false;
        return inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1;
}

/*
 * RFC 1123 host names: dot-separated labels of letters, digits and inner
 * hyphens, at most 63 bytes each and 253 in all, one optional trailing dot.
 * An all-numeric last label is refused so that a mistyped IPv4 address
 * ("10.0.0.256", "10.0.0") is an error rather than a name lookup.
 */
static bool valid_dns_name(const char *s, size_t len) {
        size_t label = 0;
        bool numeric = true;

        if (len > 0 && s[len - 1] == '.')
                len--;
        if (len == 0 || len > 253)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];

                if (c == '.') {
                        if (label == 0 || s[i - 1] == '-')
                                return false;
                        label = 0;
                        numeric = true;
                        continue;
                }
                if (c == '-') {
                        if (label == 0)
                                return false;
                } else if (!is_digit(c) && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z'))
                        return false;
                if (!is_digit(c))
                        numeric = false;
                if (++label > 63)
                        return false;
        }
        return label > 0 && s[len - 1] != '-' && !numeric;
}

static int parse_port(const char *s, uint16_t *ret_port) {
        unsigned long v = 0;
        size_t n = 0;

        for (; is_digit(s[n]); n++) {
                if (n >= 5)
                        return -EINVAL;
                v = v * 10 + (unsigned long) (s[n] - '0');
        }
        if (n == 0 || s[n] != '\0' || v < 1 || v > 65535)
                return -EINVAL;
        *ret_port = (uint16_t) v;
        return 0;
}

int util_parse_hostport(const char *s, char ret_host[static UTIL_HOSTPORT_MAX], uint16_t *ret_port) {
        char host[UTIL_HOSTPORT_MAX];
        const char *colon;
        size_t len, hlen;
        uint16_t port;

        if (!s)
                return -EINVAL;
        len = strnlen(s, UTIL_HOSTPORT_MAX + 1);
        if (len > UTIL_HOSTPORT_MAX)
                return -EINVAL;

        if (s[0] == '[') {
                const char *close = strchr(s, ']');

                if (!close || close[1] != ':')
                        return -EINVAL;
                hlen = (size_t) (close - s - 1);
                if (hlen == 0 || hlen >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s + 1, hlen);
                host[hlen] = '\0';
                /* Brackets are only for IPv6: "[10.0.0.1]:80" is a typo, not an address. */
                if (!strchr(host, ':') || !util_is_ip_literal(host))
                        return -EINVAL;
                colon = close + 1;
        } else {
                colon = strrchr(s, ':');
                if (!colon)
                        return -EINVAL;
                hlen = (size_t) (colon - s);
                if (hlen == 0 || hlen >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s, hlen);
                host[hlen] = '\0';
                /* A bare IPv6 address is ambiguous with its port; require brackets. */
                if (strchr(host, ':'))
                        return -EINVAL;
                if (!util_is_ip_literal(host) && !valid_dns_name(host, hlen))
                        return -EINVAL;
        }
        if (parse_port(colon + 1, &port) < 0)
                return -EINVAL;

        memcpy(ret_host, host, hlen + 1);
        *ret_port = port;
        return 0;
}

static uint64_t now_us(clockid_t clock) {
        struct timespec ts;

        /* Cannot fail for these clocks on Linux; a zero time is the safe answer if it ever does. */
        if (clock_gettime(clock, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

uint64_t util_now_mono_us(void) {
        return now_us(CLOCK_MONOTONIC);
}

uint64_t util_now_real_us(void) {
        return now_us(CLOCK_REALTIME);
}

const char *util_format_ts(uint64_t real_us, char buf[static UTIL_TS_MAX]) {
        time_t secs = (time_t) (real_us / USEC_PER_SEC);
        unsigned usec = (unsigned) (real_us % USEC_PER_SEC);
        struct tm tm;
        size_t n;

        if (!gmtime_r(&secs, &tm)) {
                snprintf(buf, UTIL_TS_MAX, "invalid");
                return buf;
        }
        n = strftime(buf, UTIL_TS_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
        if (n == 0) {
                snprintf(buf, UTIL_TS_MAX, "invalid");
                return buf;
        }
        snprintf(buf + n, UTIL_TS_MAX - n, ".%06uZ", usec);
        return buf;
}

bool util_valid_name(const char *s) {
        size_t n = 0;

        if (!s || !(is_digit(s[0]) || (s[0] >= 'a' && s[0] <= 'z')))
                return false;
        for (; s[n]; n++) {
                char c = s[n];

                if (n >= 63)
                        return false;
                if (!is_digit(c) && !(c >= 'a' && c <= 'z') && c != '_' && c != '-')
                        return false;
        }
        return true;
}
