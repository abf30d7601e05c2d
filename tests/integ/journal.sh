#!/bin/sh
# journald: with log.target = "journal", every event is one journal entry with
# its MESSAGE_ID, PRIORITY and AGENT_* fields. Runs agentd against a private
# journald in its own mount namespace (../shared/notes/test-environment.md),
# so the machine's journal is never touched.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integ/lib.sh"

integ_need_root "a private journald (mount namespace)"
integ_need_jq
[ -x /lib/systemd/systemd-journald ] || skip "systemd-journald is not installed (apt-get install systemd)"
command -v unshare >/dev/null || skip "unshare is not installed (util-linux)"
integ_tmpdir

conf=$(integ_write_config j1)
sed -i 's/target = "stderr"/target = "journal"/' "$conf"

# Stage 2 runs inside the private mount namespace: its own /run (journal
# sockets) and /var/log/journal, a journald, then agentd.
cat > "$T/stage2.sh" <<STAGE
set -eu
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/journal /var/log/journal
mount -t tmpfs tmpfs /var/log/journal
/lib/systemd/systemd-journald &
jpid=\$!
trap 'kill \$jpid 2>/dev/null; wait \$jpid 2>/dev/null' EXIT
for i in \$(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done
[ -S /run/systemd/journal/socket ] || { echo "journald did not start" >&2; exit 1; }

"$AGENTD" --config "$conf" 2>"$T/agentd-j1.log" &
apid=\$!
ok=0
for i in \$(seq 100); do
        if "$AGENTCTL" --socket "$T/j1/ctl.sock" status >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.1
done
[ \$ok = 1 ] || { echo "agentd did not come up" >&2; kill \$apid; exit 1; }
"$AGENTCTL" --socket "$T/j1/ctl.sock" reload >/dev/null
kill -TERM \$apid
wait \$apid
journalctl --sync 2>/dev/null || sleep 0.5
journalctl --no-pager -o json SYSLOG_IDENTIFIER=agentd > "$T/journal.json"
STAGE

unshare --mount --propagation private sh "$T/stage2.sh" || fail "stage 2 failed"

started_id=9c4ef0ff83374e3f97cf4615e58b9fd9
reloaded_id=b2cfccffa7e54da7b1f8a1974b37711a
stopping_id=c164120e596847a584fd4c7468292b35

entry() {
        "$JQ" -c --arg id "$1" 'select(.MESSAGE_ID == $id)' "$T/journal.json"
}

e=$(entry $started_id)
[ -n "$e" ] || fail "no agent_started entry (MESSAGE_ID=$started_id) in the journal"
[ "$(echo "$e" | wc -l)" = 1 ] || fail "agent_started logged more than once"
[ "$(echo "$e" | "$JQ" -r .AGENT_NODE)" = j1 ] || fail "agent_started: AGENT_NODE is not j1: $e"
[ "$(echo "$e" | "$JQ" -r .AGENT_KIND)" = agent_started ] || fail "agent_started: AGENT_KIND wrong: $e"
[ "$(echo "$e" | "$JQ" -r .PRIORITY)" = 5 ] || fail "agent_started: PRIORITY is not 5 (notice): $e"
echo "$e" | "$JQ" -e '.MESSAGE | startswith("agent_started: agentd ")' >/dev/null ||
        fail "agent_started: unexpected MESSAGE: $e"
echo "$e" | "$JQ" -e 'has("AGENT_SERVICE") | not' >/dev/null ||
        fail "agent_started carries AGENT_SERVICE, which does not apply"
pass "agent_started in the journal with MESSAGE_ID, PRIORITY, AGENT_NODE, AGENT_KIND"

e=$(entry $reloaded_id)
[ -n "$e" ] || fail "no config_reloaded entry in the journal"
[ "$(echo "$e" | "$JQ" -r .AGENT_SUBJECT)" = "$conf" ] || fail "config_reloaded: AGENT_SUBJECT is not the config path: $e"
pass "config_reloaded in the journal with AGENT_SUBJECT"

e=$(entry $stopping_id)
[ -n "$e" ] || fail "no agent_stopping entry in the journal"
echo "$e" | "$JQ" -e '.AGENT_DETAIL | test("Terminated")' >/dev/null || fail "agent_stopping: AGENT_DETAIL lacks the signal: $e"
pass "agent_stopping in the journal"

# A plain (non-event) message also reaches the journal, with the node.
"$JQ" -e -s 'map(select(.MESSAGE == "agentd stopped" and .AGENT_NODE == "j1")) | length == 1' \
        "$T/journal.json" >/dev/null || fail "plain message 'agentd stopped' not in the journal"
pass "plain messages carry AGENT_NODE"
exit 0
