# Private "test hosts" for the integration tests (sourced after lib.sh, not run).
#
# A test host is a real `systemd --user` manager with its own journald, its own
# D-Bus session bus and its own cgroups, so several of them can run side by
# side on one machine without seeing each other's units, and without booting
# systemd as PID 1 (see /work/shared/notes/test-environment.md). Each host has:
#
#   - cgroups /sys/fs/cgroup/systemd/<cg> and /sys/fs/cgroup/unified/<cg>, where
#     <cg> is "agentd.<id of $T>.<NAME>", unique on the machine;
#   - a private mount namespace with a tmpfs on /run (so /run/systemd/system,
#     /run/user/0 and /run/systemd/journal are its own) and on /var/log/journal
#     (so its journald never writes the machine's persistent journal);
#   - optionally the network namespace /run/netns/<NETNS> (created by the
#     caller with `ip netns add`; this library never creates or deletes one);
#   - HOME=$T/sdhost/<NAME>/home, XDG_RUNTIME_DIR=/run/user/0 inside it.
#
# Everything a host runs (manager, journald, dbus-daemon, units, and whatever
# sdhost_exec/sdhost_spawn started) lives in the host's cgroups, which is how
# teardown finds it all: it is killed through cgroup.kill, and the cgroup
# directories are removed. The mounts need no cleanup: they exist only in the
# host's mount namespace, which vanishes with its last process.
#
# Teardown is automatic: the first sdhost_start chains sdhost_cleanup_all in
# front of lib.sh's integ_cleanup on EXIT (so `fail`, `exit`, INT and TERM all
# clean up), and starts a small guardian process that cleans up if the test
# script itself is killed with SIGKILL.
#
# State lives in files under $T/sdhost/<NAME>/ (pid, journald.pid, cg, netns,
# manager.log, journald.log), so the functions also work from subshells.
#
# Public functions (NAME: [A-Za-z0-9_], at most 32 characters). Call
# sdhost_start and sdhost_spawn directly, not inside $(...): they set variables
# and start background processes that belong to the test script.
#
#   sdhost_need                 exit 77 (skip) with a reason unless we are root
#                               and systemd, journald, nsenter, unshare and the
#                               hybrid cgroup hierarchies are available.
#   sdhost_start NAME [NETNS]   start host NAME (inside netns NETNS if given);
#                               returns once the manager answers on its private
#                               socket and on the session bus (fails the test
#                               after 60 s). Sets SDHOST_PID_<NAME> (manager pid).
#   sdhost_pid NAME             print the manager pid.
#   sdhost_home NAME            print the host's HOME (a directory under $T,
#                               readable and writable from outside too).
#   sdhost_cgroup NAME          print the host's cgroup name (<cg> above).
#   sdhost_exec NAME CMD...     run CMD inside the host (its cgroups, mount and,
#                               if any, network namespace) with XDG_RUNTIME_DIR,
#                               HOME and DBUS_SESSION_BUS_ADDRESS set; returns
#                               CMD's exit status. stdin/stdout/stderr are the
#                               caller's.
#   sdhost_spawn NAME LOG CMD...
#                               like sdhost_exec but in the background with
#                               stdout+stderr appended to LOG; sets SDHOST_SPAWN_PID
#                               to the pid of CMD itself (not of a wrapper: the
#                               pid execs its way to CMD within milliseconds), so
#                               `kill -STOP $SDHOST_SPAWN_PID` hits CMD. Killed at
#                               teardown if still running; `wait` works on it.
#   sdhost_systemctl NAME ARGS...
#                               `systemctl --user ARGS` inside the host.
#   sdhost_unit NAME UNIT CONTENT
#                               write CONTENT to $HOME/.config/systemd/user/UNIT
#                               and daemon-reload the manager.
#   sdhost_journal NAME ARGS... `journalctl ARGS` inside the host (its journald).
#   sdhost_stop NAME            stop the host: the manager exits (stopping its
#                               units), then everything left in its cgroups is
#                               killed and the cgroups are removed. Idempotent.
#   sdhost_cleanup_all          sdhost_stop for every host of this test.
#   sdhost_on_exit FUNCTION     run FUNCTION at exit after all hosts are stopped
#                               (e.g. to delete network namespaces); do not set
#                               your own EXIT trap, it would replace this one.
#
# Written for /bin/sh (dash); uses `local`, which dash and bash both have.
#
# The manager logs into the host's journal (SDHOST_LOG_LEVEL, default info;
# set it to debug to see what the manager does); so does every unit. That
# journald keeps its journal in memory (/run/log/journal of the host) and does
# not read the machine's kernel log. Processes started with sdhost_exec or
# sdhost_spawn sit in the host's top cgroup, beside the manager's slices.
#
# Breaking a host's bus: `sdhost_systemctl NAME restart dbus.service`, or kill
# -9 its dbus-daemon (`sdhost_systemctl NAME show -P MainPID dbus.service`)
# while no unit is changing state: systemd 252's user manager can block itself
# for 90 s if a unit changes state between losing the bus and reaping
# dbus-daemon (it reconnects to its own socket and flushes synchronously).
# `sdhost_systemctl NAME daemon-reexec` makes the manager leave and rejoin.
#
# For a multi-host harness: create the network namespaces first, then call
# sdhost_start NAME NETNS per host; the order that works (cgroups, then
# `unshare --mount --propagation private nsenter --net=...`, then the tmpfs
# mounts) is handled here. Run agentd in a host with sdhost_spawn.

