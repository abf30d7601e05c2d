/*
 * The gossip envelope (libsodium): every UDP packet and every TCP push-pull
 * frame is one envelope around an opaque body (the message encoded by
 * core/wire). With a keyring the body is sealed with XChaCha20-Poly1305 and
 * the header plus the cluster name are authenticated as associated data;
 * without one the same header travels in the clear (plaintext mode).
 *
 * Layout (all integers big-endian; doc/PROTOCOL.md "Envelope"):
 *
 *   off len
 *     0   2  magic 0xA6 0xE7
 *     2   1  version (1)
 *     3   1  flags: bit 0 = encrypted; other bits must be 0
 *     4   4  key id (encrypted) or cluster tag (plaintext)
 *     8   8  sender id
 *    16   8  boot epoch
 *    24   8  sequence
 *    32  24  nonce                       (encrypted only)
 *    56   n  ciphertext of the body      (encrypted only; plaintext: the body)
 *   56+n 16  Poly1305 tag                (encrypted only)
 *
 * A TCP frame is a 4-byte big-endian envelope length followed by the
 * envelope; the length is checked against CRYPTO_FRAME_MAX before anything
 * is allocated.
 *
 * Replay protection is not done here: after crypto_open succeeds, the caller
 * feeds (sender id, epoch, sequence) to core/replay. The order matters: only
 * authenticated stamps may touch the replay table.
 *
 * This module never logs; it returns negative errno and, for the keyring,
 * a message.
 */
#ifndef AGENTD_CRYPTO_H
#define AGENTD_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_MAGIC0 0xA6
#define CRYPTO_MAGIC1 0xE7
#define CRYPTO_VERSION 1
#define CRYPTO_FLAG_ENCRYPTED 0x01

#define CRYPTO_KEY_SIZE 32            /* XChaCha20-Poly1305 key */
#define CRYPTO_HEADER_SIZE 32
#define CRYPTO_NONCE_SIZE 24
#define CRYPTO_TAG_SIZE 16
/* Bytes an envelope adds to its body, per mode. */
#define CRYPTO_OVERHEAD_ENCRYPTED (CRYPTO_HEADER_SIZE + CRYPTO_NONCE_SIZE + CRYPTO_TAG_SIZE)
#define CRYPTO_OVERHEAD_PLAINTEXT CRYPTO_HEADER_SIZE

/* TCP framing: a 4-byte length, then at most CRYPTO_FRAME_MAX envelope bytes. */
#define CRYPTO_FRAME_PREFIX 4
#define CRYPTO_FRAME_MAX (UINT32_C(4) << 20)

/* Keyring file limits: more keys or bytes than this is an error, not a truncation. */
#define CRYPTO_KEYRING_MAX 16
#define CRYPTO_KEYRING_FILE_MAX 65536

struct crypto_keyring;

/* The authenticated header of an opened envelope. */
struct crypto_header {
        bool encrypted;
        uint32_t key_id;      /* key id (encrypted) or cluster tag (plaintext) */
        uint64_t sender_id;
        uint64_t epoch;       /* sender's boot epoch */
        uint64_t seq;         /* sender's packet sequence within that epoch */
};

/*
 * Why crypto_open refused an envelope. crypto_open returns a distinct
 * negative errno per reason; crypto_reject_from_errno() maps it back so the
 * caller can count per reason and print with crypto_reject_to_string().
 */
enum crypto_reject {
        CRYPTO_REJECT_NONE,               /* 0: accepted */
        CRYPTO_REJECT_TOO_SHORT,          /* -EMSGSIZE: shorter than its mode's overhead */
        CRYPTO_REJECT_BAD_MAGIC,          /* -EPROTO: not an agentd envelope */
        CRYPTO_REJECT_BAD_VERSION,        /* -EPROTONOSUPPORT: other version or unknown flag bits */
        CRYPTO_REJECT_UNKNOWN_KEY,        /* -ENOKEY: key id not in our keyring */
        CRYPTO_REJECT_AUTH_FAILED,        /* -EBADMSG: tag does not verify (tampered, wrong key or cluster) */
        CRYPTO_REJECT_PLAINTEXT_REFUSED,  /* -EACCES: plaintext envelope, we hold a keyring */
        CRYPTO_REJECT_ENCRYPTED_REFUSED,  /* -ENOPROTOOPT: encrypted envelope, we run plaintext */
        CRYPTO_REJECT_WRONG_CLUSTER,      /* -EXDEV: plaintext envelope of another cluster */
        CRYPTO_REJECT_NO_BUFFER,          /* -ENOBUFS: the caller's body buffer is too small */
        CRYPTO_REJECT_OTHER,              /* any other errno (-EINVAL: bad arguments) */
        _CRYPTO_REJECT_MAX,
};

/* "too_short", "bad_magic", ... ("none" for CRYPTO_REJECT_NONE); NULL when out of range. */
const char *crypto_reject_to_string(enum crypto_reject r);

/* Maps a crypto_open return value (0 or negative errno) to its reason. */
enum crypto_reject crypto_reject_from_errno(int r);

/*
 * Initializes libsodium once per process (later calls return the first
 * result). Every function below that needs it calls it itself; a binary may
 * call it early to fail fast. Returns 0 or -EIO.
 */
int crypto_init(void);

