#!/bin/sh
# A network partition 2|3 made with nftables: each side declares the other
# dead; once healed, the halves merge back on their own (dead members are
# re-probed) with no operator action.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integ/netns.sh"

integ_need_jq
command -v nft >/dev/null 2>&1 || skip "nft (nftables) is not installed"
netns_init
left="h1 h2"
right="h3 h4 h5"
hosts="$left $right"
netns_cluster_start h1 $hosts
netns_wait_alive 90 5 $hosts || fail "the five agents did not converge"

netns_partition "$left" "$right"
for a in $left; do
        for b in $right; do
                netns_wait_state 90 "$a" "$b" dead || fail "$a does not see $b dead across the partition"
                netns_wait_state 90 "$b" "$a" dead || fail "$b does not see $a dead across the partition"
        done
done
netns_wait_alive 30 2 $left || fail "the left side lost its own members"
netns_wait_alive 30 3 $right || fail "the right side lost its own members"
pass "each side of a 2|3 partition declares the other dead"

for h in $hosts; do
        netns_heal "$h"
done
netns_expect_alive 120 5 "the halves did not merge back after the partition healed" $hosts
pass "after healing, both halves merge back without an operator"
exit 0