SDHOST_ENV="XDG_RUNTIME_DIR=/run/user/0 DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/0/bus"
SDHOST_PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SDHOST_SCRIPT_PID=$$
SDHOST_GUARD_PID=""
SDHOST_TRAP=""
SDHOST_ON_EXIT=""

sdhost_need() {
        [ "$(id -u)" = 0 ] || skip "private systemd test hosts need root"
        for f in /lib/systemd/systemd /lib/systemd/systemd-journald; do
                [ -x "$f" ] || skip "$f is missing (apt-get install systemd)"
        done
        for c in nsenter unshare systemctl journalctl busctl; do
                command -v "$c" >/dev/null 2>&1 || skip "$c is not installed"
        done
        [ -e /usr/lib/systemd/user/dbus.socket ] ||
                skip "no D-Bus user session socket (apt-get install dbus-user-session)"
        [ -w /sys/fs/cgroup/systemd/cgroup.procs ] ||
                skip "no writable name=systemd cgroup hierarchy at /sys/fs/cgroup/systemd"
        [ -w /sys/fs/cgroup/unified/cgroup.procs ] ||
                skip "no writable cgroup2 hierarchy at /sys/fs/cgroup/unified"
        [ -d /var/log/journal ] || [ -d /var/log ] || skip "no /var/log"
        return 0
}