/*
 * Loads a keyring file: one standard base64 key (32 bytes, 44 characters
 * with padding) per line, the first one the primary; blank lines and lines
 * starting with '#' (after optional whitespace) are ignored, as is
 * surrounding whitespace. The file must be a regular file owned by the
 * effective uid with no group or other permission bits, at most
 * CRYPTO_KEYRING_FILE_MAX bytes and CRYPTO_KEYRING_MAX keys, and no two keys
 * may share a key id. On failure *ret_error gets a malloc'd message (NULL if
 * even that failed), one of:
 *   "FILE: No such file or directory"      (any open/read errno, strerror text)
 *   "FILE: not a regular file"
 *   "FILE: must be mode 0600 (is 0644)"
 *   "FILE: must be owned by uid 0 (is 65534)"
 *   "FILE: larger than 65536 bytes"
 *   "FILE: no keys"
 *   "FILE:LINE: not a base64 32-byte key"
 *   "FILE:LINE: duplicate key id 0x1a2b3c4d (line 1)"
 *   "FILE:LINE: more than 16 keys"
 * Returns 0, -ENOENT/-EACCES/... (open), -EPERM (mode or owner), -EINVAL
 * (content), -EFBIG, -ENOMEM, or -EIO (libsodium). *ret is untouched on
 * failure. Keys live in sodium_malloc'd, read-only memory.
 */
int crypto_keyring_load(const char *path, struct crypto_keyring **ret, char **ret_error);

/*
 * Parses keyring text as crypto_keyring_load does, without the file checks;
 * name is used in messages ("NAME:LINE: ..."). For tests and fuzzing.
 */
int crypto_keyring_parse(const char *name, const char *text, size_t len,
                         struct crypto_keyring **ret, char **ret_error);

/*
 * Builds a keyring from raw keys, keys[0] the primary (n in
 * 1..CRYPTO_KEYRING_MAX, key ids distinct). Returns 0, -EINVAL, -EEXIST
 * (duplicate key id), -ENOMEM or -EIO.
 */
int crypto_keyring_new(const uint8_t (*keys)[CRYPTO_KEY_SIZE], size_t n, struct crypto_keyring **ret);

/* Wipes and frees the keys. NULL-safe. */
void crypto_keyring_free(struct crypto_keyring *kr);

/* Number of keys (>= 1), and the key id of key i (0 = primary; i < count). */
size_t crypto_keyring_count(const struct crypto_keyring *kr);
uint32_t crypto_keyring_key_id(const struct crypto_keyring *kr, size_t i);

/* The key id of a key: the first 4 bytes of BLAKE2b-256(key), big-endian. */
uint32_t crypto_key_id(const uint8_t key[CRYPTO_KEY_SIZE]);

/*
 * The sender id of a node: the first 8 bytes of BLAKE2b-256(node name),
 * big-endian. Receivers key their replay windows on it.
 */
uint64_t crypto_sender_id(const char *node_name);

/* The plaintext-mode cluster tag: the first 4 bytes of BLAKE2b-256(cluster name), big-endian. */
uint32_t crypto_cluster_tag(const char *cluster);

/* Envelope bytes added to a body: CRYPTO_OVERHEAD_ENCRYPTED with a keyring, else _PLAINTEXT. */
size_t crypto_overhead(const struct crypto_keyring *kr);

/*
 * Seals body into out: encrypted with the primary key and a fresh random
 * nonce when kr is not NULL, plaintext otherwise. cluster (may be "" but
 * not NULL) is authenticated with the header. out must not overlap body.
 * Returns 0 and the envelope length in *ret_len, -EMSGSIZE when the envelope
 * would exceed CRYPTO_FRAME_MAX, -ENOBUFS when it does not fit out_cap
 * (body_len + crypto_overhead(kr) bytes are needed), or -EINVAL.
 */
int crypto_seal(const struct crypto_keyring *kr, const char *cluster,
                uint64_t sender_id, uint64_t epoch, uint64_t seq,
                const void *body, size_t body_len,
                uint8_t *out, size_t out_cap, size_t *ret_len);

/*
 * Opens an envelope of len bytes: with a keyring, only encrypted envelopes
 * whose key id is in kr and whose tag verifies against the header and
 * cluster; without one, only plaintext envelopes carrying this cluster's
 * tag. The body goes to body (body_cap >= len - crypto_overhead(kr) always
 * suffices; it must not overlap packet). Returns 0 with *ret_hdr and
 * *ret_body_len set, or one negative errno of enum crypto_reject, in which
 * case the outputs are untouched (body's contents are unspecified).
 * Checks run in this order: length >= header, magic, version and flags,
 * mode, then (plaintext) cluster tag or (encrypted) length >= overhead, key
 * id, buffer size, tag.
 */
int crypto_open(const struct crypto_keyring *kr, const char *cluster,
                const uint8_t *packet, size_t len,
                struct crypto_header *ret_hdr,
                uint8_t *body, size_t body_cap, size_t *ret_body_len);

/* Writes the TCP frame prefix for an envelope of envelope_len (<= CRYPTO_FRAME_MAX) bytes. */
void crypto_frame_prefix(size_t envelope_len, uint8_t out[CRYPTO_FRAME_PREFIX]);

/*
 * Reads a TCP frame prefix: 0 and the envelope length, or -EMSGSIZE when it
 * is below CRYPTO_HEADER_SIZE or above CRYPTO_FRAME_MAX (drop the connection).
 */
int crypto_frame_length(const uint8_t prefix[CRYPTO_FRAME_PREFIX], size_t *ret_len);

#endif
