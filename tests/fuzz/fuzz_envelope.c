/*
 * libFuzzer target for the gossip envelope: arbitrary bytes go to
 * crypto_open with a fixed test keyring and in plaintext mode, what opens
 * goes to a replay table, and the bytes are also read as a TCP frame prefix
 * and as keyring text. Every result must be one of the documented ones and
 * consistent with itself (an opened envelope re-seals to the same header
 * and body; an accepted stamp is a duplicate the second time).
 *
 *   make tests/fuzz/fuzz_envelope
 *   ./tests/fuzz/fuzz_envelope -max_total_time=60 WORKDIR tests/fuzz/corpus/envelope
 *
 * The seed corpus (valid sealed envelopes of both modes) comes from this
 * same file built as a generator:
 *   cc -DENVELOPE_SEED_GENERATOR -include build/config.h -Isrc \
 *      tests/fuzz/fuzz_envelope.c src/io/crypto.c src/core/replay.c -lsodium -o gen
 *   ./gen tests/fuzz/corpus/envelope
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/replay.h"
#include "io/crypto.h"

#define FUZZ_CLUSTER "fuzz"

static struct crypto_keyring *keyring;

static void die(const char *what) {
        fprintf(stderr, "fuzz_envelope: %s\n", what);
        abort();
}

/* The fixed test keyring: primary bytes 0x40..0x5f, a second key 0x80..0x9f. */
static void init(void) {
        uint8_t keys[2][CRYPTO_KEY_SIZE];

        if (keyring)
                return;
        for (int i = 0; i < CRYPTO_KEY_SIZE; i++) {
                keys[0][i] = (uint8_t) (0x40 + i);
                keys[1][i] = (uint8_t) (0x80 + i);
        }
        if (crypto_keyring_new((const uint8_t (*)[CRYPTO_KEY_SIZE]) keys, 2, &keyring) < 0)
                die("keyring");
}

/* Opening succeeded: the result must describe the input exactly. */
static void check_opened(const struct crypto_keyring *kr, const uint8_t *data, size_t size,
                         const struct crypto_header *h, const uint8_t *body, size_t body_len) {
        size_t cap = body_len + CRYPTO_OVERHEAD_ENCRYPTED, len = 0, n = 0;
        uint8_t *out = malloc(cap), *back = malloc(body_len + 1);
        struct crypto_header h2;

        if (!out || !back)
                die("malloc");
        if (body_len != size - crypto_overhead(kr) || h->encrypted != (kr != NULL))
                die("length or mode of an opened envelope");
        if (crypto_seal(kr, FUZZ_CLUSTER, h->sender_id, h->epoch, h->seq, body, body_len, out, cap, &len) != 0 ||
            len != size)
                die("re-seal");
        /* The header re-seals the same but for the key id (the primary now), plaintext entirely. */
        if (memcmp(out, data, 4) != 0 || memcmp(out + 8, data + 8, CRYPTO_HEADER_SIZE - 8) != 0)
                die("re-sealed header");
        if (!kr && memcmp(out, data, size) != 0)
                die("plaintext re-seal differs");
        if (crypto_open(kr, FUZZ_CLUSTER, out, len, &h2, back, body_len, &n) != 0 || n != body_len ||
            (body_len > 0 && memcmp(back, body, body_len) != 0) ||
            h2.sender_id != h->sender_id || h2.epoch != h->epoch || h2.seq != h->seq ||
            h2.key_id != (kr ? crypto_keyring_key_id(kr, 0) : h->key_id))
                die("re-open");
        free(out);
        free(back);
}

/*
 * The replay table, fresh per input so a crash reproduces from one input:
 * the opened stamp, then the body read as 4-byte stamps (sender, epoch,
 * sequence: 1, 1 and 2 bytes) through a 4-sender table, so eviction and
 * epochs are reached quickly.
 */
static void check_replay(const struct crypto_header *h, const uint8_t *body, size_t body_len) {
        struct replay *r = NULL;
        enum replay_verdict v;

        if (replay_new(4, &r) < 0)
                die("replay_new");
        v = replay_check(r, h->sender_id, h->epoch, h->seq);
        if (v != REPLAY_NEW_SENDER)
                die("first stamp not new");
        if (replay_check(r, h->sender_id, h->epoch, h->seq) != REPLAY_DUPLICATE)
                die("replayed stamp accepted");
        for (size_t i = 0; i + 4 <= body_len; i += 4) {
                uint64_t sender = body[i], epoch = body[i + 1];
                uint64_t seq = (uint64_t) body[i + 2] << 8 | body[i + 3];

                v = replay_check(r, sender, epoch, seq);
                if (!replay_verdict_to_string(v))
                        die("verdict out of range");
                if (replay_accepted(v) && replay_check(r, sender, epoch, seq) != REPLAY_DUPLICATE)
                        die("accepted stamp accepted twice");
                if (replay_count(r) > 4)
                        die("table over its cap");
        }
        replay_free(r);
}

