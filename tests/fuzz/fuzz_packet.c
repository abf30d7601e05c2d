/*
 * libFuzzer target for the UDP body decoder (the plaintext inside the
 * envelope): any input must either decode or be refused with a negative
 * errno, without crashing, leaking or reading out of bounds. A decoded body
 * must re-encode to exactly the same bytes: the format has one encoding per
 * message, so a difference would be a decoder accepting something it should
 * not.
 *
 *   make tests/fuzz/fuzz_packet
 *   ./tests/fuzz/fuzz_packet -max_total_time=60 WORKDIR tests/fuzz/corpus/packet
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct wire_msg msg;
        static uint8_t out[WIRE_BUDGET_MAX];
        size_t len;
        int r;

        /* Election bodies share the envelope; the adapter demultiplexes on byte 1. */
        if (wire_is_election(data, size)) {
                struct wire_election e;

                r = wire_election_decode(data, size, &e);
                if (r < 0) {
                        if (r != -EBADMSG && r != -E2BIG)
                                abort();
                        return 0;
                }
                if ((const uint8_t *)e.from < data || (const uint8_t *)e.from + e.from_len > data + size)
                        abort();
                if (wire_election_encode(&e, out, sizeof(out), &len) < 0 || len != size ||
                    memcmp(out, data, size) != 0)
                        abort();
                if (wire_election_encode(&e, out, size - 1, &len) != -EMSGSIZE)
                        abort();
                return 0;
        }
        r = wire_decode(data, size, &msg);
        if (r < 0) {
                if (r != -EBADMSG && r != -EPROTONOSUPPORT && r != -E2BIG)
                        abort();
                return 0;
        }
        if (msg.n_updates > WIRE_UPDATES_MAX)
                abort();
        /* Every borrowed pointer lies inside the input. */
        for (size_t i = 0; i < msg.n_updates; i++) {
                const struct wire_update *u = &msg.updates[i];

                if ((const uint8_t *)u->name < data || (const uint8_t *)u->name + u->name_len > data + size)
                        abort();
                if (u->meta_len > 0 && (u->meta < data || u->meta + u->meta_len > data + size))
                        abort();
        }
        r = wire_encode(&msg, out, sizeof(out), &len);
        if (r < 0 || len != size || memcmp(out, data, size) != 0)
                abort();
        /* A budget one byte short must be refused, never overrun. */
        if (size > 0 && wire_encode(&msg, out, size - 1, &len) != -EMSGSIZE)
                abort();
        return 0;
}
