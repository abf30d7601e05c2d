#!/bin/sh
# systemd notification: READY=1 once serving, STATUS= lines, WATCHDOG=1 at
# half of WATCHDOG_USEC, RELOADING=1 then READY=1 around a reload, STOPPING=1
# on SIGTERM. A datagram socket stands in for systemd's NOTIFY_SOCKET.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integ/lib.sh"

listen="${top_builddir:?}/tests/integ/notify_listen"
[ -x "$listen" ] || fail "$listen is not built"
integ_tmpdir

conf=$(integ_write_config n1)
"$listen" "$T/notify.sock" 20 > "$T/notify.out" &
lpid=$!
INTEG_PIDS="$INTEG_PIDS $lpid"
integ_wait_for 50 test -S "$T/notify.sock" || fail "listener did not start"

NOTIFY_SOCKET="$T/notify.sock"
WATCHDOG_USEC=200000
export NOTIFY_SOCKET WATCHDOG_USEC
integ_start_agentd "$conf"
unset NOTIFY_SOCKET WATCHDOG_USEC
sleep 0.5
kill -HUP "$AGENTD_PID"
sleep 0.3
integ_stop_agentd || fail "agentd exited non-zero"
wait "$lpid"

out=$(cat "$T/notify.out")
echo "$out" | grep -q '^READY=1|STATUS=Serving on ' || fail "no READY=1 with STATUS: $out"
w=$(echo "$out" | grep -c '^WATCHDOG=1$')
[ "$w" -ge 3 ] || fail "only $w WATCHDOG=1 in ~1 s with WATCHDOG_USEC=200000: $out"
echo "$out" | grep -q '^RELOADING=1' || fail "no RELOADING=1 on SIGHUP: $out"
echo "$out" | sed -n '/^RELOADING=1/,$p' | grep -q '^READY=1|STATUS=Serving$' || fail "no READY=1 after the reload: $out"
echo "$out" | tail -n 1 | grep -q '^STOPPING=1' || fail "last message is not STOPPING=1: $out"
pass "READY, STATUS, WATCHDOG ($w), RELOADING, STOPPING sent to NOTIFY_SOCKET"
exit 0
