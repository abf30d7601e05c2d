/*
 * The gossip envelope: seal/open round trips in both modes, every tampered
 * bit and every truncation refused with its exact reason, cluster and key
 * mismatches, rotation across keyrings, buffer limits, TCP frame lengths,
 * and keyring files with their exact error messages.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/util.h"
#include "io/crypto.h"
#include "unit.h"

static uint8_t key_a[CRYPTO_KEY_SIZE];
static uint8_t key_b[CRYPTO_KEY_SIZE];
static char *tmpdir;

static int setup(void) {
        if (crypto_init() < 0)
                return 1;
        for (int i = 0; i < CRYPTO_KEY_SIZE; i++) {
                key_a[i] = (uint8_t) (i + 1);
                key_b[i] = (uint8_t) (0xf0 ^ i);
        }
        tmpdir = unit_tmpdir();
        return 0;
}

static int teardown(void) {
        char cmd[300];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
                return 1;
        free(tmpdir);
        return 0;
}

/* A keyring of the given keys in order (first = primary). */
static struct crypto_keyring *ring(const uint8_t *k0, const uint8_t *k1) {
        uint8_t keys[2][CRYPTO_KEY_SIZE];
        struct crypto_keyring *kr = NULL;

        memcpy(keys[0], k0, CRYPTO_KEY_SIZE);
        if (k1)
                memcpy(keys[1], k1, CRYPTO_KEY_SIZE);
        CU_ASSERT_EQUAL_FATAL(crypto_keyring_new((const uint8_t (*)[CRYPTO_KEY_SIZE]) keys, k1 ? 2 : 1, &kr), 0);
        return kr;
}

static const char body[] = "the gossip body: ping n2 incarnation 7";
#define BODY_LEN (sizeof body - 1)

static size_t seal(const struct crypto_keyring *kr, const char *cluster, uint8_t *out, size_t cap) {
        size_t len = 0;

        CU_ASSERT_EQUAL_FATAL(crypto_seal(kr, cluster, 0x1122334455667788, 9, 1000, body, BODY_LEN, out, cap, &len), 0);
        return len;
}

/* Opens and returns the errno; on success checks the header and body exactly. */
static int open_check(const struct crypto_keyring *kr, const char *cluster, const uint8_t *pkt, size_t len) {
        struct crypto_header h;
        uint8_t out[2048];
        size_t n = 0;
        int r;

        r = crypto_open(kr, cluster, pkt, len, &h, out, sizeof out, &n);
        if (r == 0) {
                CU_ASSERT_EQUAL(h.encrypted, kr != NULL);
                CU_ASSERT_EQUAL(h.sender_id, 0x1122334455667788);
                CU_ASSERT_EQUAL(h.epoch, 9);
                CU_ASSERT_EQUAL(h.seq, 1000);
                CU_ASSERT_EQUAL(n, BODY_LEN);
                CU_ASSERT(n == BODY_LEN && memcmp(out, body, BODY_LEN) == 0);
        }
        return r;
}

