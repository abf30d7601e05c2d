/*
 * libFuzzer target for the table sync decoders (every body a peer can send:
 * REPORT, UPDATE, ANNOUNCE, DRAIN, DRAIN_ACK): any input must either decode
 * or be refused with a documented negative errno, without crashing, leaking
 * or reading out of bounds. Each input goes to every decoder; at most the
 * one matching sync_body_type() may accept it, and whatever decodes must
 * re-encode to exactly the same bytes (one encoding per message, so a
 * difference is a decoder accepting something it should not). A decoded
 * report must also give a table report that table_report_validate()
 * accepts, and an UPDATE's table bytes go through table_decode().
 *
 *   make tests/fuzz/fuzz_sync
 *   ./tests/fuzz/fuzz_sync -max_total_time=60 WORKDIR tests/fuzz/corpus/sync
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/sync.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(int r) {
        if (r != -EBADMSG && r != -EPROTONOSUPPORT && r != -E2BIG && r != -ENOMEM)
                abort();
}

/* A successful decode: the type must match, and the re-encoding must be the input. */
static void check_same(uint8_t type, const uint8_t *data, size_t size, int e, const uint8_t *out, size_t len) {
        if (sync_body_type(data, size) != type || e < 0 || len != size || memcmp(out, data, size) != 0)
                abort();
}

static void fuzz_report(const uint8_t *data, size_t size) {
        struct sync_report r;
        struct table_report t;
        uint8_t *out = NULL;
        size_t len = 0;
        int e;

        e = sync_report_decode(data, size, &r);
        if (e < 0) {
                check_error(e);
                return;
        }
        e = sync_report_encode(&r, &out, &len);
        check_same(SYNC_TYPE_REPORT, data, size, e, out, len);
        if (sync_report_to_table(&r, &t) < 0 || table_report_validate(&t, NULL) < 0)
                abort();
        free(t.instances);
        free(out);
        sync_report_done(&r);
        if (r.services || r.instances || r.n_services || r.n_instances)
                abort();
}

static void fuzz_update(const uint8_t *data, size_t size) {
        struct sync_update u;
        struct table_set *t = NULL;
        uint8_t *out = NULL;
        size_t len = 0;
        int e;

        e = sync_update_decode(data, size, &u);
        if (e < 0) {
                check_error(e);
                return;
        }
        e = sync_update_encode(&u, &out, &len);
        check_same(SYNC_TYPE_UPDATE, data, size, e, out, len);
        if (u.table_len > 0 && (u.table < data || u.table + u.table_len > data + size))
                abort();
        if (u.table_len > 0 && table_decode(u.table, u.table_len, &t) == 0)
                table_set_free(t);
        free(out);
        sync_update_done(&u);
}

static void fuzz_datagrams(const uint8_t *data, size_t size) {
        uint8_t out[SYNC_DATAGRAM_MAX];
        struct sync_announce a;
        struct sync_drain d;
        struct sync_drain_ack k;
        size_t len = 0;
        int e;

        e = sync_announce_decode(data, size, &a);
        if (e < 0)
                check_error(e);
        else
                check_same(SYNC_TYPE_ANNOUNCE, data, size, sync_announce_encode(&a, out, sizeof(out), &len), out, len);
        e = sync_drain_decode(data, size, &d);
        if (e < 0)
                check_error(e);
        else
                check_same(SYNC_TYPE_DRAIN, data, size, sync_drain_encode(&d, out, sizeof(out), &len), out, len);
        e = sync_drain_ack_decode(data, size, &k);
        if (e < 0)
                check_error(e);
        else {
                if (k.result > 0 || k.result < -4095)
                        abort();
                check_same(SYNC_TYPE_DRAIN_ACK, data, size, sync_drain_ack_encode(&k, out, sizeof(out), &len), out,
                           len);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_report(data, size);
        fuzz_update(data, size);
        fuzz_datagrams(data, size);
        return 0;
}
