#!/bin/sh
# The balancer table on one host, end to end: an agent that founds its own
# cluster (its only seed is itself) elects itself, builds the table from its
# own instances and serves it: `agentctl table`, `pick` (with and without
# --client), drain and undrain of itself (also with a TTL), a service whose
# check fails going `down`, a replicated service placed through sd-bus as a
# template instance (api@9100.service), and after kill -9 and a restart the
# persisted table answering `pick` before any leader is elected again.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integ/lib.sh"
. "$top_srcdir/tests/integ/sdhost.sh"
. "$top_srcdir/tests/integ/heal_lib.sh"

heal_setup

dump() {
        echo "--- agentd log (last 60 lines)" >&2
        tail -n 60 "$T/agentd-h1.log" >&2
}
bfail() {
        dump
        fail "$@"
}

# jwait SECS JQ_FILTER VERB...: polls `agentctl --json VERB...` until the filter is true.
jwait() {
        secs=$1
        filter=$2
        shift 2
        for _ in $(seq $((secs * 10))); do
                "$AGENTCTL" --json "$@" 2>/dev/null | "$JQ" -e "$filter" >/dev/null 2>&1 && return 0
                sleep 0.1
        done
        return 1
}

heal_start_unit web.service "--port 8080 --control $T/web.ctl"
heal_unit "api@.service" "--port %i"
mkdir -p "$T/state"
cat > "$T/agentd.conf" <<CONF
node = { name = "h1"; bind = "127.0.0.1:7946"; state_dir = "$T/state"; };
cluster = { name = "bal"; join = [ "127.0.0.1:7946" ]; profile = "local";
            election = { timeout_min = "300ms"; timeout_max = "600ms"; heartbeat = "50ms"; lease = "250ms"; lease_guard = "20ms"; }; };
control = { socket = "$T/ctl.sock"; };
systemd = { bus = "user"; };
log = { target = "stderr"; level = "debug"; };
services = (
  { name = "web"; unit = "web.service"; address = "127.0.0.1"; port = 8080; weight = 5; algorithm = "wrr";
    check = { type = "http"; path = "/health"; interval = "200ms"; timeout = "150ms"; rise = 1; fall = 2; };
    restart = { limit = 1; window = "60s"; backoff = "30s"; backoff_max = "30s"; }; },
  { name = "api"; unit = "api@.service"; address = "127.0.0.1"; port = 9100; replicas = 1;
    replica_ports = [ 9100, 9109 ]; algorithm = "sourcehash";
    check = { type = "tcp"; interval = "200ms"; timeout = "150ms"; rise = 1; fall = 2; }; }
);
CONF
heal_start_agentd "$T/agentd.conf"

# 1. The agent leads its one-node cluster and publishes web.
jwait 30 '.leader == "h1" and .state == "leader"' leader || bfail "h1 never led: $("$AGENTCTL" --json leader)"
jwait 30 '.current == true and (.services[] | select(.name == "web") | .backends[0].state == "up" and .algorithm == "wrr")' table ||
        bfail "web never up in a current table: $("$AGENTCTL" --json table)"
pass "h1 leads and its table has web up"

# 2. pick, with and without a client address; errors.
out=$("$AGENTCTL" pick web) || bfail "pick web failed"
[ "$out" = "127.0.0.1:8080 (h1 web.service)" ] || bfail "pick web printed: $out"
"$AGENTCTL" --json pick web --client 10.1.2.3 | "$JQ" -e '.port == 8080 and .node == "h1"' >/dev/null ||
        bfail "pick --client did not answer 8080"
"$AGENTCTL" pick nosuch >"$T/out" 2>&1 && bfail "pick of an unknown service succeeded"
grep -q 'no service "nosuch"' "$T/out" || bfail "unclear error for an unknown service: $(cat "$T/out")"
pass "pick answers from the table and refuses an unknown service"