static void test_round_trip(void) {
        struct crypto_keyring *kr = ring(key_a, NULL);
        uint8_t pkt[1500], pkt2[1500];
        struct crypto_header h;
        uint8_t out[64];
        size_t len, len2, n;

        /* Encrypted: exact layout of the clear part. */
        len = seal(kr, "demo", pkt, sizeof pkt);
        CU_ASSERT_EQUAL(len, BODY_LEN + CRYPTO_OVERHEAD_ENCRYPTED);
        CU_ASSERT_EQUAL(len, BODY_LEN + crypto_overhead(kr));
        static const uint8_t hdr[CRYPTO_HEADER_SIZE] = {
                0xA6, 0xE7, 1, 1, 0x44, 0x1e, 0xdc, 0x56,
                0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
                0, 0, 0, 0, 0, 0, 0, 9,
                0, 0, 0, 0, 0, 0, 0x03, 0xe8,
        };
        CU_ASSERT_EQUAL(memcmp(pkt, hdr, sizeof hdr), 0);
        /* The body is not in the clear. */
        CU_ASSERT_PTR_NULL(memmem(pkt, len, "ping n2", 7));
        CU_ASSERT_EQUAL(open_check(kr, "demo", pkt, len), 0);
        CU_ASSERT_EQUAL(crypto_open(kr, "demo", pkt, len, &h, out, sizeof out, &n), 0);
        CU_ASSERT_EQUAL(h.key_id, 0x441edc56);

        /* A fresh random nonce every time: same input, different packets. */
        len2 = seal(kr, "demo", pkt2, sizeof pkt2);
        CU_ASSERT_EQUAL(len2, len);
        CU_ASSERT_EQUAL(memcmp(pkt, pkt2, CRYPTO_HEADER_SIZE), 0);
        CU_ASSERT_NOT_EQUAL(memcmp(pkt + CRYPTO_HEADER_SIZE, pkt2 + CRYPTO_HEADER_SIZE, CRYPTO_NONCE_SIZE), 0);

        /* Plaintext: header with the cluster tag, then the body as is. */
        len = seal(NULL, "demo", pkt, sizeof pkt);
        CU_ASSERT_EQUAL(len, BODY_LEN + CRYPTO_OVERHEAD_PLAINTEXT);
        CU_ASSERT_EQUAL(crypto_overhead(NULL), CRYPTO_HEADER_SIZE);
        CU_ASSERT_EQUAL(pkt[3], 0);
        CU_ASSERT_EQUAL(memcmp(pkt + 4, "\xed\x12\xe5\xbe", 4), 0);
        CU_ASSERT_EQUAL(memcmp(pkt + CRYPTO_HEADER_SIZE, body, BODY_LEN), 0);
        CU_ASSERT_EQUAL(open_check(NULL, "demo", pkt, len), 0);
        CU_ASSERT_EQUAL(crypto_open(NULL, "demo", pkt, len, &h, out, sizeof out, &n), 0);
        CU_ASSERT_EQUAL(h.key_id, crypto_cluster_tag("demo"));

        /* Empty bodies, with a NULL body buffer. */
        for (int mode = 0; mode < 2; mode++) {
                const struct crypto_keyring *k = mode ? kr : NULL;

                CU_ASSERT_EQUAL(crypto_seal(k, "", 1, 2, 3, NULL, 0, pkt, sizeof pkt, &len), 0);
                CU_ASSERT_EQUAL(len, crypto_overhead(k));
                n = 99;
                CU_ASSERT_EQUAL(crypto_open(k, "", pkt, len, &h, NULL, 0, &n), 0);
                CU_ASSERT_EQUAL(n, 0);
                CU_ASSERT_EQUAL(h.sender_id, 1);
                CU_ASSERT_EQUAL(h.epoch, 2);
                CU_ASSERT_EQUAL(h.seq, 3);
        }
        crypto_keyring_free(kr);
}

/* Known answers: these derivations are part of the wire format. */
static void test_derivations(void) {
        CU_ASSERT_EQUAL(crypto_key_id(key_a), 0x441edc56);
        CU_ASSERT_EQUAL(crypto_sender_id("n1"), UINT64_C(0x737fa11d92be20a1));
        CU_ASSERT_EQUAL(crypto_cluster_tag("demo"), 0xed12e5be);
        CU_ASSERT_NOT_EQUAL(crypto_sender_id("n1"), crypto_sender_id("n2"));
}

