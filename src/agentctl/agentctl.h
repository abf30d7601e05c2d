/*
 * agentctl: the operator's CLI. main.c parses the global options and looks
 * the verb up in its table, and holds the request helpers every verb uses
 * (agentctl_fetch, agentctl_list for the table verbs); each verb group lives
 * in its own file (status.c, events.c, services.c, members.c, table.c,
 * admin.c) and output.c holds the table printer, JSON output and field
 * readers they share. Adding a verb is one row in main.c's table plus one function.
 */
#ifndef AGENTD_AGENTCTL_H
#define AGENTD_AGENTCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "common/util.h"

#define AGENTCTL_DEFAULT_SOCKET "/run/agentd/agentd.sock"
#define AGENTCTL_DEFAULT_TIMEOUT_US (5 * USEC_PER_SEC)
/* A longer wait is a typo, not a wish: nothing the daemon does takes a day. */
#define AGENTCTL_MAX_TIMEOUT_US USEC_PER_DAY

/* Exit statuses (contract, see doc/agentctl.8). */
enum agentctl_exit {
        AGENTCTL_EXIT_OK = 0,
        AGENTCTL_EXIT_ERROR = 1,
        AGENTCTL_EXIT_USAGE = 2,
        AGENTCTL_EXIT_DEGRADED = 3,
};

/* Returned by the argument helpers when the verb should go on running. */
#define AGENTCTL_CONTINUE (-1)

struct agentctl_verb;
struct output_table;

/* What the global options decided; handed to every verb. */
struct agentctl {
        const char *socket_path;
        bool json;
        uint64_t timeout_us;
        const struct agentctl_verb *verb;   /* the verb being run */
};

/*
 * A verb's handler gets argv starting at the verb's own name, so it can run
 * getopt_long over its options, and returns an exit status.
 */
typedef int (*agentctl_verb_fn)(struct agentctl *ctl, int argc, char **argv);

struct agentctl_verb {
        const char *name;
        agentctl_verb_fn run;
        const char *usage;      /* what follows the verb; "" when nothing does */
        const char *summary;
};

/* main.c: messages, usage, and calls to the daemon. */
void agentctl_error(const char *fmt, ...) _printf_(1, 2);
int agentctl_usage_error(const struct agentctl *ctl, const char *fmt, ...) _printf_(2, 3);
int agentctl_verb_help(const struct agentctl *ctl);
int agentctl_bad_option(const struct agentctl *ctl, char **argv, int c);
int agentctl_parse_no_args(struct agentctl *ctl, int argc, char **argv);

/*
 * Sends VERB with ARGS (borrowed; NULL: no arguments) and waits for the
 * reply. Returns 0 with *ret_data set to the reply's data object (a new
 * reference), or a negative errno with *ret_error set to a malloc'd one-line
 * description: -EREMOTEIO when the daemon answered with an error ("message
 * (code)"), otherwise the transport error from ctlproto_call.
 */
int agentctl_request(const struct agentctl *ctl, const char *verb, json_t *args,
                     json_t **ret_data, char **ret_error);

/*
 * agentctl_request for verb handlers: prints the one-line error itself
 * ("agentctl: VERB: message (code)" or the unreachable-daemon line) and
 * returns AGENTCTL_EXIT_ERROR, or 0 with *ret_data set.
 */
int agentctl_call(const struct agentctl *ctl, const char *verb, json_t *args, json_t **ret_data);

/*
 * The start of every verb that takes no arguments: parses its options (only
 * --help) and sends VERB without arguments. Returns AGENTCTL_CONTINUE with
 * *ret_data set, or the exit status the verb is to return now (its help, a
 * usage error, or an error agentctl_call printed).
 */
int agentctl_fetch(struct agentctl *ctl, int argc, char **argv, const char *verb, json_t **ret_data);

/*
 * The exit status for a verb's outcome R, 0 or a negative errno: says "out
 * of memory" when that is why it failed; any other failure was either
 * printed already or is a broken stdout, which main reports.
 */
int agentctl_exit_status(int r);

/*
 * A verb that shows the objects of one array of the daemon's reply as a
 * table, one row each (services, breakers, members), and the whole reply as
 * it is with --json.
 */
struct agentctl_list {
        const char *verb;               /* the request, also named in errors */
        const char *key;                /* the array in the reply's data */
        size_t n_cols;
        const char *const *headers;
        uint32_t right;                 /* bit i set: column i is right-aligned */
        const char *empty;              /* printed instead of an empty table; NULL: the table */
        bool json_needs_list;           /* --json too refuses a reply without the array */
        int (*add_row)(struct output_table *t, const json_t *item);
        void (*summary)(const json_t *list);    /* printed under the table; NULL: none */
};

int agentctl_list(struct agentctl *ctl, int argc, char **argv, const struct agentctl_list *l);

/* Verb handlers. */
int agentctl_status(struct agentctl *ctl, int argc, char **argv);
int agentctl_version(struct agentctl *ctl, int argc, char **argv);
int agentctl_events(struct agentctl *ctl, int argc, char **argv);
int agentctl_reload(struct agentctl *ctl, int argc, char **argv);
int agentctl_members(struct agentctl *ctl, int argc, char **argv);
int agentctl_leader(struct agentctl *ctl, int argc, char **argv);
int agentctl_force_leave(struct agentctl *ctl, int argc, char **argv);
int agentctl_services(struct agentctl *ctl, int argc, char **argv);
int agentctl_breakers(struct agentctl *ctl, int argc, char **argv);
int agentctl_restart(struct agentctl *ctl, int argc, char **argv);
int agentctl_table(struct agentctl *ctl, int argc, char **argv);
int agentctl_pick(struct agentctl *ctl, int argc, char **argv);
int agentctl_drain(struct agentctl *ctl, int argc, char **argv);
int agentctl_undrain(struct agentctl *ctl, int argc, char **argv);

/* output.c: aligned tables and key-value blocks that never truncate. */
/* HEADERS: n_cols column titles, or NULL for a table without a header line. */
int output_table_new(size_t n_cols, const char *const *headers, struct output_table **ret);
void output_table_free(struct output_table *t);
static inline void output_table_freep(struct output_table **t) { output_table_free(*t); }
#define _cleanup_table_ _cleanup_(output_table_freep)

/* Right-aligns column COL (numbers). */
void output_table_align_right(struct output_table *t, size_t col);
/* Copies n_cols cells; NULL or empty cells print as "-". Control characters are escaped. */
int output_table_add(struct output_table *t, const char *const *cells);
/* A row of a two-column key-value block: "KEY:" and the formatted value. */
int output_kv(struct output_table *t, const char *key, const char *fmt, ...) _printf_(3, 4);

/*
 * Prints the rows added since the last flush (and the header on the first
 * flush), then forgets them. Column widths only ever grow, so rows printed
 * in later flushes (agentctl events --follow) stay aligned with earlier
 * ones unless a wider cell arrives. Returns 0 or -EIO.
 */
int output_table_flush(struct output_table *t, FILE *f);

/* One JSON document on stdout: indented, or compact on one line. 0 or -EIO. */
int output_json(const json_t *doc, bool compact);

/*
 * Field readers that tolerate a daemon newer or older than this agentctl:
 * the string at KEY or NULL; the integer at KEY in *ret, false (and *ret
 * untouched) when there is none.
 */
const char *output_field_str(const json_t *o, const char *key);
bool output_field_int(const json_t *o, const char *key, json_int_t *ret);

/* "3m12s", "2d4h", "0s": a human uptime from whole seconds. */
const char *output_format_seconds(uint64_t seconds, char *buf, size_t len);

#endif
