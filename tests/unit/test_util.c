/*
 * Unit tests for src/common/util.c: every parser is fed a table of good and
 * bad strings and must give exactly the listed answer.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/util.h"
#include "unit.h"

static void test_parse_duration(void) {
        static const struct {
                const char *s;
                int r;
                uint64_t us;
        } cases[] = {
                { "0s",          0, 0 },
                { "0us",         0, 0 },
                { "1us",         0, 1 },
                { "250ms",       0, 250 * USEC_PER_MSEC },
                { "10s",         0, 10 * USEC_PER_SEC },
                { "1.5s",        0, 1500 * USEC_PER_MSEC },
                { "0.25s",       0, 250 * USEC_PER_MSEC },
                { "1.500s",      0, 1500 * USEC_PER_MSEC },
                { "1.0s",        0, USEC_PER_SEC },
                { "1.5ms",       0, 1500 },
                { "0.000001s",   0, 1 },
                { "5m",          0, 5 * USEC_PER_MIN },
                { "2h",          0, 2 * USEC_PER_HOUR },
                { "1.5h",        0, 90 * USEC_PER_MIN },
                { "30d",         0, 30 * USEC_PER_DAY },
                { "007s",        0, 7 * USEC_PER_SEC },
                { "18446744073709551615us", 0, UINT64_MAX },
                { "18446744073709551616us", -ERANGE, 0 },
                { "18446744073709551615s",  -ERANGE, 0 },
                { "213503983d",  -ERANGE, 0 },
                { "213503982.5d", -ERANGE, 0 },
                { "213503982d",  0, UINT64_C(213503982) * USEC_PER_DAY },
                { "99999999999999999999999999s", -ERANGE, 0 },
                { "",            -EINVAL, 0 },
                { "10",          -EINVAL, 0 },
                { "s",           -EINVAL, 0 },
                { "10 parsecs",  -EINVAL, 0 },
                { "10 s",        -EINVAL, 0 },
                { " 10s",        -EINVAL, 0 },
                { "10s ",        -EINVAL, 0 },
                { "-1s",         -EINVAL, 0 },
                { "+1s",         -EINVAL, 0 },
                { "5x",          -EINVAL, 0 },
                { "5S",          -EINVAL, 0 },
                { "5sec",        -EINVAL, 0 },
                { "5ns",         -EINVAL, 0 },
                { "1.s",         -EINVAL, 0 },
                { ".5s",         -EINVAL, 0 },
                { "1..5s",       -EINVAL, 0 },
                { "1.2.3s",      -EINVAL, 0 },
                { "1e3s",        -EINVAL, 0 },
                { "0x10s",       -EINVAL, 0 },
                { "1s1ms",       -EINVAL, 0 },
                { "0.5us",       -EINVAL, 0 },
                { "1.0000001s",  -EINVAL, 0 },
                { "1.0000000000000000000000001s", -EINVAL, 0 },
                /* Malformed wins over too large. */
                { "99999999999999999999999999x", -EINVAL, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint64_t us = 4242;
                int r = util_parse_duration(cases[i].s, &us);

                if (r != cases[i].r || (r == 0 && us != cases[i].us))
                        fprintf(stderr, "\n  case \"%s\": r=%d us=%" PRIu64 "\n", cases[i].s, r, us);
                CU_ASSERT_EQUAL(r, cases[i].r);
                if (r == 0) {
                        CU_ASSERT_EQUAL(us, cases[i].us);
                } else {
                        CU_ASSERT_EQUAL(us, 4242); /* untouched on failure */
                }
        }
        CU_ASSERT_EQUAL(util_parse_duration(NULL, &(uint64_t){ 0 }), -EINVAL);
}

static void test_format_duration(void) {
        static const struct {
                uint64_t us;
                const char *s;
        } cases[] = {
                { 0, "0s" },
                { 1, "1us" },
                { 999, "999us" },
                { 1000, "1ms" },
                { 1500, "1500us" },
                { 1500 * USEC_PER_MSEC, "1500ms" },
                { 250 * USEC_PER_MSEC, "250ms" },
                { 10 * USEC_PER_SEC, "10s" },
                { 90 * USEC_PER_SEC, "90s" },
                { 120 * USEC_PER_SEC, "2m" },
                { 90 * USEC_PER_MIN, "90m" },
                { USEC_PER_HOUR, "1h" },
                { 36 * USEC_PER_HOUR, "36h" },
                { 30 * USEC_PER_DAY, "30d" },
                { UINT64_MAX, "18446744073709551615us" },
        };
        char buf[32];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint64_t back = 0;

                CU_ASSERT_PTR_EQUAL(util_format_duration(cases[i].us, buf, sizeof(buf)), buf);
                CU_ASSERT_STRING_EQUAL(buf, cases[i].s);
                /* What we print, we parse back to the same value. */
                CU_ASSERT_EQUAL(util_parse_duration(buf, &back), 0);
                CU_ASSERT_EQUAL(back, cases[i].us);
        }

        /* A short buffer is truncated, never overrun. */
        memset(buf, 'x', sizeof(buf));
        CU_ASSERT_PTR_EQUAL(util_format_duration(1500 * USEC_PER_MSEC, buf, 4), buf);
        CU_ASSERT_STRING_EQUAL(buf, "150");
        CU_ASSERT_EQUAL(buf[4], 'x');
        CU_ASSERT_PTR_NULL(util_format_duration(1, buf, 0));
        CU_ASSERT_PTR_NULL(util_format_duration(1, NULL, 10));
}

