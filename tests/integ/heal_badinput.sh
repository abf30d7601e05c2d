#!/bin/sh
# Self-healing, issue test 6: bad input. A service whose unit does not exist,
# an exec check whose program is missing, and an http check against a port
# that answers garbage: each gives a clear event (check_failed with the
# reason, then what agentd did about it) and nothing crashes. Also: a reload
# that removes and adds services is applied without restarting agentd, and a
# corrupt state database makes the supervisor start fail-safe.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integ/lib.sh"
. "$top_srcdir/tests/integ/sdhost.sh"
. "$top_srcdir/tests/integ/heal_lib.sh"

heal_setup

heal_unit noexec.service "--port 8083"
heal_unit garbage.service "--port 8084 --mode garbage"
heal_unit late.service "--port 8085"
sdhost_systemctl h1 start noexec.service garbage.service late.service || fail "cannot start the test units"

# restart.limit 1 per hour and a backoff cap of an hour: one restart each,
# then quarantine, so the counts below are exact.
services='
        restart = { limit = 1; window = "1h"; backoff = "1s"; backoff_max = "1h"; };'
conf=$(heal_config "services = (
    { name = \"ghost\"; unit = \"ghost.service\"; address = \"127.0.0.1\"; port = 8090;
      check = { type = \"systemd\"; interval = \"100ms\"; rise = 1; fall = 1; }; $services },
    { name = \"noexec\"; unit = \"noexec.service\"; address = \"127.0.0.1\"; port = 8083;
      check = { type = \"exec\"; command = \"/nonexistent/agentd-check --port 8083\";
                interval = \"200ms\"; timeout = \"150ms\"; rise = 1; fall = 2; }; $services },
    { name = \"garbage\"; unit = \"garbage.service\"; address = \"127.0.0.1\"; port = 8084;
      check = { type = \"http\"; path = \"/health\"; interval = \"200ms\"; timeout = \"150ms\"; rise = 1; fall = 2; };
      $services } );")
heal_start_agentd "$conf"

# --- a unit that does not exist ------------------------------------------------
heal_wait_count restart_suppressed 1 30 ghost.service || fail "no restart_suppressed for ghost.service"
heal_events check_failed ghost.service |
        "$JQ" -e 'length == 1 and (.[0].detail | contains("unit ghost.service not found")) and .[0].service == "ghost"' \
        >/dev/null || fail "unexpected check_failed for ghost: $(heal_events check_failed ghost.service)"
heal_events restart_suppressed ghost.service | "$JQ" -e '.[0].detail == "suppressed: no_unit"' >/dev/null ||
        fail "unexpected restart_suppressed for ghost: $(heal_events restart_suppressed ghost.service)"
[ "$(heal_count unit_restarted ghost.service)" = 0 ] || fail "agentd tried to restart a unit that does not exist"
[ "$(heal_svc ghost load_state)" = not-found ] || fail "services does not say ghost.service is not found"
"$AGENTCTL" services | grep -q "^ghost  *ghost\.service  *unhealthy  *not-found " ||
        fail "agentctl services text does not say not-found: $("$AGENTCTL" services)"
pass "missing unit: check_failed 'unit ghost.service not found', restart_suppressed no_unit, no restart"

# --- an exec check whose program is missing -------------------------------------
heal_wait_count instance_quarantined 1 60 noexec.service || fail "noexec was not quarantined"
heal_events check_failed noexec.service | "$JQ" -e '.[0].detail | contains("/nonexistent/agentd-check") and
        contains("No such file or directory")' >/dev/null ||
        fail "check_failed does not name the missing program: $(heal_events check_failed noexec.service)"
[ "$(heal_count unit_restarted noexec.service)" = 1 ] || fail "want exactly one restart of noexec.service"
heal_svc noexec last_check_message | grep -q "/nonexistent/agentd-check" || fail "services lacks the exec failure"
pass "missing exec program: check_failed names it, one restart, then quarantined"

# --- an http check against garbage -------------------------------------------------
heal_wait_count instance_quarantined 1 60 garbage.service || fail "garbage was not quarantined"
heal_events check_failed garbage.service | "$JQ" -e '.[0].detail | contains("malformed response")' >/dev/null ||
        fail "check_failed does not say malformed response: $(heal_events check_failed garbage.service)"
[ "$(heal_count unit_restarted garbage.service)" = 1 ] || fail "want exactly one restart of garbage.service"
pass "garbage over http: check_failed 'malformed response', one restart, then quarantined"

kill -0 "$AGENTD_PID" || fail "agentd died"
"$AGENTCTL" status >/dev/null || fail "agentctl status fails"
[ "$("$AGENTCTL" --json services | "$JQ" '.services | length')" = 3 ] || fail "services does not list 3 instances"

# --- reload: ghost goes, late comes ----------------------------------------------
conf=$(heal_config "services = (
    { name = \"noexec\"; unit = \"noexec.service\"; address = \"127.0.0.1\"; port = 8083;
      check = { type = \"exec\"; command = \"/nonexistent/agentd-check --port 8083\";
                interval = \"200ms\"; timeout = \"150ms\"; rise = 1; fall = 2; }; $services },
    { name = \"garbage\"; unit = \"garbage.service\"; address = \"127.0.0.1\"; port = 8084;
      check = { type = \"http\"; path = \"/health\"; interval = \"200ms\"; timeout = \"150ms\"; rise = 1; fall = 2; };
      $services },
    { name = \"late\"; unit = \"late.service\"; address = \"127.0.0.1\"; port = 8085;
      check = { type = \"tcp\"; interval = \"200ms\"; timeout = \"150ms\"; rise = 1; fall = 2; }; $services } );")
"$AGENTCTL" reload >/dev/null || fail "reload failed"
"$AGENTCTL" --json services | "$JQ" -e '[.services[].service] == ["noexec", "garbage", "late"]' >/dev/null ||
        fail "services after reload: $("$AGENTCTL" --json services)"
heal_wait_svc late health healthy 30 || fail "the added service never became healthy"
# Existing instances keep their state across the reload.
[ "$(heal_svc noexec quarantined)" = true ] || fail "noexec lost its quarantine on reload"
pass "reload: removed and added services applied; existing ones keep their state"

kill -0 "$AGENTD_PID" || fail "agentd died"
heal_kill_agentd TERM

# --- a corrupt state database: the supervisor starts fail-safe -----------------------
# The restart history went with the corrupt file, so no automatic restart is
# made during the first restart.window (3 s here); then restarts resume.
head -c 16384 /dev/urandom > "$T/state/state.db"
rm -f "$T/state/state.db-wal" "$T/state/state.db-shm"
conf=$(heal_config 'services = (
    { name = "garbage"; unit = "garbage.service"; address = "127.0.0.1"; port = 8084;
      check = { type = "http"; path = "/health"; interval = "200ms"; timeout = "150ms"; rise = 1; fall = 2; };
      restart = { limit = 5; window = "3s"; backoff = "100ms"; backoff_max = "1h"; }; } );')
heal_start_agentd "$conf"
"$AGENTCTL" --json status | "$JQ" -e '.state == "degraded" and (.degraded | index("store_recovered"))' >/dev/null ||
        fail "agentd did not report the recovered database: $("$AGENTCTL" --json status)"
heal_wait_count unit_restarted 1 60 garbage.service || fail "restarts did not resume after the fail-safe period"
heal_events restart_suppressed garbage.service | "$JQ" -e '
        map(select(.detail | startswith("state database was recovered; fail-safe: no automatic restart until"))) | length == 1' \
        >/dev/null || fail "no fail-safe restart_suppressed: $(heal_events restart_suppressed garbage.service)"
started=$("$AGENTCTL" --json events --kind agent_started | "$JQ" '.events[-1].ts_us')
first=$(heal_events unit_restarted garbage.service | "$JQ" '.[0].ts_us')
[ $((first - started)) -ge 2900000 ] ||
        fail "restarted $(( (first - started) / 1000 )) ms after start, inside the 3 s fail-safe period"
pass "corrupt state database: restarts held back for restart.window (fail-safe), then resumed"
heal_kill_agentd TERM
exit 0
