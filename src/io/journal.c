#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>

#include "io/journal.h"

/*
 * The logging state is the only process-wide state outside the agent struct:
 * logging must work before the agent exists (config errors) and after it is
 * gone (shutdown), so it cannot live inside it.
 */
static enum log_target log_target = LOG_TARGET_STDERR;
static int log_max_level = LOG_INFO;
static char log_node[64] = "";

static const char *const prio_names[] = {
        [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
        [LOG_ERR] = "err", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

void log_setup(enum log_target target, int max_level, const char *node) {
        log_target = target;
        log_max_level = max_level;
        snprintf(log_node, sizeof(log_node), "%s", node ? node : "");
}

static int clamp_priority(int priority) {
        if (priority < LOG_EMERG)
                return LOG_EMERG;
        if (priority > LOG_DEBUG)
                return LOG_DEBUG;
        return priority;
}

/*
 * One line per message on stderr, timestamped so that a log captured by a
 * test harness or a terminal reads without journald. The whole line is built
 * first and written with one call so lines from a crash don't interleave.
 */
static void stderr_line(int priority, const char *prefix, const char *msg) {
        char ts[UTIL_TS_MAX];
        char line[4096];
        int n;

        n = snprintf(line, sizeof(line), "%s agentd[%d]: <%s> %s%s\n",
                     util_format_ts(util_now_real_us(), ts), (int) getpid(),
                     prio_names[clamp_priority(priority)], prefix, msg);
        if (n < 0)
                return;
        if ((size_t) n >= sizeof(line)) {
                n = sizeof(line) - 1;
                line[n - 1] = '\n';
        }
        (void) !write(STDERR_FILENO, line, (size_t) n);
}

void log_msgv(int priority, const char *fmt, va_list ap) {
        char msg[2048];
        int saved_errno = errno;

        priority = clamp_priority(priority);
        if (priority > log_max_level)
                return;
        vsnprintf(msg, sizeof(msg), fmt, ap);
        if (log_target == LOG_TARGET_JOURNAL) {
                if (log_node[0])
                        sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", priority,
                                        "AGENT_NODE=%s", log_node, "SYSLOG_IDENTIFIER=agentd", NULL);
                else
                        sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", priority,
                                        "SYSLOG_IDENTIFIER=agentd", NULL);
        } else {
                stderr_line(priority, "", msg);
        }
        errno = saved_errno;
}

void log_msg(int priority, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        log_msgv(priority, fmt, ap);
        va_end(ap);
}

/*
 * sd_journal_sendv takes an array of "FIELD=value" strings; optional fields
 * are added only when they apply, so a journal filter on AGENT_SERVICE never
 * matches an event that has nothing to do with a service.
 */
void log_event(const struct event *ev) {
        char message[2048], f_prio[32], f_msgid[64], f_node[128], f_kind[64];
        char f_subject[1024], f_detail[1536], f_service[256], f_unit[320], f_term[64];
        struct iovec iov[14];
        size_t n = 0;
        int priority = (int) event_kind_priority(ev->kind);
        const char *kind = event_kind_to_string(ev->kind);
        const char *node = ev->node ? ev->node : log_node;
        const char *subject = ev->subject && ev->subject[0] ? ev->subject : NULL;
        const char *detail = ev->detail && ev->detail[0] ? ev->detail : NULL;
        int saved_errno = errno;

        if (priority > log_max_level)
                return;

        snprintf(message, sizeof(message), "%s%s%s%s%s", kind,
                 subject ? ": " : "", subject ? subject : "",
                 detail ? ": " : "", detail ? detail : "");

        if (log_target == LOG_TARGET_STDERR) {
                char tail[512] = "";
                size_t len = 0;

                if (ev->service)
                        len += (size_t) snprintf(tail + len, sizeof(tail) - len, " service=%s", ev->service);
                if (ev->unit && len < sizeof(tail))
                        len += (size_t) snprintf(tail + len, sizeof(tail) - len, " unit=%s", ev->unit);
                if (ev->term && len < sizeof(tail))
                        snprintf(tail + len, sizeof(tail) - len, " term=%llu", (unsigned long long) ev->term);
                char line[2600];
                snprintf(line, sizeof(line), "%s%s", message, tail);
                stderr_line(priority, "event ", line);
                errno = saved_errno;
                return;
        }

#define ADD(buf, ...) do { \
                int _l = snprintf(buf, sizeof(buf), __VA_ARGS__); \
                if (_l >= (int) sizeof(buf)) _l = (int) sizeof(buf) - 1; \
                iov[n].iov_base = buf; iov[n].iov_len = (size_t) _l; n++; \
        } while (0)

        char f_message[2100];
        ADD(f_message, "MESSAGE=%s", message);
        ADD(f_prio, "PRIORITY=%d", priority);
        ADD(f_msgid, "MESSAGE_ID=%s", event_kind_message_id(ev->kind));
        ADD(f_node, "AGENT_NODE=%s", node);
        ADD(f_kind, "AGENT_KIND=%s", kind);
        if (subject)
                ADD(f_subject, "AGENT_SUBJECT=%s", subject);
        if (detail)
                ADD(f_detail, "AGENT_DETAIL=%s", detail);
        if (ev->service)
                ADD(f_service, "AGENT_SERVICE=%s", ev->service);
        if (ev->unit)
                ADD(f_unit, "AGENT_UNIT=%s", ev->unit);
        if (ev->term)
                ADD(f_term, "AGENT_TERM=%llu", (unsigned long long) ev->term);
        static char f_ident[] = "SYSLOG_IDENTIFIER=agentd";
        iov[n].iov_base = f_ident;
        iov[n].iov_len = sizeof(f_ident) - 1;
        n++;
#undef ADD
        sd_journal_sendv(iov, (int) n);
        errno = saved_errno;
}
