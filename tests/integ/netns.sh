# Multi-host test bed (sourced, not run), on top of lib.sh.
#
# Each test host is a network namespace with one veth ("eth0") plugged into
# a bridge that lives in a "switch" namespace of its own, so nothing touches
# the machine's own network: traffic only ever flows between the namespaces
# this file created. Every test run allocates an index (1..250) with an
# atomic mkdir; namespace names carry it ("agt<idx>-<host>") so parallel
# tests never collide, and the hosts of run <idx> get 10.200.<idx>.<n>/24.
#
#   netns_init                       root + ip required (else skip, 77);
#                                    creates $T and the switch, chains cleanup
#   netns_host_add NAME              a host (NAME: 1-13 of [a-z0-9])
#   netns_addr NAME                  its address
#   netns_exec NAME CMD...           runs CMD on the host
#   netns_write_config NAME "JOIN_HOSTS" [EXTRA]
#                                    $T/NAME.conf binding NAME's address;
#                                    $NETNS_KEYRING, when set, is cluster.keyring
#   netns_start_agentd NAME [CONF]   agentd on the host (log: $T/agentd-NAME.log,
#                                    socket: $T/NAME/ctl.sock); waits until it answers
#   netns_start_agentds NAME...      netns_start_agentd on each host, in order
#   netns_cluster_start SEED NAME... adds the hosts, writes each a config joining
#                                    through SEED and starts their agents
#   netns_pid NAME / netns_socket NAME
#   netns_ctl NAME ARGS...           agentctl against NAME's agent
#   netns_kill9 / netns_term / netns_pause / netns_resume NAME
#   netns_link_down / netns_link_up NAME
#   netns_drop_from NAME PEER        NAME drops every packet from PEER
#   netns_partition "A B" "C D E"    both sides drop each other
#   netns_loss NAME PERCENT          NAME drops PERCENT % of incoming packets
#   netns_heal NAME                  removes NAME's nftables rules
#
# A host can also get its own systemd user manager and journald (sdhost.sh,
# for later issues): source sdhost.sh too and call netns_host_add_sd NAME
# instead of netns_host_add. The host then runs inside sdhost's cgroups and
# mount namespace on top of its network namespace; netns_exec and
# netns_start_agentd go through sdhost_exec / sdhost_spawn for it, and the
# EXIT trap tears down sdhost's hosts before the namespaces. For anything
# else, a function listed in NETNS_HOST_HOOKS is called with the host name
# right after the namespace exists, and one in NETNS_CLEANUP_HOOKS with each
# host name before its processes are stopped.

. "${top_srcdir:-$(dirname "$0")/../..}/tests/integ/lib.sh"

NETNS_HOSTS=""
NETNS_IDX=""
NETNS_HOST_HOOKS=${NETNS_HOST_HOOKS:-}
NETNS_CLEANUP_HOOKS=${NETNS_CLEANUP_HOOKS:-}
NETNS_PORT=${NETNS_PORT:-7946}
NETNS_LOCKBASE=/tmp/agentd-netns

netns_ns() {
        echo "agt$NETNS_IDX-$1"
}

# Deletes what a crashed earlier run with index $1 left behind.
netns_reap_index() {
        for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^agt$1-"); do
                ip netns pids "$ns" 2>/dev/null | while read -r p; do kill -KILL "$p" 2>/dev/null; done
                ip netns del "$ns" 2>/dev/null
        done
}

