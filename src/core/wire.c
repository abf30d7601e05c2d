/*
 * The gossip wire codec. See wire.h for the contract and doc/PROTOCOL.md for
 * the byte layout. Every read goes through a cursor that checks the
 * remaining length first, so no malformed input can read out of bounds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/wire.h"

/* The type byte of a push-pull body; outside the UDP message type range. */
#define WIRE_PUSHPULL_TYPE 0x10
#define WIRE_PP_FLAG_JOIN 0x01
#define WIRE_PP_FLAG_REPLY 0x02

struct cursor {
        const uint8_t *p;
        const uint8_t *end;
};

struct writer {
        uint8_t *p;
        uint8_t *end;
};

bool wire_name_valid(const char *name, size_t len) {
        if (!name || len == 0 || len > WIRE_NAME_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = name[i];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == '-'))
                        return false;
        }
        return true;
}

bool wire_addr_valid(const struct wire_addr *a) {
        if (!a || a->port == 0)
                return false;
        if (a->family == WIRE_AF_INET6)
                return true;
        if (a->family != WIRE_AF_INET)
                return false;
        /* IPv4 keeps bytes 4..15 zero so that equal addresses compare equal bytewise. */
        for (size_t i = 4; i < sizeof(a->ip); i++)
                if (a->ip[i] != 0)
                        return false;
        return true;
}

bool wire_addr_equal(const struct wire_addr *a, const struct wire_addr *b) {
        return a->family == b->family && a->port == b->port && memcmp(a->ip, b->ip, sizeof(a->ip)) == 0;
}

struct wire_addr wire_addr_ipv4(const uint8_t ip[static 4], uint16_t port) {
        struct wire_addr a = { .family = WIRE_AF_INET, .port = port };

        memcpy(a.ip, ip, 4);
        return a;
}

struct wire_addr wire_addr_ipv6(const uint8_t ip[static 16], uint16_t port) {
        struct wire_addr a = { .family = WIRE_AF_INET6, .port = port };

        memcpy(a.ip, ip, 16);
        return a;
}

const char *wire_addr_to_string(const struct wire_addr *a, char buf[static WIRE_ADDR_STRLEN]) {
        char ip[INET6_ADDRSTRLEN];

        if (!a || !wire_addr_valid(a) ||
            !inet_ntop(a->family == WIRE_AF_INET ? AF_INET : AF_INET6, a->ip, ip, sizeof(ip))) {
                snprintf(buf, WIRE_ADDR_STRLEN, "-");
                return buf;
        }
        if (a->family == WIRE_AF_INET)
                snprintf(buf, WIRE_ADDR_STRLEN, "%s:%u", ip, (unsigned)a->port);
        else
                snprintf(buf, WIRE_ADDR_STRLEN, "[%s]:%u", ip, (unsigned)a->port);
        return buf;
}

const char *wire_msg_type_to_string(enum wire_msg_type t) {
        static const char *const names[_WIRE_MSG_MAX] = {
                [WIRE_MSG_PING] = "ping",         [WIRE_MSG_ACK] = "ack",   [WIRE_MSG_PING_REQ] = "ping_req",
                [WIRE_MSG_NACK] = "nack",         [WIRE_MSG_GOSSIP] = "gossip",
        };

        if ((int)t <= 0 || t >= _WIRE_MSG_MAX)
                return NULL;
        return names[t];
}

const char *wire_state_to_string(enum wire_state s) {
        static const char *const names[_WIRE_STATE_MAX] = {
                [WIRE_STATE_ALIVE] = "alive",
                [WIRE_STATE_SUSPECT] = "suspect",
                [WIRE_STATE_DEAD] = "dead",
                [WIRE_STATE_LEFT] = "left",
        };

        if ((int)s <= 0 || s >= _WIRE_STATE_MAX)
                return NULL;
        return names[s];
}

/* --- primitive sizes and writers ---------------------------------------- */

static size_t varint_size(uint64_t v) {
        size_t n = 1;

        while (v >= 0x80) {
                v >>= 7;
                n++;
        }
        return n;
}

