#!/bin/sh
# Self-healing, issue test 1: an http check against a service that starts
# answering 500, then one that hangs (SIGSTOP). Each time agentd restarts the
# unit through D-Bus, a new MainPID runs, and `unit_restarted` is in SQLite
# and in journald with MESSAGE_ID, AGENT_SERVICE and AGENT_UNIT. Also: the
# operator's `agentctl restart`, recorded with the caller's uid.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integ/lib.sh"
. "$top_srcdir/tests/integ/sdhost.sh"
. "$top_srcdir/tests/integ/heal_lib.sh"

heal_setup
RESTARTED_ID=9e605aa4de3d45c7a607c6412a8f2d30

heal_start_web journal

# On failure, the agent's own log is in the host's journal.
dump_journal() {
        echo "--- journal of host h1 (agentd, last 40 lines)" >&2
        sdhost_journal h1 SYSLOG_IDENTIFIER=agentd -n 40 -o cat >&2
}
hfail() {
        dump_journal
        fail "$@"
}

heal_wait_svc web health healthy 30 || hfail "web never became healthy: $("$AGENTCTL" --json services)"
pass "the http check sees web healthy"

# --- 1. HTTP 500 -------------------------------------------------------------
pid1=$(heal_main_pid web.service)
[ "$pid1" -gt 0 ] || hfail "web.service has no MainPID"
# Only this process answers 500; its replacement is healthy.
echo "error $pid1" > "$T/web.ctl"
heal_wait_count unit_restarted 1 60 web.service || hfail "no unit_restarted after the service answered 500"
pid2=$(heal_main_pid web.service)
[ "$pid2" -gt 0 ] && [ "$pid2" != "$pid1" ] || hfail "MainPID did not change ($pid1 -> $pid2)"
kill -0 "$pid2" || hfail "new MainPID $pid2 is not running"
[ "$(heal_active_state web.service)" = active ] || hfail "web.service is not active after the restart"
ev=$(heal_events unit_restarted web.service | "$JQ" -c '.[0]')
echo "$ev" | "$JQ" -e --arg d "main pid $pid1 -> $pid2" \
        '.service == "web" and .unit == "web.service" and (.detail | contains($d)) and
         (.detail | contains("job done")) and (.detail | contains("HTTP 500")) and
         (.detail | contains("attempt 1"))' >/dev/null || hfail "unexpected unit_restarted: $ev"
[ "$(heal_count check_failed web.service)" -ge 1 ] || hfail "no check_failed event"
heal_events check_failed web.service | "$JQ" -e '.[0].detail | contains("HTTP 500")' >/dev/null ||
        hfail "check_failed does not say HTTP 500: $(heal_events check_failed)"
heal_wait_svc web health healthy 30 || hfail "web did not become healthy after the restart"
heal_wait_count check_recovered 1 10 web.service || hfail "no check_recovered after the restart"
pass "HTTP 500: restarted through D-Bus ($pid1 -> $pid2), unit_restarted recorded"

# --- 2. hang (SIGSTOP) ---------------------------------------------------------
kill -STOP "$pid2" || hfail "cannot stop $pid2"
heal_wait_count unit_restarted 2 60 web.service || hfail "no unit_restarted after the service hung"
pid3=$(heal_main_pid web.service)
[ "$pid3" -gt 0 ] && [ "$pid3" != "$pid2" ] || hfail "MainPID did not change after the hang ($pid2 -> $pid3)"
kill -0 "$pid3" || hfail "new MainPID $pid3 is not running"
kill -0 "$pid2" 2>/dev/null && hfail "the hung process $pid2 is still there"
ev=$(heal_events unit_restarted web.service | "$JQ" -c '.[1]')
echo "$ev" | "$JQ" -e --arg d "main pid $pid2 -> $pid3" '(.detail | contains($d)) and (.detail | contains("timed out"))' \
        >/dev/null || hfail "unexpected unit_restarted after the hang: $ev"
heal_wait_svc web health healthy 30 || hfail "web did not become healthy after the second restart"
pass "hang: restarted ($pid2 -> $pid3)"

# --- 3. agentctl restart (admin) -------------------------------------------------
out=$("$AGENTCTL" restart web.service) || hfail "agentctl restart failed: $out"
echo "$out" | grep -q "web.service restarted: operator uid 0; attempt 0; job done; main pid $pid3 -> " ||
        hfail "unexpected agentctl restart output: $out"
pid4=$(heal_main_pid web.service)
[ "$pid4" != "$pid3" ] || hfail "agentctl restart did not replace MainPID $pid3"
"$AGENTCTL" restart no-such.service >/dev/null 2>"$T/err" && hfail "restart of an unsupervised unit succeeded"
grep -q "not a unit or service supervised by this agent.*(invalid_argument)" "$T/err" ||
        hfail "unexpected error for an unknown unit: $(cat "$T/err")"
pass "agentctl restart: recorded with the operator's uid; unknown units refused"

# --- 4. the records: SQLite and journald ------------------------------------------
n=$("$AGENTCTL" --json events --db "$T/state/state.db" --kind unit_restarted |
        "$JQ" '[.events[] | select(.service == "web" and .unit == "web.service" and .node == "h1")] | length')
[ "$n" = 3 ] || hfail "state.db holds $n unit_restarted events for web, want 3"
pass "unit_restarted x3 in SQLite (agentctl events --db)"

sdhost_exec h1 journalctl --sync 2>/dev/null
sdhost_journal h1 -o json MESSAGE_ID=$RESTARTED_ID > "$T/journal.json"
n=$("$JQ" -s --arg p "main pid $pid1 -> $pid2" \
        '[.[] | select(.AGENT_SERVICE == "web" and .AGENT_UNIT == "web.service" and .AGENT_KIND == "unit_restarted"
                       and .AGENT_NODE == "h1" and .PRIORITY == "4")] | length' "$T/journal.json")
[ "$n" = 3 ] || hfail "journald holds $n unit_restarted entries with AGENT_SERVICE/AGENT_UNIT, want 3: $(cat "$T/journal.json")"
"$JQ" -s -e --arg p "main pid $pid1 -> $pid2" 'map(select(.MESSAGE | contains($p))) | length == 1' "$T/journal.json" \
        >/dev/null || hfail "no journal entry says 'main pid $pid1 -> $pid2'"
pass "unit_restarted x3 in journald with MESSAGE_ID=$RESTARTED_ID, AGENT_SERVICE, AGENT_UNIT"

# The restart above reset the verdict: it is healthy again after `rise` passing checks.
services_healthy() {
        "$AGENTCTL" services > "$T/services.txt" || return 1
        grep -q "^web  *web.service  *healthy" "$T/services.txt"
}
integ_wait_for 300 services_healthy || hfail "unexpected agentctl services: $(cat "$T/services.txt")"
heal_kill_agentd TERM
pass "clean stop"
exit 0
