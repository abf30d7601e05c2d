#!/bin/sh
# Authentication: a host with a different key, and one without any, are kept
# out of an encrypted cluster; their packets are dropped and counted per
# reason and reported as packet_rejected. A keyring file readable by others
# is refused at start.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integ/netns.sh"

integ_need_jq
netns_init
newkey() {
        head -c 32 /dev/urandom | base64 > "$1"
        chmod 600 "$1"
}
newkey "$T/good.key"
newkey "$T/bad.key"

for h in h1 h2 h3 h4 h5; do
        netns_host_add "$h"
done
for h in h1 h2 h3; do
        NETNS_KEYRING=$T/good.key netns_write_config "$h" "h1" >/dev/null
done
NETNS_KEYRING=$T/bad.key netns_write_config h4 "h1" >/dev/null
netns_write_config h5 "h1" >/dev/null   # no keyring: plaintext
netns_start_agentds h1 h2 h3 h4 h5
netns_wait_alive 90 3 h1 h2 h3 || fail "the three hosts with the right key did not converge"

# Give the outsiders time to try (they retry their join with backoff) and
# wait until h1 has counted both kinds of rejection.
rejected() {
        netns_ctl h1 --json status | "$JQ" -r --arg r "$1" '.gossip.rejected_by_reason[$r] // 0'
}
netns_wait_jq 60 h1 '(.gossip.rejected_by_reason.unknown_key // 0) > 0 and
                (.gossip.rejected_by_reason.plaintext_refused // 0) > 0' status ||
        fail "h1 did not count the wrong-key and plaintext packets (unknown_key $(rejected unknown_key), plaintext_refused $(rejected plaintext_refused))"
pass "packets with a wrong key or in plaintext are counted per reason"

for h in h1 h2 h3; do
        for o in h4 h5; do
                s=$(netns_members_state "$h" "$o")
                [ -z "$s" ] || fail "$h lists the outsider $o as '$s'"
        done
        [ "$(netns_count_state "$h" alive)" = 3 ] || fail "$h does not see exactly three alive members"
done
for o in h4 h5; do
        [ "$(netns_ctl "$o" --json members | "$JQ" '[.members[] | select(.self | not)] | length')" = 0 ] ||
                fail "the outsider $o learned members of the cluster"
done
pass "hosts with a wrong key or none are kept out"

netns_wait_jq 20 h1 '.events | length >= 1' events --kind packet_rejected || fail "no packet_rejected event on h1"
detail=$(netns_ctl h1 --json events --kind packet_rejected | "$JQ" -r '.events[0].detail')
case "$detail" in
*rejected:*) ;;
*) fail "packet_rejected does not summarise why: $detail" ;;
esac
pass "a packet_rejected event summarises the rejections: $detail"

# A keyring others can read is refused, with the reason.
netns_host_add h6
newkey "$T/loose.key"
chmod 644 "$T/loose.key"
NETNS_KEYRING=$T/loose.key netns_write_config h6 "h1" >/dev/null
if netns_exec h6 "$AGENTD" --config "$T/h6.conf" >"$T/h6.out" 2>&1; then
        fail "agentd started with a keyring of mode 0644"
fi
grep -q "must be mode 0600" "$T/h6.out" || fail "unclear refusal of a 0644 keyring: $(cat "$T/h6.out")"
pass "a keyring readable by others is refused"
exit 0
