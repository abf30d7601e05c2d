/*
 * libFuzzer target for the control protocol's request decoder: arbitrary
 * bytes must yield either a request or an error code with a message, and
 * either way a reply that serializes (the server sends one for every line).
 */
#include <stdlib.h>
#include <string.h>

#include "common/ctlproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct ctl_request req;
        const char *code = NULL;
        char msg[512];
        json_t *reply;
        char *line;
        int r;

        r = ctlproto_parse_request((const char *) data, size, &req, &code, msg, sizeof msg);
        if (r == 0) {
                if (!req.verb || !json_is_object(req.args) || strcmp(req.verb->name, req.verb_name) != 0)
                        abort();
                reply = ctlproto_ok(json_incref(req.args));
                ctlproto_request_done(&req);
        } else {
                if (!code || r >= 0)
                        abort();
                reply = ctlproto_error(code, "%s", msg);
        }
        if (!reply)
                abort();
        line = ctlproto_dump(reply, NULL);
        if (!line || line[strlen(line) - 1] != '\n' || strchr(line, '\n') != line + strlen(line) - 1)
                abort();
        free(line);
        json_decref(reply);
        return 0;
}
