/*
 * Verbs that change the running agent. The daemon decides who may use them
 * (root or control.admin_group); agentctl only relays its answer.
 */
#include <errno.h>

#include "agentctl/agentctl.h"

/*
 * A refused config comes back as error code "failed" with the daemon's
 * "FILE:LINE: message", which agentctl_call prints as it is.
 */
int agentctl_reload(struct agentctl *ctl, int argc, char **argv) {
        json_t *data = NULL;
        const char *config;
        int r;

        r = agentctl_fetch(ctl, argc, argv, "reload", &data);
        if (r != AGENTCTL_CONTINUE)
                return r;

        if (ctl->json) {
                r = output_json(data, false);
        } else {
                config = json_string_value(json_object_get(data, "config"));
                printf("reloaded %s\n", config ? config : "the configuration");
                r = fflush(stdout) == 0 ? 0 : -EIO;
        }
        json_decref(data);
        return agentctl_exit_status(r);
}