/* Flipping any bit anywhere is refused, with the reason that byte's role implies. */
static void test_tamper(void) {
        struct crypto_keyring *kr = ring(key_a, NULL);
        uint8_t pkt[1500];
        size_t len = seal(kr, "demo", pkt, sizeof pkt);
        unsigned tested = 0;

        for (size_t i = 0; i < len; i++) {
                for (int bit = 0; bit < 8; bit++) {
                        int want, r;

                        if (i < 2)
                                want = -EPROTO;
                        else if (i == 2)
                                want = -EPROTONOSUPPORT;
                        else if (i == 3)
                                want = bit == 0 ? -EACCES : -EPROTONOSUPPORT;
                        else if (i < 8)
                                want = -ENOKEY;
                        else
                                want = -EBADMSG;  /* sender, epoch, seq, nonce, ciphertext, tag */
                        pkt[i] ^= (uint8_t) (1u << bit);
                        r = open_check(kr, "demo", pkt, len);
                        pkt[i] ^= (uint8_t) (1u << bit);
                        if (r != want)
                                fprintf(stderr, "\nbyte %zu bit %d: got %d want %d\n", i, bit, r, want);
                        CU_ASSERT_EQUAL(r, want);
                        tested++;
                }
        }
        CU_ASSERT_EQUAL(tested, 8 * (BODY_LEN + CRYPTO_OVERHEAD_ENCRYPTED));
        CU_ASSERT_EQUAL(open_check(kr, "demo", pkt, len), 0);

        /* Every truncation, and one extra byte. */
        for (size_t l = 0; l < len; l++) {
                int want = l < CRYPTO_OVERHEAD_ENCRYPTED ? -EMSGSIZE : -EBADMSG;

                CU_ASSERT_EQUAL(open_check(kr, "demo", pkt, l), want);
        }
        pkt[len] = 0;
        CU_ASSERT_EQUAL(open_check(kr, "demo", pkt, len + 1), -EBADMSG);

        /* Plaintext mode authenticates nothing, but the framing still holds. */
        len = seal(NULL, "demo", pkt, sizeof pkt);
        for (size_t l = 0; l < CRYPTO_HEADER_SIZE; l++)
                CU_ASSERT_EQUAL(open_check(NULL, "demo", pkt, l), -EMSGSIZE);
        pkt[3] = 0x02;
        CU_ASSERT_EQUAL(open_check(NULL, "demo", pkt, len), -EPROTONOSUPPORT);
        pkt[3] = 0;
        pkt[2] = 2;
        CU_ASSERT_EQUAL(open_check(NULL, "demo", pkt, len), -EPROTONOSUPPORT);
        pkt[2] = 1;
        pkt[0] = 'G';
        CU_ASSERT_EQUAL(open_check(NULL, "demo", pkt, len), -EPROTO);
        crypto_keyring_free(kr);
}

static void test_cluster_and_mode(void) {
        struct crypto_keyring *kr = ring(key_a, NULL);
        uint8_t pkt[1500];
        size_t len;

        len = seal(kr, "demo", pkt, sizeof pkt);
        CU_ASSERT_EQUAL(open_check(kr, "demo2", pkt, len), -EBADMSG);
        CU_ASSERT_EQUAL(open_check(kr, "", pkt, len), -EBADMSG);
        CU_ASSERT_EQUAL(open_check(kr, "Demo", pkt, len), -EBADMSG);
        /* An encrypted packet reaching a plaintext agent. */
        CU_ASSERT_EQUAL(open_check(NULL, "demo", pkt, len), -ENOPROTOOPT);

        len = seal(NULL, "demo", pkt, sizeof pkt);
        CU_ASSERT_EQUAL(open_check(NULL, "demo2", pkt, len), -EXDEV);
        /* A plaintext packet reaching an agent with a keyring. */
        CU_ASSERT_EQUAL(open_check(kr, "demo", pkt, len), -EACCES);

        /* A cluster name longer than the associated data allows. */
        char longname[300];
        memset(longname, 'c', sizeof longname - 1);
        longname[sizeof longname - 1] = 0;
        size_t n;
        CU_ASSERT_EQUAL(crypto_seal(kr, longname, 1, 1, 1, body, BODY_LEN, pkt, sizeof pkt, &n), -EINVAL);
        CU_ASSERT_EQUAL(open_check(kr, longname, pkt, len), -EINVAL);
        longname[255] = 0;
        CU_ASSERT_EQUAL(crypto_seal(kr, longname, 0x1122334455667788, 9, 1000, body, BODY_LEN, pkt, sizeof pkt, &n), 0);
        CU_ASSERT_EQUAL(open_check(kr, longname, pkt, n), 0);
        crypto_keyring_free(kr);
}

