#!/bin/sh
# Two-host sites and the witness (issue 5): real hosts, each with its own
# network namespace, systemd user manager and agentd; service "db" with
# replicas = 1 from the template db@.service on both member hosts.
#
#  1. Two hosts, no witness, partitioned: neither side has a quorum (1 of 2),
#     so neither leads, both say why (leader null, quorum have < need), and
#     neither fails over: no instance_placed or failover event, no db
#     instance started on the host that did not run it, no table change.
#  2. Two hosts and a witness (node.role = "witness", no services): the
#     member running the replica is cut off from the other two; the side
#     with the witness keeps (or elects) a leader and fails the replica over
#     to the remaining member (its unit active there, every table on that
#     side shows it). Healed, the returning host does not keep its old
#     instance: exactly one db replica runs.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integ/netns.sh"
. "$top_srcdir/tests/integ/sdhost.sh"

integ_need_jq
sdhost_need
: "${top_builddir:?top_builddir must point to the build directory (make check sets it)}"
TESTSVC=$top_builddir/tests/integ/testsvc
[ -x "$TESTSVC" ] || fail "$TESTSVC is not built (make tests/integ/testsvc)"
netns_init
W=${WITNESS_WAIT_S:-60}
# Debug logs: what a failure needs explained (tail of each is printed).
NETNS_LOGLEVEL=${NETNS_LOGLEVEL:-debug}
t_start=$(date +%s)

DB_UP='[.services[] | select(.name == "db") | .backends[] | select(.state == "up")]'

CHECK='check = { type = "http"; path = "/health"; interval = "200ms"; timeout = "150ms"; rise = 1; fall = 2; };'

# db_config HOST [aux]: the member config of HOST (db from its template;
# with "aux", a static instance of another service too, which makes HOST
# the more loaded one, so that the db replica goes to the other member).
db_config() {
        local aux=""
        [ "${2:-}" = aux ] &&
                aux=", { name = \"aux\"; unit = \"aux@8090.service\"; address = \"$(netns_addr "$1")\"; port = 8090; $CHECK }"
        echo "systemd = { bus = \"user\"; };
services = ( { name = \"db\"; unit = \"db@.service\"; address = \"$(netns_addr "$1")\"; port = 9100;
    replicas = 1; replica_ports = [ 9100, 9109 ]; $CHECK }$aux );"
}

# member_up HOST SEED [aux]: an sd host with the db template and an agent
# joining SEED.
member_up() {
        netns_host_add_sd "$1"
        netns_testsvc_template "$1" db@.service
        if [ "${3:-}" = aux ]; then
                netns_testsvc_template "$1" aux@.service
                sdhost_systemctl "$1" start aux@8090.service || fail "cannot start aux@8090.service on $1"
        fi
        netns_write_config "$1" "$2" "$(db_config "$1" "${3:-}")" >/dev/null
}

# wfail MESSAGE: fail, after printing the placed instances of the hosts
# whose agents run.
wfail() {
        netns_dump_placed $(for h in w1 w2 m1 m2; do [ -n "$(netns_pid "$h" 2>/dev/null)" ] && echo "$h"; done)
        fail "$@"
}

# active_db HOST: the db units active in HOST's user manager, space separated.
active_db() {
        sdhost_systemctl "$1" list-units --plain --no-legend --state=active 'db@*.service' 2>/dev/null |
                awk '{ printf "%s ", $1 }'
}

# db_node: "NODE UNIT" of the one db backend up in $NETNS_TABLE.
db_node() {
        echo "$NETNS_TABLE" | "$JQ" -r "$DB_UP[0] | \"\\(.node) \\(.instance)\""
}

# --- 1. two hosts, no witness ---------------------------------------------------
# w1 all but surely leads (a much shorter election timeout) and, running
# aux, is the more loaded: db goes to w2, so the leader is on the side that
# would fail db over if it wrongly could. Any other outcome is tested too.
member_up w1 w1 aux
member_up w2 w1
netns_conf_election w1 1s 1200ms
netns_conf_election w2 3s 4s
netns_start_agentds w1 w2
netns_expect_alive "$W" 2 "w1 and w2 did not converge" w1 w2
netns_agree "$W" w1 w2 || wfail "w1 and w2 do not agree on a leader"
netns_wait_tables "$W" ".current == true and ($DB_UP | length) == 1" w1 w2 ||
        wfail "w1 and w2 do not agree on a table with one db replica up"
set -- $(db_node)
owner=$1 unit=$2
[ "$(netns_unit_state "$owner" "$unit")" = active ] || wfail "$unit is not active on $owner"
spare=w1
[ "$owner" = w1 ] && spare=w2
pass "1. two hosts: ${NETNS_AGREED% *} leads; db runs as $unit on $owner"

t_part=$(netns_now_us)
netns_partition w1 w2
for h in w1 w2; do
        netns_wait_jq "$W" "$h" '.leader == null and .active == false and .quorum.have == 1 and .quorum.need == 2' leader ||
                wfail "$h does not say it lost the quorum (1 of 2): $(netns_ctl "$h" --json leader)"
        netns_wait_jq "$W" "$h" '.leader == null and .quorum.have < .quorum.need' status ||
                wfail "status on $h does not show quorum lost: $(netns_ctl "$h" --json status | "$JQ" -c '[.leader, .quorum]')"