# Claims a free run index: mkdir is atomic, so two tests never get the
# same one. A lock whose owner is gone is taken over after reaping.
netns_alloc_index() {
        start=$(( $$ % 250 + 1 ))
        i=$start
        while :; do
                d="$NETNS_LOCKBASE.$i"
                if mkdir "$d" 2>/dev/null; then
                        echo $$ > "$d/pid"
                        NETNS_IDX=$i
                        netns_reap_index "$i"
                        return 0
                fi
                owner=$(cat "$d/pid" 2>/dev/null)
                if [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; then
                        netns_reap_index "$i"
                        rm -rf "$d"
                        continue
                fi
                i=$(( i % 250 + 1 ))
                [ "$i" = "$start" ] && return 1
        done
}

netns_init() {
        integ_need_root "the multi-host test bed"
        command -v ip >/dev/null 2>&1 || skip "ip (iproute2) is not installed"
        ip netns list >/dev/null 2>&1 || skip "network namespaces are not usable here"
        [ -n "${T:-}" ] || integ_tmpdir
        netns_alloc_index || fail "no free test-bed index in $NETNS_LOCKBASE.*"
        NETNS_DIR="$T/netns"
        mkdir -p "$NETNS_DIR"
        trap netns__exit_trap EXIT
        NETNS_SW=$(netns_ns sw)
        ip netns add "$NETNS_SW" || fail "ip netns add $NETNS_SW failed"
        ip -n "$NETNS_SW" link add br0 type bridge || fail "cannot create a bridge"
        ip -n "$NETNS_SW" link set br0 up
        ip -n "$NETNS_SW" link set lo up
}

# sdhost's own EXIT trap knows nothing of the namespaces: this one runs its
# teardown first (the processes live in its cgroups), then removes the
# namespaces, then lets lib.sh remove $T.
netns__exit_trap() {
        rc=$?
        if [ -n "${SDHOST_GUARD_PID:-}" ]; then
                kill -KILL "$SDHOST_GUARD_PID" 2>/dev/null
                wait "$SDHOST_GUARD_PID" 2>/dev/null
                SDHOST_GUARD_PID=""
        fi
        command -v sdhost_cleanup_all >/dev/null 2>&1 && sdhost_cleanup_all
        netns_cleanup
        integ_cleanup
        exit $rc
}

netns_host_add() {
        name=$1
        case $name in
        ''|*[!a-z0-9]*) fail "netns_host_add: bad host name '$name' (use a-z, 0-9)" ;;
        esac
        [ ${#name} -le 13 ] || fail "netns_host_add: host name '$name' longer than 13"
        [ -d "$NETNS_DIR/$name" ] && fail "netns_host_add: host '$name' exists"
        n=$(( $(echo $NETNS_HOSTS | wc -w) + 1 ))
        [ "$n" -le 250 ] || fail "netns_host_add: at most 250 hosts"
        ns=$(netns_ns "$name")
        addr="10.200.$NETNS_IDX.$n"
        mkdir -p "$NETNS_DIR/$name"
        echo "$addr" > "$NETNS_DIR/$name/addr"
        NETNS_HOSTS="$NETNS_HOSTS $name"
        ip netns add "$ns" || fail "ip netns add $ns failed"
        ip -n "$NETNS_SW" link add "v-$name" type veth peer name eth0 netns "$ns" ||
                fail "cannot create the veth of $name"
        ip -n "$NETNS_SW" link set "v-$name" master br0 up
        ip -n "$ns" addr add "$addr/24" dev eth0
        ip -n "$ns" link set lo up
        ip -n "$ns" link set eth0 up
        for h in $NETNS_HOST_HOOKS; do
                "$h" "$name" || fail "host hook $h failed for $name"
        done
}

# netns_host_add_sd NAME: a host with its own systemd user manager and
# journald (needs sdhost.sh sourced; sdhost_need decides whether to skip).
netns_host_add_sd() {
        command -v sdhost_start >/dev/null 2>&1 || fail "netns_host_add_sd: source sdhost.sh first"
        netns_host_add "$1"
        sdhost_start "$1" "$(netns_ns "$1")"
        touch "$NETNS_DIR/$1/sd"
        # sdhost_start installed its own trap; ours runs its teardown too.
        trap netns__exit_trap EXIT
}

netns_is_sd() {
        [ -e "$NETNS_DIR/$1/sd" ]
}

netns_addr() {
        cat "$NETNS_DIR/$1/addr"
}

netns_exec() {
        local name=$1
        shift
        if netns_is_sd "$name"; then
                sdhost_exec "$name" "$@"
        else
                nsenter --net="/run/netns/$(netns_ns "$name")" "$@"
        fi
}

netns_socket() {
        echo "$T/$1/ctl.sock"
}

netns_pid() {
        cat "$NETNS_DIR/$1/pid" 2>/dev/null
}

netns_ctl() {
        local name=$1
        shift
        "$AGENTCTL" --socket "$(netns_socket "$name")" "$@"
}

# netns_write_config NAME "JOIN_HOSTS" [EXTRA]: prints the path.
netns_write_config() {
        local name=$1 join="" keyring="" h

        for h in $2; do
                join="$join${join:+, }\"$(netns_addr "$h"):$NETNS_PORT\""
        done
        [ -n "${NETNS_KEYRING:-}" ] && keyring="keyring = \"$NETNS_KEYRING\";"
        mkdir -p "$T/$name"
        chmod 755 "$T/$name"
        cat > "$T/$name.conf" <<CONF
node = { name = "$name"; bind = "$(netns_addr "$name"):$NETNS_PORT"; state_dir = "$T/$name/state"; };
cluster = { name = "test"; join = [ $join ]; $keyring profile = "${NETNS_PROFILE:-lan}"; };
control = { socket = "$(netns_socket "$name")"; };
log = { target = "stderr"; level = "${NETNS_LOGLEVEL:-info}"; };
${3:-}
CONF
        echo "$T/$name.conf"
}

# netns_start_agentd NAME [CONF]: the agent's pid is in netns_pid NAME.
netns_start_agentd() {
        local name=$1 conf=${2:-$T/$1.conf} sock pid
        sock=$(netns_socket "$name")
        if netns_is_sd "$name"; then
                sdhost_spawn "$name" "$T/agentd-$name.log" "$AGENTD" --config "$conf"
                pid=$SDHOST_SPAWN_PID
        else
                # nsenter execs agentd: $! is agentd's own pid.
                nsenter --net="/run/netns/$(netns_ns "$name")" "$AGENTD" --config "$conf" \
                        >>"$T/agentd-$name.log" 2>&1 &
                pid=$!
        fi
        echo "$pid" > "$NETNS_DIR/$name/pid"
        INTEG_PIDS="$INTEG_PIDS $pid"
        for _ in $(seq 200); do
                "$AGENTCTL" --socket "$sock" status >/dev/null 2>&1
                case $? in 0|3) return 0 ;; esac
                kill -0 "$pid" 2>/dev/null || fail "agentd on $name exited during start (see $T/agentd-$name.log)"
                sleep 0.1
        done
        fail "agentd on $name did not answer on $sock within 20 s"
}

# netns_start_agentds NAME...: starts the agents of the hosts one by one.
netns_start_agentds() {
        local h
        for h in "$@"; do
                netns_start_agentd "$h"
        done
}

# netns_cluster_start SEED NAME...: the usual cluster of the gossip tests:
# adds the hosts, writes each a config that joins through SEED (the seed's
# own too; $NETNS_KEYRING, when set, is every host's keyring) and starts
# their agents.
netns_cluster_start() {
        local seed=$1 h
        shift
        for h in "$@"; do
                netns_host_add "$h"
        done
        for h in "$@"; do
                netns_write_config "$h" "$seed" >/dev/null
        done
        netns_start_agentds "$@"
}

netns_forget_pid() {
        INTEG_PIDS=$(echo "$INTEG_PIDS" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' ')
        rm -f "$NETNS_DIR/$2/pid"
}

netns_kill9() {
        local pid
        pid=$(netns_pid "$1")
        [ -n "$pid" ] || fail "netns_kill9: no agentd on $1"
        kill -KILL "$pid"
        wait "$pid" 2>/dev/null
        netns_forget_pid "$pid" "$1"
}

# netns_term NAME: SIGTERM and wait; returns agentd's exit status.
netns_term() {
        local pid rc
        pid=$(netns_pid "$1")
        [ -n "$pid" ] || fail "netns_term: no agentd on $1"
        kill -TERM "$pid"
        wait "$pid"
        rc=$?
        netns_forget_pid "$pid" "$1"
        return $rc
}

netns_pause() {
        kill -STOP "$(netns_pid "$1")"
}

netns_resume() {
        kill -CONT "$(netns_pid "$1")"
}

netns_link_down() {
        ip -n "$(netns_ns "$1")" link set eth0 down
}

netns_link_up() {
        ip -n "$(netns_ns "$1")" link set eth0 up
}

# One table per host holds every fault rule, so netns_heal is one command.
netns_nft_table() {
        local ns
        ns=$(netns_ns "$1")
        command -v nft >/dev/null 2>&1 || skip "nft (nftables) is not installed"
        ip netns exec "$ns" nft list table inet agentd_test >/dev/null 2>&1 && return 0
        ip netns exec "$ns" nft -f - <<NFT || fail "cannot create the nftables table on $1"
table inet agentd_test {
        chain input { type filter hook input priority 0; policy accept; }
}
NFT
}

netns_drop_from() {
        netns_nft_table "$1"
        ip netns exec "$(netns_ns "$1")" nft add rule inet agentd_test input ip saddr "$(netns_addr "$2")" drop ||
                fail "cannot add a drop rule on $1"
}

netns_partition() {
        local a b
        for a in $1; do
                for b in $2; do
                        netns_drop_from "$a" "$b"
                        netns_drop_from "$b" "$a"
                done
        done
}

netns_loss() {
        netns_nft_table "$1"
        if [ "$2" -ge 100 ]; then
                ip netns exec "$(netns_ns "$1")" nft add rule inet agentd_test input drop
        else
                ip netns exec "$(netns_ns "$1")" nft add rule inet agentd_test input numgen random mod 100 '<' "$2" drop
        fi || fail "cannot add a loss rule on $1"
}

netns_heal() {
        ip netns exec "$(netns_ns "$1")" nft delete table inet agentd_test 2>/dev/null
        return 0
}

# Stops every process of the test bed (by the pids it started), then
# removes the namespaces (which takes the veths, bridge and rules along).
netns_cleanup() {
        [ -n "$NETNS_IDX" ] || return 0
        for h in $NETNS_HOSTS; do
                for c in $NETNS_CLEANUP_HOOKS; do
                        "$c" "$h"
                done
        done
        for h in $NETNS_HOSTS; do
                pid=$(netns_pid "$h")
                [ -n "$pid" ] || continue
                kill -TERM "$pid" 2>/dev/null
                kill -CONT "$pid" 2>/dev/null
        done
        for h in $NETNS_HOSTS; do
                pid=$(netns_pid "$h")
                [ -n "$pid" ] || continue
                for _ in $(seq 50); do
                        kill -0 "$pid" 2>/dev/null || break
                        sleep 0.1
                done
                kill -KILL "$pid" 2>/dev/null
        done
        for h in $NETNS_HOSTS sw; do
                ns=$(netns_ns "$h")
                # Anything a test ran in the background on the host and forgot.
                ip netns pids "$ns" 2>/dev/null | while read -r p; do kill -KILL "$p" 2>/dev/null; done
                ip netns del "$ns" 2>/dev/null
        done
        rm -rf "$NETNS_LOCKBASE.$NETNS_IDX"
        NETNS_IDX=""
}

# ---- membership helpers shared by the gossip tests ------------------------

# netns_members_state NAME PEER: PEER's state as NAME's agent sees it ("" if unknown).
netns_members_state() {
        netns_ctl "$1" --json members 2>/dev/null |
                "$JQ" -r --arg p "$2" '.members[] | select(.name == $p) | .state' 2>/dev/null
}

# netns_count_state NAME STATE: how many members NAME's agent sees in STATE.
netns_count_state() {
        netns_ctl "$1" --json members 2>/dev/null |
                "$JQ" --arg s "$2" '[.members[] | select(.state == $s)] | length' 2>/dev/null
}

# netns_wait_state TIMEOUT_S NAME PEER STATE: polls until NAME sees PEER in STATE.
netns_wait_state() {
        local t=$(( $1 * 10 ))
        for _ in $(seq "$t"); do
                [ "$(netns_members_state "$2" "$3")" = "$4" ] && return 0
                sleep 0.1
        done
        return 1
}

# netns_wait_alive TIMEOUT_S N HOSTS...: polls until every host sees N alive members.
netns_wait_alive() {
        local t=$(( $1 * 10 )) want=$2 ok h
        shift 2
        for _ in $(seq "$t"); do
                ok=1
                for h in "$@"; do
                        [ "$(netns_count_state "$h" alive)" = "$want" ] || { ok=0; break; }
                done
                [ $ok = 1 ] && return 0
                sleep 0.1
        done
        return 1
}

# netns_expect_alive TIMEOUT_S N MESSAGE HOSTS...: netns_wait_alive, or
# fails with MESSAGE after printing every host's member table to stderr.
netns_expect_alive() {
        local t=$1 want=$2 msg=$3 h
        shift 3
        netns_wait_alive "$t" "$want" "$@" && return 0
        for h in "$@"; do
                netns_ctl "$h" members >&2
        done
        fail "$msg"
}

# netns_wait_jq TIMEOUT_S NAME FILTER ARGS...: polls `agentctl --json ARGS`
# on NAME until the jq FILTER is true.
netns_wait_jq() {
        local t=$(( $1 * 10 )) host=$2 filter=$3
        shift 3
        for _ in $(seq "$t"); do
                netns_ctl "$host" --json "$@" 2>/dev/null | "$JQ" -e "$filter" >/dev/null 2>&1 && return 0
                sleep 0.1
        done
        return 1
}

# ---- leader, balancer table and unit helpers (failover.sh, witness.sh) ------

# netns_leader_of NAME: "LEADER TERM" as NAME's agent sees it ("null TERM"
# when it knows none, "" when it does not answer).
netns_leader_of() {
        netns_ctl "$1" --json leader 2>/dev/null | "$JQ" -r '"\(.leader) \(.term)"' 2>/dev/null
}

# netns_agree TIMEOUT_S HOSTS...: polls until every host names the same
# leader, which is one of HOSTS, in the same term, and exactly one of them is
# in state "leader". Sets NETNS_AGREED to "NAME TERM"; on timeout prints each
# host's view to stderr and returns 1.
netns_agree() {
        local t=$(( $1 * 10 )) first h ok leaders
        shift
        for _ in $(seq "$t"); do
                ok=1
                first=$(netns_leader_of "$1")
                case $first in null*|"") ok=0 ;; esac
                if [ $ok = 1 ]; then
                        case " $* " in *" ${first% *} "*) ;; *) ok=0 ;; esac
                fi
                leaders=0
                for h in "$@"; do
                        [ $ok = 1 ] || break
                        [ "$(netns_leader_of "$h")" = "$first" ] || ok=0
                        [ "$(netns_ctl "$h" --json leader 2>/dev/null | "$JQ" -r .state 2>/dev/null)" = leader ] &&
                                leaders=$((leaders + 1))
                done
                if [ $ok = 1 ] && [ $leaders = 1 ]; then
                        NETNS_AGREED=$first
                        return 0
                fi
                sleep 0.1
        done
        for h in "$@"; do
                echo "$h: $(netns_ctl "$h" --json leader 2>&1 | tr -d '\n')" >&2
        done
        return 1
}

