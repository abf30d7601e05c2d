/*
 * The gossip envelope over libsodium: keyring files, XChaCha20-Poly1305
 * sealing and opening, and TCP frame lengths. See crypto.h for the layout.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/util.h"
#include "io/crypto.h"

/* The cluster name is part of the associated data, built on the stack. */
#define CLUSTER_MAX 255

struct crypto_keyring {
        size_t n;
        uint32_t ids[CRYPTO_KEYRING_MAX];
        unsigned char *keys;  /* sodium_malloc'd, n * CRYPTO_KEY_SIZE, read-only */
        size_t keys_size;
};

static const struct {
        const char *name;
        int err;  /* the errno crypto_open returns, negated */
} rejects[_CRYPTO_REJECT_MAX] = {
        [CRYPTO_REJECT_NONE] = { "none", 0 },
        [CRYPTO_REJECT_TOO_SHORT] = { "too_short", EMSGSIZE },
        [CRYPTO_REJECT_BAD_MAGIC] = { "bad_magic", EPROTO },
        [CRYPTO_REJECT_BAD_VERSION] = { "bad_version", EPROTONOSUPPORT },
        [CRYPTO_REJECT_UNKNOWN_KEY] = { "unknown_key", ENOKEY },
        [CRYPTO_REJECT_AUTH_FAILED] = { "auth_failed", EBADMSG },
        [CRYPTO_REJECT_PLAINTEXT_REFUSED] = { "plaintext_refused", EACCES },
        [CRYPTO_REJECT_ENCRYPTED_REFUSED] = { "encrypted_refused", ENOPROTOOPT },
        [CRYPTO_REJECT_WRONG_CLUSTER] = { "wrong_cluster", EXDEV },
        [CRYPTO_REJECT_NO_BUFFER] = { "no_buffer", ENOBUFS },
        [CRYPTO_REJECT_OTHER] = { "other", -1 },
};

const char *crypto_reject_to_string(enum crypto_reject r) {
        if ((unsigned) r >= _CRYPTO_REJECT_MAX)
                return NULL;
        return rejects[r].name;
}

enum crypto_reject crypto_reject_from_errno(int r) {
        for (size_t i = 0; i < _CRYPTO_REJECT_MAX; i++)
                if (rejects[i].err == -r)
                        return (enum crypto_reject) i;
        return CRYPTO_REJECT_OTHER;
}

int crypto_init(void) {
        /* sodium_init is idempotent and thread-safe: 1 means already done. */
        return sodium_init() < 0 ? -EIO : 0;
}

static void put_be32(uint8_t *p, uint32_t v) {
        for (int i = 3; i >= 0; i--, v >>= 8)
                p[i] = (uint8_t) v;
}

static void put_be64(uint8_t *p, uint64_t v) {
        for (int i = 7; i >= 0; i--, v >>= 8)
                p[i] = (uint8_t) v;
}

static uint32_t get_be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p) {
        return (uint64_t) get_be32(p) << 32 | get_be32(p + 4);
}

/* The first n (<= 8) bytes of BLAKE2b-256(data), big-endian. */
static uint64_t hash_prefix(const void *data, size_t len, unsigned n) {
        unsigned char h[crypto_generichash_BYTES];
        uint64_t v = 0;

        (void) crypto_init();
        crypto_generichash(h, sizeof h, data, len, NULL, 0);
        for (unsigned i = 0; i < n; i++)
                v = v << 8 | h[i];
        return v;
}

uint32_t crypto_key_id(const uint8_t key[CRYPTO_KEY_SIZE]) {
        return (uint32_t) hash_prefix(key, CRYPTO_KEY_SIZE, 4);
}

uint64_t crypto_sender_id(const char *node_name) {
        return hash_prefix(node_name, strlen(node_name), 8);
}

uint32_t crypto_cluster_tag(const char *cluster) {
        return (uint32_t) hash_prefix(cluster, strlen(cluster), 4);
}

size_t crypto_overhead(const struct crypto_keyring *kr) {
        return kr ? CRYPTO_OVERHEAD_ENCRYPTED : CRYPTO_OVERHEAD_PLAINTEXT;
}

size_t crypto_keyring_count(const struct crypto_keyring *kr) {
        return kr->n;
}

uint32_t crypto_keyring_key_id(const struct crypto_keyring *kr, size_t i) {
        return i < kr->n ? kr->ids[i] : 0;
}

void crypto_keyring_free(struct crypto_keyring *kr) {
        if (!kr)
                return;
        /* sodium_free makes the pages writable again and wipes them. */
        sodium_free(kr->keys);
        sodium_memzero(kr, sizeof *kr);
        free(kr);
}

