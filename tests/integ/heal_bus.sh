#!/bin/sh
# Self-healing, issue test 5: the bus connection to the user manager breaks,
# twice -- `systemctl --user daemon-reexec` (the manager leaves the bus and
# comes back) and a SIGKILL of the session bus's dbus-daemon (our connection
# drops; socket activation brings a new daemon). Each time agentd reconnects
# and resubscribes (a bus_reconnected event), and the next failure of the
# service is still detected and handled with a restart through D-Bus.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integ/lib.sh"
. "$top_srcdir/tests/integ/sdhost.sh"
. "$top_srcdir/tests/integ/heal_lib.sh"

heal_setup

heal_start_web
heal_wait_svc web health healthy 30 || fail "web never became healthy"

# break_and_heal N: after the N-th bus_reconnected, make the current process
# answer 500 and expect the N-th restart, with a new MainPID.
break_and_heal() {
        heal_wait_count bus_reconnected "$1" 60 || fail "no bus_reconnected #$1 (see $T/agentd-h1.log)"
        # The unit's state is re-read after the reconnect: wait until agentd knows the MainPID again.
        pid=$(heal_main_pid web.service)
        heal_wait_svc web main_pid "$pid" 30 || fail "agentd did not re-read web.service after reconnecting"
        heal_wait_svc web health healthy 30 || fail "web not healthy after reconnect #$1"
        echo "error $pid" > "$T/web.ctl"
        heal_wait_count unit_restarted "$1" 60 web.service || fail "failure after reconnect #$1 not handled"
        new=$(heal_main_pid web.service)
        [ "$new" -gt 0 ] && [ "$new" != "$pid" ] || fail "MainPID did not change after reconnect #$1 ($pid -> $new)"
        heal_events unit_restarted web.service | "$JQ" -e --argjson i "$(($1 - 1))" --arg d "main pid $pid -> $new" \
                '.[$i].detail | contains($d) and contains("job done")' >/dev/null ||
                fail "unexpected unit_restarted #$1: $(heal_events unit_restarted web.service)"
        heal_wait_svc web health healthy 30 || fail "web not healthy after restart #$1"
}

# --- 1. daemon-reexec of the user manager --------------------------------------
sdhost_systemctl h1 daemon-reexec || fail "daemon-reexec failed"
break_and_heal 1
heal_events bus_reconnected | "$JQ" -e '.[0].subject == "user bus" and .[0].service == null' >/dev/null ||
        fail "unexpected bus_reconnected: $(heal_events bus_reconnected)"
pass "daemon-reexec: agentd reconnected (bus_reconnected) and the next failure was restarted"

# --- 2. the session bus's dbus-daemon is killed ----------------------------------
dbus=$(sdhost_systemctl h1 show -P MainPID dbus.service)
[ "$dbus" -gt 0 ] || fail "no dbus-daemon in the test host"
kill -KILL "$dbus"
break_and_heal 2
[ "$(sdhost_systemctl h1 show -P MainPID dbus.service)" != "$dbus" ] || fail "dbus-daemon was not replaced"
pass "dbus-daemon killed: agentd reconnected and the next failure was restarted"

[ "$(heal_count bus_reconnected)" = 2 ] || fail "want exactly 2 bus_reconnected: $(heal_events bus_reconnected)"
heal_kill_agentd TERM
exit 0