static size_t addr_size(const struct wire_addr *a) {
        return 1 + (a->family == WIRE_AF_INET ? 4 : 16) + 2;
}

static bool w_room(const struct writer *w, size_t n) {
        return (size_t)(w->end - w->p) >= n;
}

static void w_u8(struct writer *w, uint8_t v) {
        *w->p++ = v;
}

static void w_u16(struct writer *w, uint16_t v) {
        w->p[0] = (uint8_t)(v >> 8);
        w->p[1] = (uint8_t)v;
        w->p += 2;
}

static void w_u32(struct writer *w, uint32_t v) {
        w->p[0] = (uint8_t)(v >> 24);
        w->p[1] = (uint8_t)(v >> 16);
        w->p[2] = (uint8_t)(v >> 8);
        w->p[3] = (uint8_t)v;
        w->p += 4;
}

static void w_varint(struct writer *w, uint64_t v) {
        while (v >= 0x80) {
                *w->p++ = (uint8_t)(v | 0x80);
                v >>= 7;
        }
        *w->p++ = (uint8_t)v;
}

static void w_bytes(struct writer *w, const void *p, size_t n) {
        if (n > 0)
                memcpy(w->p, p, n);
        w->p += n;
}

static void w_name(struct writer *w, const char *name, uint8_t len) {
        w_u8(w, len);
        w_bytes(w, name, len);
}

static void w_addr(struct writer *w, const struct wire_addr *a) {
        w_u8(w, a->family);
        w_bytes(w, a->ip, a->family == WIRE_AF_INET ? 4 : 16);
        w_u16(w, a->port);
}

/* --- primitive readers: each checks the remaining length first ------------ */

static int r_u8(struct cursor *c, uint8_t *ret) {
        if (c->p >= c->end)
                return -EBADMSG;
        *ret = *c->p++;
        return 0;
}

static int r_u16(struct cursor *c, uint16_t *ret) {
        if (c->end - c->p < 2)
                return -EBADMSG;
        *ret = (uint16_t)((c->p[0] << 8) | c->p[1]);
        c->p += 2;
        return 0;
}

static int r_u32(struct cursor *c, uint32_t *ret) {
        if (c->end - c->p < 4)
                return -EBADMSG;
        *ret = ((uint32_t)c->p[0] << 24) | ((uint32_t)c->p[1] << 16) | ((uint32_t)c->p[2] << 8) | c->p[3];
        c->p += 4;
        return 0;
}

/*
 * LEB128, at most 10 bytes, canonical only (no redundant zero groups, nothing
 * above 64 bits) so that every value has exactly one encoding.
 */
static int r_varint(struct cursor *c, uint64_t *ret) {
        uint64_t v = 0;

        for (unsigned i = 0; i < 10; i++) {
                uint8_t b;

                if (r_u8(c, &b) < 0)
                        return -EBADMSG;
                if (i == 9 && b > 1)
                        return -EBADMSG;
                v |= (uint64_t)(b & 0x7f) << (7 * i);
                if (!(b & 0x80)) {
                        if (b == 0 && i > 0)
                                return -EBADMSG;
                        *ret = v;
                        return 0;
                }
        }
        return -EBADMSG;
}

static int r_bytes(struct cursor *c, size_t n, const uint8_t **ret) {
        if ((size_t)(c->end - c->p) < n)
                return -EBADMSG;
        *ret = c->p;
        c->p += n;
        return 0;
}

static int r_name(struct cursor *c, const char **ret, uint8_t *ret_len) {
        const uint8_t *p;
        uint8_t len;

        if (r_u8(c, &len) < 0 || r_bytes(c, len, &p) < 0)
                return -EBADMSG;
        if (!wire_name_valid((const char *)p, len))
                return -EBADMSG;
        *ret = (const char *)p;
        *ret_len = len;
        return 0;
}

