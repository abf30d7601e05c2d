/*
 * Logging: journald (sd_journal_send with structured AGENT_* fields) or one
 * readable line per message on stderr. Only the agent's edges (src/agentd and
 * the adapters' callers) log; library code returns errors instead.
 */
#ifndef AGENTD_JOURNAL_H
#define AGENTD_JOURNAL_H

#include <stdarg.h>

#include "common/util.h"
#include "core/event.h"

enum log_target { LOG_TARGET_JOURNAL, LOG_TARGET_STDERR };

/*
 * Sets where messages go, the highest syslog priority logged (3 err .. 7 debug)
 * and the node name stamped as AGENT_NODE. May be called again on reload.
 * Before the first call, messages go to stderr at level info.
 */
void log_setup(enum log_target target, int max_level, const char *node);

/* A plain message at a syslog priority (LOG_ERR .. LOG_DEBUG). */
void log_msg(int priority, const char *fmt, ...) _printf_(2, 3);
void log_msgv(int priority, const char *fmt, va_list ap);

/*
 * An event: MESSAGE "<kind>: <subject>: <detail>", PRIORITY from the kind,
 * MESSAGE_ID, AGENT_NODE, AGENT_KIND, and AGENT_SUBJECT, AGENT_SERVICE,
 * AGENT_UNIT, AGENT_TERM where they apply. Logged whatever the level, unless
 * the kind's priority is above it.
 */
void log_event(const struct event *ev);

#define log_error(...)   log_msg(3, __VA_ARGS__)
#define log_warning(...) log_msg(4, __VA_ARGS__)
#define log_notice(...)  log_msg(5, __VA_ARGS__)
#define log_info(...)    log_msg(6, __VA_ARGS__)
#define log_debug(...)   log_msg(7, __VA_ARGS__)

#endif