static void test_unknown_key(void) {
        struct crypto_keyring *a = ring(key_a, NULL), *b = ring(key_b, NULL);
        uint8_t pkt[1500];
        size_t len = seal(b, "demo", pkt, sizeof pkt);

        CU_ASSERT_EQUAL(open_check(a, "demo", pkt, len), -ENOKEY);
        CU_ASSERT_EQUAL(open_check(b, "demo", pkt, len), 0);
        crypto_keyring_free(a);
        crypto_keyring_free(b);
}

/*
 * The rotation procedure step by step: [A] -> [A,B] -> [B,A] -> [B].
 * Adjacent steps must always understand each other, since members reload
 * one at a time.
 */
static void test_rotation(void) {
        struct crypto_keyring *step[4] = {
                ring(key_a, NULL), ring(key_a, key_b), ring(key_b, key_a), ring(key_b, NULL),
        };
        /* want[s][o]: can a member at step o open what a member at step s sealed? */
        static const int want[4][4] = {
                { 0, 0, 0, -ENOKEY },
                { 0, 0, 0, -ENOKEY },
                { -ENOKEY, 0, 0, 0 },
                { -ENOKEY, 0, 0, 0 },
        };

        CU_ASSERT_EQUAL(crypto_keyring_count(step[1]), 2);
        CU_ASSERT_EQUAL(crypto_keyring_key_id(step[1], 0), crypto_key_id(key_a));
        CU_ASSERT_EQUAL(crypto_keyring_key_id(step[1], 1), crypto_key_id(key_b));
        CU_ASSERT_EQUAL(crypto_keyring_key_id(step[2], 0), crypto_key_id(key_b));
        for (int s = 0; s < 4; s++) {
                uint8_t pkt[1500];
                size_t len = seal(step[s], "demo", pkt, sizeof pkt);
                struct crypto_header h;
                uint8_t out[128];
                size_t n;

                /* Sealed with the primary. */
                CU_ASSERT_EQUAL(crypto_open(step[s], "demo", pkt, len, &h, out, sizeof out, &n), 0);
                CU_ASSERT_EQUAL(h.key_id, crypto_keyring_key_id(step[s], 0));
                for (int o = 0; o < 4; o++) {
                        int r = open_check(step[o], "demo", pkt, len);

                        if (r != want[s][o])
                                fprintf(stderr, "\nsealed at %d opened at %d: %d\n", s, o, r);
                        CU_ASSERT_EQUAL(r, want[s][o]);
                }
        }
        for (int s = 0; s < 4; s++)
                crypto_keyring_free(step[s]);
}

