#!/bin/sh
# The daemon's life cycle: SIGHUP reloads (a bad config is refused and the old
# one stays in force), a restart-only change is refused, SIGTERM stops cleanly
# and records it, a corrupt state database is moved aside, and a second agent
# on the same state directory is refused.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integ/lib.sh"

integ_need_jq
integ_tmpdir

conf=$(integ_write_config s1)
db="$T/s1/state/state.db"
integ_start_agentd "$conf"

count_kind() {
        "$AGENTCTL" --json events --kind "$1" --limit 10000 | "$JQ" '.events | length'
}

# 1. SIGHUP with a valid change: reloaded, recorded.
sed -i 's/level = "debug"/level = "info"/' "$conf"
kill -HUP "$AGENTD_PID"
integ_wait_for 50 sh -c "[ \"\$('$AGENTCTL' --json events --kind config_reloaded | '$JQ' '.events|length')\" = 1 ]" ||
        fail "SIGHUP did not record config_reloaded"
pass "SIGHUP reloads a valid config"

# 2. SIGHUP with a broken file: refused with FILE:LINE, still serving.
cp "$conf" "$T/good.conf"
printf 'node = { name = "s1"; bogus = 1; };\n' > "$conf"
kill -HUP "$AGENTD_PID"
integ_wait_for 50 sh -c "[ \"\$('$AGENTCTL' --json events --kind config_rejected | '$JQ' '.events|length')\" = 1 ]" ||
        fail "SIGHUP with a bad config did not record config_rejected"
detail=$("$AGENTCTL" --json events --kind config_rejected | "$JQ" -r '.events[0].detail')
case "$detail" in
"$conf:1: "*bogus*) ;;
*) fail "config_rejected detail does not name FILE:LINE and the key: $detail" ;;
esac
"$AGENTCTL" status >/dev/null || fail "agent stopped serving after a refused reload"
[ "$("$AGENTCTL" --json status | "$JQ" -r .node)" = s1 ] || fail "old config not in force"
pass "a bad config is refused, the old one stays in force"

# 3. A restart-only key cannot change on reload.
sed 's/name = "s1"/name = "s2"/' "$T/good.conf" > "$conf"
out=$("$AGENTCTL" reload 2>&1) && fail "reload changing node.name succeeded"
echo "$out" | grep -q "node.name" || fail "refusal does not name node.name: $out"
[ "$("$AGENTCTL" --json status | "$JQ" -r .node)" = s1 ] || fail "node name changed on reload"
cp "$T/good.conf" "$conf"
"$AGENTCTL" reload >/dev/null || fail "reload of the good config failed"
pass "restart-only keys are refused on reload"

# 4. A second agent on the same state directory is refused.
sed "s|$T/s1/ctl.sock|$T/s1/ctl2.sock|" "$conf" > "$T/second.conf"
if "$AGENTD" --config "$T/second.conf" 2>"$T/second.log"; then
        fail "a second agentd on the same state_dir started"
fi
grep -q "another agentd is running" "$T/second.log" || fail "second agent: unclear error: $(cat "$T/second.log")"
# And one on a different state dir but the same socket.
sed "s|$T/s1/state|$T/s1/state2|" "$conf" > "$T/third.conf"
if "$AGENTD" --config "$T/third.conf" 2>"$T/third.log"; then
        fail "a second agentd on the same control socket started"
fi
grep -q "in use" "$T/third.log" || fail "same socket: unclear error: $(cat "$T/third.log")"
"$AGENTCTL" status >/dev/null || fail "the first agent stopped serving"
pass "a second agent on the same state_dir or socket is refused"

# 5. SIGTERM: exit 0, agent_stopping recorded, socket removed.
integ_stop_agentd || fail "agentd exited non-zero after SIGTERM"
[ -e "$T/s1/ctl.sock" ] && fail "control socket left behind"
n=$("$AGENTCTL" --json events --db "$db" --kind agent_stopping | "$JQ" '.events | length')
[ "$n" = 1 ] || fail "agent_stopping not in the database after SIGTERM (found $n)"
pass "SIGTERM stops cleanly and records agent_stopping"

# 6. Restart keeps history: agent_started now twice.
integ_start_agentd "$conf"
[ "$(count_kind agent_started)" = 2 ] || fail "history lost across restart"
integ_stop_agentd || fail "second stop failed"
pass "events survive a restart"

# 7. A corrupt database is moved aside; the agent starts degraded.
rm -f "$db-wal" "$db-shm"
head -c 8192 /dev/urandom > "$db"
cp "$db" "$T/garbage"
integ_start_agentd "$conf"
"$AGENTCTL" status >/dev/null
rc=$?
[ $rc = 3 ] || fail "agentctl status after recovery exited $rc, want 3 (degraded)"
[ "$("$AGENTCTL" --json status | "$JQ" -r '.degraded[0]')" = store_recovered ] || fail "degraded reason missing"
[ "$(count_kind store_recovered)" = 1 ] || fail "store_recovered event missing"
aside=$(ls "$T/s1/state/" | grep '^state.db.corrupt-' | head -n 1)
[ -n "$aside" ] || fail "corrupt file was not moved aside"
cmp -s "$T/s1/state/$aside" "$T/garbage" || fail "the moved-aside file is not the original"
grep -q "corrupt" "$T/agentd-s1.log" || fail "no error logged about the corrupt database"
pass "a corrupt state.db is moved aside ($aside) and the agent reports degraded"
exit 0