done
table0="$(netns_table w1 | "$JQ" -r '"\(.term).\(.version)"') $(netns_table w2 | "$JQ" -r '"\(.term).\(.version)"')"
# Both must have declared the other dead before "no failover" means anything.
netns_wait_state "$W" w1 w2 dead || wfail "w1 never declared w2 dead"
netns_wait_state "$W" w2 w1 dead || wfail "w2 never declared w1 dead"
sleep 3
for h in w1 w2; do
        for k in instance_placed failover; do
                ev=$(netns_events "$h" "$k" "$t_part")
                [ "$(echo "$ev" | "$JQ" length)" = 0 ] || wfail "$h recorded $k while partitioned without a witness: $ev"
        done
done
table1="$(netns_table w1 | "$JQ" -r '"\(.term).\(.version)"') $(netns_table w2 | "$JQ" -r '"\(.term).\(.version)"')"
[ "$table0" = "$table1" ] || wfail "a table changed while partitioned without a witness: $table0 -> $table1"
[ -z "$(active_db "$spare")" ] || wfail "$spare started a db instance while partitioned: $(active_db "$spare")"
[ "$(active_db "$owner")" = "$unit " ] || wfail "db on $owner is '$(active_db "$owner")', want $unit"
why=$(netns_ctl "$spare" status 2>&1)
echo "$why" | grep -q "quorum.*1 of 2.*(lost)" || wfail "agentctl status on $spare does not say why: $why"
pass "1. partitioned without a witness: no leader (quorum 1 of 2) on either side, no failover, tables unchanged"

# Done with the pair: stop it, so the second cluster has the machine.
netns_term w1
netns_term w2
sdhost_stop w1
sdhost_stop w2

# --- 2. two hosts and a witness --------------------------------------------------
# m1 all but surely leads and, m2 running aux, gets the db replica: cutting
# m1 off then makes the other side elect a leader and fail db over, and at
# the heal the returning m1's older instance is the surplus one.
member_up m1 m1
member_up m2 m1 aux
netns_host_add wt
netns_write_config wt m1 >/dev/null
netns_conf_group wt node 'role = "witness";'
netns_conf_election m1 1s 1200ms
netns_conf_election m2 3s 4s
netns_conf_election wt 3s 4s
netns_start_agentds m1 m2 wt
all="m1 m2 wt"
netns_expect_alive "$W" 3 "m1, m2 and the witness did not converge" $all
netns_wait_jq "$W" wt '.role == "witness" and .voter == true' status ||
        wfail "wt does not run as a witness: $(netns_ctl wt --json status | "$JQ" -c '[.role, .voter]')"
netns_agree "$W" $all || wfail "m1, m2 and wt do not agree on a leader"
netns_wait_tables "$W" ".current == true and ($DB_UP | length) == 1 and $DB_UP[0].node != \"wt\"" $all ||
        wfail "m1, m2 and wt do not agree on a table with one db replica up on a member"
set -- $(db_node)
owner=$1 unit=$2
[ "$(netns_unit_state "$owner" "$unit")" = active ] || wfail "$unit is not active on $owner"
spare=m1
[ "$owner" = m1 ] && spare=m2
pass "2. with a witness: ${NETNS_AGREED% *} leads; db runs as $unit on $owner"

t_part=$(netns_now_us)
netns_partition "$owner" "$spare wt"
netns_wait_jq "$W" "$owner" '.leader == null and .quorum.have < .quorum.need' status ||
        wfail "the cut-off $owner does not say quorum lost: $(netns_ctl "$owner" --json status | "$JQ" -c '[.leader, .quorum]')"
netns_agree "$W" "$spare" wt || wfail "$spare and the witness do not agree on a leader"
leader=${NETNS_AGREED% *}
netns_wait_tables "$W" ".current == true and .leader == \"$leader\" and ($DB_UP | length) == 1 and
        $DB_UP[0].node == \"$spare\" and
        ([.services[].backends[] | select(.node == \"$owner\") | .state] | all(. == \"down\"))" "$spare" wt ||
        wfail "the witness side does not show db failed over to $spare"
set -- $(db_node)
newunit=$2
netns_wait_unit "$W" "$spare" "$newunit" active ||
        wfail "$newunit is '$(netns_unit_state "$spare" "$newunit")' on $spare, not active"
ev=$(netns_events "$leader" failover "$t_part" | "$JQ" -c --arg o "$owner" '[.[] | select(.subject == $o)]')
[ "$(echo "$ev" | "$JQ" length)" -ge 1 ] || wfail "the leader $leader has no failover event naming $owner: $(netns_events "$leader" failover)"
for k in instance_placed failover; do
        ev=$(netns_events "$owner" "$k" "$t_part")
        [ "$(echo "$ev" | "$JQ" length)" = 0 ] || wfail "the cut-off $owner recorded $k: $ev"
done
pass "2. $owner cut off: $leader leads with the witness, db failed over to $newunit on $spare"

for h in $all; do
        netns_heal "$h"
done
netns_expect_alive "$W" 3 "the cluster did not merge back after healing" $all
netns_agree "$W" $all || wfail "after healing, m1, m2 and wt do not agree on a leader"
netns_wait_tables "$W" ".current == true and ($DB_UP | length) == 1 and $DB_UP[0].node == \"$spare\"" $all ||
        wfail "after healing, the tables do not show exactly one db replica, on $spare"
netns_wait_unit "$W" "$owner" "$unit" inactive ||
        wfail "the surplus $unit on $owner was not stopped: '$(netns_unit_state "$owner" "$unit")'"
pass "2. healed: one db replica ($newunit on $spare); the surplus on $owner stopped"

echo "# witness.sh took $(( $(date +%s) - t_start )) s"
exit 0
