#!/bin/sh
# Who may do what over the control socket, seen through agentctl: the
# socket's group may read (status, events), only root and the admin group may
# reload, everybody else cannot even connect. A refused reload is recorded as
# a ctl_denied event. Runs as root (it switches users with setpriv).

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/integ/lib.sh"

integ_need_root "switching to the nobody user"
command -v setpriv >/dev/null 2>&1 || skip "setpriv is not installed (util-linux)"
getent passwd nobody >/dev/null || skip "there is no user 'nobody'"
# The socket's group and the admin group: two existing groups nobody is not in
# by default, so the test creates no accounts.
sock_group=nogroup
admin_group=adm
getent group "$sock_group" >/dev/null || skip "there is no group '$sock_group'"
getent group "$admin_group" >/dev/null || skip "there is no group '$admin_group'"
id -nG nobody | tr ' ' '\n' | grep -qx "$admin_group" && skip "nobody is in '$admin_group' on this machine"
integ_need_jq
integ_tmpdir

# A gid that is neither group, for a caller the socket must keep out.
other_gid=$(getent group daemon | cut -d: -f3)
[ -n "$other_gid" ] || skip "there is no group 'daemon'"

# nobody may not be able to reach the build tree; a private copy it can run.
cp "$AGENTCTL" "$T/agentctl"
chmod 755 "$T/agentctl"

conf=$(integ_write_config n1 "")
sed -i "s|^control = {\(.*\) };|control = {\1 group = \"$sock_group\"; admin_group = \"$admin_group\"; };|" "$conf"
grep -q "admin_group = \"$admin_group\"" "$conf" || fail "could not add the groups to $conf"
integ_start_agentd "$conf"
sock=$AGENTCTL_SOCKET

# as WHO ARGS...: runs agentctl with the credentials WHO names; $out, $err, $rc.
as() {
        who=$1
        shift
        case $who in
        root) set -- "$T/agentctl" --socket "$sock" "$@" ;;
        reader) set -- setpriv --reuid=nobody --regid="$sock_group" --clear-groups \
                        "$T/agentctl" --socket "$sock" "$@" ;;
        admin) set -- setpriv --reuid=nobody --regid="$admin_group" --groups="$(getent group "$sock_group" | cut -d: -f3)" \
                        "$T/agentctl" --socket "$sock" "$@" ;;
        outsider) set -- setpriv --reuid=nobody --regid="$other_gid" --clear-groups \
                        "$T/agentctl" --socket "$sock" "$@" ;;
        esac
        out=$("$@" 2>"$T/stderr")
        rc=$?
        err=$(cat "$T/stderr")
}

mode=$(stat -c '%a %G' "$sock")
[ "$mode" = "660 $sock_group" ] || fail "socket is '$mode', expected '660 $sock_group'"
pass "socket mode and group"

as reader status
[ "$rc" = 0 ] || fail "status as a member of the socket's group exited $rc: $err"
printf '%s\n' "$out" | grep -q '^node: *n1$' || fail "status as reader: $out"
as reader events
[ "$rc" = 0 ] || fail "events as reader exited $rc: $err"
pass "read-only verbs for the socket's group"

as reader reload
[ "$rc" = 1 ] || fail "reload as a non-admin exited $rc, expected 1: $err"
[ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || fail "expected one line on stderr: $err"
printf '%s\n' "$err" | grep -q '^agentctl: reload: .* (permission_denied)$' ||
        fail "reload as non-admin: unexpected message: $err"
[ -z "$out" ] || fail "refused reload printed on stdout: $out"
pass "reload refused for a non-admin"

out=$("$AGENTCTL" --json events --kind ctl_denied) || fail "events --kind ctl_denied failed"
printf '%s\n' "$out" | "$JQ" -e '.events | length == 1' >/dev/null || fail "no ctl_denied event: $out"
pass "ctl_denied recorded"

as root reload
[ "$rc" = 0 ] || fail "reload as root exited $rc: $err"
as admin reload
[ "$rc" = 0 ] || fail "reload as a member of admin_group exited $rc: $err"
out=$("$AGENTCTL" --json events --kind config_reloaded) || fail "events --kind config_reloaded failed"
printf '%s\n' "$out" | "$JQ" -e '.events | length == 2' >/dev/null || fail "expected 2 config_reloaded events: $out"
pass "reload for root and admin_group"

as outsider status
[ "$rc" = 1 ] || fail "status by a caller outside the socket's group exited $rc, expected 1"
[ "$err" = "agentctl: permission denied connecting to $sock" ] ||
        fail "outsider: unexpected message: $err"
pass "outsiders cannot connect"

exit 0
