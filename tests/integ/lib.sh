# Shared helpers for the shell integration tests (sourced, not run).
#
# Every test gets its own temporary directory ($T), removed on exit together
# with every agentd the test started. Processes are only ever stopped by the
# pid we started them with.

set -u

: "${AGENTD:?AGENTD must point to the agentd binary (make check sets it)}"
: "${AGENTCTL:?AGENTCTL must point to the agentctl binary (make check sets it)}"
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"

INTEG_PIDS=""

fail() {
        echo "FAIL: $*" >&2
        for f in "$T"/agentd-*.log; do
                [ -f "$f" ] || continue
                echo "--- $f (last 20 lines)" >&2
                tail -n 20 "$f" >&2
        done
        exit 1
}

skip() {
        echo "SKIP: $*" >&2
        exit 77
}

pass() {
        echo "ok: $*"
}

integ_cleanup() {
        for p in $INTEG_PIDS; do
                kill -TERM "$p" 2>/dev/null
        done
        for p in $INTEG_PIDS; do
                for _ in $(seq 50); do
                        kill -0 "$p" 2>/dev/null || break
                        sleep 0.1
                done
                kill -KILL "$p" 2>/dev/null
        done
        if [ -n "${T:-}" ] && [ -d "$T" ] && [ -z "${INTEG_KEEP:-}" ]; then
                rm -rf "$T"
        fi
}

# integ_tmpdir: sets $T to a fresh private directory, removed on exit
# (unless INTEG_KEEP is set, to look at it after a failure).
integ_tmpdir() {
        T=$(mktemp -d /tmp/agentd-integ.XXXXXX) || exit 99
        chmod 755 "$T"
        trap integ_cleanup EXIT
        trap 'exit 130' INT TERM
}

# integ_free_port [SALT]: prints a port that no UDP or TCP socket holds now,
# starting from one derived from our pid and SALT (a node name), so tests
# running in parallel (make -j check) do not fight over the gossip port.
integ_free_port() {
        p=$(( 20000 + ($$ * 7 + $(printf '%s' "${1:-}" | cksum | cut -d' ' -f1)) % 30000 ))
        for _ in $(seq 100); do
                integ_port_free "$p" && break
                p=$(( p + 1 ))
        done
        echo "$p"
}

# integ_port_free P: true when no UDP/TCP socket holds port P.
integ_port_free() {
        ! cat /proc/net/udp /proc/net/udp6 /proc/net/tcp /proc/net/tcp6 2>/dev/null |
                awk '{print $2}' | grep -qi "$(printf ':%04X$' "$1")"
}

# integ_free_ports N [SALT]: N consecutive free ports; prints the first.
integ_free_ports() {
        base=$(integ_free_port "${2:-bench}$1")
        while :; do
                ok=1
                i=0
                while [ $i -lt "$1" ]; do
                        integ_port_free $((base + i)) || { ok=0; break; }
                        i=$((i + 1))
                done
                [ $ok = 1 ] && { echo "$base"; return; }
                base=$((base + $1))
        done
}

# integ_pct P: the P-th percentile (nearest rank) of the numbers on stdin.
integ_pct() {
        sort -n | awk -v p="$1" '{ v[NR] = $1 } END {
                if (NR == 0) exit 1
                i = NR * p / 100; if (i > int(i)) i = int(i) + 1; if (i < 1) i = 1
                print v[i] }'
}

# integ_ms US: µs as whole milliseconds, "1234 ms".
integ_ms() {
        awk -v us="$1" 'BEGIN { printf "%.0f ms", us / 1000 }'
}

# integ_now_us: CLOCK_REALTIME in µs.
integ_now_us() {
        echo $(( $(date +%s%N) / 1000 ))
}

# integ_write_config NAME [EXTRA]: writes $T/NAME.conf for a node NAME whose
# state and control socket live under $T/NAME, logging to stderr. EXTRA is
# appended verbatim (libconfig text, e.g. a services list). Prints the path.
integ_write_config() {
        name=$1
        extra=${2:-}
        mkdir -p "$T/$name"
        chmod 755 "$T/$name"
        cat > "$T/$name.conf" <<CONF
node = { name = "$name"; bind = "127.0.0.1:$(integ_free_port "$name")"; state_dir = "$T/$name/state"; };
cluster = { name = "test"; };
control = { socket = "$T/$name/ctl.sock"; };
log = { target = "stderr"; level = "debug"; };
$extra
CONF
        echo "$T/$name.conf"
}

# integ_socket CONF: the control socket path written in CONF.
integ_socket() {
        sed -n 's/.*socket = "\([^"]*\)".*/\1/p' "$1" | head -n 1
}

# integ_start_agentd CONF: starts agentd in the background with its log in
# $T/agentd-NAME.log, waits until its control socket answers, sets AGENTD_PID
# and AGENTCTL_SOCKET (exported, so plain `$AGENTCTL status` reaches it).
integ_start_agentd() {
        conf=$1
        base=$(basename "$conf" .conf)
        "$AGENTD" --config "$conf" >>"$T/agentd-$base.log" 2>&1 &
        AGENTD_PID=$!
        INTEG_PIDS="$INTEG_PIDS $AGENTD_PID"
        AGENTCTL_SOCKET=$(integ_socket "$conf")
        export AGENTCTL_SOCKET
        for _ in $(seq 100); do
                # 0: serving; 3: serving but degraded (still up).
                "$AGENTCTL" --socket "$AGENTCTL_SOCKET" status >/dev/null 2>&1
                case $? in 0|3) return 0 ;; esac
                kill -0 "$AGENTD_PID" 2>/dev/null || fail "agentd exited during start (see $T/agentd-$base.log)"
                sleep 0.1
        done
        fail "agentd did not answer on $AGENTCTL_SOCKET within 10 s"
}

# integ_stop_agentd [PID]: SIGTERM, then wait for it to exit; returns its status.
integ_stop_agentd() {
        pid=${1:-$AGENTD_PID}
        kill -TERM "$pid" 2>/dev/null || return 1
        wait "$pid"
        rc=$?
        INTEG_PIDS=$(echo "$INTEG_PIDS" | tr ' ' '\n' | grep -vx "$pid" | tr '\n' ' ')
        return $rc
}

# integ_wait_for TIMEOUT_DS CMD...: retries CMD every 0.1 s, TIMEOUT_DS tenths.
integ_wait_for() {
        n=$1
        shift
        for _ in $(seq "$n"); do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.1
        done
        return 1
}

integ_need_root() {
        [ "$(id -u)" = 0 ] || skip "$1 needs root"
}

integ_need_jq() {
        JQ=${JQ:-$(command -v jq || true)}
        [ -n "$JQ" ] || skip "jq is not installed (apt-get install jq)"
}
