#!/bin/sh
# Self-healing, issue tests 2 and 3: a unit that dies at once on every start.
#   2. agentd restarts it following the backoff; past restart.limit the
#      instance is quarantined and its breaker opens -- exact counts.
#   3. agentd is killed with SIGKILL in the middle of that crash loop and
#      started again: the persisted limiter, backoff and breaker continue
#      (no burst of restarts), and what `agentctl breakers` shows after a
#      second SIGKILL is what was persisted.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integ/lib.sh"
. "$top_srcdir/tests/integ/sdhost.sh"
. "$top_srcdir/tests/integ/heal_lib.sh"

heal_setup

# Exits 1 at once, every time it is started (Type=simple: the start job is
# "done" as soon as it is forked; then the unit fails).
heal_unit crash.service "--port 8081 --mode exit"
sdhost_systemctl h1 start crash.service

# limit 3 per hour: the limiter never refills during the test, so exactly 3
# restarts are made; backoff 1s doubling (equal jitter: the k-th wait is in
# [2^(k-1)/2, 2^(k-1)] s); the quarantine retry (backoff_max) is an hour away.
conf=$(heal_config 'services = ( { name = "crash"; unit = "crash.service"; address = "127.0.0.1"; port = 8081;
        check = { type = "systemd"; interval = "100ms"; rise = 1; fall = 2; };
        restart = { limit = 3; window = "1h"; backoff = "1s"; backoff_max = "1h"; };
        breaker = { failures = 4; open_for = "1h"; half_open_probes = 1; }; } );')
heal_start_agentd "$conf"

# --- 2a. the crash loop, and SIGKILL of agentd after the 2nd restart -----------
heal_wait_count unit_restarted 2 60 crash.service || fail "fewer than 2 restarts within 60 s"
heal_kill_agentd KILL
n_at_kill=$("$AGENTCTL" --json events --db "$T/state/state.db" --kind unit_restarted |
        "$JQ" '.events | length')
[ "$n_at_kill" -ge 2 ] && [ "$n_at_kill" -le 3 ] || fail "$n_at_kill restarts recorded at the kill, want 2 (or 3)"
pass "agentd killed (SIGKILL) after $n_at_kill restarts of the crash loop"

heal_start_agentd "$conf"
heal_wait_count instance_quarantined 1 60 crash.service || fail "not quarantined within 60 s after the agent restart"
# Give a burst every chance to show itself before counting.
sleep 2
n=$(heal_count unit_restarted crash.service)
[ "$n" = 3 ] || fail "$n restarts in total, want exactly 3 (restart.limit): $(heal_events unit_restarted)"
[ "$(heal_count instance_quarantined crash.service)" = 1 ] || fail "instance_quarantined not exactly once"
[ "$(heal_count breaker_opened crash.service)" = 1 ] || fail "breaker_opened not exactly once: $(heal_events breaker_opened)"
heal_events instance_quarantined crash.service | "$JQ" -e '.[0].detail | test("quarantined after 3 restarts: rate_limited, retry in (59m|1h)")' \
        >/dev/null || fail "unexpected instance_quarantined: $(heal_events instance_quarantined)"
pass "exactly 3 restarts, then quarantined once, breaker opened once"

# Attempts 1, 2, 3 in order, each job done.
heal_events unit_restarted crash.service | "$JQ" -e '[.[].detail | capture("attempt (?<a>[0-9]+); job done").a] == ["1","2","3"]' \
        >/dev/null || fail "restarts are not attempts 1, 2, 3 with job done: $(heal_events unit_restarted)"
# The backoff between them: the 2nd waits >= 0.5 s after the 1st, the 3rd >= 1 s
# after the 2nd (times of the job results, so allow 0.2 s of job latency).
heal_events unit_restarted crash.service | "$JQ" -e '
        [.[].ts_us] as $t | ($t[1] - $t[0]) >= 300000 and ($t[2] - $t[1]) >= 800000' >/dev/null ||
        fail "restarts do not follow the backoff: $(heal_events unit_restarted | "$JQ" -c '[.[].ts]')"
