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

# --- balancer verbs on one agent without a leader -----------------------
# These need the daemon side (src/agentd/balancer.c): the "table", "pick",
# "drain" verbs and status's "table" object. One agent alone has no leader,
# so there is no table: that is a state, not an error.
expect_rc 0 table
[ "$out" = "no balancer table yet (no leader has published one)" ] ||
        fail "table without a leader: unexpected output: $out"
expect_rc 0 --json table
jq_true '.term == 0 and .version == 0 and .services == [] and .current == false and .leader == null'
pass "table without a leader"

expect_rc 1 pick web
one_line
printf '%s\n' "$err" | grep -q '^agentctl: pick: .* (failed)$' ||
        fail "pick without a table: message is not 'agentctl: pick: ... (failed)': $err"
[ -z "$out" ] || fail "failed pick printed on stdout: $out"
expect_rc 1 drain nosuchnode
one_line
printf '%s\n' "$err" | grep -q '^agentctl: drain: .*nosuchnode.* ([a-z_]*)$' ||
        fail "drain of an unknown node: message does not name it: $err"
expect_rc 1 undrain nosuchnode
one_line
printf '%s\n' "$err" | grep -q '^agentctl: undrain: ' || fail "undrain of an unknown node: $err"
pass "pick and drain without a table fail with the daemon's message"

expect_rc 0 status
printf '%s\n' "$out" | grep -q '^table: *term 0 version 0 (NOT current), 0 services$' ||
        fail "status has no 'table: term 0 version 0 (NOT current), 0 services' line: $out"
expect_rc 0 --json status
jq_true '.table.term == 0 and .table.version == 0 and .table.services == 0 and .table.current == false'
pass "status table line"

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
# The balancer verbs check their arguments before asking the daemon.
usage table web extra
usage table --bogus
usage table ''
usage pick
usage pick web extra
usage pick web --client
usage pick web --client not-an-ip
printf '%s\n' "$err" | grep -q 'needs an IP address' || fail "pick --client not-an-ip: unclear message: $err"
usage pick web --client 10.0.0.300
usage pick web --client '[fd00::1]'
usage pick --ttl 1m web
usage drain
usage drain n2 extra
usage drain n2 --ttl
usage drain n2 --ttl 10parsecs
printf '%s\n' "$err" | grep -q "invalid duration '10parsecs' for --ttl" || fail "drain --ttl 10parsecs: unclear message: $err"
usage drain n2 --ttl 0
usage drain n2 --ttl 400d
usage drain n2 --client 10.0.0.1
usage undrain
usage undrain n2 extra
usage undrain --ttl 1m n2
pass "usage errors"

expect_rc 0 --help
printf '%s\n' "$out" | grep -q 'events' || fail "--help does not list the verbs"
expect_rc 0 events --help
printf '%s\n' "$out" | grep -q -- '--follow' || fail "events --help does not list its options"
expect_rc 0 drain --help
printf '%s\n' "$out" | grep -q -- '--ttl DURATION' || fail "drain --help does not list --ttl"
expect_rc 0 pick --help
printf '%s\n' "$out" | grep -q -- '--client ADDR' || fail "pick --help does not list --client"
expect_rc 0 --help
for v in table pick drain undrain; do
        printf '%s\n' "$out" | grep -q "^  $v " || fail "--help does not list $v"
done
pass "help"

