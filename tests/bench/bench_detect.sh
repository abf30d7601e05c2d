#!/bin/sh
# Failure detection time: N agents on this machine (loopback, one port each,
# default `lan` profile), kill -9 one, measure until every survivor has
# declared it dead (its member_dead event, stamped when its member list
# changed); restart it, let it rejoin, repeat. Prints p50/p99 of "every
# survivor knows" and of the individual detections, idle gossip traffic per
# agent and agentd's RSS. Prints figures; never fails on time.
#
#   BENCH_DETECT_SIZES   cluster sizes (default "10 30")
#   BENCH_DETECT_RUNS    kills per size (default 7)
#   BENCH_DETECT_IDLE_S  seconds of idle traffic measured (default 10)
#   BENCH_DETECT_PROFILE cluster.profile (default lan)

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/integ/lib.sh"

integ_need_jq
sizes=${BENCH_DETECT_SIZES:-10 30}
runs=${BENCH_DETECT_RUNS:-7}
idle_s=${BENCH_DETECT_IDLE_S:-10}
profile=${BENCH_DETECT_PROFILE:-lan}
integ_tmpdir

write_conf() {
        name=$1 port=$2 seed=$3
        mkdir -p "$T/$name"
        cat > "$T/$name.conf" <<CONF
node = { name = "$name"; bind = "127.0.0.1:$port"; state_dir = "$T/$name/state"; };
cluster = { name = "bench"; join = [ "127.0.0.1:$seed" ]; profile = "$profile"; };
control = { socket = "$T/$name/ctl.sock"; };
log = { target = "stderr"; level = "notice"; };
CONF
}

start() {
        "$AGENTD" --config "$T/$1.conf" >>"$T/agentd-$1.log" 2>&1 &
        echo $! > "$T/$1.pid"
        INTEG_PIDS="$INTEG_PIDS $!"
}

ctl() {
        name=$1
        shift
        "$AGENTCTL" --socket "$T/$name/ctl.sock" "$@"
}

# wait_all_alive N: until every agent lists N alive members (fails after 3 min).
wait_all_alive() {
        for _ in $(seq 1800); do
                ok=1
                for h in $hosts; do
                        n=$(ctl "$h" --json status 2>/dev/null | "$JQ" '.members.alive' 2>/dev/null)
                        [ "$n" = "$1" ] || { ok=0; break; }
                done
                [ $ok = 1 ] && return 0
                sleep 0.1
        done
        fail "the $1 agents did not converge within 3 minutes"
}