[ "$(heal_count restart_suppressed crash.service)" -ge 2 ] || fail "no restart_suppressed (backoff) events"
heal_events restart_suppressed crash.service | "$JQ" -e 'map(select(.detail | startswith("suppressed: backoff for"))) | length >= 2' \
        >/dev/null || fail "no 'suppressed: backoff' events: $(heal_events restart_suppressed)"
pass "restarts follow the backoff (attempts 1..3, waits >= 0.5 s and 1 s, restart_suppressed: backoff)"

[ "$(heal_svc crash quarantined)" = true ] || fail "agentctl services does not show crash quarantined"
[ "$(heal_svc crash restarts_in_window)" = 3 ] || fail "restarts_in_window is not 3: $(heal_svc crash restarts_in_window)"
[ "$(heal_svc crash in_rotation)" = false ] || fail "a quarantined instance is still in rotation"
[ "$(heal_svc crash breaker)" = open ] || fail "agentctl services does not show the breaker open"
"$AGENTCTL" services | grep -q "crash\.service  *unhealthy (quarantined)\|crash\.service  *unknown (quarantined)" ||
        fail "agentctl services text lacks '(quarantined)': $("$AGENTCTL" services)"
pass "agentctl services: quarantined, 3/3 restarts in window, out of rotation, breaker open"

# --- 3. SIGKILL again: the persisted state is what agentctl breakers shows ------
"$AGENTCTL" --json breakers > "$T/breakers1.json" || fail "agentctl breakers failed"
"$JQ" -e '.breakers[0] | .state == "open" and .times_opened == 1 and .threshold == 4 and (.opened_at_us > 0)' \
        "$T/breakers1.json" >/dev/null || fail "unexpected breakers before the kill: $(cat "$T/breakers1.json")"
heal_kill_agentd KILL
heal_start_agentd "$conf"
"$AGENTCTL" --json breakers > "$T/breakers2.json" || fail "agentctl breakers failed after the restart"
"$JQ" -e -n --slurpfile a "$T/breakers1.json" --slurpfile b "$T/breakers2.json" '
        $a[0].breakers[0] as $x | $b[0].breakers[0] as $y |
        $y.state == $x.state and $y.times_opened == $x.times_opened and $y.threshold == $x.threshold and
        (($y.opened_at_us - $x.opened_at_us) | fabs) < 1000000 and
        (($y.next_half_open_in_us - $x.next_half_open_in_us) | fabs) < 600000000' >/dev/null ||
        fail "breaker state not restored: before $(cat "$T/breakers1.json") after $(cat "$T/breakers2.json")"
"$AGENTCTL" breakers | grep -q "^crash  *crash\.service  *open " || fail "agentctl breakers text: $("$AGENTCTL" breakers)"
pass "agentctl breakers after SIGKILL + start shows the persisted breaker (open, same opened_at)"

[ "$(heal_svc crash quarantined)" = true ] || fail "quarantine not restored"
[ "$(heal_svc crash restarts_in_window)" = 3 ] || fail "limiter not restored: $(heal_svc crash restarts_in_window)"
# The restarted agent sees the unit failing again and holds back: no restart, one
# "quarantined" suppression, within a few seconds of checks.
heal_wait_count restart_suppressed 1 30 crash.service || fail "no restart_suppressed after the restart"
for _ in $(seq 30); do
        n=$("$AGENTCTL" --json events --kind restart_suppressed --limit 10000 |
                "$JQ" '[.events[] | select(.unit == "crash.service" and (.detail | startswith("suppressed: quarantined for")))] | length')
        [ "$n" -ge 1 ] && break
        sleep 0.1
done
[ "$n" -ge 1 ] || fail "no 'suppressed: quarantined' after the restart: $(heal_events restart_suppressed)"
sleep 2
[ "$(heal_count unit_restarted crash.service)" = 3 ] || fail "restarts after the second agent restart: $(heal_events unit_restarted)"
[ "$(heal_count instance_quarantined crash.service)" = 1 ] || fail "quarantined again instead of restored"
pass "no burst after restart: still 3 restarts, quarantine restored"
heal_kill_agentd TERM
exit 0
