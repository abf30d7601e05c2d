#!/bin/sh
# Self-healing figures, measured against a real `systemd --user` manager in a
# private test host (tests/integ/sdhost.sh). Prints p50/p99; never fails on
# time. Needs root (the test host); without it, says so and exits 0.
#
#  1. Induced failures (BENCH_HEAL_FAILURES, default 100): one instance with
#     an http check (interval 100ms, fall 2) whose current process is made to
#     answer 500. agentd's debug log gives, per restart, the time from the
#     failing check's verdict to RestartUnit sent and to the new MainPID
#     active (CLOCK_MONOTONIC µs measured inside agentd).
#  2. Hung service (BENCH_HEAL_HANGS, default 20): interval 250ms, timeout
#     200ms, fall 3; the process is SIGSTOPped; time from the SIGSTOP to a new
#     process answering HTTP 200 ("back in service", polled every ~10 ms from
#     outside) and to agentd seeing the new MainPID active.
#  3. Cost (BENCH_HEAL_CPU_SECONDS, default 30): agentd supervising 50 healthy
#     instances with http checks every 500ms, log level info: CPU (utime +
#     stime from /proc/PID/stat over the window, as % of one core) and RSS.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$(pwd)}"
: "${JQ:=jq}"
export JQ
. "$top_srcdir/tests/integ/lib.sh"
. "$top_srcdir/tests/integ/sdhost.sh"
. "$top_srcdir/tests/integ/heal_lib.sh"

if [ "$(id -u)" != 0 ]; then
        echo "bench_heal: skipped (needs root for a private systemd test host)"
        exit 0
fi
failures=${BENCH_HEAL_FAILURES:-100}
hangs=${BENCH_HEAL_HANGS:-20}
cpu_seconds=${BENCH_HEAL_CPU_SECONDS:-30}
heal_setup

# report LABEL UNIT: p50, p99, max, mean of the numbers on stdin (in UNIT).
report() {
        sort -n | awk -v label="$1" -v unit="$2" '
                { v[NR] = $1; sum += $1 }
                END {
                        if (NR == 0) { printf "%-36s no samples\n", label; exit 0 }
                        p50 = v[int((NR - 1) * 0.50) + 1]
                        p99 = v[int((NR - 1) * 0.99) + 1]
                        printf "%-36s n %4d  p50 %9.3f %s  p99 %9.3f %s  max %9.3f %s  mean %9.3f %s\n",
                               label, NR, p50, unit, p99, unit, v[NR], unit, sum / NR, unit
                }'
}

curl_ok() {
        ip netns exec "$HEAL_NETNS" curl -s -o /dev/null -m 0.2 -w '%{http_code}' "http://127.0.0.1:$1/health" 2>/dev/null
}

# --- 1 and 2: induced failures and hangs ------------------------------------------
heal_unit fail.service "--port 8080 --control $T/fail.ctl"
heal_unit hang.service "--port 8081"
sdhost_systemctl h1 start fail.service hang.service || fail "cannot start the bench units"
conf=$(heal_config 'services = (
    { name = "fail"; unit = "fail.service"; address = "127.0.0.1"; port = 8080;
      check = { type = "http"; path = "/health"; interval = "100ms"; timeout = "80ms"; rise = 1; fall = 2; };
      restart = { limit = 1000; window = "1h"; backoff = "1ms"; backoff_max = "1ms"; };
      breaker = { failures = 1000; }; },
    { name = "hang"; unit = "hang.service"; address = "127.0.0.1"; port = 8081;
      check = { type = "http"; path = "/health"; interval = "250ms"; timeout = "200ms"; rise = 1; fall = 3; };
      restart = { limit = 1000; window = "1h"; backoff = "1ms"; backoff_max = "1ms"; };
      breaker = { failures = 1000; }; } );')
heal_start_agentd "$conf"
heal_wait_svc fail health healthy 30 || fail "fail.service never healthy"
heal_wait_svc hang health healthy 30 || fail "hang.service never healthy"

echo "bench_heal: $failures induced failures (http 500, interval 100ms, fall 2)..."
t_start=$(date +%s)
i=0
while [ "$i" -lt "$failures" ]; do
        # Only this process answers 500 (an empty pid would make every process fail).
        pid=$(heal_main_pid fail.service)
        case $pid in ''|0|*[!0-9]*) sleep 0.05; continue ;; esac
        echo "error $pid" > "$T/fail.ctl"
        ok=0
        for _ in $(seq 300); do
                new=$(heal_main_pid fail.service)
                if [ -n "$new" ] && [ "$new" != 0 ] && [ "$new" != "$pid" ] && [ "$(curl_ok 8080)" = 200 ]; then
                        ok=1
                        break
                fi
                sleep 0.02
        done
        [ $ok = 1 ] || fail "failure $i was not healed within ~10 s"
        i=$((i + 1))
done
t_fail=$(( $(date +%s) - t_start ))

