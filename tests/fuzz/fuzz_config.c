/*
 * libFuzzer target for the config loader: any text must either load or come
 * back as one "FILE:LINE: message" error, without crashing or leaking.
 *
 *   make tests/fuzz/fuzz_config
 *   ./tests/fuzz/fuzz_config -max_total_time=60 WORKDIR tests/fuzz/corpus/config
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentd/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct agentd_config *c = NULL;
        char *text, *error = NULL;
        int r;

        /* The loader takes C strings; config_load refuses NUL bytes before it gets here. */
        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';

        r = config_load_string(text, "fuzz.conf", &c, &error);
        if (r == 0) {
                /* A loaded config must be complete and self-consistent. */
                if (!c || error || !c->node_name || !c->bind_host || !c->state_dir || !c->cluster_name ||
                    !c->control_socket || (c->n_services > 0 && !c->services) || (c->n_join > 0 && !c->join))
                        abort();
                for (size_t i = 0; i < c->n_services; i++) {
                        const struct config_service *s = &c->services[i];

                        if (!s->name || !s->unit || !s->address || s->port == 0 ||
                            s->check.timeout_us > s->check.interval_us ||
                            s->restart.backoff_us > s->restart.backoff_max_us ||
                            (s->check.type == CONFIG_CHECK_HTTP && !s->check.path) ||
                            (s->check.type == CONFIG_CHECK_EXEC && !s->check.command))
                                abort();
                }
                if (config_diff_restart_key(c, c))
                        abort();
                config_free(c);
        } else {
                /* Every failure but out-of-memory explains itself, starting with the file name. */
                if (c || (r != -ENOMEM && (!error || strncmp(error, "fuzz.conf", 9) != 0)))
                        abort();
                free(error);
        }
        free(text);
        return 0;
}
