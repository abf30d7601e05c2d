#!/bin/sh
# Election and failover times (issue 5): N agents on this machine (loopback,
# one gossip port each, no network namespaces, like bench_detect.sh), each
# with one static backend of service "web" (a testsvc process on its own
# loopback port, checked over HTTP). Prints figures; never fails on time.
#
#  a. election: kill -9 the leader; time until every survivor names the same
#     new leader (each survivor's leader_elected event of the new term,
#     stamped when it learned the leader), p50/p99 over runs;
#  b. failover: kill -9 an agent that is not the leader; time until every
#     survivor's table shows its backend down, from the kill and from the
#     dead verdict (the leader's member_dead event): the aim is "every
#     survivor's table within 0.5 s of the dead verdict". The first version
#     with the backend down is found in the leader's table_published events,
#     and when each survivor took it in its debug log ("balancer: table T.V
#     from L accepted", stamped by agentd itself); if a log lacks the line,
#     the times of polling every survivor's `agentctl --json table` in turn
#     are used instead (upper bounds, said so in the output).
#
#   BENCH_FAILOVER_AGENTS   cluster sizes (default "5 30")
#   BENCH_FAILOVER_RUNS     kills per size and measure (default 7)
#   BENCH_FAILOVER_PROFILE  cluster.profile (default lan)

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$(pwd)}"
. "$top_srcdir/tests/integ/lib.sh"

integ_need_jq
sizes=${BENCH_FAILOVER_AGENTS:-5 30}
runs=${BENCH_FAILOVER_RUNS:-7}
profile=${BENCH_FAILOVER_PROFILE:-lan}
TESTSVC=$top_builddir/tests/integ/testsvc
if [ ! -x "$TESTSVC" ]; then
        echo "bench_failover: skipped ($TESTSVC is not built: make tests/integ/testsvc)"
        exit 0
fi
integ_tmpdir

write_conf() {
        name=$1 port=$2 seed=$3 web=$4
        mkdir -p "$T/$name"
        cat > "$T/$name.conf" <<CONF
node = { name = "$name"; bind = "127.0.0.1:$port"; state_dir = "$T/$name/state"; };
cluster = { name = "bench"; join = [ "127.0.0.1:$seed" ]; profile = "$profile"; };
control = { socket = "$T/$name/ctl.sock"; };
log = { target = "stderr"; level = "debug"; };
services = ( { name = "web"; unit = "web@$web.service"; address = "127.0.0.1"; port = $web;
    check = { type = "http"; path = "/health"; interval = "500ms"; timeout = "200ms"; rise = 1; fall = 3; }; } );
CONF
}

start() {
        "$AGENTD" --config "$T/$1.conf" >>"$T/agentd-$1.log" 2>&1 &
        echo $! > "$T/$1.pid"
        INTEG_PIDS="$INTEG_PIDS $!"
}

kill9() {
        pid=$(cat "$T/$1.pid")
        kill -KILL "$pid"
        wait "$pid" 2>/dev/null
        INTEG_PIDS=$(echo "$INTEG_PIDS" | tr ' ' '\n' | grep -vx "$pid" | tr '\n' ' ')
}

ctl() {
        name=$1
        shift
        "$AGENTCTL" --socket "$T/$name/ctl.sock" "$@"
}

# survivors_of VICTIM: the hosts but VICTIM.
survivors_of() {
        echo $hosts | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' '
}

