#!/bin/sh
# Failure detection between real agents: a host killed with SIGKILL is seen
# dead by all the others; a host stopped with SIGTERM leaves gracefully and is
# seen `left`, never `dead`; force-leave retires a dead member; a restarted
# host rejoins from its remembered member list (cluster.join empty) with a
# higher boot epoch.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integ/netns.sh"

integ_need_jq
netns_init
hosts="h1 h2 h3 h4 h5"
netns_cluster_start h1 $hosts
netns_wait_alive 90 5 $hosts || fail "the five agents did not converge"
epoch_before=$(netns_ctl h5 --json status | "$JQ" .gossip.boot_epoch)

# 1. kill -9: everyone else sees it dead.
netns_kill9 h5
for h in h1 h2 h3 h4; do
        netns_wait_state 60 "$h" h5 dead || fail "$h does not see the killed h5 dead (sees '$(netns_members_state "$h" h5)')"
done
n=$(netns_ctl h1 --json events --kind member_dead | "$JQ" '[.events[] | select(.subject == "h5")] | length')
[ "$n" -ge 1 ] || fail "h1 recorded no member_dead event for h5"
pass "a host killed with SIGKILL is seen dead by every other host"

# 2. SIGTERM: a graceful leave, seen as left.
netns_term h4 || fail "agentd on h4 did not exit 0 after SIGTERM"
for h in h1 h2 h3; do
        netns_wait_state 60 "$h" h4 left || fail "$h does not see h4 left (sees '$(netns_members_state "$h" h4)')"
done
for h in h1 h2 h3; do
        n=$(netns_ctl "$h" --json events --kind member_dead --limit 10000 |
                "$JQ" '[.events[] | select(.subject == "h4")] | length')
        [ "$n" = 0 ] || fail "$h declared the departing h4 dead"
done
pass "a host stopped with SIGTERM is seen left, not dead"

# 3. force-leave: only for a member that is gone; everyone then sees it left.
out=$(netns_ctl h1 force-leave h2 2>&1) && fail "force-leave of an alive member succeeded: $out"
case $out in *"h2 is alive"*"(failed)"*) ;; *) fail "unclear refusal for an alive member: $out" ;; esac
out=$(netns_ctl h1 force-leave nosuch 2>&1) && fail "force-leave of an unknown member succeeded"
case $out in *"no member named"*"(invalid_argument)"*) ;; *) fail "unclear refusal for an unknown member: $out" ;; esac
out=$(netns_ctl h1 force-leave h5) || fail "force-leave of the dead h5 failed"
[ "$out" = "h5 is now marked left (was dead)" ] || fail "unexpected force-leave output: $out"
for h in h1 h2 h3; do
        netns_wait_state 60 "$h" h5 left || fail "$h does not see the forced-out h5 left"
done
n=$(netns_ctl h2 --json events --kind member_left --limit 10000 | "$JQ" '[.events[] | select(.subject == "h5")] | length')
[ "$n" -ge 1 ] || fail "h2 recorded no member_left for h5"
pass "force-leave marks a dead member left everywhere and refuses live or unknown ones"

# 4. A restart with no cluster.join rejoins from the remembered members,
# and overrides the forced leave with a higher incarnation.
netns_write_config h5 "" >/dev/null
netns_start_agentd h5
for h in h1 h2 h3 h5; do
        netns_wait_state 60 "$h" h5 alive || fail "$h does not see the restarted h5 alive"
done
netns_wait_state 60 h5 h1 alive || fail "the restarted h5 does not see h1 alive"
epoch_after=$(netns_ctl h5 --json status | "$JQ" .gossip.boot_epoch)
[ "$epoch_after" -gt "$epoch_before" ] || fail "boot epoch did not increase across a restart ($epoch_before -> $epoch_after)"
pass "a restarted host rejoins from its persisted member list with a new boot epoch"
exit 0
