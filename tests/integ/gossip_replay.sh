#!/bin/sh
# Replay protection: gossip packets captured on the wire and sent again
# verbatim are dropped (every one of them) and counted, and the cluster
# carries on unharmed.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integ/netns.sh"

integ_need_jq
UDPTOOL=${top_builddir:-.}/tests/integ/udptool
[ -x "$UDPTOOL" ] || fail "udptool not built at $UDPTOOL"
netns_init
head -c 32 /dev/urandom | base64 > "$T/cluster.key"
chmod 600 "$T/cluster.key"
hosts="h1 h2 h3"
NETNS_KEYRING=$T/cluster.key netns_cluster_start h1 $hosts
netns_wait_alive 90 3 $hosts || fail "the three agents did not converge"

replays() {
        netns_ctl h2 --json status |
                "$JQ" '(.gossip.rejected_by_reason.replay_duplicate // 0) + (.gossip.rejected_by_reason.replay_too_old // 0)'
}
before=$(replays)
netns_exec h2 "$UDPTOOL" capture "$NETNS_PORT" 20 "$T/capture" 60 2>/dev/null ||
        fail "could not capture 20 gossip packets arriving at h2"
sent=$(netns_exec h3 "$UDPTOOL" replay "$T/capture" "$(netns_addr h2):$NETNS_PORT") || fail "replay failed"
[ "$sent" = 20 ] || fail "replayed $sent packets, expected 20"
netns_wait_jq 10 h2 "(.gossip.rejected_by_reason.replay_duplicate // 0) +
                (.gossip.rejected_by_reason.replay_too_old // 0) >= $before + 20" status ||
        fail "h2 counted $(( $(replays) - before )) replays, expected 20"
[ $(( $(replays) - before )) = 20 ] || fail "h2 counted $(( $(replays) - before )) replays, expected exactly 20"
pass "20 replayed packets were dropped and counted"

netns_wait_jq 20 h2 '[.events[].detail | select(test("replay"))] | length >= 1' events --kind packet_rejected ||
        fail "no packet_rejected event naming the replays on h2"
netns_wait_alive 30 3 $hosts || fail "the cluster did not stay whole after the replay"
pass "the replays are reported and the cluster carries on"
exit 0