# Host names become shell variable names and cgroup names: keep them plain.
sdhost__check_name() {
        case $1 in
        ''|*[!A-Za-z0-9_]*) fail "sdhost: bad host name '$1' (use [A-Za-z0-9_])" ;;
        esac
        [ ${#1} -le 32 ] || fail "sdhost: host name '$1' is longer than 32 characters"
}

sdhost_pid() {
        cat "$T/sdhost/$1/pid" 2>/dev/null
}

sdhost_home() {
        echo "$T/sdhost/$1/home"
}

sdhost_cgroup() {
        cat "$T/sdhost/$1/cg" 2>/dev/null
}

# True while PID exists and is not a zombie (a zombie still answers kill -0).
sdhost__alive() {
        local st
        [ -r "/proc/$1/stat" ] || return 1
        st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
        [ -n "$st" ] && [ "$st" != Z ]
}

# The cgroup helpers, kept as text: evaluated here, and written into the
# guardian's script (a separate process that cannot share our functions).
SDHOST_CGLIB='
# True when no process is left in cgroup CG (any of its sub-cgroups included).
sdhost__cg_empty() {
        local h
        for h in systemd unified; do
                [ -d "/sys/fs/cgroup/$h/$1" ] || continue
                if [ -n "$(find "/sys/fs/cgroup/$h/$1" -name cgroup.procs -exec cat {} + 2>/dev/null)" ]; then
                        return 1
                fi
        done
        return 0
}

# Kills every process in cgroup CG: cgroup.kill on the cgroup2 side takes the
# whole subtree at once (nothing can fork its way out); the name=systemd side
# is swept by pid for anything that got there without the cgroup2 move.
sdhost__cg_kill() {
        local cg=$1 h p
        for _ in $(seq 100); do
                [ -e "/sys/fs/cgroup/unified/$cg/cgroup.kill" ] &&
                        echo 1 > "/sys/fs/cgroup/unified/$cg/cgroup.kill" 2>/dev/null
                for h in systemd unified; do
                        [ -d "/sys/fs/cgroup/$h/$cg" ] || continue
                        for p in $(find "/sys/fs/cgroup/$h/$cg" -name cgroup.procs -exec cat {} + 2>/dev/null); do
                                kill -KILL "$p" 2>/dev/null
                        done
                done
                sdhost__cg_empty "$cg" && return 0
                sleep 0.1
        done
        return 1
}

# Removes cgroup CG in both hierarchies, deepest directories first.
sdhost__cg_remove() {
        local h
        for h in systemd unified; do
                [ -d "/sys/fs/cgroup/$h/$1" ] || continue
                for _ in $(seq 50); do
                        find "/sys/fs/cgroup/$h/$1" -depth -type d -exec rmdir {} + 2>/dev/null
                        [ -d "/sys/fs/cgroup/$h/$1" ] || break
                        sleep 0.1
                done
        done
}
'
eval "$SDHOST_CGLIB"

sdhost__write_stage2() {
        cat > "$T/sdhost/stage2.sh" <<'STAGE2'
# Stage 2 of a test host, run by sdhost_start inside the host's cgroups and
# fresh mount (and maybe network) namespace. $1: the host's state directory.
set -eu
dir=$1
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/systemd/system /run/systemd/journal /run/user/0
chmod 700 /run/user/0
# Never create /var/log/journal on the machine (that would make the machine's
# own journald persistent): without one, the tmpfs goes over /var/log.
if [ -d /var/log/journal ]; then
        mount -t tmpfs -o mode=2755 tmpfs /var/log/journal
else
        mount -t tmpfs -o mode=755 tmpfs /var/log
        mkdir -m 2755 /var/log/journal
fi
# The host's journal holds the host's messages only: not the machine's
# kernel log (every host would copy it), nothing forwarded anywhere.
mkdir -p /run/systemd/journald.conf.d
cat > /run/systemd/journald.conf.d/sdhost.conf <<'CONF'
[Journal]
Storage=volatile
ReadKMsg=no
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
RateLimitBurst=0
CONF
/lib/systemd/systemd-journald </dev/null >>"$dir/journald.log" 2>&1 &
echo $! > "$dir/journald.pid"
# The manager's and units' output goes to journald: wait for its sockets.
n=0
while [ ! -S /run/systemd/journal/stdout ] || [ ! -S /run/systemd/journal/socket ]; do
        n=$((n + 1))
        if [ $n -gt 300 ]; then
                echo "sdhost: journald did not create its sockets in 30 s" >&2
                exit 1
        fi
        sleep 0.1
done
cd "$dir/home"
exec env -i PATH="$SDHOST_PATH" HOME="$dir/home" USER=root LOGNAME=root SHELL=/bin/sh \
        LANG=C.UTF-8 XDG_RUNTIME_DIR=/run/user/0 \
        SYSTEMD_LOG_TARGET=journal SYSTEMD_LOG_LEVEL="$SDHOST_LOG_LEVEL" \
        DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/0/bus \
        /lib/systemd/systemd --user
STAGE2
}

# Runs in the background for the life of the test script; if the script dies
# without running its EXIT trap (SIGKILL), it kills what is left in the hosts'
# cgroups and removes them (and $T). It runs in a session of its own, so a
# signal to the test's process group (a harness timeout, `kill 0`) does not
# take it down together with the script.
sdhost__start_guardian() {
        [ -n "$SDHOST_GUARD_PID" ] && return 0
        {
                echo "$SDHOST_CGLIB"
                cat <<'GUARD'
trap "" INT TERM HUP
while kill -0 "$1" 2>/dev/null; do
        sleep 1
done
for f in "$2"/sdhost/*/cg; do
        [ -f "$f" ] || continue
        sdhost__cg_kill "$(cat "$f")"
        sdhost__cg_remove "$(cat "$f")"
done
[ -z "$3" ] && rm -rf "$2"
GUARD
        } > "$T/sdhost/guardian.sh"
        setsid sh "$T/sdhost/guardian.sh" "$SDHOST_SCRIPT_PID" "$T" "${INTEG_KEEP:-}" \
                </dev/null >/dev/null 2>&1 &
        SDHOST_GUARD_PID=$!
}

sdhost__exit_trap() {
        local rc=$? h
        trap - EXIT
        if [ -n "$SDHOST_GUARD_PID" ]; then
                kill -KILL "$SDHOST_GUARD_PID" 2>/dev/null
                wait "$SDHOST_GUARD_PID" 2>/dev/null
                SDHOST_GUARD_PID=""
        fi
        sdhost_cleanup_all
        for h in $SDHOST_ON_EXIT; do
                "$h"
        done
        integ_cleanup
        exit $rc
}

# sdhost_on_exit FUNCTION: runs FUNCTION (no arguments) at exit, after every
# host is stopped and before lib.sh's integ_cleanup removes $T; for a harness
# that must undo its own setup (network namespaces, nftables) after the hosts.
# Hooks run in the order added. Installs the EXIT trap if not done yet.
sdhost_on_exit() {
        SDHOST_ON_EXIT="$SDHOST_ON_EXIT $1"
        sdhost__install_trap
}

# Installed once: takes over lib.sh's EXIT trap and chains integ_cleanup.
sdhost__install_trap() {
        if [ -z "${T:-}" ] || [ ! -d "$T" ]; then
                integ_tmpdir
        fi
        [ -n "$SDHOST_TRAP" ] && return 0
        SDHOST_TRAP=1
        trap sdhost__exit_trap EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM
}

sdhost_start() {
        local name=$1 netns=${2:-} dir cg h nsargs pid n state
        sdhost__check_name "$name"
        sdhost__install_trap
        dir=$T/sdhost/$name
        [ -e "$dir/pid" ] && fail "sdhost: host $name is already running"
        if [ -n "$netns" ]; then
                [ -e "/run/netns/$netns" ] || fail "sdhost: no network namespace /run/netns/$netns"
        fi
        mkdir -p "$dir/home/.config/systemd/user"
        [ -e "$T/sdhost/stage2.sh" ] || sdhost__write_stage2
        cg="agentd.${T##*.}.$name"
        echo "$cg" > "$dir/cg"
        echo "$netns" > "$dir/netns"
        for h in systemd unified; do
                if [ -d "/sys/fs/cgroup/$h/$cg" ]; then
                        sdhost__cg_kill "$cg"
                        sdhost__cg_remove "$cg"
                fi
                mkdir "/sys/fs/cgroup/$h/$cg" || fail "sdhost: cannot create cgroup /sys/fs/cgroup/$h/$cg"
        done
        sdhost__start_guardian
        # The pid of this background job stays the pid of the manager: sh,
        # unshare (no --fork), nsenter (no --pid) and env all exec the next.
        nsargs=""
        [ -n "$netns" ] && nsargs="nsenter --net=/run/netns/$netns"
        SDHOST_PATH=$SDHOST_PATH SDHOST_LOG_LEVEL=${SDHOST_LOG_LEVEL:-info} sh -c '
                echo $$ > "/sys/fs/cgroup/systemd/$1/cgroup.procs" || exit 1
                echo $$ > "/sys/fs/cgroup/unified/$1/cgroup.procs" || exit 1
                shift
                exec "$@"
        ' sdhost "$cg" unshare --mount --propagation private $nsargs \
                sh "$T/sdhost/stage2.sh" "$dir" \
                </dev/null >>"$dir/manager.log" 2>&1 &
        pid=$!
        echo "$pid" > "$dir/pid"
        eval "SDHOST_PID_$name=$pid"
        n=0
        while :; do
                if ! sdhost__alive "$pid"; then
                        echo "--- $dir/manager.log" >&2
                        tail -n 20 "$dir/manager.log" >&2
                        fail "sdhost: manager of host $name exited during start"
                fi
                state=$(sdhost_exec "$name" systemctl --user is-system-running 2>/dev/null)
                case $state in
                running|degraded)
                        if sdhost_exec "$name" busctl --user call org.freedesktop.systemd1 \
                                /org/freedesktop/systemd1 org.freedesktop.DBus.Peer Ping \
                                >/dev/null 2>&1; then
                                return 0
                        fi
                        ;;
                esac
                n=$((n + 1))
                [ $n -gt 600 ] && fail "sdhost: host $name not up in 60 s (state '$state', see $dir/manager.log)"
                sleep 0.1
        done
}

# The exec chain that runs a command inside a host: join the host's cgroups,
# enter its namespaces, set the environment. Arguments: cg pid home netns CMD...
SDHOST_INNER='
        cg=$1 pid=$2 home=$3 netns=$4
        shift 4
        echo $$ > "/sys/fs/cgroup/systemd/$cg/cgroup.procs" || exit 125
        echo $$ > "/sys/fs/cgroup/unified/$cg/cgroup.procs" || exit 125
        if [ -n "$netns" ]; then
                exec nsenter -t "$pid" -m -n -- "$@"
        fi
        exec nsenter -t "$pid" -m -- "$@"
'

sdhost_exec() {
        local name=$1 dir
        shift
        dir=$T/sdhost/$name
        [ -e "$dir/pid" ] || { echo "sdhost: host $name is not running" >&2; return 125; }
        sh -c "$SDHOST_INNER" sdhost "$(cat "$dir/cg")" "$(cat "$dir/pid")" "$dir/home" \
                "$(cat "$dir/netns")" env HOME="$dir/home" $SDHOST_ENV "$@"
}

sdhost_spawn() {
        local name=$1 log=$2 dir
        shift 2
        dir=$T/sdhost/$name
        [ -e "$dir/pid" ] || fail "sdhost: host $name is not running"
        # A simple command in the background: the job's pid is sh's, which
        # execs nsenter, which execs env, which execs CMD.
        sh -c "$SDHOST_INNER" sdhost "$(cat "$dir/cg")" "$(cat "$dir/pid")" "$dir/home" \
                "$(cat "$dir/netns")" env HOME="$dir/home" $SDHOST_ENV "$@" \
                </dev/null >>"$log" 2>&1 &
        SDHOST_SPAWN_PID=$!
}

sdhost_systemctl() {
        local name=$1
        shift
        sdhost_exec "$name" systemctl --user "$@"
}

sdhost_journal() {
        local name=$1
        shift
        sdhost_exec "$name" journalctl --no-pager "$@"
}

sdhost_unit() {
        local name=$1 unit=$2 content=$3 dir
        dir=$T/sdhost/$name
        [ -e "$dir/pid" ] || fail "sdhost: host $name is not running"
        printf '%s\n' "$content" > "$dir/home/.config/systemd/user/$unit" ||
                fail "sdhost: cannot write unit $unit"
        sdhost_systemctl "$name" daemon-reload || fail "sdhost: daemon-reload failed on host $name"
}

sdhost_stop() {
        local name=$1 dir cg pid
        dir=$T/sdhost/$name
        [ -e "$dir/cg" ] || return 0
        cg=$(cat "$dir/cg")
        pid=$(cat "$dir/pid" 2>/dev/null)
        if [ -n "$pid" ] && sdhost__alive "$pid"; then
                # A clean exit stops the units the way systemd would; the
                # cgroup sweep below is the backstop if it does not finish.
                sdhost_exec "$name" systemctl --user --no-block exit >/dev/null 2>&1
                for _ in $(seq 100); do
                        sdhost__alive "$pid" || break
                        sleep 0.1
                done
        fi
        sdhost__cg_kill "$cg" || echo "sdhost: processes left in cgroup $cg" >&2
        # Reap it if it is our child (a no-op in the guardian).
        [ -n "$pid" ] && ! sdhost__alive "$pid" && wait "$pid" 2>/dev/null
        sdhost__cg_remove "$cg"
        rm -f "$dir/pid"
        eval "unset SDHOST_PID_$name"
        rm -f "$dir/cg"
        return 0
}

sdhost_cleanup_all() {
        local d
        [ -n "${T:-}" ] && [ -d "$T/sdhost" ] || return 0
        for d in "$T"/sdhost/*/; do
                [ -d "$d" ] || continue
                sdhost_stop "$(basename "$d")"
        done
}
