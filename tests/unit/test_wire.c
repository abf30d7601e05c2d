/*
 * Tests for the gossip wire codec: exact round trips of every message type,
 * exact bytes of a reference packet (doc/PROTOCOL.md), every truncation of
 * every valid body refused, malformed inputs refused with the documented
 * errno, counts over their caps refused, and budgets respected.
 *
 * With WIRE_WRITE_CORPUS=DIR set, the valid bodies are also written to
 * DIR/packet/ and DIR/pushpull/ as the fuzzers' seed corpus.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"
#include "core/wire.h"
#include "unit.h"

static const uint8_t ip4[4] = { 10, 0, 0, 7 };
static const uint8_t ip6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
static const uint8_t meta3[3] = { 'v', 'r', 1 };
static uint8_t meta_max[WIRE_META_MAX];

#define S(x) (x), (uint8_t)(sizeof(x) - 1)

/* Builds the reference messages used by several tests. */
static size_t build_msgs(struct wire_msg *out) {
        size_t n = 0;

        memset(meta_max, 0xab, sizeof(meta_max));
        /* A ping with no updates. */
        out[n] = (struct wire_msg){ .type = WIRE_MSG_PING, .seq = 0x01020304 };
        out[n].target = "n2";
        out[n].target_len = 2;
        n++;
        /* An ack carrying one of each update kind. */
        out[n] = (struct wire_msg){ .type = WIRE_MSG_ACK, .seq = 0xffffffff, .n_updates = 4 };
        out[n].updates[0] = (struct wire_update){ .kind = WIRE_STATE_ALIVE, .incarnation = 0, .meta = meta3,
                                                  .meta_len = 3 };
        out[n].updates[0].name = "n1";
        out[n].updates[0].name_len = 2;
        out[n].updates[0].addr = wire_addr_ipv4(ip4, 7946);
        out[n].updates[1] = (struct wire_update){ .kind = WIRE_STATE_SUSPECT, .incarnation = 300 };
        out[n].updates[1].name = "node-3.a_b";
        out[n].updates[1].name_len = 10;
        out[n].updates[1].from = "n1";
        out[n].updates[1].from_len = 2;
        out[n].updates[2] = (struct wire_update){ .kind = WIRE_STATE_DEAD, .incarnation = UINT64_MAX };
        out[n].updates[2].name = "n4";
        out[n].updates[2].name_len = 2;
        out[n].updates[2].from = "n5";
        out[n].updates[2].from_len = 2;
        out[n].updates[3] = (struct wire_update){ .kind = WIRE_STATE_LEFT, .incarnation = 127 };
        out[n].updates[3].name = "n6";
        out[n].updates[3].name_len = 2;
        n++;
        /* A ping_req to an IPv6 member, with an alive carrying the biggest meta. */
        out[n] = (struct wire_msg){ .type = WIRE_MSG_PING_REQ, .seq = 7, .n_updates = 1 };
        out[n].target = "target-node";
        out[n].target_len = 11;
        out[n].target_addr = wire_addr_ipv6(ip6, 65535);
        out[n].updates[0] = (struct wire_update){ .kind = WIRE_STATE_ALIVE, .incarnation = 128, .meta = meta_max,
                                                  .meta_len = WIRE_META_MAX };
        out[n].updates[0].name = "x";
        out[n].updates[0].name_len = 1;
        out[n].updates[0].addr = wire_addr_ipv6(ip6, 1);
        n++;
        out[n] = (struct wire_msg){ .type = WIRE_MSG_NACK, .seq = 0 };
        n++;
        /* Gossip: only updates. */
        out[n] = (struct wire_msg){ .type = WIRE_MSG_GOSSIP, .n_updates = 1 };
        out[n].updates[0] = (struct wire_update){ .kind = WIRE_STATE_LEFT, .incarnation = 1 };
        out[n].updates[0].name = "gone";
        out[n].updates[0].name_len = 4;
        n++;
        /* Gossip with no updates at all. */
        out[n] = (struct wire_msg){ .type = WIRE_MSG_GOSSIP };
        n++;
        return n;
}