static void test_buffers(void) {
        struct crypto_keyring *kr = ring(key_a, NULL);
        uint8_t pkt[1500], out[128];
        struct crypto_header h = { .seq = 4242 };
        size_t len = 7, n = 7;

        for (int mode = 0; mode < 2; mode++) {
                const struct crypto_keyring *k = mode ? kr : NULL;
                size_t need = BODY_LEN + crypto_overhead(k);

                CU_ASSERT_EQUAL(crypto_seal(k, "demo", 1, 1, 1, body, BODY_LEN, pkt, need - 1, &len), -ENOBUFS);
                CU_ASSERT_EQUAL(len, 7);
                CU_ASSERT_EQUAL(crypto_seal(k, "demo", 0x1122334455667788, 9, 1000, body, BODY_LEN, pkt, need, &len), 0);
                CU_ASSERT_EQUAL(len, need);
                CU_ASSERT_EQUAL(crypto_open(k, "demo", pkt, len, &h, out, BODY_LEN - 1, &n), -ENOBUFS);
                CU_ASSERT_EQUAL(h.seq, 4242);  /* untouched on failure */
                CU_ASSERT_EQUAL(n, 7);
                CU_ASSERT_EQUAL(crypto_open(k, "demo", pkt, len, &h, out, BODY_LEN, &n), 0);
                CU_ASSERT_EQUAL(n, BODY_LEN);
                h.seq = 4242;
                n = 7;
                len = 7;
        }

        /* The largest body a frame holds, and one byte more. */
        size_t big = CRYPTO_FRAME_MAX - CRYPTO_OVERHEAD_ENCRYPTED;
        uint8_t *b = calloc(1, big + 1), *o = malloc(CRYPTO_FRAME_MAX + 1), *back = malloc(big);
        CU_ASSERT_FATAL(b && o && back);
        b[0] = 1;
        b[big - 1] = 2;
        CU_ASSERT_EQUAL(crypto_seal(kr, "demo", 1, 1, 1, b, big + 1, o, CRYPTO_FRAME_MAX + 1, &len), -EMSGSIZE);
        CU_ASSERT_EQUAL(crypto_seal(kr, "demo", 1, 1, 1, b, big, o, CRYPTO_FRAME_MAX, &len), 0);
        CU_ASSERT_EQUAL(len, CRYPTO_FRAME_MAX);
        CU_ASSERT_EQUAL(crypto_open(kr, "demo", o, len, &h, back, big, &n), 0);
        CU_ASSERT(n == big && memcmp(back, b, big) == 0);
        CU_ASSERT_EQUAL(crypto_seal(NULL, "demo", 1, 1, 1, b, CRYPTO_FRAME_MAX - CRYPTO_HEADER_SIZE + 1,
                                    o, CRYPTO_FRAME_MAX + 1, &len), -EMSGSIZE);
        free(b);
        free(o);
        free(back);

        /* Arguments. */
        CU_ASSERT_EQUAL(crypto_seal(kr, NULL, 1, 1, 1, body, BODY_LEN, pkt, sizeof pkt, &len), -EINVAL);
        CU_ASSERT_EQUAL(crypto_seal(kr, "demo", 1, 1, 1, NULL, 5, pkt, sizeof pkt, &len), -EINVAL);
        CU_ASSERT_EQUAL(crypto_open(kr, "demo", NULL, 5, &h, out, sizeof out, &n), -EINVAL);
        crypto_keyring_free(kr);
}

static void test_frames(void) {
        static const struct {
                uint8_t prefix[4];
                int want;
                size_t len;
        } cases[] = {
                { { 0, 0, 0, 0 }, -EMSGSIZE, 0 },
                { { 0, 0, 0, 31 }, -EMSGSIZE, 0 },
                { { 0, 0, 0, 32 }, 0, 32 },
                { { 0, 0, 0x05, 0x78 }, 0, 1400 },
                { { 0, 0x40, 0, 0 }, 0, CRYPTO_FRAME_MAX },
                { { 0, 0x40, 0, 1 }, -EMSGSIZE, 0 },
                { { 0xff, 0xff, 0xff, 0xff }, -EMSGSIZE, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                size_t len = 12345;
                uint8_t p[4];

                CU_ASSERT_EQUAL(crypto_frame_length(cases[i].prefix, &len), cases[i].want);
                CU_ASSERT_EQUAL(len, cases[i].want == 0 ? cases[i].len : 12345);
                if (cases[i].want == 0) {
                        crypto_frame_prefix(cases[i].len, p);
                        CU_ASSERT_EQUAL(memcmp(p, cases[i].prefix, 4), 0);
                }
        }
}

static void test_reject_names(void) {
        static const struct {
                int err;
                enum crypto_reject reason;
                const char *name;
        } cases[] = {
                { 0, CRYPTO_REJECT_NONE, "none" },
                { -EMSGSIZE, CRYPTO_REJECT_TOO_SHORT, "too_short" },
                { -EPROTO, CRYPTO_REJECT_BAD_MAGIC, "bad_magic" },
                { -EPROTONOSUPPORT, CRYPTO_REJECT_BAD_VERSION, "bad_version" },
                { -ENOKEY, CRYPTO_REJECT_UNKNOWN_KEY, "unknown_key" },
                { -EBADMSG, CRYPTO_REJECT_AUTH_FAILED, "auth_failed" },
                { -EACCES, CRYPTO_REJECT_PLAINTEXT_REFUSED, "plaintext_refused" },
                { -ENOPROTOOPT, CRYPTO_REJECT_ENCRYPTED_REFUSED, "encrypted_refused" },
                { -EXDEV, CRYPTO_REJECT_WRONG_CLUSTER, "wrong_cluster" },
                { -ENOBUFS, CRYPTO_REJECT_NO_BUFFER, "no_buffer" },
                { -EINVAL, CRYPTO_REJECT_OTHER, "other" },
                { -EIO, CRYPTO_REJECT_OTHER, "other" },
        };

        CU_ASSERT_EQUAL(ELEMENTSOF(cases), _CRYPTO_REJECT_MAX + 1);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                CU_ASSERT_EQUAL(crypto_reject_from_errno(cases[i].err), cases[i].reason);
                CU_ASSERT_STRING_EQUAL(crypto_reject_to_string(cases[i].reason), cases[i].name);
        }
        CU_ASSERT_PTR_NULL(crypto_reject_to_string(_CRYPTO_REJECT_MAX));
        CU_ASSERT_PTR_NULL(crypto_reject_to_string((enum crypto_reject) -1));
}

