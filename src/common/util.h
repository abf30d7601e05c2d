/*
 * Small utilities shared by both binaries: duration and address parsing,
 * timestamps, and the _cleanup_ helpers used by adapters.
 */
#ifndef AGENTD_UTIL_H
#define AGENTD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define USEC_PER_MSEC UINT64_C(1000)
#define USEC_PER_SEC  UINT64_C(1000000)
#define USEC_PER_MIN  (UINT64_C(60) * USEC_PER_SEC)
#define USEC_PER_HOUR (UINT64_C(60) * USEC_PER_MIN)
#define USEC_PER_DAY  (UINT64_C(24) * USEC_PER_HOUR)

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _unused_ __attribute__((unused))

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd) { if (*fd >= 0) close(*fd); }
static inline void fclosep(FILE **f) { if (*f) fclose(*f); }
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Longest "host:port" text accepted anywhere (a DNS name is at most 253). */
#define UTIL_HOSTPORT_MAX 262

/*
 * Parses "250ms", "10s", "1.5s", "5m", "2h", "30d" (units us, ms, s, m, h, d;
 * one number, one unit, no spaces) into microseconds. Returns 0, -EINVAL on a
 * malformed string or -ERANGE when the value does not fit.
 */
int util_parse_duration(const char *s, uint64_t *ret_us);

/* Formats microseconds as the shortest exact duration string ("1500ms"). */
const char *util_format_duration(uint64_t us, char *buf, size_t len);

/*
 * Splits "host:port" or "[v6addr]:port". The host is an IPv4 literal, an IPv6
 * literal in brackets, or a DNS name; the port is 1..65535. Returns 0 or
 * -EINVAL; *ret_host (caller-owned buffer of UTIL_HOSTPORT_MAX bytes) and
 * *ret_port are untouched on failure.
 */
int util_parse_hostport(const char *s, char ret_host[static UTIL_HOSTPORT_MAX], uint16_t *ret_port);

/* True when s is an IPv4 or IPv6 literal (no brackets). */
bool util_is_ip_literal(const char *s);

/* Clocks. Only adapters and binaries call these; src/core never does. */
uint64_t util_now_mono_us(void);
uint64_t util_now_real_us(void);

/* RFC 3339 UTC with microseconds: "2026-11-26T20:55:53.123456Z" (28 bytes). */
#define UTIL_TS_MAX 32
const char *util_format_ts(uint64_t real_us, char buf[static UTIL_TS_MAX]);

/*
 * splitmix64: a small, fast generator for choices that need spread, not
 * secrecy (probe order, jitter, election timeouts). Advances *state.
 */
static inline uint64_t util_splitmix64(uint64_t *state) {
        uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

/* Reads "key" style names: [a-z0-9_-], 1..63 chars, starting with a letter or digit. */
bool util_valid_name(const char *s);

#endif
