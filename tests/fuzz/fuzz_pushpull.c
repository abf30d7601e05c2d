/*
 * libFuzzer target for the TCP push-pull frame decoder: a 4-byte length
 * prefix, then a push-pull body. Any input must be refused with a negative
 * errno or decode completely; nothing is allocated, whatever the announced
 * lengths and counts. A decoded body must re-encode to the same bytes.
 *
 *   make tests/fuzz/fuzz_pushpull
 *   ./tests/fuzz/fuzz_pushpull -max_total_time=60 WORKDIR tests/fuzz/corpus/pushpull
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct wire_pushpull_header h;
        struct wire_pushpull_reader rd;
        struct wire_member mem;
        uint32_t len, n = 0;
        uint8_t *out;
        size_t off;
        int r;

        if (size < WIRE_FRAME_HEADER_SIZE)
                return 0;
        r = wire_frame_header_decode(data, WIRE_PUSHPULL_MAX, &len);
        if (r < 0) {
                if (r != -EBADMSG && r != -E2BIG)
                        abort();
                return 0;
        }
        /* A stream reader would wait for more bytes; a short frame is simply incomplete. */
        if (len != size - WIRE_FRAME_HEADER_SIZE)
                return 0;
        data += WIRE_FRAME_HEADER_SIZE;
        r = wire_pushpull_open(data, len, &h, &rd);
        if (r < 0) {
                if (r != -EBADMSG && r != -EPROTONOSUPPORT && r != -E2BIG)
                        abort();
                return 0;
        }
        if (h.n_members > WIRE_PUSHPULL_MEMBERS_MAX)
                abort();
        out = malloc(len);
        if (!out)
                return 0;
        r = wire_pushpull_encode_header(&h, out, len);
        if (r <= 0)
                abort();
        off = (size_t)r;
        while (wire_pushpull_next(&rd, &mem) == 1) {
                if ((const uint8_t *)mem.name < data || (const uint8_t *)mem.name + mem.name_len > data + len)
                        abort();
                r = wire_member_encode(&mem, out + off, len - off);
                if (r <= 0)
                        abort();
                off += (size_t)r;
                n++;
        }
        if (n != h.n_members || off != len || memcmp(out, data, len) != 0)
                abort();
        free(out);
        return 0;
}
