#!/bin/sh
# Five hosts, each a network namespace with its own agentd, join through the
# first one and converge: every agent lists all five members alive, with the
# contract fields, in text and JSON, and counts them in `agentctl status`.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integ/netns.sh"

integ_need_jq
netns_init
hosts="h1 h2 h3 h4 h5"
for h in $hosts; do
        netns_host_add "$h"
done
netns_write_config h1 "" >/dev/null
for h in h2 h3 h4 h5; do
        netns_write_config "$h" "h1" >/dev/null
done
netns_start_agentds $hosts

netns_expect_alive 90 5 "the five agents did not converge on five alive members" $hosts
pass "5 hosts join through one seed and converge"

# The contract: name, addr, state, incarnation; addresses as each host bound them.
out=$(netns_ctl h3 --json members) || fail "agentctl --json members failed on h3"
printf '%s\n' "$out" | "$JQ" -e '.members | length == 5 and
        all(.[]; (.name | type == "string") and (.addr | type == "string") and
                 (.state | type == "string") and (.incarnation | type == "number"))' >/dev/null ||
        fail "members JSON lacks the contract fields: $out"
for h in $hosts; do
        want="$(netns_addr "$h"):$NETNS_PORT"
        got=$(printf '%s\n' "$out" | "$JQ" -r --arg n "$h" '.members[] | select(.name == $n) | .addr')
        [ "$got" = "$want" ] || fail "h3 lists $h at '$got', expected $want"
done
[ "$(printf '%s\n' "$out" | "$JQ" -r '.members[] | select(.self) | .name')" = h3 ] ||
        fail "h3 does not mark itself as self: $out"
pass "members JSON has name, addr, state, incarnation and the right addresses"

st=$(netns_ctl h2 --json status) || fail "agentctl status failed on h2"
printf '%s\n' "$st" | "$JQ" -e '.members.alive == 5 and .members.suspect == 0 and .members.dead == 0 and
        .gossip.joined == true and .gossip.encrypted == false and .plaintext == true' >/dev/null ||
        fail "status does not count five alive members: $st"
netns_ctl h2 status | grep -q '^members: *5 alive$' || fail "agentctl status does not show the member count: $(netns_ctl h2 status)"
pass "status counts the members"

text=$(netns_ctl h1 members) || fail "agentctl members failed"
printf '%s\n' "$text" | grep -q '^NAME  *ADDR  *STATE  *INCARNATION  *SINCE  *RTT' || fail "no table header: $text"
printf '%s\n' "$text" | grep -q '^h1 (self) ' || fail "text output does not mark self: $text"
printf '%s\n' "$text" | grep -q '5 members: 5 alive' || fail "no summary line: $text"
pass "agentctl members prints a table and a summary"

# Every agent recorded the other four joining.
for h in $hosts; do
        n=$(netns_ctl "$h" --json events --kind member_joined --limit 10000 |
                "$JQ" '[.events[].subject] | unique | length')
        [ "$n" = 4 ] || fail "$h recorded member_joined for $n distinct members, expected 4"
done
pass "member_joined recorded for every other member"
exit 0