# netns_table NAME [SERVICE]: NAME's balancer table as one line of JSON.
netns_table() {
        local name=$1
        shift
        netns_ctl "$name" --json table "$@" 2>/dev/null | "$JQ" -c . 2>/dev/null
}

# netns_wait_tables TIMEOUT_S FILTER HOSTS...: polls until the table of
# every host satisfies the jq FILTER and all of them hold the same
# (term, version, digest). Sets NETNS_TABLE to the first host's table; on
# timeout prints every host's table to stderr and returns 1.
netns_wait_tables() {
        local t=$(( $1 * 10 )) filter=$2 h ok id first tab
        shift 2
        for _ in $(seq "$t"); do
                ok=1
                first=""
                for h in "$@"; do
                        tab=$(netns_table "$h")
                        echo "$tab" | "$JQ" -e "$filter" >/dev/null 2>&1 || { ok=0; break; }
                        id=$(echo "$tab" | "$JQ" -r '"\(.term).\(.version).\(.digest)"')
                        if [ -z "$first" ]; then
                                first=$id
                                NETNS_TABLE=$tab
                        elif [ "$id" != "$first" ]; then
                                ok=0
                                break
                        fi
                done
                [ $ok = 1 ] && return 0
                sleep 0.1
        done
        for h in "$@"; do
                echo "--- table on $h: $(netns_table "$h")" >&2
        done
        return 1
}