static void try_open(const struct crypto_keyring *kr, const uint8_t *data, size_t size) {
        struct crypto_header h;
        uint8_t *body = malloc(size ? size : 1);
        size_t n = 0;
        int r;

        if (!body)
                die("malloc");
        r = crypto_open(kr, FUZZ_CLUSTER, data, size, &h, body, size, &n);
        if (r == 0) {
                check_opened(kr, data, size, &h, body, n);
                check_replay(&h, body, n);
        } else {
                enum crypto_reject why = crypto_reject_from_errno(r);

                /* Never a reason that cannot come from packet bytes. */
                if (why == CRYPTO_REJECT_NONE || why == CRYPTO_REJECT_NO_BUFFER || why == CRYPTO_REJECT_OTHER)
                        die(crypto_reject_to_string(why));
                if (why == CRYPTO_REJECT_TOO_SHORT && size >= CRYPTO_OVERHEAD_ENCRYPTED)
                        die("too short but long enough");
        }
        free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        init();
        try_open(keyring, data, size);
        try_open(NULL, data, size);

        if (size >= CRYPTO_FRAME_PREFIX) {
                size_t len = 0;

                if (crypto_frame_length(data, &len) == 0 && (len < CRYPTO_HEADER_SIZE || len > CRYPTO_FRAME_MAX))
                        die("frame length out of bounds");
        }

        /* Not an envelope: also try it as keyring text. */
        if (size == 0 || data[0] != CRYPTO_MAGIC0) {
                struct crypto_keyring *kr = NULL;
                char *err = NULL;
                int r = crypto_keyring_parse("fuzz", (const char *) data, size, &kr, &err);

                if (r == 0) {
                        if (err || crypto_keyring_count(kr) < 1 || crypto_keyring_count(kr) > CRYPTO_KEYRING_MAX)
                                die("keyring parsed with an error or bad count");
                        crypto_keyring_free(kr);
                } else {
                        if (!err || strncmp(err, "fuzz:", 5) != 0)
                                die("keyring error without a message");
                        free(err);
                }
        }
        return 0;
}

#ifdef ENVELOPE_SEED_GENERATOR
static void write_seed(const char *dir, const char *name, const uint8_t *p, size_t len) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof path, "%s/%s", dir, name);
        f = fopen(path, "wb");
        if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0)
                die(path);
}

int main(int argc, char **argv) {
        static const struct {
                const char *name;
                bool encrypted;
                const char *body;
                size_t len;
        } seeds[] = {
                { "sealed-empty", true, "", 0 },
                { "sealed-ping", true, "\x01\x02n1\x00\x00\x00\x07", 9 },
                { "sealed-stamps", true, "\x01\x01\x00\x05\x01\x01\x00\x04\x02\x01\x00\x01\x01\x02\x00\x00", 16 },
                { "plain-empty", false, "", 0 },
                { "plain-ping", false, "\x01\x02n1\x00\x00\x00\x07", 9 },
                { "plain-stamps", false,
                  "\x01\x01\x00\x05\x01\x01\x00\x04\x02\x01\x00\x01\x01\x02\x00\x00"
                  "\x03\x01\x00\x01\x04\x01\x00\x01\x05\x01\x00\x01\x01\x02\x00\x00", 32 },
        };
        uint8_t out[256];
        size_t len;

        if (argc != 2) {
                fprintf(stderr, "usage: %s DIR\n", argv[0]);
                return 2;
        }
        init();
        for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
                if (crypto_seal(seeds[i].encrypted ? keyring : NULL, FUZZ_CLUSTER, 0x0102030405060708, 3, 1000 + i,
                                seeds[i].body, seeds[i].len, out, sizeof out, &len) != 0)
                        die("seal");
                write_seed(argv[1], seeds[i].name, out, len);
        }
        /* A keyring text, and a TCP frame prefix followed by its envelope. */
        static const char ring[] = "# fuzz keyring\nQEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=\n\n"
                                   "gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp8=\n";
        write_seed(argv[1], "keyring", (const uint8_t *) ring, sizeof ring - 1);
        if (crypto_seal(keyring, FUZZ_CLUSTER, 9, 9, 9, "frame", 5, out + 4, sizeof out - 4, &len) != 0)
                die("seal frame");
        crypto_frame_prefix(len, out);
        write_seed(argv[1], "frame", out, len + 4);
        return 0;
}
#endif