/* --- keyring files -------------------------------------------------------- */

static void b64(const uint8_t *bin, size_t n, char *out, size_t cap) {
        sodium_bin2base64(out, cap, bin, n, sodium_base64_VARIANT_ORIGINAL);
}

static const char *write_file(const char *name, const char *text, size_t len, mode_t mode) {
        static char path[512];
        int fd;

        snprintf(path, sizeof path, "%s/%s", tmpdir, name);
        unlink(path);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_FATAL(write(fd, text, len) == (ssize_t) len);
        CU_ASSERT_FATAL(fchmod(fd, mode) == 0);
        close(fd);
        return path;
}

/* Loads and expects failure r with exactly "PATH" + suffix; *ret stays untouched. */
static void load_fails(const char *path, int want_r, const char *suffix) {
        struct crypto_keyring *kr = (struct crypto_keyring *) 0x1;
        char *err = NULL, want[1024];
        int r;

        snprintf(want, sizeof want, "%s%s", path, suffix);
        r = crypto_keyring_load(path, &kr, &err);
        CU_ASSERT_EQUAL(r, want_r);
        CU_ASSERT_PTR_EQUAL(kr, (struct crypto_keyring *) 0x1);
        CU_ASSERT_PTR_NOT_NULL(err);
        if (err && strcmp(err, want) != 0)
                fprintf(stderr, "\ngot  \"%s\"\nwant \"%s\"\n", err, want);
        CU_ASSERT(err && strcmp(err, want) == 0);
        free(err);
}

