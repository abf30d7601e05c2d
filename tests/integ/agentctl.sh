#!/bin/sh
# agentctl against a real agentd: every verb in text and --json, the exit
# statuses (0 ok, 1 error, 2 usage), events --follow and --db, and the
# one-line messages when the daemon is not there.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/integ/lib.sh"

integ_need_jq
integ_tmpdir

# ctl ARGS...: runs agentctl, leaving stdout in $out, stderr in $err, status in $rc.
ctl() {
        out=$("$AGENTCTL" "$@" 2>"$T/stderr")
        rc=$?
        err=$(cat "$T/stderr")
}

# expect_rc N ARGS...: runs agentctl and fails unless it exits N.
expect_rc() {
        want=$1
        shift
        ctl "$@"
        [ "$rc" = "$want" ] || fail "agentctl $* exited $rc, expected $want; stdout: $out; stderr: $err"
}

# jq_true FILTER: fails unless FILTER is true for $out.
jq_true() {
        printf '%s\n' "$out" | "$JQ" -e "$1" >/dev/null ||
                fail "jq '$1' is not true for: $out"
}

# one_line: fails unless $err is exactly one line.
one_line() {
        [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || fail "expected one line on stderr, got: $err"
}

conf=$(integ_write_config n1)
integ_start_agentd "$conf"
sock=$AGENTCTL_SOCKET
db="$T/n1/state/state.db"

# --- status ------------------------------------------------------------
expect_rc 0 status
printf '%s\n' "$out" | grep -q '^node: *n1$' || fail "status does not name the node: $out"
printf '%s\n' "$out" | grep -q '^state: *ok$' || fail "status has no 'state: ok' line: $out"
printf '%s\n' "$out" | grep -q '^leader: *none$' || fail "status does not say there is no leader: $out"
printf '%s\n' "$out" | grep -q '^term: *0$' || fail "status has no term 0: $out"
pass "status"

expect_rc 0 --json status
jq_true '.node == "n1" and .leader == null and .term == 0 and .state == "ok"'
jq_true '(.pid | type) == "number" and (.uptime_seconds | type) == "number" and .cluster == "test"'
[ "$(printf '%s\n' "$out" | "$JQ" -s length)" = 1 ] || fail "--json status is not one document"
pass "--json status"

# The socket can also come from the environment; --socket wins over it.
out=$(AGENTCTL_SOCKET="$sock" "$AGENTCTL" status) || fail "status with AGENTCTL_SOCKET failed"
out=$(AGENTCTL_SOCKET="$T/nowhere.sock" "$AGENTCTL" --socket "$sock" status) || fail "--socket does not override AGENTCTL_SOCKET"
pass "socket from the environment and --socket"

# --- events ------------------------------------------------------------
expect_rc 0 events
printf '%s\n' "$out" | head -n 1 | grep -q '^ *ID  *TIME  *NODE  *KIND  *SUBJECT  *DETAIL$' || fail "events has no header: $out"
printf '%s\n' "$out" | grep -q ' agent_started ' || fail "events does not show agent_started: $out"
pass "events"

expect_rc 0 --json events --kind agent_started
jq_true '.events | length == 1'
jq_true '.events[0] | has("id") and has("ts") and has("node") and has("kind") and has("subject") and has("detail")'
jq_true '.events[0] | (.id | type) == "number" and .node == "n1" and .kind == "agent_started"'
jq_true '.events[0].ts | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$")'
[ "$(printf '%s\n' "$out" | "$JQ" -s length)" = 1 ] || fail "--json events is not one document"
pass "--json events --kind agent_started"

# --- reload ------------------------------------------------------------
expect_rc 0 reload
printf '%s\n' "$out" | grep -q "^reloaded $conf\$" || fail "reload does not say what it reloaded: $out"
expect_rc 0 --json events --kind config_reloaded
jq_true '.events | length == 1 and .[0].kind == "config_reloaded"'
expect_rc 0 --json reload
jq_true '.reloaded == true and .config == "'"$conf"'"'
pass "reload"

# A broken config is refused with the daemon's FILE:LINE message and code.
cp "$conf" "$T/n1.conf.good"
echo 'bogus_key = 1;' >> "$conf"
expect_rc 1 reload
one_line
printf '%s\n' "$err" | grep -q "^agentctl: reload: $conf:[0-9][0-9]*: .* (failed)\$" ||
        fail "refused reload message is not 'agentctl: reload: FILE:LINE: message (failed)': $err"
cp "$T/n1.conf.good" "$conf"
expect_rc 0 --json events --kind config_rejected
jq_true '.events | length == 1'
pass "reload of a bad config"

# --- limit and since ---------------------------------------------------
expect_rc 0 --json events
total=$(printf '%s\n' "$out" | "$JQ" '.events | length')
newest=$(printf '%s\n' "$out" | "$JQ" '.events[-1].id')
[ "$total" -ge 4 ] || fail "expected at least 4 events by now, have $total"
jq_true '.last_id == '"$newest"
expect_rc 0 --json events --limit 1
jq_true '.events | length == 1 and .[0].id == '"$newest"
expect_rc 0 events --limit 2
[ "$(printf '%s\n' "$out" | wc -l)" = 3 ] || fail "events --limit 2 did not print a header and 2 rows: $out"
pass "--limit"

expect_rc 0 --json events --since 1h
jq_true '.events | length == '"$total"
sleep 0.2
expect_rc 0 --json events --since 100ms
jq_true '.events | length == 0'
pass "--since"

# --- version -----------------------------------------------------------
expect_rc 0 version
printf '%s\n' "$out" | grep -q '^agentctl: *[0-9][0-9.]*$' || fail "version lacks agentctl's: $out"
printf '%s\n' "$out" | grep -q '^agentd: *[0-9][0-9.]*$' || fail "version lacks agentd's: $out"
expect_rc 0 --json version
jq_true '(.agentctl | type) == "string" and .agentd == .agentctl'
expect_rc 0 --version
printf '%s\n' "$out" | grep -q '^agentctl [0-9][0-9.]*$' || fail "--version: $out"
pass "version"

# --- follow ------------------------------------------------------------
# One follower prints JSON lines, one a table; a reload must reach both.
"$AGENTCTL" --json events --follow --kind config_reloaded >"$T/follow.json" 2>"$T/follow.json.err" &
fjson=$!
"$AGENTCTL" events --follow >"$T/follow.txt" 2>"$T/follow.txt.err" &
ftxt=$!
integ_wait_for 50 grep -q config_reloaded "$T/follow.json" || fail "follower printed nothing: $(cat "$T/follow.json.err")"
integ_wait_for 50 grep -q config_reloaded "$T/follow.txt" || fail "text follower printed nothing: $(cat "$T/follow.txt.err")"
txt_before=$(grep -c config_reloaded "$T/follow.txt")
sleep 0.6
expect_rc 0 reload
integ_wait_for 30 sh -c "[ \$(grep -c config_reloaded '$T/follow.json') -ge 3 ]" ||
        fail "--follow --json did not print the new event: $(cat "$T/follow.json")"
integ_wait_for 30 sh -c "[ \$(grep -c config_reloaded '$T/follow.txt') -gt $txt_before ]" ||
        fail "--follow did not print the new event: $(cat "$T/follow.txt")"
kill -TERM "$fjson" "$ftxt"
wait "$fjson"
rc=$?
[ "$rc" = 0 ] || fail "events --follow --json exited $rc on SIGTERM"
wait "$ftxt"
rc=$?
[ "$rc" = 0 ] || fail "events --follow exited $rc on SIGTERM"
"$JQ" -e -s 'length == 3 and all(.[]; .kind == "config_reloaded" and has("id") and has("ts"))' \
        "$T/follow.json" >/dev/null || fail "--follow --json lines are not one event each: $(cat "$T/follow.json")"
[ "$(grep -c '^ *ID  *TIME' "$T/follow.txt")" = 1 ] || fail "--follow printed the header more than once"
pass "--follow"

# --- usage errors (exit 2, message and usage on stderr, nothing on stdout) -
usage() {
        expect_rc 2 "$@"
        [ -z "$out" ] || fail "agentctl $* printed on stdout: $out"
        printf '%s\n' "$err" | grep -q '^agentctl: ' || fail "agentctl $*: no message: $err"
        printf '%s\n' "$err" | grep -q '^usage: ' || fail "agentctl $*: no usage: $err"
}
usage
usage nosuchverb
usage --bogus status
usage status extra
usage status --bogus
usage events --limit 0
usage events --limit 10001
usage events --limit 5x
usage events --limit
usage events --since 10parsecs
usage events --kind nosuch
printf '%s\n' "$err" | grep -q 'agent_started' || fail "--kind nosuch does not list the valid kinds: $err"
usage events --bogus
usage events extra
usage --timeout 0 status
usage --timeout soon status
pass "usage errors"

expect_rc 0 --help
printf '%s\n' "$out" | grep -q 'events' || fail "--help does not list the verbs"
expect_rc 0 events --help
printf '%s\n' "$out" | grep -q -- '--follow' || fail "events --help does not list its options"
pass "help"

# --- after the daemon stopped: --db and the unreachable messages -----------
integ_stop_agentd || fail "agentd did not exit 0 on SIGTERM"

expect_rc 0 events --db "$db"
printf '%s\n' "$out" | grep -q ' agent_stopping ' || fail "events --db does not show agent_stopping: $out"
expect_rc 0 --json events --db "$db" --kind agent_stopping
jq_true '.events | length == 1 and (.[0] | has("id") and has("ts") and has("node") and has("kind") and has("subject") and has("detail"))'
expect_rc 0 --json events --db "$db" --limit 1
jq_true '.events | length == 1 and .[0].kind == "agent_stopping"'
expect_rc 1 events --db "$T/nosuch.db"
one_line
pass "events --db"

missing="$T/missing/ctl.sock"
for verb in status events reload; do
        expect_rc 1 --socket "$missing" "$verb"
        one_line
        [ "$err" = "agentctl: agentd is not running (no socket at $missing)" ] ||
                fail "$verb with no daemon: unexpected message: $err"
done
expect_rc 0 --socket "$missing" version
printf '%s\n' "$out" | grep -q '^agentd: *not running' || fail "version does not say agentd is not running: $out"
expect_rc 0 --socket "$missing" --json version
jq_true '.agentd == null and (.agentctl | type) == "string"'
pass "no daemon"

# A daemon that died without cleaning up leaves a socket nobody listens on.
integ_start_agentd "$conf"
kill -KILL "$AGENTD_PID"
wait "$AGENTD_PID" 2>/dev/null
INTEG_PIDS=$(echo "$INTEG_PIDS" | tr ' ' '\n' | grep -vx "$AGENTD_PID" | tr '\n' ' ')
[ -S "$sock" ] || fail "no stale socket left at $sock after kill -9"
expect_rc 1 status
one_line
[ "$err" = "agentctl: agentd is not running (connection refused at $sock)" ] ||
        fail "status with a stale socket: unexpected message: $err"
pass "stale socket"

exit 0
