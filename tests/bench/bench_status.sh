#!/bin/sh
# agentctl status round trip, as an operator or a monitoring script sees it:
# process start, connect, request, reply, output. Prints figures; never fails
# on time. BENCH_STATUS_RUNS sets the number of runs (default 200).

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/integ/lib.sh"

runs=${BENCH_STATUS_RUNS:-200}
integ_tmpdir
conf=$(integ_write_config bench)
# The daemon's debug log would be part of what is measured.
sed -i 's/level = "debug"/level = "notice"/' "$conf"
integ_start_agentd "$conf"

# Warm the page cache and the daemon before measuring.
for _ in 1 2 3 4 5; do
        "$AGENTCTL" status >/dev/null || fail "agentctl status failed"
done

# times_ns CMD...: runs CMD $runs times, one duration (ns) per line.
times_ns() {
        i=0
        while [ "$i" -lt "$runs" ]; do
                t0=$(date +%s%N)
                "$@" >/dev/null || fail "$* failed"
                t1=$(date +%s%N)
                echo $((t1 - t0))
                i=$((i + 1))
        done
}

# report LABEL: p50, p99, max and mean in ms of the durations on stdin.
report() {
        sort -n | awk -v label="$1" '
                { v[NR] = $1; sum += $1 }
                END {
                        if (NR == 0) exit 1
                        p50 = v[int((NR - 1) * 0.50) + 1]
                        p99 = v[int((NR - 1) * 0.99) + 1]
                        printf "%-28s runs %5d  p50 %7.3f ms  p99 %7.3f ms  max %7.3f ms  mean %7.3f ms\n",
                               label, NR, p50 / 1e6, p99 / 1e6, v[NR] / 1e6, sum / NR / 1e6
                }'
}

echo "agentctl round trips (process spawn included; the timer's own overhead is the baseline):"
times_ns /bin/true | report "baseline (/bin/true)"
times_ns "$AGENTCTL" status | report "agentctl status"
times_ns "$AGENTCTL" --json status | report "agentctl --json status"
times_ns "$AGENTCTL" --json events --limit 100 | report "agentctl --json events"
exit 0