static void test_keyring_file(void) {
        char a[64], b[64], text[512], suffix[128];
        struct crypto_keyring *kr = NULL;
        char *err = NULL;
        const char *p;

        b64(key_a, sizeof key_a, a, sizeof a);
        b64(key_b, sizeof key_b, b, sizeof b);
        CU_ASSERT_EQUAL(strlen(a), 44);

        /* Comments, blank lines, surrounding whitespace and CRLF are fine. */
        snprintf(text, sizeof text, "# agentd keyring\n\n  %s  \r\n\t# the old key\n%s", b, a);
        p = write_file("good", text, strlen(text), 0600);
        CU_ASSERT_EQUAL_FATAL(crypto_keyring_load(p, &kr, &err), 0);
        CU_ASSERT_PTR_NULL(err);
        CU_ASSERT_EQUAL(crypto_keyring_count(kr), 2);
        CU_ASSERT_EQUAL(crypto_keyring_key_id(kr, 0), crypto_key_id(key_b));
        CU_ASSERT_EQUAL(crypto_keyring_key_id(kr, 1), crypto_key_id(key_a));
        {
                /* It is the same keyring as one built from the raw keys. */
                struct crypto_keyring *raw = ring(key_b, key_a);
                uint8_t pkt[1500];
                size_t len = seal(raw, "demo", pkt, sizeof pkt);

                CU_ASSERT_EQUAL(open_check(kr, "demo", pkt, len), 0);
                len = seal(kr, "demo", pkt, sizeof pkt);
                CU_ASSERT_EQUAL(open_check(raw, "demo", pkt, len), 0);
                crypto_keyring_free(raw);
        }
        crypto_keyring_free(kr);
        crypto_keyring_free(NULL);

        /* Read-only for the owner is fine too. */
        p = write_file("ro", a, strlen(a), 0400);
        CU_ASSERT_EQUAL(crypto_keyring_load(p, &kr, &err), 0);
        crypto_keyring_free(kr);

        /* Modes: any group or other bit is refused. */
        static const struct {
                mode_t mode;
                const char *msg;
        } modes[] = {
                { 0644, ": must be mode 0600 (is 0644)" },
                { 0640, ": must be mode 0600 (is 0640)" },
                { 0604, ": must be mode 0600 (is 0604)" },
                { 0601, ": must be mode 0600 (is 0601)" },
                { 0660, ": must be mode 0600 (is 0660)" },
        };
        for (size_t i = 0; i < ELEMENTSOF(modes); i++) {
                p = write_file("mode", a, strlen(a), modes[i].mode);
                load_fails(p, -EPERM, modes[i].msg);
        }

        /* Content errors with their line. */
        static const struct {
                const char *text;
                const char *msg;
        } bad[] = {
                { "", ": no keys" },
                { "\n\n# only a comment\n   \n", ": no keys" },
                { "not base64 at all!", ":1: not a base64 32-byte key" },
                { "# c\n\nAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", ":3: not a base64 32-byte key" },
                /* 31 and 33 bytes */
                { "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n", ":1: not a base64 32-byte key" },
                { "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", ":1: not a base64 32-byte key" },
                /* 32 bytes without padding, or with trailing text */
                { "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", ":1: not a base64 32-byte key" },
                { "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= x\n", ":1: not a base64 32-byte key" },
                { "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= # key\n", ":1: not a base64 32-byte key" },
                /* base64url alphabet */
                { "________________________________________AAA=\n", ":1: not a base64 32-byte key" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                p = write_file("bad", bad[i].text, strlen(bad[i].text), 0600);
                load_fails(p, -EINVAL, bad[i].msg);
        }
        /* A NUL byte inside a key line. */
        snprintf(text, sizeof text, "%s\n", a);
        text[10] = 0;
        p = write_file("nul", text, strlen(a) + 1, 0600);
        load_fails(p, -EINVAL, ":1: not a base64 32-byte key");

        /* Duplicates and the key count limit. */
        snprintf(text, sizeof text, "%s\n#\n%s\n", a, a);
        p = write_file("dup", text, strlen(text), 0600);
        snprintf(suffix, sizeof suffix, ":3: duplicate key id 0x%08x (line 1)", crypto_key_id(key_a));
        load_fails(p, -EINVAL, suffix);
        {
                char many[64 * 18] = "";

                for (int i = 0; i < 17; i++) {
                        uint8_t k[CRYPTO_KEY_SIZE] = { (uint8_t) i, 7 };
                        char line[64];

                        b64(k, sizeof k, line, sizeof line);
                        strcat(many, line);
                        strcat(many, "\n");
                }
                p = write_file("many", many, strlen(many), 0600);
                load_fails(p, -EINVAL, ":17: more than 16 keys");
                /* Sixteen is fine. */
                p = write_file("many", many, strlen(many) - 45, 0600);
                CU_ASSERT_EQUAL(crypto_keyring_load(p, &kr, &err), 0);
                CU_ASSERT_EQUAL(crypto_keyring_count(kr), 16);
                crypto_keyring_free(kr);
        }

        /* Size limit: exactly the maximum is read, one byte more is refused. */
        {
                char *big = malloc(CRYPTO_KEYRING_FILE_MAX + 1);

                CU_ASSERT_FATAL(big != NULL);
                memset(big, '#', CRYPTO_KEYRING_FILE_MAX + 1);
                memcpy(big, a, 44);
                big[44] = '\n';
                p = write_file("big", big, CRYPTO_KEYRING_FILE_MAX, 0600);
                CU_ASSERT_EQUAL(crypto_keyring_load(p, &kr, &err), 0);
                crypto_keyring_free(kr);
                p = write_file("big", big, CRYPTO_KEYRING_FILE_MAX + 1, 0600);
                load_fails(p, -EFBIG, ": larger than 65536 bytes");
                free(big);
        }

        /* Not there, not a file. */
        char path[512];
        snprintf(path, sizeof path, "%s/missing", tmpdir);
        load_fails(path, -ENOENT, ": No such file or directory");
        snprintf(path, sizeof path, "%s/dir", tmpdir);
        CU_ASSERT_FATAL(mkdir(path, 0700) == 0);
        load_fails(path, -EINVAL, ": not a regular file");
        snprintf(path, sizeof path, "%s/fifo", tmpdir);
        CU_ASSERT_FATAL(mkfifo(path, 0600) == 0);
        load_fails(path, -EINVAL, ": not a regular file");
}

/* Owned by someone else: only root can make such a file, so only root tests it. */
static void test_keyring_owner(void) {
        char a[64];
        const char *p;

        if (geteuid() != 0) {
                fprintf(stderr, "(not root: owner check not exercised) ");
                return;
        }
        b64(key_a, sizeof key_a, a, sizeof a);
        p = write_file("owner", a, strlen(a), 0600);
        CU_ASSERT_FATAL(chown(p, 65534, 65534) == 0);
        load_fails(p, -EPERM, ": must be owned by uid 0 (is 65534)");
}

static void test_keyring_parse_and_new(void) {
        struct crypto_keyring *kr = (struct crypto_keyring *) 0x1;
        uint8_t keys[2][CRYPTO_KEY_SIZE];
        char *err = NULL;

        CU_ASSERT_EQUAL(crypto_keyring_parse("inline", "x\n", 2, &kr, &err), -EINVAL);
        CU_ASSERT_STRING_EQUAL(err, "inline:1: not a base64 32-byte key");
        free(err);
        err = NULL;
        CU_ASSERT_EQUAL(crypto_keyring_parse("inline", NULL, 0, &kr, &err), -EINVAL);
        CU_ASSERT_STRING_EQUAL(err, "inline: no keys");
        free(err);
        CU_ASSERT_PTR_EQUAL(kr, (struct crypto_keyring *) 0x1);

        memcpy(keys[0], key_a, CRYPTO_KEY_SIZE);
        memcpy(keys[1], key_a, CRYPTO_KEY_SIZE);
        CU_ASSERT_EQUAL(crypto_keyring_new((const uint8_t (*)[CRYPTO_KEY_SIZE]) keys, 2, &kr), -EEXIST);
        CU_ASSERT_EQUAL(crypto_keyring_new((const uint8_t (*)[CRYPTO_KEY_SIZE]) keys, 0, &kr), -EINVAL);
        CU_ASSERT_EQUAL(crypto_keyring_new((const uint8_t (*)[CRYPTO_KEY_SIZE]) keys, CRYPTO_KEYRING_MAX + 1, &kr), -EINVAL);
        CU_ASSERT_PTR_EQUAL(kr, (struct crypto_keyring *) 0x1);
}

static CU_TestInfo tests[] = {
        { "seal/open round trip", test_round_trip },
        { "key id, sender id, cluster tag", test_derivations },
        { "every tampered bit and truncation", test_tamper },
        { "cluster name and mode mismatches", test_cluster_and_mode },
        { "unknown key id", test_unknown_key },
        { "rotation", test_rotation },
        { "buffer sizes", test_buffers },
        { "tcp frame lengths", test_frames },
        { "reject reasons", test_reject_names },
        { "keyring files", test_keyring_file },
        { "keyring owner", test_keyring_owner },
        { "keyring parse and new", test_keyring_parse_and_new },
        CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
        { "crypto", setup, teardown, NULL, NULL, tests },
        CU_SUITE_INFO_NULL,
};

int main(void) {
        return unit_run(suites);
}
