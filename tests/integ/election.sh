#!/bin/sh
# Leader election between real agents (election messages over the sealed
# gossip UDP path): five hosts elect exactly one leader and agree on it and
# its term; kill -9 of the leader elects another one in a higher term that
# every survivor agrees on; a 2|3 partition leaves the 2-side without a
# leader and with quorum lost (quorum_lost event), while the 3-side has one;
# once healed, the whole cluster agrees on one leader again.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integ/netns.sh"

integ_need_jq
netns_init

# agree TIMEOUT_S HOSTS...: netns_agree (every host names the same leader,
# one of HOSTS, in the same term, and exactly one of them leads); sets
# $agreed to "NAME TERM".
agree() {
        netns_agree "$@" || return 1
        agreed=$NETNS_AGREED
}

hosts="h1 h2 h3 h4 h5"
netns_cluster_start h1 $hosts
netns_expect_alive 90 5 "the five agents did not converge" $hosts

# 1. One leader, agreed by all, and status says the same.
agree 90 $hosts || fail "the five agents do not agree on one leader"
leader1=${agreed% *}
term1=${agreed#* }
[ "$term1" -ge 1 ] || fail "leader $leader1 in term $term1"
netns_wait_jq 30 "$leader1" '.active == true and .voter == true and .quorum.need == 3 and .quorum.have == 5' leader ||
        fail "the leader $leader1 is not active with quorum 5 of 3: $(netns_ctl "$leader1" --json leader)"
netns_wait_jq 30 h1 ".leader == \"$leader1\" and .term == $term1 and .quorum.have == 5 and .quorum.need == 3" status ||
        fail "status on h1 says '$(netns_ctl h1 --json status | "$JQ" -c '[.leader, .term, .quorum]')', want $leader1 $term1 5 of 3"
out=$(netns_ctl h1 leader) || fail "agentctl leader failed"
case $out in *"leader"*"$leader1"*"term"*"$term1"*) ;; *) fail "agentctl leader table: $out" ;; esac
n=$(netns_ctl "$leader1" --json events --kind leader_elected --limit 10000 |
        "$JQ" --argjson t "$term1" '[.events[] | select(.term == $t)] | length')
[ "$n" -ge 1 ] || fail "$leader1 recorded no leader_elected event with term $term1"
pass "five agents elect one leader ($leader1, term $term1) and all agree"

# 2. kill -9 the leader: a new one in a higher term, agreed by the survivors.
netns_kill9 "$leader1"
survivors=$(echo $hosts | tr ' ' '\n' | grep -vx "$leader1" | tr '\n' ' ')
agree 120 $survivors || fail "the survivors do not agree on a new leader"
leader2=${agreed% *}
term2=${agreed#* }
[ "$leader2" != "$leader1" ] || fail "the killed $leader1 is still the leader"
[ "$term2" -gt "$term1" ] || fail "new leader $leader2 in term $term2, not above $term1"
pass "after kill -9 of $leader1, $leader2 leads in term $term2 and every survivor agrees"

# Bring the killed host back so that the partition splits five live hosts.
netns_write_config "$leader1" "" >/dev/null
netns_start_agentd "$leader1"
netns_expect_alive 90 5 "the restarted $leader1 did not rejoin" $hosts
agree 120 $hosts || fail "the five agents do not agree on a leader after the restart"

# 3. Partition 2|3, with the current leader on the 2-side so that the
# 3-side must elect a new one and the old one must step down.
cur=${agreed% *}
other=$(echo $hosts | tr ' ' '\n' | grep -vx "$cur" | head -n 1)
small="$cur $other"
big=$(echo $hosts | tr ' ' '\n' | grep -vx "$cur" | grep -vx "$other" | tr '\n' ' ')
netns_partition "$small" "$big"
for h in $small; do
        netns_wait_jq 120 "$h" '.leader == null and .active == false and .quorum.have < .quorum.need' leader ||
                fail "$h on the 2-side still reports a leader or quorum: $(netns_ctl "$h" --json leader)"
done
agree 120 $big || fail "the 3-side does not agree on a leader"
leader3=${agreed% *}
case " $big " in *" $leader3 "*) ;; *) fail "the 3-side leader $leader3 is not on the 3-side" ;; esac
n=$(netns_ctl "$cur" --json events --kind quorum_lost --limit 10000 | "$JQ" '.events | length')
[ "$n" -ge 1 ] || fail "the old leader $cur recorded no quorum_lost event"
n=$(netns_ctl "$cur" --json events --kind leader_lost --limit 10000 | "$JQ" '.events | length')
[ "$n" -ge 1 ] || fail "the old leader $cur recorded no leader_lost event"
pass "partition 2|3: the 2-side ($small) has no leader and no quorum, the 3-side elects $leader3"

# 4. Heal: one leader everywhere again.
for h in $hosts; do
        netns_heal "$h"
done
netns_expect_alive 120 5 "the halves did not merge back after the partition healed" $hosts
agree 120 $hosts || fail "after healing, the five agents do not agree on one leader"
pass "after healing, all five agents agree on ${agreed% *} (term ${agreed#* })"
exit 0
