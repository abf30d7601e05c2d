#!/bin/sh
# Self-healing, issue test 4: a unit with Restart=always whose main process is
# killed with SIGKILL. systemd restarts it by itself; agentd sees the unit in
# "auto-restart", holds its own restart back (restart_suppressed:
# systemd_restarting) and does not add a second restart.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integ/lib.sh"
. "$top_srcdir/tests/integ/sdhost.sh"
. "$top_srcdir/tests/integ/heal_lib.sh"

heal_setup

# RestartSec long enough that agentd's check surely fails (and reaches a
# verdict) while systemd is waiting to restart the unit.
heal_start_unit always.service "--port 8082" "Restart=always
RestartSec=3s"

conf=$(heal_config 'services = ( { name = "always"; unit = "always.service"; address = "127.0.0.1"; port = 8082;
        check = { type = "http"; path = "/health"; interval = "100ms"; timeout = "100ms"; rise = 1; fall = 3; };
        restart = { limit = 5; window = "60s"; backoff = "100ms"; backoff_max = "5s"; }; } );')
heal_start_agentd "$conf"
heal_wait_svc always health healthy 30 || fail "always never became healthy"

pid1=$(heal_main_pid always.service)
[ "$pid1" -gt 0 ] || fail "always.service has no MainPID"
kill -KILL "$pid1"

# systemd's own restart: NRestarts goes to 1 and a new MainPID runs.
for _ in $(seq 300); do
        [ "$(sdhost_systemctl h1 show -p NRestarts --value always.service)" = 1 ] &&
                [ "$(heal_active_state always.service)" = active ] && break
        sleep 0.1
done
[ "$(sdhost_systemctl h1 show -p NRestarts --value always.service)" = 1 ] || fail "systemd did not restart the unit"
pid2=$(heal_main_pid always.service)
[ "$pid2" -gt 0 ] && [ "$pid2" != "$pid1" ] || fail "no new MainPID after systemd's restart ($pid1 -> $pid2)"
pass "systemd restarted always.service by itself ($pid1 -> $pid2)"

heal_wait_svc always health healthy 30 || fail "always did not become healthy again"
# Checks keep running for a while: any restart of ours would show by now.
sleep 2
[ "$(heal_count unit_restarted always.service)" = 0 ] ||
        fail "agentd restarted the unit too: $(heal_events unit_restarted always.service)"
[ "$(sdhost_systemctl h1 show -p NRestarts --value always.service)" = 1 ] || fail "more than one restart by systemd"
[ "$(heal_main_pid always.service)" = "$pid2" ] || fail "MainPID changed again after systemd's restart"
heal_events check_failed always.service | "$JQ" -e 'length == 1' >/dev/null ||
        fail "want exactly one check_failed: $(heal_events check_failed always.service)"
heal_events restart_suppressed always.service |
        "$JQ" -e 'map(select(.detail == "suppressed: systemd_restarting")) | length == 1' >/dev/null ||
        fail "no 'suppressed: systemd_restarting': $(heal_events restart_suppressed always.service)"
[ "$(heal_svc always systemd_restarts)" = 1 ] || fail "agentctl services does not show systemd's restart"
pass "agentd saw the failure, held back (systemd_restarting) and made no second restart"
heal_kill_agentd TERM
exit 0