# --- balancer verbs against a fake agent ---------------------------------
# A published table, picks and drains need a cluster with a leader; the
# output for them is checked against canned replies (the shapes agentd
# sends), served by the real control socket code in test_ctl --fake-agent.
# Drains are answered late, as the agent does once the node confirmed.
fake=${top_builddir:-.}/tests/integ/test_ctl
[ -x "$fake" ] || fail "no $fake (make tests/integ/test_ctl)"
cat >"$T/fake.json" <<'JSON'
{
  "table": [
    { "reply": { "ok": true, "data": { "term": 3, "version": 7, "digest": "00c0ffee00c0ffee", "leader": "n3",
        "current": true, "services": [
          { "name": "web", "algorithm": "wrr", "digest": "1111111111111111", "backends": [
            { "node": "n1", "instance": "web@8080.service", "address": "10.0.0.1", "port": 8080, "weight": 10,
              "state": "up", "active": 2 },
            { "node": "n2", "instance": "web@8081.service", "address": "fd00::2", "port": 8081, "weight": 5,
              "state": "draining", "active": 0 } ] },
          { "name": "api", "algorithm": "least_conn", "digest": "2222222222222222", "backends": [] } ] } } },
    { "args": { "service": "web" },
      "reply": { "ok": true, "data": { "term": 3, "version": 7, "digest": "00c0ffee00c0ffee", "leader": null,
        "current": false, "services": [
          { "name": "web", "algorithm": "wrr", "digest": "1111111111111111", "backends": [
            { "node": "n1", "instance": "web@8080.service", "address": "10.0.0.1", "port": 8080, "weight": 10,
              "state": "up", "active": 2 } ] } ] } } },
    { "args": { "service": "nope" },
      "reply": { "ok": false, "error": { "code": "failed", "message": "no service \"nope\" in the table" } } }
  ],
  "pick": [
    { "args": { "service": "web" },
      "reply": { "ok": true, "data": { "service": "web", "algorithm": "wrr", "node": "n1",
        "instance": "web@8080.service", "address": "10.0.0.1", "port": 8080, "state": "up", "term": 3, "version": 7 } } },
    { "args": { "service": "web", "client": "fd00::7" },
      "reply": { "ok": true, "data": { "service": "web", "algorithm": "wrr", "node": "n2",
        "instance": "web@8081.service", "address": "fd00::2", "port": 8081, "state": "up", "term": 3, "version": 7 } } },
    { "args": { "service": "down" },
      "reply": { "ok": false, "error": { "code": "failed",
        "message": "no backend of \"down\" can take traffic (2 down, 1 draining)" } } }
  ],
  "drain": [
    { "args": { "node": "n2", "ttl_us": 600000000 }, "later_ms": 300,
      "reply": { "ok": true, "data": { "node": "n2", "draining": true, "until": "2026-11-27T00:10:00.000000Z",
        "until_us": 1795738200000000 } } },
    { "args": { "node": "n2" }, "later_ms": 300,
      "reply": { "ok": true, "data": { "node": "n2", "draining": true, "until": null, "until_us": null } } },
    { "args": { "node": "n9" }, "later_ms": 100,
      "reply": { "ok": false, "error": { "code": "timeout", "message": "n9 did not confirm the drain within 3s" } } }
  ],
  "undrain": [
    { "args": { "node": "n2" }, "later_ms": 100, "reply": { "ok": true, "data": { "node": "n2", "draining": false } } }
  ],
  "status": [
    { "reply": { "ok": true, "data": { "node": "n1", "cluster": "test", "leader": "n3", "term": 3, "state": "ok",
        "degraded": [], "table": { "term": 3, "version": 7, "digest": "00c0ffee00c0ffee", "services": 2,
        "current": true, "leader": "n3" } } } }
  ]
}
JSON
"$fake" --fake-agent "$T/fake.sock" "$T/fake.json" 2>"$T/fake.log" &
fake_pid=$!
INTEG_PIDS="$INTEG_PIDS $fake_pid"
integ_wait_for 100 test -S "$T/fake.sock" || fail "fake agent did not start: $(cat "$T/fake.log")"
fs="--socket=$T/fake.sock"

expect_rc 0 "$fs" table
cat >"$T/table.want" <<'TXT'
table term 3 version 7 digest 00c0ffee00c0ffee, leader n3, current

web (wrr, term 3 version 7)
NODE  INSTANCE          ADDRESS   PORT  WEIGHT  STATE     ACTIVE
n1    web@8080.service  10.0.0.1  8080      10  up             2
n2    web@8081.service  fd00::2   8081       5  draining       0