# 3. The replicated service is placed here through sd-bus and joins the table.
jwait 60 '[.services[] | select(.name == "api") | .backends[] | select(.state == "up" and .port == 9100)] | length == 1' table ||
        bfail "api@9100 never up in the table: $("$AGENTCTL" --json table) $("$AGENTCTL" --json services)"
[ "$(heal_active_state api@9100.service)" = active ] || bfail "api@9100.service is not active"
"$AGENTCTL" --json events --kind instance_placed | "$JQ" -e '[.events[] | select(.subject == "api@9100.service")] | length >= 1' \
        >/dev/null || bfail "no instance_placed event for api@9100.service"
pass "replica api@9100.service placed, started by systemd and in the table"

# 4. Drain and undrain of this node, and a drain that runs out.
"$AGENTCTL" drain h1 >"$T/out" 2>&1 || bfail "drain h1 failed: $(cat "$T/out")"
jwait 10 '[.services[].backends[] | select(.node == "h1") | .state] | all(. == "draining")' table ||
        bfail "h1's backends not draining: $("$AGENTCTL" --json table)"
"$AGENTCTL" pick web >"$T/out" 2>&1 && bfail "pick succeeded while the only backend drains"
grep -q "draining" "$T/out" || bfail "the pick error does not say why: $(cat "$T/out")"
"$AGENTCTL" undrain h1 >/dev/null || bfail "undrain failed"
jwait 10 '[.services[].backends[] | select(.node == "h1") | .state] | all(. == "up")' table || bfail "not up after undrain"
"$AGENTCTL" drain h1 --ttl 2s >/dev/null || bfail "drain --ttl failed"
jwait 10 '[.services[] | select(.name == "web") | .backends[0].state == "draining"] | all' table || bfail "ttl drain not applied"
jwait 15 '[.services[] | select(.name == "web") | .backends[0].state == "up"] | all' table || bfail "ttl drain never ran out"
"$AGENTCTL" drain nobody >"$T/out" 2>&1 && bfail "drain of an unknown node succeeded"
grep -q 'no member called "nobody"' "$T/out" || bfail "unclear drain error: $(cat "$T/out")"
pass "drain, undrain and a drain with a TTL"

# 5. A failing check takes web down in the table (restarts are held off by a 30 s backoff).
echo error > "$T/web.ctl"
jwait 20 '.services[] | select(.name == "web") | .backends[0].state == "down"' table ||
        bfail "web not down after its check failed: $("$AGENTCTL" --json table)"
"$AGENTCTL" pick web >/dev/null 2>&1 && bfail "pick returned a down backend"
echo ok > "$T/web.ctl"
jwait 20 '.services[] | select(.name == "web") | .backends[0].state == "up"' table || bfail "web not up again"
pass "a failing check takes the backend down and back up"

# 6. kill -9, restart: the persisted table answers at once, before any election.
v=$("$AGENTCTL" --json table | "$JQ" -r '"\(.term).\(.version)"')
heal_kill_agentd KILL
heal_start_agentd "$T/agentd.conf"
out=$("$AGENTCTL" --json pick web) || bfail "pick right after the restart failed"
echo "$out" | "$JQ" -e '.port == 8080' >/dev/null || bfail "pick after restart: $out"
[ "$(echo "$out" | "$JQ" -r '"\(.term).\(.version)"')" = "$v" ] || bfail "after restart pick served $out, expected table $v"
grep -q "serving table .* from the last run" "$T/agentd-h1.log" || bfail "no 'serving table from the last run' line"
jwait 30 '.leader == "h1" and .table.current == true' status || bfail "no current table after the restart"
[ "$(heal_active_state api@9100.service)" = active ] || bfail "api@9100.service did not survive the agent restart"
jwait 10 '[.services[] | select(.name == "api") | .backends[] | select(.state == "up")] | length == 1' table ||
        bfail "api replica count changed after the restart: $("$AGENTCTL" --json table)"
pass "after kill -9 the persisted table answers pick at once; the placed replica is kept"

heal_kill_agentd TERM