# wait_settled: until every agent sees all alive, names one leader and holds
# a current table with every web backend up (fails after 3 min).
wait_settled() {
        for _ in $(seq 900); do
                ok=1
                first=""
                for h in $hosts; do
                        st=$(ctl "$h" --json status 2>/dev/null | "$JQ" -r --argjson n "$size" \
                                'if .members.alive == $n and .leader != null and .table.current == true
                                 then "\(.leader) \(.table.term).\(.table.version)" else "" end' 2>/dev/null)
                        [ -n "$st" ] || { ok=0; break; }
                        [ -z "$first" ] && first=$st
                        [ "$st" = "$first" ] || { ok=0; break; }
                done
                if [ $ok = 1 ]; then
                        n=$(ctl "${first%% *}" --json table web 2>/dev/null |
                                "$JQ" '[.services[].backends[] | select(.state == "up")] | length' 2>/dev/null)
                        if [ "$n" = "$size" ]; then
                                leader=${first%% *}
                                return 0
                        fi
                fi
                sleep 0.2
        done
        for h in $hosts; do
                echo "$h: $(ctl "$h" --json status 2>&1 | "$JQ" -c '[.members.alive, .leader, .table]' 2>&1)" >&2
        done
        fail "the $size agents did not settle (all alive, one leader, one current table, $size backends up) within 3 minutes"
}

# summary LABEL FILE: p50/p99/max of the µs in FILE.
summary() {
        if [ ! -s "$2" ]; then
                printf '   %-46s no samples\n' "$1"
                return
        fi
        printf '   %-46s p50 %s, p99 %s, max %s (%d samples)\n' "$1" \
                "$(integ_ms "$(integ_pct 50 < "$2")")" "$(integ_ms "$(integ_pct 99 < "$2")")" "$(integ_ms "$(integ_pct 100 < "$2")")" "$(wc -l < "$2")"
}

# event_ts HOST KIND SUBJECT_OR_EMPTY SINCE_US [MIN_TERM]: ts_us of HOST's
# first event of KIND since SINCE_US (with that subject, and a term of at
# least MIN_TERM), or nothing.
event_ts() {
        ctl "$1" --json events --kind "$2" --limit 1000 --since 10m 2>/dev/null |
                "$JQ" --arg s "$3" --argjson t "$4" --argjson m "${5:-0}" \
                '[.events[] | select(.ts_us >= $t and ($s == "" or .subject == $s) and .term >= $m) | .ts_us] | min // empty' 2>/dev/null
}

# log_table_ts HOST TERM VERSION: when HOST's log first says it accepted
# table TERM.VERSION or a later one (balancer.c's debug line "balancer:
# table T.V from LEADER accepted"), in CLOCK_REALTIME µs from the line's
# stamp; nothing when it does not.
log_table_ts() {
        stamp=$(sed -n 's/^\([0-9T:.-]*\)Z .*balancer: table \([0-9]*\)\.\([0-9]*\) from [^ ]* accepted.*/\1 \2 \3/p' \
                "$T/agentd-$1.log" 2>/dev/null |
                awk -v t="$2" -v v="$3" '$2 > t || ($2 == t && $3 >= v) { print $1; exit }')
        [ -n "$stamp" ] || return 0
        s=$(date -u -d "${stamp%.*}" +%s 2>/dev/null) || return 0
        frac=$(echo "${stamp##*.}" | sed 's/^0*//')
        echo $(( s * 1000000 + ${frac:-0} ))
}

# published HOST VICTIM SINCE_US: "TERM VERSION TS_US" of the first table
# the leader HOST published since SINCE_US with VICTIM's backends down.
published() {
        ctl "$1" --json events --kind table_published --limit 1000 --since 10m 2>/dev/null |
                "$JQ" -r --arg v " on $2 down" --argjson t "$3" \
                '[.events[] | select(.ts_us >= $t and (.detail | contains($v)))][0] // empty |
                 "\(.subject | split(".") | join(" ")) \(.ts_us)"' 2>/dev/null
}

# down_on HOST VICTIM: true when HOST's table has VICTIM's backends, all down.
down_on() {
        ctl "$1" --json table web 2>/dev/null | "$JQ" -e --arg v "$2" \
                '[.services[].backends[] | select(.node == $v) | .state] | length > 0 and all(. == "down")' >/dev/null 2>&1
}

bench_size() {
        size=$1
        base=$(integ_free_ports "$size" gossip)
        webbase=$(integ_free_ports "$size" web)
        hosts=""
        i=1
        while [ $i -le "$size" ]; do
                hosts="$hosts n$i"
                write_conf "n$i" $((base + i - 1)) "$base" $((webbase + i - 1))
                "$TESTSVC" --port $((webbase + i - 1)) >/dev/null 2>&1 &
                echo $! >> "$T/svc.pids"
                INTEG_PIDS="$INTEG_PIDS $!"
                i=$((i + 1))
        done
        for h in $hosts; do
                start "$h"
        done
        t0=$(integ_now_us)
        wait_settled
        echo "== $size agents ($profile profile): settled in $(integ_ms $(( $(integ_now_us) - t0 ))) after start, leader $leader"

        # --- a. election after the leader's kill -9 ---------------------------
        : > "$T/elect"
        run=1
        while [ $run -le "$runs" ]; do
                old=$leader
                oldterm=$(ctl "$old" --json leader | "$JQ" .term)
                surv=$(survivors_of "$old")
                tkill=$(integ_now_us)
                kill9 "$old"
                worst=""
                for _ in $(seq 600); do
                        worst=0
                        new=""
                        for h in $surv; do
                                v=$(ctl "$h" --json leader 2>/dev/null | "$JQ" -r '"\(.leader) \(.term)"')
                                case $v in null*|"$old "*|"") worst=""; break ;; esac
                                [ -z "$new" ] && new=$v
                                [ "$v" = "$new" ] || { worst=""; break; }
                                ts=$(event_ts "$h" leader_elected "${new% *}" "$tkill" $((oldterm + 1)))
                                [ -n "$ts" ] || { worst=""; break; }
                                [ $((ts - tkill)) -gt "$worst" ] && worst=$((ts - tkill))
                        done
                        [ -n "$worst" ] && break
                        sleep 0.2
                done
                [ -n "$worst" ] || fail "election run $run: the survivors did not agree on a new leader within 2 minutes"
                echo "$worst" >> "$T/elect"
                printf '   election run %d: %s killed, every survivor named %s (term %s) after %s\n' \
                        "$run" "$old" "${new% *}" "${new#* }" "$(integ_ms "$worst")"
                start "$old"
                wait_settled
                run=$((run + 1))
        done
        summary "election, until every survivor names it:" "$T/elect"

        # --- b. failover: a backend's host dies --------------------------------
        : > "$T/fo_kill"
        : > "$T/fo_dead"
        : > "$T/fo_each"
        method=""
        # Polled fast until the agents' logs prove to have the times.
        poll=0.02
        run=1
        while [ $run -le "$runs" ]; do
                # Never the seed (the others rejoin through it), never the leader.
                k=$(( (run - 1) % (size - 1) + 2 ))
                victim=n$k
                if [ "$victim" = "$leader" ]; then
                        k=$(( k % (size - 1) + 2 ))
                        victim=n$k
                fi
                surv=$(survivors_of "$victim")
                : > "$T/seen"
                tkill=$(integ_now_us)
                kill9 "$victim"
                # Poll the survivors in turn; each one's first "down" is
                # stamped when seen (an upper bound, within one round).
                pending=$surv
                for _ in $(seq 6000); do
                        left=""
                        for h in $pending; do
                                if down_on "$h" "$victim"; then
                                        echo "$h $(integ_now_us)" >> "$T/seen"
                                else
                                        left="$left $h"
                                fi
                        done
                        pending=$left
                        [ -z "$pending" ] && break
                        sleep "$poll"
                done
                [ -z "$pending" ] || fail "failover run $run: $victim's backend not down on$pending within 2 minutes"
                tdead=$(event_ts "$leader" member_dead "$victim" "$tkill")
                # The first version the leader published with the backend
                # down, and when each survivor took it (the leader: when it
                # published it).
                set -- $(published "$leader" "$victim" "$tkill")
                : > "$T/run"
                all_logged=1
                [ $# = 3 ] || all_logged=0
                for h in $surv; do
                        [ $all_logged = 1 ] || break
                        if [ "$h" = "$leader" ]; then
                                ts=$3
                        else
                                ts=$(log_table_ts "$h" "$1" "$2")
                        fi
                        if [ -z "$ts" ]; then
                                all_logged=0
                                break
                        fi
                        echo "$h $ts" >> "$T/run"
                done
                if [ $all_logged = 1 ]; then
                        method="log"
                        poll=0.2
                else
                        method="poll"
                        cp "$T/seen" "$T/run"
                fi
                last=$(cut -d' ' -f2 "$T/run" | sort -n | tail -n 1)
                echo $((last - tkill)) >> "$T/fo_kill"
                while read -r _ ts; do
                        echo $((ts - tkill)) >> "$T/fo_each"
                done < "$T/run"
                if [ -n "$tdead" ]; then
                        echo $((last - tdead)) >> "$T/fo_dead"
                        d="dead verdict at $(integ_ms $((tdead - tkill))), all tables $(integ_ms $((last - tdead))) after it"
                else
                        d="no member_dead event on the leader"
                fi
                printf '   failover run %d: %s killed, every survivor'"'"'s table had it down after %s (%s; %s)\n' \
                        "$run" "$victim" "$(integ_ms $((last - tkill)))" "$d" "$method"
                start "$victim"
                wait_settled
                run=$((run + 1))
        done
        summary "failover, kill -> every table down:" "$T/fo_kill"
        summary "failover, kill -> each table down:" "$T/fo_each"
        summary "failover, dead verdict -> every table down:" "$T/fo_dead"
        [ "$method" = poll ] &&
                echo "   (tables polled in turn with agentctl: figures are upper bounds by up to one polling round)"

        for h in $hosts; do
                kill -TERM "$(cat "$T/$h.pid")" 2>/dev/null
        done
        for h in $hosts; do
                pid=$(cat "$T/$h.pid")
                wait "$pid" 2>/dev/null
                INTEG_PIDS=$(echo "$INTEG_PIDS" | tr ' ' '\n' | grep -vx "$pid" | tr '\n' ' ')
                rm -rf "${T:?}/$h" "$T/$h.conf" "$T/$h.pid" "$T/agentd-$h.log"
        done
        for pid in $(cat "$T/svc.pids"); do
                kill -TERM "$pid" 2>/dev/null
                wait "$pid" 2>/dev/null
                INTEG_PIDS=$(echo "$INTEG_PIDS" | tr ' ' '\n' | grep -vx "$pid" | tr '\n' ' ')
        done
        rm -f "$T/svc.pids"
}

echo "leader election and failover (kill -9; figures, never a verdict):"
for s in $sizes; do
        # A kill must leave a quorum, and a victim that is neither the seed
        # nor the leader.
        if [ "$s" -lt 3 ]; then
                echo "== $s agents: skipped (needs at least 3)"
                continue
        fi
        bench_size "$s"
done
exit 0