api (least_conn, term 3 version 7)
no backends
TXT
printf '%s\n' "$out" | diff -u "$T/table.want" - >&2 || fail "table output differs from the expected (above)"
expect_rc 0 "$fs" table web
printf '%s\n' "$out" | head -n 1 | grep -q '^table term 3 version 7 digest 00c0ffee00c0ffee, leader none, NOT current$' ||
        fail "table web: first line: $out"
[ "$(printf '%s\n' "$out" | grep -c '^n[0-9] ')" = 1 ] || fail "table web: expected one backend row: $out"
expect_rc 0 "$fs" --json table web
jq_true '.services | length == 1 and .[0].name == "web" and .[0].backends[0].port == 8080'
expect_rc 1 "$fs" table nope
one_line
[ "$err" = 'agentctl: table: no service "nope" in the table (failed)' ] || fail "table nope: $err"
pass "table (fake agent)"

expect_rc 0 "$fs" pick web
[ "$out" = "10.0.0.1:8080 (n1 web@8080.service)" ] || fail "pick web: $out"
expect_rc 0 "$fs" pick --client fd00::7 web
[ "$out" = "[fd00::2]:8081 (n2 web@8081.service)" ] || fail "pick --client fd00::7 web: $out"
expect_rc 0 "$fs" --json pick web --client fd00::7
jq_true '.node == "n2" and .address == "fd00::2" and .port == 8081 and .term == 3 and .version == 7'
expect_rc 1 "$fs" pick down
one_line
[ "$err" = 'agentctl: pick: no backend of "down" can take traffic (2 down, 1 draining) (failed)' ] ||
        fail "pick down: $err"
pass "pick (fake agent)"

expect_rc 0 "$fs" drain n2 --ttl 10m
[ "$out" = "n2 draining until 2026-11-27T00:10:00.000000Z" ] || fail "drain --ttl 10m: $out"
expect_rc 0 "$fs" drain n2
[ "$out" = "n2 draining until undrain" ] || fail "drain: $out"
expect_rc 0 "$fs" --json drain n2
jq_true '.node == "n2" and .draining == true and .until == null'
expect_rc 1 "$fs" drain n9
one_line
[ "$err" = "agentctl: drain: n9 did not confirm the drain within 3s (timeout)" ] || fail "drain n9: $err"
expect_rc 0 "$fs" undrain n2
[ "$out" = "n2 undrained" ] || fail "undrain: $out"
expect_rc 0 "$fs" --json undrain n2
jq_true '.node == "n2" and .draining == false'
pass "drain and undrain (fake agent)"

expect_rc 0 "$fs" status
printf '%s\n' "$out" | grep -q '^table: *term 3 version 7 (current), 2 services$' ||
        fail "status has no 'table: term 3 version 7 (current), 2 services' line: $out"
integ_stop_agentd "$fake_pid" || fail "fake agent did not exit 0 on SIGTERM"

# An older agent sends no "table" object: no line, not a broken one.
cat >"$T/old.json" <<'JSON'
{ "status": [ { "reply": { "ok": true, "data": { "node": "n1", "leader": null, "term": 0, "state": "ok" } } } ] }
JSON
"$fake" --fake-agent "$T/old.sock" "$T/old.json" 2>"$T/old.log" &
fake_pid=$!
INTEG_PIDS="$INTEG_PIDS $fake_pid"
integ_wait_for 100 test -S "$T/old.sock" || fail "fake agent did not start: $(cat "$T/old.log")"
expect_rc 0 --socket "$T/old.sock" status
printf '%s\n' "$out" | grep -q '^node: *n1$' || fail "status from an older agent: $out"
printf '%s\n' "$out" | grep -q '^table' && fail "status from an older agent has a table line: $out"
integ_stop_agentd "$fake_pid" || fail "fake agent did not exit 0 on SIGTERM"
pass "status table line (fake agent)"

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