static int r_addr(struct cursor *c, struct wire_addr *ret) {
        struct wire_addr a = {};
        const uint8_t *ip;

        if (r_u8(c, &a.family) < 0)
                return -EBADMSG;
        if (a.family != WIRE_AF_INET && a.family != WIRE_AF_INET6)
                return -EBADMSG;
        if (r_bytes(c, a.family == WIRE_AF_INET ? 4 : 16, &ip) < 0)
                return -EBADMSG;
        memcpy(a.ip, ip, a.family == WIRE_AF_INET ? 4 : 16);
        if (r_u16(c, &a.port) < 0 || a.port == 0)
                return -EBADMSG;
        *ret = a;
        return 0;
}

static int r_meta(struct cursor *c, const uint8_t **ret, uint16_t *ret_len) {
        uint16_t len;

        if (r_u16(c, &len) < 0 || len > WIRE_META_MAX)
                return -EBADMSG;
        if (r_bytes(c, len, ret) < 0)
                return -EBADMSG;
        *ret_len = len;
        return 0;
}

/* --- UDP bodies ---------------------------------------------------------- */

static bool msg_type_valid(uint8_t t) {
        return t >= WIRE_MSG_PING && t < _WIRE_MSG_MAX;
}

size_t wire_msg_header_size(const struct wire_msg *msg) {
        size_t n = 2 + 1;       /* version, type, update count */

        if (!msg || !msg_type_valid(msg->type))
                return 0;
        switch (msg->type) {
        case WIRE_MSG_PING:
                if (!wire_name_valid(msg->target, msg->target_len))
                        return 0;
                return n + 4 + 1 + msg->target_len;
        case WIRE_MSG_PING_REQ:
                if (!wire_name_valid(msg->target, msg->target_len) || !wire_addr_valid(&msg->target_addr))
                        return 0;
                return n + 4 + 1 + msg->target_len + addr_size(&msg->target_addr);
        case WIRE_MSG_ACK:
        case WIRE_MSG_NACK:
                return n + 4;
        default:
                return n;
        }
}

size_t wire_update_size(const struct wire_update *u) {
        size_t n;

        if (!u || !wire_name_valid(u->name, u->name_len))
                return 0;
        n = 1 + 1 + u->name_len + varint_size(u->incarnation);
        switch (u->kind) {
        case WIRE_STATE_ALIVE:
                if (!wire_addr_valid(&u->addr) || u->meta_len > WIRE_META_MAX || (u->meta_len > 0 && !u->meta))
                        return 0;
                return n + addr_size(&u->addr) + 2 + u->meta_len;
        case WIRE_STATE_SUSPECT:
        case WIRE_STATE_DEAD:
                if (!wire_name_valid(u->from, u->from_len))
                        return 0;
                return n + 1 + u->from_len;
        case WIRE_STATE_LEFT:
                return n;
        default:
                return 0;
        }
}

static void w_update(struct writer *w, const struct wire_update *u) {
        w_u8(w, u->kind);
        w_name(w, u->name, u->name_len);
        w_varint(w, u->incarnation);
        switch (u->kind) {
        case WIRE_STATE_ALIVE:
                w_addr(w, &u->addr);
                w_u16(w, u->meta_len);
                w_bytes(w, u->meta, u->meta_len);
                break;
        case WIRE_STATE_SUSPECT:
        case WIRE_STATE_DEAD:
                w_name(w, u->from, u->from_len);
                break;
        default:
                break;
        }
}