bench_size() {
        size=$1
        base=$(integ_free_ports "$size")
        hosts=""
        i=1
        while [ $i -le "$size" ]; do
                hosts="$hosts n$i"
                write_conf "n$i" $((base + i - 1)) "$base"
                i=$((i + 1))
        done
        for h in $hosts; do
                start "$h"
        done
        t0=$(integ_now_us)
        wait_all_alive "$size"
        echo "== $size agents ($profile profile): converged in $(integ_ms $(( $(integ_now_us) - t0 ))) after start"

        # Idle traffic: bytes each agent sent (UDP + TCP) over idle_s seconds.
        for h in $hosts; do
                ctl "$h" --json status | "$JQ" .gossip.bytes_sent > "$T/$h.b0"
        done
        sleep "$idle_s"
        : > "$T/idle"
        for h in $hosts; do
                b1=$(ctl "$h" --json status | "$JQ" .gossip.bytes_sent)
                echo $(( (b1 - $(cat "$T/$h.b0")) / idle_s )) >> "$T/idle"
        done
        : > "$T/rss"
        : > "$T/pss"
        : > "$T/priv"
        for h in $hosts; do
                awk '/^VmRSS:/ { print $2 }' "/proc/$(cat "$T/$h.pid")/status" >> "$T/rss"
                awk '/^Pss:/ { print $2 }' "/proc/$(cat "$T/$h.pid")/smaps_rollup" >> "$T/pss"
                awk '/^Private_(Clean|Dirty):/ { s += $2 } END { print s }' \
                        "/proc/$(cat "$T/$h.pid")/smaps_rollup" >> "$T/priv"
        done
        printf '   idle traffic sent per agent: mean %s B/s, max %s B/s\n' \
                "$(awk '{ s += $1 } END { printf "%.0f", s / NR }' "$T/idle")" "$(integ_pct 100 < "$T/idle")"
        # RSS counts the shared libraries' pages in full (libc and libsqlite3
        # alone are ~2.7 MB); PSS shares them out; private is this agent's own.
        printf '   agentd memory per agent (max): RSS %s kB, PSS %s kB, private %s kB\n' \
                "$(integ_pct 100 < "$T/rss")" "$(integ_pct 100 < "$T/pss")" "$(integ_pct 100 < "$T/priv")"

        : > "$T/all"
        : > "$T/each"
        run=1
        while [ $run -le "$runs" ]; do
                # Never the seed: the others rejoin through it.
                victim=n$(( (run - 1) % (size - 1) + 2 ))
                pid=$(cat "$T/$victim.pid")
                tkill=$(integ_now_us)
                kill -KILL "$pid"
                wait "$pid" 2>/dev/null
                INTEG_PIDS=$(echo "$INTEG_PIDS" | tr ' ' '\n' | grep -vx "$pid" | tr '\n' ' ')
                : > "$T/run"
                for _ in $(seq 1200); do
                        : > "$T/run"
                        missing=0
                        for h in $hosts; do
                                [ "$h" = "$victim" ] && continue
                                ts=$(ctl "$h" --json events --kind member_dead --since 10m 2>/dev/null |
                                        "$JQ" --arg v "$victim" --argjson t "$tkill" \
                                        '[.events[] | select(.subject == $v and .ts_us >= $t) | .ts_us] | min // empty')
                                if [ -z "$ts" ]; then
                                        missing=1
                                        break
                                fi
                                echo $((ts - tkill)) >> "$T/run"
                        done
                        [ $missing = 0 ] && break
                        sleep 0.2
                done
                [ $missing = 0 ] || fail "run $run: not every survivor declared $victim dead within 4 minutes"
                cat "$T/run" >> "$T/each"
                worst=$(integ_pct 100 < "$T/run")
                echo "$worst" >> "$T/all"
                printf '   run %d: %s killed, every survivor knew after %s (first %s)\n' "$run" "$victim" \
                        "$(integ_ms "$worst")" "$(integ_ms "$(integ_pct 0 < "$T/run")")"
                # Back in, and whole again, before the next kill.
                start "$victim"
                wait_all_alive "$size"
                run=$((run + 1))
        done
        printf '   detection, every survivor: p50 %s, p99 %s (%d runs)\n' \
                "$(integ_ms "$(integ_pct 50 < "$T/all")")" "$(integ_ms "$(integ_pct 99 < "$T/all")")" "$runs"
        printf '   detection, each survivor:  p50 %s, p99 %s (%d detections)\n' \
                "$(integ_ms "$(integ_pct 50 < "$T/each")")" "$(integ_ms "$(integ_pct 99 < "$T/each")")" "$(wc -l < "$T/each")"

        for h in $hosts; do
                pid=$(cat "$T/$h.pid")
                kill -TERM "$pid" 2>/dev/null
        done
        for h in $hosts; do
                pid=$(cat "$T/$h.pid")
                wait "$pid" 2>/dev/null
                INTEG_PIDS=$(echo "$INTEG_PIDS" | tr ' ' '\n' | grep -vx "$pid" | tr '\n' ' ')
                rm -rf "${T:?}/$h" "$T/$h.conf" "$T/$h.pid" "$T/agentd-$h.log"
        done
}

echo "failure detection (kill -9 until every survivor declares it dead):"
for s in $sizes; do
        bench_size "$s"
done
exit 0
