/*
 * libFuzzer target for the balancer table decoder (a table set pulled from
 * a peer or read back from the store): any input must either decode or be
 * refused with a negative errno, without crashing, leaking or reading out of
 * bounds. A decoded set must re-encode to exactly the same bytes (the format
 * has one encoding per set, so a difference would be a decoder accepting
 * something it should not), and diff against itself to nothing.
 *
 *   make tests/fuzz/fuzz_table
 *   ./tests/fuzz/fuzz_table -max_total_time=60 WORKDIR tests/fuzz/corpus/table
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct table_set *t = NULL, *c = NULL;
        struct table_change *changes = NULL;
        uint8_t *out = NULL;
        size_t len, n;
        int r;

        r = table_decode(data, size, &t);
        if (r < 0) {
                if (r != -EBADMSG && r != -EPROTONOSUPPORT && r != -E2BIG && r != -ENOMEM)
                        abort();
                if (t)
                        abort();
                return 0;
        }
        if (t->version == 0 || t->n_services > TABLE_SERVICES_MAX)
                abort();
        for (size_t i = 0; i < t->n_services; i++) {
                const struct table_service *s = &t->services[i];

                if (s->n_backends == 0 || s->n_backends > TABLE_BACKENDS_MAX || table_find(t, s->name) != s)
                        abort();
        }
        r = table_encode(t, &out, &len);
        if (r < 0 || len != size || memcmp(out, data, size) != 0)
                abort();
        if (table_set_dup(t, &c) < 0)
                abort();
        if (!table_same_content(t, c) || c->digest != t->digest)
                abort();
        if (table_diff(t, c, &changes, &n) < 0 || n != 0 || changes)
                abort();
        if (table_apply_check(t, c, t->term) != TABLE_APPLY_STALE)
                abort();
        free(out);
        table_set_free(c);
        table_set_free(t);
        return 0;
}