echo "bench_heal: $hangs hung services (SIGSTOP, interval 250ms, timeout 200ms, fall 3)..."
: > "$T/hang_serving.ns"
: > "$T/hang_active.ns"
i=0
while [ "$i" -lt "$hangs" ]; do
        heal_wait_svc hang health healthy 30 || fail "hang.service not healthy before hang $i"
        pid=$(heal_main_pid hang.service)
        case $pid in ''|0|*[!0-9]*) sleep 0.05; continue ;; esac
        t0=$(date +%s%N)
        kill -STOP "$pid"
        ok=0
        for _ in $(seq 1000); do
                if [ "$(curl_ok 8081)" = 200 ]; then
                        ok=1
                        break
                fi
                sleep 0.01
        done
        t1=$(date +%s%N)
        [ $ok = 1 ] || fail "hang $i was not healed within ~20 s"
        echo $((t1 - t0)) >> "$T/hang_serving.ns"
        # agentd's own stamp (realtime) of the new MainPID being active.
        for _ in $(seq 100); do
                line=$(grep "hang.service: new main pid .* active" "$T/agentd-h1.log" | tail -n 1)
                ta=$(date -d "$(echo "$line" | cut -d' ' -f1)" +%s%N 2>/dev/null)
                if [ -n "$ta" ] && [ "$ta" -gt "$t0" ]; then
                        echo $((ta - t0)) >> "$T/hang_active.ns"
                        break
                fi
                sleep 0.02
        done
        i=$((i + 1))
done

grep -o "fail.service: RestartUnit sent verdict_to_sent_us=[0-9]*" "$T/agentd-h1.log" | sed 's/.*=//' > "$T/sent.us"
grep -o "fail.service: new main pid [0-9]* active verdict_to_active_us=[0-9]*" "$T/agentd-h1.log" |
        sed 's/.*=//' > "$T/active.us"
heal_kill_agentd TERM

echo
echo "Induced failures: $failures restarts in ${t_fail}s ($(wc -l < "$T/sent.us") RestartUnit calls logged)"
awk '{ print $1 / 1000 }' "$T/sent.us" | report "verdict -> RestartUnit sent" ms
awk '{ print $1 / 1000 }' "$T/active.us" | report "verdict -> new MainPID active" ms
echo "Hung service (interval 250ms, timeout 200ms, fall 3): $hangs SIGSTOPs"
awk '{ print $1 / 1e6 }' "$T/hang_active.ns" | report "SIGSTOP -> new MainPID active" ms
awk '{ print $1 / 1e6 }' "$T/hang_serving.ns" | report "SIGSTOP -> back in service (HTTP 200)" ms

# --- 3: the cost of supervising 50 instances ------------------------------------------
services=""
n=1
while [ $n -le 50 ]; do
        port=$((9000 + n))
        heal_unit "svc$n.service" "--port $port"
        services="$services${services:+,}
    { name = \"svc$n\"; unit = \"svc$n.service\"; address = \"127.0.0.1\"; port = $port;
      check = { type = \"http\"; path = \"/health\"; interval = \"500ms\"; timeout = \"400ms\"; }; }"
        n=$((n + 1))
done
units=$(seq 1 50 | sed 's/.*/svc&.service/' | tr '\n' ' ')
sdhost_systemctl h1 stop fail.service hang.service
# shellcheck disable=SC2086
sdhost_systemctl h1 start $units || fail "cannot start the 50 units"
rm -rf "$T/state"
conf=$(heal_config "services = ($services );")
sed -i 's/level = "debug"/level = "info"/' "$conf"
heal_start_agentd "$conf"
for _ in $(seq 300); do
        [ "$("$AGENTCTL" --json services | "$JQ" '[.services[] | select(.health == "healthy")] | length')" = 50 ] && break
        sleep 0.1
done
healthy=$("$AGENTCTL" --json services | "$JQ" '[.services[] | select(.health == "healthy")] | length')
[ "$healthy" = 50 ] || fail "only $healthy of 50 instances healthy"
# Settle, then measure over the window.
sleep 2
hz=$(getconf CLK_TCK)
ticks() { awk '{ print $14 + $15 }' "/proc/$AGENTD_PID/stat"; }
c0=$(ticks)
w0=$(date +%s%N)
sleep "$cpu_seconds"
c1=$(ticks)
w1=$(date +%s%N)
rss=$(awk '/^VmRSS/ { print $2, $3 }' "/proc/$AGENTD_PID/status")
hwm=$(awk '/^VmHWM/ { print $2, $3 }' "/proc/$AGENTD_PID/status")
checks=$("$AGENTCTL" --json services | "$JQ" '[.services[].health] | length')
heal_kill_agentd TERM
awk -v c=$((c1 - c0)) -v hz="$hz" -v w=$((w1 - w0)) -v rss="$rss" -v hwm="$hwm" -v n="$checks" 'BEGIN {
        secs = w / 1e9
        printf "Supervising %d instances (http check every 500ms) for %.1f s:\n", n, secs
        printf "  agentd CPU %.3f%% of one core (%d ticks at %d Hz), RSS %s (peak %s)\n",
               100 * c / hz / secs, c, hz, rss, hwm
}'
exit 0