static void test_parse_hostport(void) {
        static const struct {
                const char *s;
                int r;
                const char *host;
                uint16_t port;
        } cases[] = {
                { "127.0.0.1:7946",          0, "127.0.0.1", 7946 },
                { "0.0.0.0:1",               0, "0.0.0.0", 1 },
                { "10.1.2.3:65535",          0, "10.1.2.3", 65535 },
                { "[::1]:7946",              0, "::1", 7946 },
                { "[fe80::1:2]:80",          0, "fe80::1:2", 80 },
                { "[::ffff:10.0.0.1]:80",    0, "::ffff:10.0.0.1", 80 },
                { "localhost:80",            0, "localhost", 80 },
                { "node-1.example.com:443",  0, "node-1.example.com", 443 },
                { "example.com.:443",        0, "example.com.", 443 },
                { "a:0080",                  0, "a", 80 },
                { "1a.example:9",            0, "1a.example", 9 },
                { "127.0.0.1:0",             -EINVAL, NULL, 0 },
                { "127.0.0.1:65536",         -EINVAL, NULL, 0 },
                { "127.0.0.1:100000",        -EINVAL, NULL, 0 },
                { "127.0.0.1:",              -EINVAL, NULL, 0 },
                { "127.0.0.1",               -EINVAL, NULL, 0 },
                { "127.0.0.1:80x",           -EINVAL, NULL, 0 },
                { "127.0.0.1:-80",           -EINVAL, NULL, 0 },
                { "127.0.0.1:+80",           -EINVAL, NULL, 0 },
                { "127.0.0.1: 80",           -EINVAL, NULL, 0 },
                { ":80",                     -EINVAL, NULL, 0 },
                { "",                        -EINVAL, NULL, 0 },
                { "::1:80",                  -EINVAL, NULL, 0 },
                { "[::1]",                   -EINVAL, NULL, 0 },
                { "[::1]80",                 -EINVAL, NULL, 0 },
                { "[]:80",                   -EINVAL, NULL, 0 },
                { "[::1:80",                 -EINVAL, NULL, 0 },
                { "[10.0.0.1]:80",           -EINVAL, NULL, 0 },
                { "[example.com]:80",        -EINVAL, NULL, 0 },
                { "[fe80::1%eth0]:80",       -EINVAL, NULL, 0 },
                { "10.0.0.256:80",           -EINVAL, NULL, 0 },
                { "10.0.0:80",               -EINVAL, NULL, 0 },
                { "bad_name:80",             -EINVAL, NULL, 0 },
                { "-bad.example:80",         -EINVAL, NULL, 0 },
                { "bad-.example:80",         -EINVAL, NULL, 0 },
                { "bad..example:80",         -EINVAL, NULL, 0 },
                { ".example:80",             -EINVAL, NULL, 0 },
                { "exa mple:80",             -EINVAL, NULL, 0 },
                { "host:80:90",              -EINVAL, NULL, 0 },
                { "10 parsecs",              -EINVAL, NULL, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char host[UTIL_HOSTPORT_MAX] = "untouched";
                uint16_t port = 4242;
                int r = util_parse_hostport(cases[i].s, host, &port);

                if (r != cases[i].r)
                        fprintf(stderr, "\n  case \"%s\": r=%d\n", cases[i].s, r);
                CU_ASSERT_EQUAL(r, cases[i].r);
                if (cases[i].r == 0) {
                        CU_ASSERT_STRING_EQUAL(host, cases[i].host);
                        CU_ASSERT_EQUAL(port, cases[i].port);
                } else {
                        CU_ASSERT_STRING_EQUAL(host, "untouched");
                        CU_ASSERT_EQUAL(port, 4242);
                }
        }
}

/* Host names at and just past the DNS limits (63 per label, 253 in all). */
static void test_parse_hostport_limits(void) {
        char s[600], host[UTIL_HOSTPORT_MAX];
        uint16_t port;

        memset(s, 'a', 63);
        strcpy(s + 63, ":1");
        CU_ASSERT_EQUAL(util_parse_hostport(s, host, &port), 0);
        memset(s, 'a', 64);
        strcpy(s + 64, ":1");
        CU_ASSERT_EQUAL(util_parse_hostport(s, host, &port), -EINVAL);

        /* 4 labels of 62 + 3 dots = 251 bytes, then one more label of 1: 253. */
        s[0] = '\0';
        for (int i = 0; i < 4; i++) {
                memset(s + strlen(s), 'b', 62);
                s[(i + 1) * 63 - 1] = '\0';
                strcat(s, ".");
        }
        strcat(s, "c:9");
        CU_ASSERT_EQUAL(strlen(s), 253 + 2);
        CU_ASSERT_EQUAL(util_parse_hostport(s, host, &port), 0);
        CU_ASSERT_EQUAL(strlen(host), 253);
        CU_ASSERT_EQUAL(port, 9);
        strcpy(s + 252, "cd:9");
        CU_ASSERT_EQUAL(util_parse_hostport(s, host, &port), -EINVAL);

        memset(s, 'a', sizeof(s) - 1);
        s[sizeof(s) - 1] = '\0';
        s[300] = ':';
        CU_ASSERT_EQUAL(util_parse_hostport(s, host, &port), -EINVAL);
        CU_ASSERT_EQUAL(util_parse_hostport(NULL, host, &port), -EINVAL);
}

static void test_is_ip_literal(void) {
        static const struct {
                const char *s;
                bool ok;
        } cases[] = {
                { "127.0.0.1", true },
                { "0.0.0.0", true },
                { "255.255.255.255", true },
                { "::", true },
                { "::1", true },
                { "2001:db8::42", true },
                { "::ffff:1.2.3.4", true },
                { "256.0.0.1", false },
                { "1.2.3", false },
                { "01.2.3.4", false },
                { "[::1]", false },
                { "localhost", false },
                { "", false },
                { " 1.2.3.4", false },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                CU_ASSERT_EQUAL(util_is_ip_literal(cases[i].s), cases[i].ok);
        CU_ASSERT_FALSE(util_is_ip_literal(NULL));
}

static void test_format_ts(void) {
        static const struct {
                uint64_t us;
                const char *s;
        } cases[] = {
                { 0, "1970-01-01T00:00:00.000000Z" },
                { 1, "1970-01-01T00:00:00.000001Z" },
                { UINT64_C(1795726553123456), "2026-11-26T20:55:53.123456Z" },
                { UINT64_C(951782400000000), "2000-02-29T00:00:00.000000Z" },
                { UINT64_C(4102444799999999), "2099-12-31T23:59:59.999999Z" },
        };
        char buf[UTIL_TS_MAX];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                CU_ASSERT_PTR_EQUAL(util_format_ts(cases[i].us, buf), buf);
                CU_ASSERT_STRING_EQUAL(buf, cases[i].s);
        }
        /* The largest input still fits the buffer. */
        util_format_ts(UINT64_MAX, buf);
        CU_ASSERT(strlen(buf) < UTIL_TS_MAX);
        CU_ASSERT_EQUAL(buf[strlen(buf) - 1], 'Z');
}

static void test_clocks(void) {
        uint64_t m1 = util_now_mono_us(), m2 = util_now_mono_us();
        uint64_t r = util_now_real_us();

        CU_ASSERT(m1 > 0);
        CU_ASSERT(m2 >= m1);
        /* Later than 2020-01-01 and earlier than 2200-01-01. */
        CU_ASSERT(r > UINT64_C(1577836800) * USEC_PER_SEC);
        CU_ASSERT(r < UINT64_C(7258118400) * USEC_PER_SEC);
}

static void test_valid_name(void) {
        static const struct {
                const char *s;
                bool ok;
        } cases[] = {
                { "n1", true },
                { "web", true },
                { "1node", true },
                { "a", true },
                { "my_service-2", true },
                { "", false },
                { "-web", false },
                { "_web", false },
                { "Web", false },
                { "web.1", false },
                { "web 1", false },
                { "wéb", false },
                { "web/1", false },
                { "123456789012345678901234567890123456789012345678901234567890123", true },
                { "1234567890123456789012345678901234567890123456789012345678901234", false },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                if (util_valid_name(cases[i].s) != cases[i].ok)
                        fprintf(stderr, "\n  case \"%s\"\n", cases[i].s);
                CU_ASSERT_EQUAL(util_valid_name(cases[i].s), cases[i].ok);
        }
        CU_ASSERT_FALSE(util_valid_name(NULL));
}

static void test_cleanup(void) {
        /* The helpers must accept their "nothing to do" values. */
        {
                _cleanup_free_ char *p = NULL;
                _cleanup_close_ int fd = -1;
                _cleanup_fclose_ FILE *f = NULL;
                (void) p;
                (void) fd;
                (void) f;
        }
        {
                _cleanup_free_ char *p = strdup("x");
                CU_ASSERT_PTR_NOT_NULL(p);
        }
        CU_PASS("cleanup helpers ran");
}

int main(void) {
        static CU_TestInfo tests[] = {
                { "parse_duration", test_parse_duration },
                { "format_duration", test_format_duration },
                { "parse_hostport", test_parse_hostport },
                { "parse_hostport_limits", test_parse_hostport_limits },
                { "is_ip_literal", test_is_ip_literal },
                { "format_ts", test_format_ts },
                { "clocks", test_clocks },
                { "valid_name", test_valid_name },
                { "cleanup", test_cleanup },
                CU_TEST_INFO_NULL,
        };
        static CU_SuiteInfo suites[] = {
                { "util", NULL, NULL, NULL, NULL, tests },
                CU_SUITE_INFO_NULL,
        };

        return unit_run(suites);
}