int wire_encode(const struct wire_msg *msg, uint8_t *buf, size_t size, size_t *ret_len) {
        struct writer w;
        size_t total;

        if (!msg || !buf || !ret_len || msg->n_updates > WIRE_UPDATES_MAX)
                return -EINVAL;
        total = wire_msg_header_size(msg);
        if (total == 0)
                return -EINVAL;
        for (size_t i = 0; i < msg->n_updates; i++) {
                size_t s = wire_update_size(&msg->updates[i]);

                if (s == 0)
                        return -EINVAL;
                total += s;
        }
        if (total > WIRE_BUDGET_MAX || total > size)
                return -EMSGSIZE;

        w = (struct writer){ .p = buf, .end = buf + size };
        w_u8(&w, WIRE_VERSION);
        w_u8(&w, msg->type);
        switch (msg->type) {
        case WIRE_MSG_PING:
                w_u32(&w, msg->seq);
                w_name(&w, msg->target, msg->target_len);
                break;
        case WIRE_MSG_PING_REQ:
                w_u32(&w, msg->seq);
                w_name(&w, msg->target, msg->target_len);
                w_addr(&w, &msg->target_addr);
                break;
        case WIRE_MSG_ACK:
        case WIRE_MSG_NACK:
                w_u32(&w, msg->seq);
                break;
        default:
                break;
        }
        w_u8(&w, (uint8_t)msg->n_updates);
        for (size_t i = 0; i < msg->n_updates; i++)
                w_update(&w, &msg->updates[i]);
        *ret_len = (size_t)(w.p - buf);
        return 0;
}

static int r_update(struct cursor *c, struct wire_update *u) {
        *u = (struct wire_update){};
        if (r_u8(c, &u->kind) < 0 || r_name(c, &u->name, &u->name_len) < 0 || r_varint(c, &u->incarnation) < 0)
                return -EBADMSG;
        switch (u->kind) {
        case WIRE_STATE_ALIVE:
                if (r_addr(c, &u->addr) < 0 || r_meta(c, &u->meta, &u->meta_len) < 0)
                        return -EBADMSG;
                return 0;
        case WIRE_STATE_SUSPECT:
        case WIRE_STATE_DEAD:
                return r_name(c, &u->from, &u->from_len);
        case WIRE_STATE_LEFT:
                return 0;
        default:
                return -EBADMSG;
        }
}

int wire_decode(const uint8_t *buf, size_t len, struct wire_msg *ret) {
        struct cursor c = { .p = buf, .end = buf + len };
        uint8_t version, n;
        /* Decoded into a local (4 KiB) first so that *ret is untouched on failure. */
        struct wire_msg m;
        int r;

        if (!buf || !ret)
                return -EINVAL;
        if (len > WIRE_BUDGET_MAX)
                return -E2BIG;
        if (r_u8(&c, &version) < 0)
                return -EBADMSG;
        if (version != WIRE_VERSION)
                return -EPROTONOSUPPORT;
        m.target = NULL;
        m.target_len = 0;
        m.seq = 0;
        m.target_addr = (struct wire_addr){};
        if (r_u8(&c, &m.type) < 0 || !msg_type_valid(m.type))
                return -EBADMSG;
        switch (m.type) {
        case WIRE_MSG_PING:
                if (r_u32(&c, &m.seq) < 0 || r_name(&c, &m.target, &m.target_len) < 0)
                        return -EBADMSG;
                break;
        case WIRE_MSG_PING_REQ:
                if (r_u32(&c, &m.seq) < 0 || r_name(&c, &m.target, &m.target_len) < 0 ||
                    r_addr(&c, &m.target_addr) < 0)
                        return -EBADMSG;
                break;
        case WIRE_MSG_ACK:
        case WIRE_MSG_NACK:
                if (r_u32(&c, &m.seq) < 0)
                        return -EBADMSG;
                break;
        default:
                break;
        }
        if (r_u8(&c, &n) < 0)
                return -EBADMSG;
        if (n > WIRE_UPDATES_MAX)
                return -E2BIG;
        for (size_t i = 0; i < n; i++) {
                r = r_update(&c, &m.updates[i]);
                if (r < 0)
                        return r;
        }
        if (c.p != c.end)
                return -EBADMSG;
        m.n_updates = n;
        memcpy(ret, &m, offsetof(struct wire_msg, updates) + n * sizeof(m.updates[0]));
        return 0;
}

/* --- TCP push-pull -------------------------------------------------------- */

size_t wire_pushpull_header_size(const struct wire_pushpull_header *h) {
        if (!h || !wire_name_valid(h->from, h->from_len))
                return 0;
        return 3 + 1 + h->from_len + 4;
}

