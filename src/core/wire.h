/*
 * The gossip wire codec (pure core): the plaintext body of every UDP packet
 * and of every TCP push-pull exchange. doc/PROTOCOL.md specifies the bytes;
 * this header is its C shape. The envelope (encryption, replay stamps) wraps
 * these bodies and lives in src/io/crypto.c and src/core/replay.c.
 *
 * Decoding never allocates and never reads outside the given buffer: a
 * decoded message borrows its names and meta blobs from the input buffer
 * (pointer + length, not NUL-terminated), so the buffer must outlive the
 * decoded struct. Every malformed input is rejected with a negative errno:
 *
 *   -EBADMSG          truncated, trailing bytes, bad lengths, bad names,
 *                     unknown message/update/state/address kinds, a
 *                     non-canonical varint
 *   -EPROTONOSUPPORT  a version byte this build does not speak
 *   -E2BIG            a count above its cap (updates per packet, members per
 *                     push-pull, frame length)
 *
 * Encoding never writes past the given size: -EMSGSIZE when the message does
 * not fit (nothing useful is left in the buffer then), -EINVAL for a message
 * the decoder would refuse (so encode/decode round-trip exactly).
 */
#ifndef AGENTD_WIRE_H
#define AGENTD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The body version this build writes and the only one it reads. */
#define WIRE_VERSION 1

/* Node names: 1..WIRE_NAME_MAX bytes of [A-Za-z0-9._-]. */
#define WIRE_NAME_MAX 64
/* Opaque per-member metadata gossiped with alive updates and push-pull. */
#define WIRE_META_MAX 256
/* Most updates one UDP body may carry (the decoder refuses more). */
#define WIRE_UPDATES_MAX 64
/*
 * Default budget for one encoded UDP body: a 1400-byte packet minus up to 120
 * bytes of envelope (header, nonce, tag). The adapter may set its own.
 */
#define WIRE_BUDGET_DEFAULT 1280
/* Smallest budget a sender may configure: the largest header plus the largest update. */
#define WIRE_BUDGET_MIN 512
/* Largest UDP body anyone encodes or decodes. */
#define WIRE_BUDGET_MAX 65000
/* Most member records in one push-pull body, and the largest body. */
#define WIRE_PUSHPULL_MEMBERS_MAX 10000
#define WIRE_PUSHPULL_MAX (UINT32_C(4) * 1024 * 1024)
/* The TCP frame length prefix: a 32-bit big-endian byte count. */
#define WIRE_FRAME_HEADER_SIZE 4
/* "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535" plus NUL. */
#define WIRE_ADDR_STRLEN 56

/* An IPv4 or IPv6 address and UDP/TCP port; plain old data, no sockaddr. */
enum wire_family {
        WIRE_AF_NONE = 0,       /* unset; never on the wire */
        WIRE_AF_INET = 4,       /* ip[0..3] used, ip[4..15] zero */
        WIRE_AF_INET6 = 6,
};

struct wire_addr {
        uint8_t family;         /* enum wire_family */
        uint8_t ip[16];         /* network byte order */
        uint16_t port;          /* host byte order */
};

enum wire_msg_type {
        WIRE_MSG_PING = 1,      /* "are you target?" -> ack(seq) */
        WIRE_MSG_ACK = 2,
        WIRE_MSG_PING_REQ = 3,  /* "ping target at addr for me" -> ack(seq) or nack(seq) */
        WIRE_MSG_NACK = 4,      /* "I asked target and heard nothing yet" (Lifeguard) */
        WIRE_MSG_GOSSIP = 5,    /* only piggybacked updates */
        _WIRE_MSG_MAX,
};

/* The member state an update or push-pull record announces. */
enum wire_state {
        WIRE_STATE_ALIVE = 1,   /* with addr and meta */
        WIRE_STATE_SUSPECT = 2, /* with from: who suspects */
        WIRE_STATE_DEAD = 3,    /* with from: who declared it */
        WIRE_STATE_LEFT = 4,    /* the member said goodbye */
        _WIRE_STATE_MAX,
};

/*
 * One piggybacked member update. Strings are (pointer, length), not
 * NUL-terminated. addr/meta are used for ALIVE only, from for SUSPECT and
 * DEAD only; the encoder ignores the fields a kind does not use and the
 * decoder zeroes them.
 */
struct wire_update {
        uint8_t kind;                   /* enum wire_state */
        uint8_t name_len;
        uint8_t from_len;
        uint16_t meta_len;
        const char *name;
        const char *from;
        const uint8_t *meta;
        uint64_t incarnation;
        struct wire_addr addr;
};

/*
 * One UDP body. seq is used by ping/ack/ping_req/nack; target by ping and
 * ping_req (the name the sender believes lives at the destination, or the
 * member to probe); target_addr by ping_req only.
 */
struct wire_msg {
        uint8_t type;                   /* enum wire_msg_type */
        uint8_t target_len;
        uint32_t seq;
        const char *target;
        struct wire_addr target_addr;
        size_t n_updates;
        struct wire_update updates[WIRE_UPDATES_MAX];
};

/* One push-pull member record; strings borrowed as in wire_update. */
struct wire_member {
        uint8_t state;                  /* enum wire_state */
        uint8_t name_len;
        uint16_t meta_len;
        const char *name;
        const uint8_t *meta;
        uint64_t incarnation;
        struct wire_addr addr;          /* every state: where to find it */
};

/* The fixed part of a push-pull body. */
struct wire_pushpull_header {
        bool join;                      /* the sender is joining: first contact */
        bool reply;                     /* this is the answer to a push */
        uint8_t from_len;
        const char *from;               /* the sender's node name */
        uint32_t n_members;
};