static void assert_update_equal(const struct wire_update *a, const struct wire_update *b) {
        CU_ASSERT_EQUAL(a->kind, b->kind);
        CU_ASSERT_EQUAL(a->name_len, b->name_len);
        CU_ASSERT_EQUAL(memcmp(a->name, b->name, a->name_len), 0);
        CU_ASSERT_EQUAL(a->incarnation, b->incarnation);
        if (a->kind == WIRE_STATE_ALIVE) {
                CU_ASSERT_TRUE(wire_addr_equal(&a->addr, &b->addr));
                CU_ASSERT_EQUAL(a->meta_len, b->meta_len);
                CU_ASSERT_EQUAL(memcmp(a->meta, b->meta, a->meta_len), 0);
        } else {
                CU_ASSERT_EQUAL(b->meta_len, 0);
                CU_ASSERT_EQUAL(b->addr.family, WIRE_AF_NONE);
        }
        if (a->kind == WIRE_STATE_SUSPECT || a->kind == WIRE_STATE_DEAD) {
                CU_ASSERT_EQUAL(a->from_len, b->from_len);
                CU_ASSERT_EQUAL(memcmp(a->from, b->from, a->from_len), 0);
        } else
                CU_ASSERT_EQUAL(b->from_len, 0);
}

static void test_roundtrip(void) {
        static struct wire_msg msgs[8], got;
        size_t n = build_msgs(msgs);
        uint8_t buf[2048];

        for (size_t i = 0; i < n; i++) {
                size_t len = 0, want = wire_msg_header_size(&msgs[i]);

                for (size_t j = 0; j < msgs[i].n_updates; j++)
                        want += wire_update_size(&msgs[i].updates[j]);
                CU_ASSERT_EQUAL_FATAL(wire_encode(&msgs[i], buf, sizeof(buf), &len), 0);
                CU_ASSERT_EQUAL(len, want);
                CU_ASSERT_EQUAL_FATAL(wire_decode(buf, len, &got), 0);
                CU_ASSERT_EQUAL(got.type, msgs[i].type);
                CU_ASSERT_EQUAL(got.n_updates, msgs[i].n_updates);
                if (msgs[i].type != WIRE_MSG_GOSSIP)
                        CU_ASSERT_EQUAL(got.seq, msgs[i].seq);
                if (msgs[i].type == WIRE_MSG_PING || msgs[i].type == WIRE_MSG_PING_REQ) {
                        CU_ASSERT_EQUAL(got.target_len, msgs[i].target_len);
                        CU_ASSERT_EQUAL(memcmp(got.target, msgs[i].target, got.target_len), 0);
                } else
                        CU_ASSERT_EQUAL(got.target_len, 0);
                if (msgs[i].type == WIRE_MSG_PING_REQ)
                        CU_ASSERT_TRUE(wire_addr_equal(&got.target_addr, &msgs[i].target_addr));
                for (size_t j = 0; j < got.n_updates; j++)
                        assert_update_equal(&msgs[i].updates[j], &got.updates[j]);
        }
}

/* The byte layout promised by doc/PROTOCOL.md, for one ping and one ack. */
static void test_exact_bytes(void) {
        static struct wire_msg msgs[8];
        static const uint8_t ping[] = { 0x01, 0x01, 0x01, 0x02, 0x03, 0x04, 0x02, 'n', '2', 0x00 };
        static const uint8_t ack[] = {
                0x01, 0x02, 0xff, 0xff, 0xff, 0xff, 0x04,
                /* alive n1 inc 0 10.0.0.7:7946 meta "vr\1" */
                0x01, 0x02, 'n', '1', 0x00, 0x04, 10, 0, 0, 7, 0x1f, 0x0a, 0x00, 0x03, 'v', 'r', 0x01,
                /* suspect node-3.a_b inc 300 from n1 */
                0x02, 0x0a, 'n', 'o', 'd', 'e', '-', '3', '.', 'a', '_', 'b', 0xac, 0x02, 0x02, 'n', '1',
                /* dead n4 inc 2^64-1 from n5 */
                0x03, 0x02, 'n', '4', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02, 'n', '5',
                /* left n6 inc 127 */
                0x04, 0x02, 'n', '6', 0x7f,
        };
        uint8_t buf[512];
        size_t len;

        build_msgs(msgs);
        CU_ASSERT_EQUAL_FATAL(wire_encode(&msgs[0], buf, sizeof(buf), &len), 0);
        CU_ASSERT_EQUAL_FATAL(len, sizeof(ping));
        CU_ASSERT_EQUAL(memcmp(buf, ping, len), 0);
        CU_ASSERT_EQUAL_FATAL(wire_encode(&msgs[1], buf, sizeof(buf), &len), 0);
        CU_ASSERT_EQUAL_FATAL(len, sizeof(ack));
        CU_ASSERT_EQUAL(memcmp(buf, ack, len), 0);
}