size_t wire_member_size(const struct wire_member *m) {
        if (!m || m->state < WIRE_STATE_ALIVE || m->state >= _WIRE_STATE_MAX ||
            !wire_name_valid(m->name, m->name_len) || !wire_addr_valid(&m->addr) || m->meta_len > WIRE_META_MAX ||
            (m->meta_len > 0 && !m->meta))
                return 0;
        return 1 + 1 + m->name_len + varint_size(m->incarnation) + addr_size(&m->addr) + 2 + m->meta_len;
}

int wire_pushpull_encode_header(const struct wire_pushpull_header *h, uint8_t *buf, size_t size) {
        struct writer w = { .p = buf, .end = buf + size };
        size_t n = wire_pushpull_header_size(h);

        if (n == 0 || !buf || h->n_members > WIRE_PUSHPULL_MEMBERS_MAX)
                return -EINVAL;
        if (!w_room(&w, n))
                return -EMSGSIZE;
        w_u8(&w, WIRE_VERSION);
        w_u8(&w, WIRE_PUSHPULL_TYPE);
        w_u8(&w, (uint8_t)((h->join ? WIRE_PP_FLAG_JOIN : 0) | (h->reply ? WIRE_PP_FLAG_REPLY : 0)));
        w_name(&w, h->from, h->from_len);
        w_u32(&w, h->n_members);
        return (int)n;
}

int wire_member_encode(const struct wire_member *m, uint8_t *buf, size_t size) {
        struct writer w = { .p = buf, .end = buf + size };
        size_t n = wire_member_size(m);

        if (n == 0 || !buf)
                return -EINVAL;
        if (!w_room(&w, n))
                return -EMSGSIZE;
        w_u8(&w, m->state);
        w_name(&w, m->name, m->name_len);
        w_varint(&w, m->incarnation);
        w_addr(&w, &m->addr);
        w_u16(&w, m->meta_len);
        w_bytes(&w, m->meta, m->meta_len);
        return (int)n;
}

static int r_member(struct cursor *c, struct wire_member *m) {
        *m = (struct wire_member){};
        if (r_u8(c, &m->state) < 0 || m->state < WIRE_STATE_ALIVE || m->state >= _WIRE_STATE_MAX)
                return -EBADMSG;
        if (r_name(c, &m->name, &m->name_len) < 0 || r_varint(c, &m->incarnation) < 0 || r_addr(c, &m->addr) < 0 ||
            r_meta(c, &m->meta, &m->meta_len) < 0)
                return -EBADMSG;
        return 0;
}

int wire_pushpull_open(const uint8_t *buf, size_t len, struct wire_pushpull_header *ret_header,
                       struct wire_pushpull_reader *ret_reader) {
        struct cursor c = { .p = buf, .end = buf + len };
        struct wire_pushpull_header h = {};
        struct wire_member scratch;
        const uint8_t *records;
        uint8_t version, type, flags;

        if (!buf || !ret_header || !ret_reader)
                return -EINVAL;
        if (len > WIRE_PUSHPULL_MAX)
                return -E2BIG;
        if (r_u8(&c, &version) < 0)
                return -EBADMSG;
        if (version != WIRE_VERSION)
                return -EPROTONOSUPPORT;
        if (r_u8(&c, &type) < 0 || type != WIRE_PUSHPULL_TYPE || r_u8(&c, &flags) < 0 ||
            (flags & ~(WIRE_PP_FLAG_JOIN | WIRE_PP_FLAG_REPLY)) != 0)
                return -EBADMSG;
        if (r_name(&c, &h.from, &h.from_len) < 0 || r_u32(&c, &h.n_members) < 0)
                return -EBADMSG;
        if (h.n_members > WIRE_PUSHPULL_MEMBERS_MAX)
                return -E2BIG;
        h.join = flags & WIRE_PP_FLAG_JOIN;
        h.reply = flags & WIRE_PP_FLAG_REPLY;

        /* Validate every record now, so a bad frame merges nothing. */
        records = c.p;
        for (uint32_t i = 0; i < h.n_members; i++)
                if (r_member(&c, &scratch) < 0)
                        return -EBADMSG;
        if (c.p != c.end)
                return -EBADMSG;
        *ret_header = h;
        *ret_reader = (struct wire_pushpull_reader){ .p = records, .end = c.end, .left = h.n_members };
        return 0;
}