/*
 * Walks the records of a push-pull body that wire_pushpull_open() has
 * validated completely; the caller treats it as opaque.
 */
struct wire_pushpull_reader {
        const uint8_t *p;
        const uint8_t *end;
        uint32_t left;
};

/* --- names and addresses ---------------------------------------------- */

/* True when name[0..len) is a valid node name (see WIRE_NAME_MAX). */
bool wire_name_valid(const char *name, size_t len);
/* True when the family is INET/INET6 (and an INET address has zero padding). */
bool wire_addr_valid(const struct wire_addr *a);
bool wire_addr_equal(const struct wire_addr *a, const struct wire_addr *b);
/* Builds addresses; ip is 4 or 16 network-order bytes. */
struct wire_addr wire_addr_ipv4(const uint8_t ip[static 4], uint16_t port);
struct wire_addr wire_addr_ipv6(const uint8_t ip[static 16], uint16_t port);
/* "1.2.3.4:7946", "[::1]:7946", "-" for an invalid address. Returns buf. */
const char *wire_addr_to_string(const struct wire_addr *a, char buf[static WIRE_ADDR_STRLEN]);

const char *wire_msg_type_to_string(enum wire_msg_type t);     /* "ping", ...; NULL if unknown */
const char *wire_state_to_string(enum wire_state s);           /* "alive", ...; NULL if unknown */

/* --- UDP bodies --------------------------------------------------------- */

/*
 * Exact encoded sizes, so a sender can fill a packet up to its budget:
 * wire_msg_header_size() is the message without updates (including the
 * update count byte); each update adds wire_update_size(). Both return 0 for
 * a message/update the encoder would refuse.
 */
size_t wire_msg_header_size(const struct wire_msg *msg);
size_t wire_update_size(const struct wire_update *u);

/*
 * Encodes msg into buf[0..size). On success *ret_len is the body length
 * (never more than size). -EMSGSIZE when it does not fit, -EINVAL when msg is
 * not encodable (bad type, name, address, incarnation, counts).
 */
int wire_encode(const struct wire_msg *msg, uint8_t *buf, size_t size, size_t *ret_len);

/*
 * Decodes one UDP body into *ret (which borrows from buf). Bodies longer than
 * WIRE_BUDGET_MAX are refused with -E2BIG. *ret is untouched on failure.
 */
int wire_decode(const uint8_t *buf, size_t len, struct wire_msg *ret);

/* --- TCP push-pull ------------------------------------------------------ */

/* Exact encoded sizes of the push-pull header and of one record (0: invalid). */
size_t wire_pushpull_header_size(const struct wire_pushpull_header *h);
size_t wire_member_size(const struct wire_member *m);

/*
 * Streaming encoder: write the header at the start of a buffer, then append
 * records; the caller sizes the buffer with the size functions above. Each
 * returns the bytes written or -EMSGSIZE / -EINVAL. h->n_members must equal
 * the number of records appended (the decoder checks it).
 */
int wire_pushpull_encode_header(const struct wire_pushpull_header *h, uint8_t *buf, size_t size);
int wire_member_encode(const struct wire_member *m, uint8_t *buf, size_t size);

/*
 * Validates a whole push-pull body (header and every record) and prepares
 * *ret_reader to walk the records. Nothing is allocated; a body longer than
 * WIRE_PUSHPULL_MAX or announcing more than WIRE_PUSHPULL_MEMBERS_MAX records
 * is -E2BIG. Outputs are untouched on failure.
 */
int wire_pushpull_open(const uint8_t *buf, size_t len, struct wire_pushpull_header *ret_header,
                       struct wire_pushpull_reader *ret_reader);

/* Next record: 1 and *ret filled, 0 at the end. Never fails after open. */
int wire_pushpull_next(struct wire_pushpull_reader *r, struct wire_member *ret);

/*
 * The TCP framing: each frame is a 4-byte big-endian length, then that many
 * bytes (the envelope around a push-pull body). decode refuses 0 and lengths
 * above max with -E2BIG / -EBADMSG.
 */
void wire_frame_header_encode(uint32_t len, uint8_t out[static WIRE_FRAME_HEADER_SIZE]);
int wire_frame_header_decode(const uint8_t in[static WIRE_FRAME_HEADER_SIZE], uint32_t max,
                             uint32_t *ret_len);

/* --- election bodies (UDP) ----------------------------------------------- */

/*
 * The type byte of an election body: outside the UDP message type range, so
 * wire_decode() refuses it and the adapter demultiplexes on byte 1.
 */
#define WIRE_ELECTION_TYPE 0x20
/* Election message kinds: the values of enum election_msg_type (0..5). */
#define WIRE_ELECTION_KINDS 6
#define WIRE_ELECTION_FLAG_GRANTED 0x01
/* The largest election body: version, type, kind, flags, two varints, a name. */
#define WIRE_ELECTION_MAX (4 + 10 + 10 + 1 + WIRE_NAME_MAX)

/* One election message; from is borrowed from the decoded buffer. */
struct wire_election {
        uint8_t kind;                   /* < WIRE_ELECTION_KINDS */
        bool granted;
        uint64_t term;
        uint64_t round;
        uint8_t from_len;
        const char *from;               /* the sender's node name */
};

/* True when buf looks like an election body (version 1, type byte); decode still validates. */
bool wire_is_election(const uint8_t *buf, size_t len);
/* -EMSGSIZE when it does not fit, -EINVAL for a bad kind or name. */
int wire_election_encode(const struct wire_election *m, uint8_t *buf, size_t size, size_t *ret_len);
/* -EBADMSG / -EPROTONOSUPPORT / -E2BIG (longer than WIRE_ELECTION_MAX); *ret untouched on failure. */
int wire_election_decode(const uint8_t *buf, size_t len, struct wire_election *ret);

#endif
