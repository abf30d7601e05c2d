# Shared setup of the self-healing tests (heal_*.sh) and bench_heal.sh;
# sourced after lib.sh and sdhost.sh, not run.
#
# One test host (a private `systemd --user` manager and journald, see
# sdhost.sh) in a network namespace of its own, so the test services can use
# fixed ports whatever else runs on the machine. agentd runs INSIDE the host
# with `systemd = { bus = "user"; }`; agentctl runs outside and reaches it
# through the control socket under $T, which both sides see.
#
#   heal_setup                   skip unless root etc.; create $T, the netns
#                                and host $HEAL_HOST; sets TESTSVC
#   heal_unit UNIT ARGS [EXTRA]  a unit running `testsvc ARGS` (no systemd
#                                start limit); EXTRA lines go to [Service]
#   heal_start_unit UNIT ARGS [EXTRA]  heal_unit, then start it (or fail)
#   heal_config SERVICES [TARGET] write $T/agentd.conf (log target stderr or
#                                journal, level debug); prints its path
#   heal_start_agentd CONF       start agentd in the host; sets AGENTD_PID and
#                                AGENTCTL_SOCKET; waits until it answers
#   heal_start_web [TARGET]      web.service and an agentd supervising it with
#                                $HEAL_WEB_SERVICES (log target TARGET)
#   heal_kill_agentd [SIG]       signal agentd and wait until it is gone
#   heal_count KIND [UNIT]       number of stored events of KIND (for UNIT)
#   heal_wait_count KIND N SECS [UNIT]  wait until heal_count >= N
#   heal_svc SERVICE FIELD       a field of `agentctl --json services`
#   heal_main_pid UNIT           the unit's MainPID (0: none)

HEAL_HOST=h1
HEAL_NETNS=""

heal__netns_cleanup() {
        [ -n "$HEAL_NETNS" ] && ip netns delete "$HEAL_NETNS" 2>/dev/null
        HEAL_NETNS=""
}

heal_setup() {
        sdhost_need
        integ_need_jq
        command -v ip >/dev/null 2>&1 || skip "ip is not installed (apt-get install iproute2)"
        : "${top_builddir:?top_builddir must point to the build directory (make check sets it)}"
        TESTSVC=$top_builddir/tests/integ/testsvc
        [ -x "$TESTSVC" ] || fail "$TESTSVC is not built (make tests/integ/testsvc)"
        integ_tmpdir
        HEAL_NETNS="agentd-heal-${T##*.}"
        ip netns add "$HEAL_NETNS" || fail "cannot create network namespace $HEAL_NETNS"
        sdhost_on_exit heal__netns_cleanup
        ip -n "$HEAL_NETNS" link set lo up || fail "cannot bring up lo in $HEAL_NETNS"
        sdhost_start "$HEAL_HOST" "$HEAL_NETNS"
}

heal_unit() {
        unit=$1
        args=$2
        extra=${3:-}
        # systemd's own start rate limit (5 starts in 10 s) would refuse
        # restarts that agentd's limiter, the thing under test, allows.
        sdhost_unit "$HEAL_HOST" "$unit" "[Unit]
StartLimitIntervalSec=0
[Service]
ExecStart=$TESTSVC $args
$extra"
}

heal_start_unit() {
        heal_unit "$@"
        sdhost_systemctl "$HEAL_HOST" start "$1" || fail "cannot start $1"
}

# The service of heal_http.sh and heal_bus.sh: testsvc on port 8080, steered
# through $T/web.ctl, checked over HTTP every 200 ms and restarted at most 10
# times a minute.
HEAL_WEB_SERVICES='services = ( { name = "web"; unit = "web.service"; address = "127.0.0.1"; port = 8080;
        check = { type = "http"; path = "/health"; interval = "200ms"; timeout = "150ms"; rise = 2; fall = 2; };
        restart = { limit = 10; window = "60s"; backoff = "100ms"; backoff_max = "2s"; }; } );'

heal_config() {
        target=${2:-stderr}
        mkdir -p "$T/state"
        cat > "$T/agentd.conf" <<CONF
node = { name = "h1"; bind = "127.0.0.1:7946"; state_dir = "$T/state"; };
cluster = { name = "heal"; };
control = { socket = "$T/ctl.sock"; };
systemd = { bus = "user"; };
log = { target = "$target"; level = "debug"; };
$1
CONF
        echo "$T/agentd.conf"
}

heal_start_agentd() {
        sdhost_spawn "$HEAL_HOST" "$T/agentd-h1.log" "$AGENTD" --config "$1"
        AGENTD_PID=$SDHOST_SPAWN_PID
        AGENTCTL_SOCKET=$T/ctl.sock
        export AGENTCTL_SOCKET
        for _ in $(seq 200); do
                "$AGENTCTL" status >/dev/null 2>&1
                case $? in 0|3) return 0 ;; esac
                kill -0 "$AGENTD_PID" 2>/dev/null || fail "agentd exited during start (see $T/agentd-h1.log)"
                sleep 0.1
        done
        fail "agentd did not answer on $AGENTCTL_SOCKET within 20 s"
}

heal_start_web() {
        heal_start_unit web.service "--port 8080 --control $T/web.ctl"
        heal_start_agentd "$(heal_config "$HEAL_WEB_SERVICES" "${1:-stderr}")"
}

# True while PID runs (a zombie does not count).
heal__alive() {
        [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]
}

heal_kill_agentd() {
        kill "-${1:-TERM}" "$AGENTD_PID" 2>/dev/null
        for _ in $(seq 200); do
                heal__alive "$AGENTD_PID" || break
                sleep 0.1
        done
        heal__alive "$AGENTD_PID" && fail "agentd $AGENTD_PID did not exit"
        wait "$AGENTD_PID" 2>/dev/null
        return 0
}

# The stored events of KIND (optionally only those of UNIT), as one JSON array.
heal_events() {
        "$AGENTCTL" --json events --kind "$1" --limit 10000 |
                "$JQ" -c --arg u "${2:-}" '[.events[] | select($u == "" or .unit == $u)]'
}

heal_count() {
        heal_events "$@" | "$JQ" length
}

heal_wait_count() {
        kind=$1
        want=$2
        secs=$3
        shift 3
        for _ in $(seq $((secs * 10))); do
                n=$(heal_count "$kind" "$@" 2>/dev/null)
                [ -n "$n" ] && [ "$n" -ge "$want" ] && return 0
                kill -0 "$AGENTD_PID" 2>/dev/null || fail "agentd died (see $T/agentd-h1.log)"
                sleep 0.1
        done
        return 1
}

heal_svc() {
        "$AGENTCTL" --json services | "$JQ" -r --arg s "$1" --arg f "$2" '.services[] | select(.service == $s) | .[$f]'
}

# heal_wait_svc SERVICE FIELD VALUE SECS: wait until the field has the value.
heal_wait_svc() {
        for _ in $(seq $(($4 * 10))); do
                [ "$(heal_svc "$1" "$2" 2>/dev/null)" = "$3" ] && return 0
                sleep 0.1
        done
        return 1
}

heal_main_pid() {
        sdhost_systemctl "$HEAL_HOST" show -p MainPID --value "$1" 2>/dev/null
}

heal_active_state() {
        sdhost_systemctl "$HEAL_HOST" show -p ActiveState --value "$1" 2>/dev/null
}