int wire_pushpull_next(struct wire_pushpull_reader *r, struct wire_member *ret) {
        struct cursor c;

        if (!r || r->left == 0)
                return 0;
        c = (struct cursor){ .p = r->p, .end = r->end };
        if (r_member(&c, ret) < 0) {
                /* Unreachable after wire_pushpull_open(); stop rather than loop. */
                r->left = 0;
                return 0;
        }
        r->p = c.p;
        r->left--;
        return 1;
}

void wire_frame_header_encode(uint32_t len, uint8_t out[static WIRE_FRAME_HEADER_SIZE]) {
        out[0] = (uint8_t)(len >> 24);
        out[1] = (uint8_t)(len >> 16);
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
}

int wire_frame_header_decode(const uint8_t in[static WIRE_FRAME_HEADER_SIZE], uint32_t max, uint32_t *ret_len) {
        uint32_t len = ((uint32_t)in[0] << 24) | ((uint32_t)in[1] << 16) | ((uint32_t)in[2] << 8) | in[3];

        if (len == 0)
                return -EBADMSG;
        if (len > max)
                return -E2BIG;
        *ret_len = len;
        return 0;
}

/* --- election bodies -------------------------------------------------------- */

bool wire_is_election(const uint8_t *buf, size_t len) {
        return buf && len >= 2 && buf[0] == WIRE_VERSION && buf[1] == WIRE_ELECTION_TYPE;
}

int wire_election_encode(const struct wire_election *m, uint8_t *buf, size_t size, size_t *ret_len) {
        struct writer w;
        size_t n;

        if (!m || !buf || !ret_len || m->kind >= WIRE_ELECTION_KINDS || !wire_name_valid(m->from, m->from_len))
                return -EINVAL;
        n = 4 + varint_size(m->term) + varint_size(m->round) + 1 + m->from_len;
        if (n > size)
                return -EMSGSIZE;
        w = (struct writer){ .p = buf, .end = buf + size };
        w_u8(&w, WIRE_VERSION);
        w_u8(&w, WIRE_ELECTION_TYPE);
        w_u8(&w, m->kind);
        w_u8(&w, m->granted ? WIRE_ELECTION_FLAG_GRANTED : 0);
        w_varint(&w, m->term);
        w_varint(&w, m->round);
        w_name(&w, m->from, m->from_len);
        *ret_len = n;
        return 0;
}

int wire_election_decode(const uint8_t *buf, size_t len, struct wire_election *ret) {
        struct cursor c = { .p = buf, .end = buf + len };
        struct wire_election m = {};
        uint8_t version, type, flags;

        if (!buf || !ret)
                return -EINVAL;
        if (len > WIRE_ELECTION_MAX)
                return -E2BIG;
        if (r_u8(&c, &version) < 0)
                return -EBADMSG;
        if (version != WIRE_VERSION)
                return -EPROTONOSUPPORT;
        if (r_u8(&c, &type) < 0 || type != WIRE_ELECTION_TYPE || r_u8(&c, &m.kind) < 0 ||
            m.kind >= WIRE_ELECTION_KINDS || r_u8(&c, &flags) < 0 || (flags & ~WIRE_ELECTION_FLAG_GRANTED) != 0)
                return -EBADMSG;
        m.granted = flags & WIRE_ELECTION_FLAG_GRANTED;
        if (r_varint(&c, &m.term) < 0 || r_varint(&c, &m.round) < 0 || r_name(&c, &m.from, &m.from_len) < 0)
                return -EBADMSG;
        if (c.p != c.end)
                return -EBADMSG;
        *ret = m;
        return 0;
}