/* Every proper prefix of every valid body is refused, and so is one extra byte. */
static void test_truncations(void) {
        static struct wire_msg msgs[8], got;
        size_t n = build_msgs(msgs);
        uint8_t buf[2048];

        for (size_t i = 0; i < n; i++) {
                size_t len;

                CU_ASSERT_EQUAL_FATAL(wire_encode(&msgs[i], buf, sizeof(buf), &len), 0);
                got.type = 0xee;
                for (size_t cut = 0; cut < len; cut++) {
                        int r = wire_decode(buf, cut, &got);

                        if (r != -EBADMSG)
                                fprintf(stderr, "msg %zu cut %zu: %d\n", i, cut, r);
                        CU_ASSERT_EQUAL(r, -EBADMSG);
                        CU_ASSERT_EQUAL(got.type, 0xee);        /* untouched on failure */
                }
                buf[len] = 0;
                CU_ASSERT_EQUAL(wire_decode(buf, len + 1, &got), -EBADMSG);
        }
}

struct bad_case {
        const char *what;
        uint8_t bytes[40];
        size_t len;
        int want;
};

#define B(...) { __VA_ARGS__ }, sizeof((uint8_t[]){ __VA_ARGS__ })

static const struct bad_case bad_packets[] = {
        { "empty", {}, 0, -EBADMSG },
        { "version 0", B(0x00, 0x05, 0x00), -EPROTONOSUPPORT },
        { "version 2", B(0x02, 0x05, 0x00), -EPROTONOSUPPORT },
        { "type 0", B(0x01, 0x00, 0x00), -EBADMSG },
        { "type 6", B(0x01, 0x06, 0x00), -EBADMSG },
        { "pushpull type on udp", B(0x01, 0x10, 0x00), -EBADMSG },
        { "ping name len 0", B(0x01, 0x01, 0, 0, 0, 1, 0x00, 0x00), -EBADMSG },
        { "ping name len 65", B(0x01, 0x01, 0, 0, 0, 1, 65, 'a', 0x00), -EBADMSG },
        { "ping name space", B(0x01, 0x01, 0, 0, 0, 1, 0x02, 'a', ' ', 0x00), -EBADMSG },
        { "ping name nul", B(0x01, 0x01, 0, 0, 0, 1, 0x02, 'a', 0x00, 0x00), -EBADMSG },
        { "ping name utf8", B(0x01, 0x01, 0, 0, 0, 1, 0x02, 0xc3, 0xa9, 0x00), -EBADMSG },
        { "ping_req family 5", B(0x01, 0x03, 0, 0, 0, 1, 0x01, 'a', 0x05, 1, 2, 3, 4, 0, 80, 0x00), -EBADMSG },
        { "ping_req port 0", B(0x01, 0x03, 0, 0, 0, 1, 0x01, 'a', 0x04, 1, 2, 3, 4, 0, 0, 0x00), -EBADMSG },
        { "65 updates", B(0x01, 0x05, 65), -E2BIG },
        { "255 updates", B(0x01, 0x05, 255), -E2BIG },
        { "update kind 0", B(0x01, 0x05, 0x01, 0x00, 0x01, 'a', 0x00), -EBADMSG },
        { "update kind 5", B(0x01, 0x05, 0x01, 0x05, 0x01, 'a', 0x00), -EBADMSG },
        { "varint overlong zero", B(0x01, 0x05, 0x01, 0x04, 0x01, 'a', 0x80, 0x00), -EBADMSG },
        { "varint 11 bytes", B(0x01, 0x05, 0x01, 0x04, 0x01, 'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                               0xff, 0xff, 0x01), -EBADMSG },
        { "varint above 2^64", B(0x01, 0x05, 0x01, 0x04, 0x01, 'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                 0xff, 0xff, 0x02), -EBADMSG },
        { "meta 257", B(0x01, 0x05, 0x01, 0x01, 0x01, 'a', 0x00, 0x04, 1, 2, 3, 4, 0, 80, 0x01, 0x01), -EBADMSG },
        { "meta longer than body", B(0x01, 0x05, 0x01, 0x01, 0x01, 'a', 0x00, 0x04, 1, 2, 3, 4, 0, 80, 0x00, 0x09,
                                     'x'), -EBADMSG },
        { "suspect from invalid", B(0x01, 0x05, 0x01, 0x02, 0x01, 'a', 0x00, 0x01, '/'), -EBADMSG },
        { "count larger than present", B(0x01, 0x05, 0x02, 0x04, 0x01, 'a', 0x00), -EBADMSG },
        { "trailing garbage", B(0x01, 0x04, 0, 0, 0, 0, 0x00, 0x00), -EBADMSG },
};

static void test_malformed(void) {
        struct wire_msg got;

        for (size_t i = 0; i < ELEMENTSOF(bad_packets); i++) {
                int r = wire_decode(bad_packets[i].bytes, bad_packets[i].len, &got);

                if (r != bad_packets[i].want)
                        fprintf(stderr, "%s: got %d want %d\n", bad_packets[i].what, r, bad_packets[i].want);
                CU_ASSERT_EQUAL(r, bad_packets[i].want);
        }
        /* The varint edge that is valid: 2^64-1 in ten bytes (covered above), 0 in one byte. */
        static const uint8_t ok[] = { 0x01, 0x05, 0x01, 0x04, 0x01, 'a', 0x00 };
        CU_ASSERT_EQUAL(wire_decode(ok, sizeof(ok), &got), 0);
        CU_ASSERT_EQUAL(got.updates[0].incarnation, 0);
        /* Bodies above the largest budget are refused before parsing. */
        uint8_t *big = calloc(1, WIRE_BUDGET_MAX + 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(big);
        big[0] = 1;
        CU_ASSERT_EQUAL(wire_decode(big, WIRE_BUDGET_MAX + 1, &got), -E2BIG);
        free(big);
}

/* The encoder refuses what the decoder would refuse. */
static void test_encode_invalid(void) {
        static struct wire_msg msgs[8], m;
        uint8_t buf[2048];
        size_t len = 12345;

        build_msgs(msgs);
        m = msgs[0];
        m.target_len = 0;
        CU_ASSERT_EQUAL(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);
        m = msgs[0];
        m.type = 9;
        CU_ASSERT_EQUAL(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);
        m = msgs[2];
        m.target_addr.port = 0;
        CU_ASSERT_EQUAL(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);
        m = msgs[2];
        m.target_addr.family = WIRE_AF_INET;    /* v4 with nonzero padding bytes */
        CU_ASSERT_EQUAL(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);
        m = msgs[1];
        m.updates[0].meta_len = WIRE_META_MAX + 1;
        CU_ASSERT_EQUAL(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);
        m = msgs[1];
        m.updates[1].from_len = 0;
        CU_ASSERT_EQUAL(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);
        m = msgs[1];
        m.updates[3].kind = 7;
        CU_ASSERT_EQUAL(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);
        m = msgs[1];
        m.n_updates = WIRE_UPDATES_MAX + 1;
        CU_ASSERT_EQUAL(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);
        CU_ASSERT_EQUAL(len, 12345);
}

/* Encoding into any smaller buffer fails with -EMSGSIZE and writes nothing past it. */
static void test_budget(void) {
        static struct wire_msg msgs[8];
        size_t n = build_msgs(msgs);
        uint8_t buf[2048];

        for (size_t i = 0; i < n; i++) {
                size_t need, len;

                CU_ASSERT_EQUAL_FATAL(wire_encode(&msgs[i], buf, sizeof(buf), &need), 0);
                for (size_t size = 0; size < need; size++) {
                        memset(buf, 0x5a, sizeof(buf));
                        CU_ASSERT_EQUAL(wire_encode(&msgs[i], buf, size, &len), -EMSGSIZE);
                        CU_ASSERT_EQUAL(buf[size], 0x5a);
                }
                CU_ASSERT_EQUAL(wire_encode(&msgs[i], buf, need, &len), 0);
                CU_ASSERT_EQUAL(len, need);
        }
}

/* 64 updates fit the decoder; a full default-budget gossip of small updates round-trips. */
static void test_max_updates(void) {
        static struct wire_msg m, got;
        char names[WIRE_UPDATES_MAX][8];
        uint8_t buf[WIRE_BUDGET_DEFAULT];
        size_t len;

        m = (struct wire_msg){ .type = WIRE_MSG_GOSSIP, .n_updates = WIRE_UPDATES_MAX };
        for (int i = 0; i < WIRE_UPDATES_MAX; i++) {
                snprintf(names[i], sizeof(names[i]), "n%d", i);
                m.updates[i] = (struct wire_update){ .kind = WIRE_STATE_LEFT, .incarnation = (uint64_t)i };
                m.updates[i].name = names[i];
                m.updates[i].name_len = (uint8_t)strlen(names[i]);
        }
        CU_ASSERT_EQUAL_FATAL(wire_encode(&m, buf, sizeof(buf), &len), 0);
        CU_ASSERT_EQUAL_FATAL(wire_decode(buf, len, &got), 0);
        CU_ASSERT_EQUAL(got.n_updates, WIRE_UPDATES_MAX);
        CU_ASSERT_EQUAL(got.updates[63].incarnation, 63);
        CU_ASSERT_EQUAL(got.updates[63].name_len, 3);
}

/* --- push-pull ------------------------------------------------------------- */

static size_t build_pushpull(uint8_t *buf, size_t size, uint32_t n, bool join) {
        struct wire_pushpull_header h = { .join = join, .reply = !join, .n_members = n };
        size_t off;
        int r;

        h.from = "seed-1";
        h.from_len = 6;
        r = wire_pushpull_encode_header(&h, buf, size);
        CU_ASSERT_FATAL(r > 0);
        CU_ASSERT_EQUAL((size_t)r, wire_pushpull_header_size(&h));
        off = (size_t)r;
        for (uint32_t i = 0; i < n; i++) {
                char name[16];
                uint8_t a[4] = { 192, 168, (uint8_t)(i >> 8), (uint8_t)i };
                struct wire_member mem = { .state = (uint8_t)(1 + i % 4), .incarnation = (uint64_t)i * 1000,
                                           .meta = meta3, .meta_len = (uint16_t)(i % 2 ? 3 : 0) };

                snprintf(name, sizeof(name), "m%u", i);
                mem.name = name;
                mem.name_len = (uint8_t)strlen(name);
                mem.addr = i % 3 ? wire_addr_ipv4(a, (uint16_t)(7000 + i)) : wire_addr_ipv6(ip6, 7946);
                r = wire_member_encode(&mem, buf + off, size - off);
                CU_ASSERT_FATAL(r > 0);
                CU_ASSERT_EQUAL((size_t)r, wire_member_size(&mem));
                off += (size_t)r;
        }
        return off;
}

static void test_pushpull_roundtrip(void) {
        uint8_t buf[8192];
        size_t len = build_pushpull(buf, sizeof(buf), 40, true);
        struct wire_pushpull_header h;
        struct wire_pushpull_reader rd;
        struct wire_member mem;
        uint32_t i = 0;

        CU_ASSERT_EQUAL_FATAL(wire_pushpull_open(buf, len, &h, &rd), 0);
        CU_ASSERT_TRUE(h.join);
        CU_ASSERT_FALSE(h.reply);
        CU_ASSERT_EQUAL(h.n_members, 40);
        CU_ASSERT_EQUAL(h.from_len, 6);
        CU_ASSERT_EQUAL(memcmp(h.from, "seed-1", 6), 0);
        while (wire_pushpull_next(&rd, &mem) == 1) {
                char name[16];
                uint8_t a[4] = { 192, 168, (uint8_t)(i >> 8), (uint8_t)i };
                struct wire_addr want = i % 3 ? wire_addr_ipv4(a, (uint16_t)(7000 + i)) : wire_addr_ipv6(ip6, 7946);

                snprintf(name, sizeof(name), "m%u", i);
                CU_ASSERT_EQUAL(mem.state, 1 + i % 4);
                CU_ASSERT_EQUAL(mem.name_len, strlen(name));
                CU_ASSERT_EQUAL(memcmp(mem.name, name, mem.name_len), 0);
                CU_ASSERT_EQUAL(mem.incarnation, (uint64_t)i * 1000);
                CU_ASSERT_TRUE(wire_addr_equal(&mem.addr, &want));
                CU_ASSERT_EQUAL(mem.meta_len, i % 2 ? 3 : 0);
                i++;
        }
        CU_ASSERT_EQUAL(i, 40);
        CU_ASSERT_EQUAL(wire_pushpull_next(&rd, &mem), 0);
}

static void test_pushpull_malformed(void) {
        uint8_t buf[4096];
        size_t len = build_pushpull(buf, sizeof(buf), 5, false);
        struct wire_pushpull_header h = { .n_members = 77 };
        struct wire_pushpull_reader rd;
        uint8_t save;

        /* Every truncation and one extra byte. */
        for (size_t cut = 0; cut < len; cut++)
                CU_ASSERT_EQUAL(wire_pushpull_open(buf, cut, &h, &rd), -EBADMSG);
        CU_ASSERT_EQUAL(h.n_members, 77);
        buf[len] = 0;
        CU_ASSERT_EQUAL(wire_pushpull_open(buf, len + 1, &h, &rd), -EBADMSG);
        /* Version, type, flags. */
        buf[0] = 2;
        CU_ASSERT_EQUAL(wire_pushpull_open(buf, len, &h, &rd), -EPROTONOSUPPORT);
        buf[0] = 1;
        buf[1] = WIRE_MSG_GOSSIP;
        CU_ASSERT_EQUAL(wire_pushpull_open(buf, len, &h, &rd), -EBADMSG);
        buf[1] = 0x10;
        buf[2] = 0x04;
        CU_ASSERT_EQUAL(wire_pushpull_open(buf, len, &h, &rd), -EBADMSG);
        buf[2] = 0x02;
        /* Record count: one more than present, one less, and over the cap. */
        save = buf[13];
        CU_ASSERT_EQUAL(buf[10], 0);
        buf[13] = 6;
        CU_ASSERT_EQUAL(wire_pushpull_open(buf, len, &h, &rd), -EBADMSG);
        buf[13] = 4;
        CU_ASSERT_EQUAL(wire_pushpull_open(buf, len, &h, &rd), -EBADMSG);
        buf[10] = 0x00;
        buf[11] = 0x00;
        buf[12] = 0x27;
        buf[13] = 0x11; /* 10001 */
        CU_ASSERT_EQUAL(wire_pushpull_open(buf, len, &h, &rd), -E2BIG);
        buf[10] = 0xff;
        CU_ASSERT_EQUAL(wire_pushpull_open(buf, len, &h, &rd), -E2BIG);
        buf[10] = 0;
        buf[12] = 0;
        buf[13] = save;
        CU_ASSERT_EQUAL(wire_pushpull_open(buf, len, &h, &rd), 0);
        /* A record with state 5. */
        buf[14] = 5;
        CU_ASSERT_EQUAL(wire_pushpull_open(buf, len, &h, &rd), -EBADMSG);
}

static void test_pushpull_cap(void) {
        struct wire_pushpull_header h;
        struct wire_pushpull_reader rd;
        uint8_t *big = calloc(1, WIRE_PUSHPULL_MAX + 1);

        CU_ASSERT_PTR_NOT_NULL_FATAL(big);
        big[0] = 1;
        CU_ASSERT_EQUAL(wire_pushpull_open(big, WIRE_PUSHPULL_MAX + 1, &h, &rd), -E2BIG);
        free(big);
}

static void test_frame_header(void) {
        static const struct {
                uint8_t in[4];
                uint32_t max;
                int want;
                uint32_t len;
        } cases[] = {
                { { 0, 0, 0, 1 }, 100, 0, 1 },
                { { 0, 0, 0, 100 }, 100, 0, 100 },
                { { 0, 0, 0, 101 }, 100, -E2BIG, 0 },
                { { 0, 0, 0, 0 }, 100, -EBADMSG, 0 },
                { { 0xff, 0xff, 0xff, 0xff }, WIRE_PUSHPULL_MAX, -E2BIG, 0 },
                { { 0x00, 0x40, 0x00, 0x00 }, WIRE_PUSHPULL_MAX, 0, WIRE_PUSHPULL_MAX },
        };
        uint8_t out[4];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint32_t len = 4242;

                CU_ASSERT_EQUAL(wire_frame_header_decode(cases[i].in, cases[i].max, &len), cases[i].want);
                CU_ASSERT_EQUAL(len, cases[i].want == 0 ? cases[i].len : 4242);
        }
        wire_frame_header_encode(0x01020304, out);
        CU_ASSERT_EQUAL(memcmp(out, "\x01\x02\x03\x04", 4), 0);
}

static void test_addr(void) {
        static const uint8_t lo6[16] = { [15] = 1 };
        static const uint8_t lo4[4] = { 127, 0, 0, 1 };
        char buf[WIRE_ADDR_STRLEN];
        struct wire_addr a = wire_addr_ipv4(lo4, 7946), b = wire_addr_ipv6(lo6, 80), bad = {};

        CU_ASSERT_STRING_EQUAL(wire_addr_to_string(&a, buf), "127.0.0.1:7946");
        CU_ASSERT_STRING_EQUAL(wire_addr_to_string(&b, buf), "[::1]:80");
        CU_ASSERT_STRING_EQUAL(wire_addr_to_string(&bad, buf), "-");
        CU_ASSERT_TRUE(wire_addr_valid(&a));
        CU_ASSERT_FALSE(wire_addr_valid(&bad));
        CU_ASSERT_FALSE(wire_addr_equal(&a, &b));
        CU_ASSERT_TRUE(wire_name_valid("a.B_c-9", 7));
        CU_ASSERT_FALSE(wire_name_valid("a/b", 3));
        CU_ASSERT_FALSE(wire_name_valid("", 0));
        CU_ASSERT_STRING_EQUAL(wire_msg_type_to_string(WIRE_MSG_PING_REQ), "ping_req");
        CU_ASSERT_PTR_NULL(wire_msg_type_to_string((enum wire_msg_type)0));
        CU_ASSERT_STRING_EQUAL(wire_state_to_string(WIRE_STATE_LEFT), "left");
}

/* Writes the seed corpus for the fuzzers when asked to. */
static void write_file(const char *dir, const char *sub, const char *name, const uint8_t *p, size_t len) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, sub);
        (void)mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
        f = fopen(path, "wb");
        if (!f)
                return;
        fwrite(p, 1, len, f);
        fclose(f);
}

static void test_write_corpus(void) {
        static struct wire_msg msgs[8];
        const char *dir = getenv("WIRE_WRITE_CORPUS");
        size_t n;
        uint8_t buf[8192], frame[8192 + 4];
        char name[32];
        size_t len;

        if (!dir)
                return;
        n = build_msgs(msgs);
        for (size_t i = 0; i < n; i++) {
                CU_ASSERT_EQUAL_FATAL(wire_encode(&msgs[i], buf, sizeof(buf), &len), 0);
                snprintf(name, sizeof(name), "%s-%zu", wire_msg_type_to_string(msgs[i].type), i);
                write_file(dir, "packet", name, buf, len);
        }
        /* The push-pull fuzzer reads a frame: 4-byte length, then the body. */
        for (uint32_t k = 0; k < 3; k++) {
                len = build_pushpull(frame + 4, sizeof(frame) - 4, k * 7, k == 1);
                wire_frame_header_encode((uint32_t)len, frame);
                snprintf(name, sizeof(name), "pushpull-%u", k * 7);
                write_file(dir, "pushpull", name, frame, len + 4);
        }
}

/* Election bodies: exact bytes, round trip, every truncation and malformed byte refused. */
static void test_election(void) {
        static const uint8_t ref[] = { 1, 0x20, 3, 1, 0xac, 0x02, 0x05, 2, 'n', '1' };
        struct wire_election m = { .kind = 3, .granted = true, .term = 300, .round = 5, .from = "n1", .from_len = 2 };
        struct wire_election d = {}, big = { .kind = 4, .term = UINT64_MAX, .round = UINT64_MAX,
                                             .from = "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd",
                                             .from_len = 64 };
        uint8_t buf[WIRE_ELECTION_MAX + 8];
        size_t len;

        CU_ASSERT_EQUAL_FATAL(wire_election_encode(&m, buf, sizeof(buf), &len), 0);
        CU_ASSERT_EQUAL_FATAL(len, sizeof(ref));
        CU_ASSERT_EQUAL(memcmp(buf, ref, sizeof(ref)), 0);
        CU_ASSERT_TRUE(wire_is_election(buf, len));
        CU_ASSERT_EQUAL_FATAL(wire_election_decode(buf, len, &d), 0);
        CU_ASSERT_EQUAL(d.kind, 3);
        CU_ASSERT_TRUE(d.granted);
        CU_ASSERT_EQUAL(d.term, 300);
        CU_ASSERT_EQUAL(d.round, 5);
        CU_ASSERT_EQUAL(d.from_len, 2);
        CU_ASSERT_EQUAL(memcmp(d.from, "n1", 2), 0);
        /* The gossip decoder never takes an election body for one of its own. */
        {
                static struct wire_msg w;

                CU_ASSERT_EQUAL(wire_decode(buf, len, &w), -EBADMSG);
        }
        for (size_t i = 0; i < len; i++)
                CU_ASSERT_EQUAL(wire_election_decode(buf, i, &d), -EBADMSG);
        CU_ASSERT_EQUAL(d.term, 300);   /* untouched by the failures */
        /* Largest body: round trip, and exactly WIRE_ELECTION_MAX bytes. */
        CU_ASSERT_EQUAL_FATAL(wire_election_encode(&big, buf, sizeof(buf), &len), 0);
        CU_ASSERT_EQUAL(len, WIRE_ELECTION_MAX);
        CU_ASSERT_EQUAL_FATAL(wire_election_decode(buf, len, &d), 0);
        CU_ASSERT_EQUAL(d.term, UINT64_MAX);
        CU_ASSERT_EQUAL(d.round, UINT64_MAX);
        CU_ASSERT_FALSE(d.granted);
        CU_ASSERT_EQUAL(wire_election_encode(&big, buf, WIRE_ELECTION_MAX - 1, &len), -EMSGSIZE);
        CU_ASSERT_EQUAL(wire_election_decode(buf, WIRE_ELECTION_MAX + 1, &d), -E2BIG);
        /* Malformed: version, type, kind, reserved flags, trailing byte, bad name, non-canonical varint. */
        {
                static const struct {
                        size_t at;
                        uint8_t value;
                        int err;
                } bad[] = {
                        { 0, 2, -EPROTONOSUPPORT }, { 1, 0x10, -EBADMSG }, { 2, 6, -EBADMSG },
                        { 3, 2, -EBADMSG },         { 8, '/', -EBADMSG },  { 7, 3, -EBADMSG },
                };
                uint8_t b[sizeof(ref) + 1];

                for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                        memcpy(b, ref, sizeof(ref));
                        b[bad[i].at] = bad[i].value;
                        CU_ASSERT_EQUAL(wire_election_decode(b, sizeof(ref), &d), bad[i].err);
                }
                memcpy(b, ref, sizeof(ref));
                b[sizeof(ref)] = 0;
                CU_ASSERT_EQUAL(wire_election_decode(b, sizeof(ref) + 1, &d), -EBADMSG);
                /* term 0 written as 0x80 0x00: not canonical */
                {
                        static const uint8_t nc[] = { 1, 0x20, 0, 0, 0x80, 0x00, 0, 2, 'n', '1' };

                        CU_ASSERT_EQUAL(wire_election_decode(nc, sizeof(nc), &d), -EBADMSG);
                }
        }
        /* Encoder refuses what the decoder would. */
        m.kind = WIRE_ELECTION_KINDS;
        CU_ASSERT_EQUAL(wire_election_encode(&m, buf, sizeof(buf), &len), -EINVAL);
        m.kind = 0;
        m.from_len = 0;
        CU_ASSERT_EQUAL(wire_election_encode(&m, buf, sizeof(buf), &len), -EINVAL);
}

static CU_TestInfo wire_tests[] = {
        { "roundtrip of every message type", test_roundtrip },
        { "exact bytes of the reference packets", test_exact_bytes },
        { "every truncation refused", test_truncations },
        { "malformed bodies refused", test_malformed },
        { "encoder refuses invalid messages", test_encode_invalid },
        { "encode respects the buffer size", test_budget },
        { "64 updates", test_max_updates },
        { "push-pull roundtrip", test_pushpull_roundtrip },
        { "push-pull malformed", test_pushpull_malformed },
        { "push-pull size cap", test_pushpull_cap },
        { "frame header", test_frame_header },
        { "addresses and names", test_addr },
        { "election bodies", test_election },
        { "seed corpus (WIRE_WRITE_CORPUS)", test_write_corpus },
        CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
        { "wire", NULL, NULL, NULL, NULL, wire_tests },
        CU_SUITE_INFO_NULL,
};

int main(void) {
        return unit_run(suites);
}