/* Allocates an empty keyring with room for max keys in guarded memory. */
static int keyring_alloc(size_t max, struct crypto_keyring **ret) {
        struct crypto_keyring *kr;

        if (crypto_init() < 0)
                return -EIO;
        kr = calloc(1, sizeof *kr);
        if (!kr)
                return -ENOMEM;
        kr->keys_size = max * CRYPTO_KEY_SIZE;
        kr->keys = sodium_malloc(kr->keys_size);
        if (!kr->keys) {
                free(kr);
                return -ENOMEM;
        }
        *ret = kr;
        return 0;
}

/* Index of id in kr, or -1. */
static int keyring_find(const struct crypto_keyring *kr, uint32_t id) {
        for (size_t i = 0; i < kr->n; i++)
                if (kr->ids[i] == id)
                        return (int) i;
        return -1;
}

/* Seals the keys against writes; failure only loses that extra protection. */
static void keyring_seal(struct crypto_keyring *kr) {
        (void) sodium_mprotect_readonly(kr->keys);
}

int crypto_keyring_new(const uint8_t (*keys)[CRYPTO_KEY_SIZE], size_t n, struct crypto_keyring **ret) {
        struct crypto_keyring *kr;
        int r;

        if (!keys || !ret || n == 0 || n > CRYPTO_KEYRING_MAX)
                return -EINVAL;
        r = keyring_alloc(n, &kr);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                uint32_t id = crypto_key_id(keys[i]);

                if (keyring_find(kr, id) >= 0) {
                        crypto_keyring_free(kr);
                        return -EEXIST;
                }
                memcpy(kr->keys + i * CRYPTO_KEY_SIZE, keys[i], CRYPTO_KEY_SIZE);
                kr->ids[i] = id;
                kr->n = i + 1;
        }
        keyring_seal(kr);
        *ret = kr;
        return 0;
}

_printf_(2, 3)
static void set_error(char **ret_error, const char *fmt, ...) {
        va_list ap;
        char *m;

        if (!ret_error)
                return;
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        *ret_error = m;
}

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