# netns_unit_state NAME UNIT: UNIT's ActiveState in NAME's user manager.
netns_unit_state() {
        sdhost_systemctl "$1" show -p ActiveState --value "$2" 2>/dev/null
}

# netns_wait_unit TIMEOUT_S NAME UNIT STATE: polls until UNIT is in STATE.
netns_wait_unit() {
        local t=$(( $1 * 10 ))
        for _ in $(seq "$t"); do
                [ "$(netns_unit_state "$2" "$3")" = "$4" ] && return 0
                sleep 0.1
        done
        return 1
}

# netns_testsvc_template NAME TEMPLATE: installs TEMPLATE (e.g.
# "web@.service") in NAME's user manager: tests/integ/testsvc answering
# HTTP on NAME's address, on the port named by the instance ("web@8081").
netns_testsvc_template() {
        local svc=${TESTSVC:-${top_builddir:-.}/tests/integ/testsvc}
        [ -x "$svc" ] || fail "$svc is not built (make tests/integ/testsvc)"
        sdhost_unit "$1" "$2" "[Unit]
StartLimitIntervalSec=0
[Service]
ExecStart=$svc --address $(netns_addr "$1") --port %i"
}

# netns_events NAME KIND [SINCE_US]: NAME's stored events of KIND (stamped at
# or after SINCE_US, CLOCK_REALTIME µs) as one JSON array, oldest first.
netns_events() {
        netns_ctl "$1" --json events --kind "$2" --limit 10000 2>/dev/null |
                "$JQ" -c --argjson s "${3:-0}" '[.events[] | select(.ts_us >= $s)]'
}

