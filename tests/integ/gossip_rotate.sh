#!/bin/sh
# Key rotation under traffic, the documented way: add the new key everywhere
# (reload), make it primary everywhere (reload), remove the old one (reload).
# No member is ever suspected or declared dead and no packet fails to
# authenticate along the way; afterwards the old key alone is locked out.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integ/netns.sh"

integ_need_jq
netns_init
head -c 32 /dev/urandom | base64 > "$T/old.key"
head -c 32 /dev/urandom | base64 > "$T/new.key"
hosts="h1 h2 h3 h4"
# The property under test is that rotation never causes suspicion, so the
# timings are relaxed enough that a loaded test machine does not either.
timings='gossip = { probe_interval = "1s"; probe_timeout = "800ms"; };'
for h in $hosts; do
        netns_host_add "$h"
        cp "$T/old.key" "$T/$h.keyring"
        chmod 600 "$T/$h.keyring"
        NETNS_KEYRING=$T/$h.keyring netns_write_config "$h" "h1" "$timings" >/dev/null
done
netns_start_agentds $hosts
netns_wait_alive 90 4 $hosts || fail "the four agents did not converge"

# step NAME FILES...: installs keyring FILES... on every host, reloads each,
# then lets gossip run for a few probe rounds.
step() {
        label=$1
        shift
        for h in $hosts; do
                cat "$@" > "$T/$h.keyring.new"
                chmod 600 "$T/$h.keyring.new"
                mv "$T/$h.keyring.new" "$T/$h.keyring"
                netns_ctl "$h" reload >/dev/null || fail "$label: reload failed on $h"
                sleep 1
        done
        for h in $hosts; do
                keys=$(netns_ctl "$h" --json status | "$JQ" .gossip.keys)
                [ "$keys" = "$#" ] || fail "$label: $h holds $keys keys, expected $#"
        done
        sleep 3
        netns_wait_alive 30 4 $hosts || fail "$label: the cluster is no longer whole"
}
step "add the new key" "$T/old.key" "$T/new.key"
step "make it primary" "$T/new.key" "$T/old.key"
step "remove the old key" "$T/new.key"

for h in $hosts; do
        n=$(netns_ctl "$h" --json events --limit 10000 |
                "$JQ" '[.events[] | select(.kind == "member_suspect" or .kind == "member_dead")] | length')
        [ "$n" = 0 ] || fail "$h suspected or declared members dead during the rotation:
$(netns_ctl "$h" events --kind member_suspect)"
        bad=$(netns_ctl "$h" --json status | "$JQ" '(.gossip.rejected_by_reason.auth_failed // 0) + (.gossip.rejected_by_reason.unknown_key // 0)')
        [ "$bad" = 0 ] || fail "$h rejected $bad packets during the rotation"
done
pass "rotation (add, promote, remove) under traffic: no suspicion, no rejected packet"

# A host still on the old key alone is now kept out.
netns_host_add h5
cp "$T/old.key" "$T/h5.keyring"
chmod 600 "$T/h5.keyring"
NETNS_KEYRING=$T/h5.keyring netns_write_config h5 "h1" "$timings" >/dev/null
netns_start_agentd h5
netns_wait_jq 60 h1 '(.gossip.rejected_by_reason.unknown_key // 0) > 0' status ||
        fail "h1 did not reject packets sealed with the retired key"
[ -z "$(netns_members_state h1 h5)" ] || fail "h1 let in a host with the retired key"
pass "the retired key is locked out"
exit 0