int crypto_keyring_parse(const char *name, const char *text, size_t len,
                         struct crypto_keyring **ret, char **ret_error) {
        struct crypto_keyring *kr;
        unsigned lines[CRYPTO_KEYRING_MAX];
        unsigned lineno = 0;
        size_t pos = 0;
        int r;

        if (!name || (!text && len > 0) || !ret)
                return -EINVAL;
        r = keyring_alloc(CRYPTO_KEYRING_MAX, &kr);
        if (r < 0) {
                set_error(ret_error, "%s: %s", name, strerror(-r));
                return r;
        }

        while (pos < len) {
                const char *line = text + pos;
                const char *nl = memchr(line, '\n', len - pos);
                size_t n = nl ? (size_t) (nl - line) : len - pos;
                const char *end = NULL;
                size_t keylen = 0;
                uint32_t id;
                int dup;

                pos += n + (nl ? 1 : 0);
                lineno++;
                while (n > 0 && is_blank(line[0])) {
                        line++;
                        n--;
                }
                while (n > 0 && is_blank(line[n - 1]))
                        n--;
                if (n == 0 || line[0] == '#')
                        continue;

                if (kr->n == CRYPTO_KEYRING_MAX) {
                        set_error(ret_error, "%s:%u: more than %d keys", name, lineno, CRYPTO_KEYRING_MAX);
                        r = -EINVAL;
                        goto fail;
                }
                unsigned char *key = kr->keys + kr->n * CRYPTO_KEY_SIZE;
                if (sodium_base642bin(key, CRYPTO_KEY_SIZE, line, n, NULL, &keylen, &end,
                                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
                    end != line + n || keylen != CRYPTO_KEY_SIZE) {
                        set_error(ret_error, "%s:%u: not a base64 %d-byte key", name, lineno, CRYPTO_KEY_SIZE);
                        r = -EINVAL;
                        goto fail;
                }
                id = crypto_key_id(key);
                dup = keyring_find(kr, id);
                if (dup >= 0) {
                        set_error(ret_error, "%s:%u: duplicate key id 0x%08x (line %u)",
                                  name, lineno, (unsigned) id, lines[dup]);
                        r = -EINVAL;
                        goto fail;
                }
                kr->ids[kr->n] = id;
                lines[kr->n] = lineno;
                kr->n++;
        }

        if (kr->n == 0) {
                set_error(ret_error, "%s: no keys", name);
                r = -EINVAL;
                goto fail;
        }
        keyring_seal(kr);
        *ret = kr;
        return 0;

fail:
        crypto_keyring_free(kr);
        return r;
}

int crypto_keyring_load(const char *path, struct crypto_keyring **ret, char **ret_error) {
        struct stat st;
        char *buf = NULL;
        size_t len = 0;
        int fd, r;

        if (!path || !ret)
                return -EINVAL;
        /* O_NONBLOCK: a FIFO planted at the path must not hang the agent. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                r = -errno;
                set_error(ret_error, "%s: %s", path, strerror(-r));
                return r;
        }
        if (fstat(fd, &st) < 0) {
                r = -errno;
                set_error(ret_error, "%s: %s", path, strerror(-r));
                goto out;
        }
        if (!S_ISREG(st.st_mode)) {
                set_error(ret_error, "%s: not a regular file", path);
                r = -EINVAL;
                goto out;
        }
        if (st.st_mode & (S_IRWXG | S_IRWXO)) {
                set_error(ret_error, "%s: must be mode 0600 (is %04o)", path, (unsigned) (st.st_mode & 07777));
                r = -EPERM;
                goto out;
        }
        if (st.st_uid != geteuid()) {
                set_error(ret_error, "%s: must be owned by uid %u (is %u)", path,
                          (unsigned) geteuid(), (unsigned) st.st_uid);
                r = -EPERM;
                goto out;
        }
        if (st.st_size > CRYPTO_KEYRING_FILE_MAX) {
                set_error(ret_error, "%s: larger than %d bytes", path, CRYPTO_KEYRING_FILE_MAX);
                r = -EFBIG;
                goto out;
        }

        /* One byte more than allowed, to notice a file that grew since fstat. */
        buf = malloc(CRYPTO_KEYRING_FILE_MAX + 1);
        if (!buf) {
                r = -ENOMEM;
                set_error(ret_error, "%s: %s", path, strerror(-r));
                goto out;
        }
        for (;;) {
                ssize_t n = read(fd, buf + len, CRYPTO_KEYRING_FILE_MAX + 1 - len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        set_error(ret_error, "%s: %s", path, strerror(-r));
                        goto out;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > CRYPTO_KEYRING_FILE_MAX) {
                        set_error(ret_error, "%s: larger than %d bytes", path, CRYPTO_KEYRING_FILE_MAX);
                        r = -EFBIG;
                        goto out;
                }
        }
        r = crypto_keyring_parse(path, buf, len, ret, ret_error);

out:
        if (buf) {
                sodium_memzero(buf, CRYPTO_KEYRING_FILE_MAX + 1);
                free(buf);
        }
        close(fd);
        return r;
}

/* Writes the 32 header bytes. */
static void header_put(uint8_t *p, bool encrypted, uint32_t key_id,
                       uint64_t sender_id, uint64_t epoch, uint64_t seq) {
        p[0] = CRYPTO_MAGIC0;
        p[1] = CRYPTO_MAGIC1;
        p[2] = CRYPTO_VERSION;
        p[3] = encrypted ? CRYPTO_FLAG_ENCRYPTED : 0;
        put_be32(p + 4, key_id);
        put_be64(p + 8, sender_id);
        put_be64(p + 16, epoch);
        put_be64(p + 24, seq);
}

/* Associated data: the header, then the cluster name's bytes. */
static size_t ad_build(uint8_t ad[CRYPTO_HEADER_SIZE + CLUSTER_MAX], const uint8_t *header,
                       const char *cluster, size_t cluster_len) {
        memcpy(ad, header, CRYPTO_HEADER_SIZE);
        memcpy(ad + CRYPTO_HEADER_SIZE, cluster, cluster_len);
        return CRYPTO_HEADER_SIZE + cluster_len;
}

int crypto_seal(const struct crypto_keyring *kr, const char *cluster,
                uint64_t sender_id, uint64_t epoch, uint64_t seq,
                const void *body, size_t body_len,
                uint8_t *out, size_t out_cap, size_t *ret_len) {
        uint8_t ad[CRYPTO_HEADER_SIZE + CLUSTER_MAX];
        size_t overhead = crypto_overhead(kr);
        size_t cluster_len, ad_len;
        unsigned long long clen;

        if (!cluster || (!body && body_len > 0) || !out || !ret_len)
                return -EINVAL;
        cluster_len = strlen(cluster);
        if (cluster_len > CLUSTER_MAX)
                return -EINVAL;
        if (body_len > CRYPTO_FRAME_MAX - overhead)
                return -EMSGSIZE;
        if (out_cap < body_len + overhead)
                return -ENOBUFS;

        if (!kr) {
                header_put(out, false, crypto_cluster_tag(cluster), sender_id, epoch, seq);
                if (body_len > 0)
                        memcpy(out + CRYPTO_HEADER_SIZE, body, body_len);
                *ret_len = CRYPTO_HEADER_SIZE + body_len;
                return 0;
        }

        header_put(out, true, kr->ids[0], sender_id, epoch, seq);
        /* 192 random bits: collisions are negligible with no counter to persist. */
        randombytes_buf(out + CRYPTO_HEADER_SIZE, CRYPTO_NONCE_SIZE);
        ad_len = ad_build(ad, out, cluster, cluster_len);
        if (crypto_aead_xchacha20poly1305_ietf_encrypt(out + CRYPTO_HEADER_SIZE + CRYPTO_NONCE_SIZE, &clen,
                                                       body, body_len, ad, ad_len, NULL,
                                                       out + CRYPTO_HEADER_SIZE, kr->keys) != 0)
                return -EIO;
        *ret_len = CRYPTO_HEADER_SIZE + CRYPTO_NONCE_SIZE + (size_t) clen;
        return 0;
}

int crypto_open(const struct crypto_keyring *kr, const char *cluster,
                const uint8_t *packet, size_t len,
                struct crypto_header *ret_hdr,
                uint8_t *body, size_t body_cap, size_t *ret_body_len) {
        uint8_t ad[CRYPTO_HEADER_SIZE + CLUSTER_MAX];
        struct crypto_header h;
        size_t cluster_len, body_len, ad_len;
        unsigned long long mlen;
        uint8_t empty[1];
        int k;

        if (!cluster || (!packet && len > 0) || !ret_hdr || (!body && body_cap > 0) || !ret_body_len)
                return -EINVAL;
        cluster_len = strlen(cluster);
        if (cluster_len > CLUSTER_MAX)
                return -EINVAL;

        if (len < CRYPTO_HEADER_SIZE)
                return -EMSGSIZE;
        if (packet[0] != CRYPTO_MAGIC0 || packet[1] != CRYPTO_MAGIC1)
                return -EPROTO;
        if (packet[2] != CRYPTO_VERSION || (packet[3] & ~CRYPTO_FLAG_ENCRYPTED) != 0)
                return -EPROTONOSUPPORT;

        h.encrypted = packet[3] & CRYPTO_FLAG_ENCRYPTED;
        h.key_id = get_be32(packet + 4);
        h.sender_id = get_be64(packet + 8);
        h.epoch = get_be64(packet + 16);
        h.seq = get_be64(packet + 24);

        if (h.encrypted && !kr)
                return -ENOPROTOOPT;
        if (!h.encrypted && kr)
                return -EACCES;

        if (!h.encrypted) {
                if (h.key_id != crypto_cluster_tag(cluster))
                        return -EXDEV;
                body_len = len - CRYPTO_HEADER_SIZE;
                if (body_len > body_cap)
                        return -ENOBUFS;
                if (body_len > 0)
                        memcpy(body, packet + CRYPTO_HEADER_SIZE, body_len);
                *ret_hdr = h;
                *ret_body_len = body_len;
                return 0;
        }

        if (len < CRYPTO_OVERHEAD_ENCRYPTED)
                return -EMSGSIZE;
        k = keyring_find(kr, h.key_id);
        if (k < 0)
                return -ENOKEY;
        body_len = len - CRYPTO_OVERHEAD_ENCRYPTED;
        if (body_len > body_cap)
                return -ENOBUFS;
        ad_len = ad_build(ad, packet, cluster, cluster_len);
        /* body may be NULL only for an empty body; libsodium wants a pointer. */
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(body ? body : empty, &mlen, NULL,
                                                       packet + CRYPTO_HEADER_SIZE + CRYPTO_NONCE_SIZE,
                                                       len - CRYPTO_HEADER_SIZE - CRYPTO_NONCE_SIZE,
                                                       ad, ad_len, packet + CRYPTO_HEADER_SIZE,
                                                       kr->keys + (size_t) k * CRYPTO_KEY_SIZE) != 0)
                return -EBADMSG;
        *ret_hdr = h;
        *ret_body_len = (size_t) mlen;
        return 0;
}

void crypto_frame_prefix(size_t envelope_len, uint8_t out[CRYPTO_FRAME_PREFIX]) {
        put_be32(out, (uint32_t) envelope_len);
}

int crypto_frame_length(const uint8_t prefix[CRYPTO_FRAME_PREFIX], size_t *ret_len) {
        uint32_t n = get_be32(prefix);

        if (n < CRYPTO_HEADER_SIZE || n > CRYPTO_FRAME_MAX)
                return -EMSGSIZE;
        *ret_len = n;
        return 0;
}