# netns_now_us: CLOCK_REALTIME in µs, comparable with events' ts_us.
netns_now_us() {
        echo $(( $(date +%s%N) / 1000 ))
}

# netns_dump_placed HOSTS...: every placed instance each host's agent lists
# (unit, health, when placed), to stderr: what a placement failure needs.
netns_dump_placed() {
        local h
        for h in "$@"; do
                echo "--- placed instances on $h: $(netns_ctl "$h" --json services 2>/dev/null |
                        "$JQ" -c '[.services[] | select(.origin == "placed") |
                                   {unit, health, placed_at, placed_at_us}]' 2>/dev/null)" >&2
        done
}

# netns_conf_group NAME GROUP TEXT: inserts TEXT (libconfig settings) at the
# start of group GROUP ("node", "cluster") of the config netns_write_config
# wrote for NAME, e.g. netns_conf_group h1 node 'role = "witness";'.
# TEXT must not contain "|", "&" or backslashes (sed replacement text).
netns_conf_group() {
        grep -q "^$2 = { " "$T/$1.conf" || fail "netns_conf_group: no group $2 in $T/$1.conf"
        sed -i "s|^$2 = { |&$3 |" "$T/$1.conf"
}

# netns_conf_election NAME MIN MAX: NAME's election timeout range (durations):
# a host with a much shorter range than the others is all but sure to lead.
netns_conf_election() {
        netns_conf_group "$1" cluster "election = { timeout_min = \"$2\"; timeout_max = \"$3\"; };"
}
