#!/bin/sh
# agentd --check-config against the shipped example and a few broken files:
# exit 0 and no complaint for the good one, exit 1 and exactly one
# "FILE:LINE: message" line on stderr for each broken one.
#
# Environment (set by make check): AGENTD, the agentd binary; top_srcdir.

set -u

if [ -z "${AGENTD:-}" ]; then
        echo "SKIP: AGENTD is not set (run through make check)" >&2
        exit 77
fi
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"

T=$(mktemp -d /tmp/agentd-check-config.XXXXXX) || exit 99
trap 'rm -rf "$T"' EXIT

failures=0

fail() {
        echo "FAIL: $*" >&2
        failures=$((failures + 1))
}

# check_good FILE: exit 0, nothing on stderr.
check_good() {
        "$AGENTD" --check-config --config "$1" >"$T/out" 2>"$T/err"
        rc=$?
        if [ "$rc" -ne 0 ]; then
                fail "$1: exit $rc, want 0; stderr: $(cat "$T/err")"
                return
        fi
        if [ -s "$T/err" ]; then
                fail "$1: unexpected stderr: $(cat "$T/err")"
                return
        fi
        echo "ok: $1: $(cat "$T/out")"
}

# check_bad NAME WANT: writes stdin to $T/NAME, expects exit 1 and stderr
# exactly "$T/NAME:WANT".
check_bad() {
        name=$1
        want="$T/$name:$2"
        cat >"$T/$name"
        "$AGENTD" --check-config --config "$T/$name" >"$T/out" 2>"$T/err"
        rc=$?
        got=$(cat "$T/err")
        if [ "$rc" -ne 1 ]; then
                fail "$name: exit $rc, want 1; stderr: $got"
        elif [ "$got" != "$want" ]; then
                fail "$name: stderr mismatch
    want: $want
    got:  $got"
        elif [ -s "$T/out" ]; then
                fail "$name: unexpected stdout: $(cat "$T/out")"
        else
                echo "ok: $name: $got"
        fi
}

check_good "$top_srcdir/etc/agentd.conf"

check_bad syntax.conf '3: syntax error' <<'EOF'
node = { name = "n1"; bind = "127.0.0.1:7946"; };
cluster = { name = "demo"; };
log = { level = ; };
EOF

check_bad unknown-key.conf '2: unknown key "nmae" in node (did you mean "name"?)' <<'EOF'
node = { bind = "127.0.0.1:7946";
        nmae = "n1"; };
cluster = { name = "demo"; };
EOF

check_bad duration.conf '6: services[0].check.interval: bad duration "10 parsecs" (use e.g. "250ms", "10s")' <<'EOF'
node = { name = "n1"; bind = "127.0.0.1:7946"; };
cluster = { name = "demo"; };
services = (
        { name = "web"; unit = "web.service"; address = "127.0.0.1"; port = 8080;
          check = { type = "http";
                    interval = "10 parsecs"; }; }
);
EOF

check_bad type.conf '1: node.voter: expected a boolean' <<'EOF'
node = { name = "n1"; bind = "127.0.0.1:7946"; voter = 1; };
cluster = { name = "demo"; };
EOF

check_bad range.conf '3: store.events_max_rows: 0 is out of range (1..1000000000)' <<'EOF'
node = { name = "n1"; bind = "127.0.0.1:7946"; };
cluster = { name = "demo"; };
store = { events_max_rows = 0; };
EOF

check_bad address.conf '1: node.bind: bad address "127.0.0.1" (use "IP:port", e.g. "127.0.0.1:7946" or "[::1]:7946")' <<'EOF'
node = { name = "n1"; bind = "127.0.0.1"; };
cluster = { name = "demo"; };
EOF

check_bad duplicate.conf '5: services[1].name: duplicate service name "web" (also services[0], line 4)' <<'EOF'
node = { name = "n1"; bind = "127.0.0.1:7946"; };
cluster = { name = "demo"; };
services = (
        { name = "web"; unit = "web@1.service"; address = "127.0.0.1"; port = 8081; },
        { name = "web"; unit = "web@2.service"; address = "127.0.0.1"; port = 8082; }
);
EOF

check_bad replicas.conf '5: services[0].replicas: replicas needs a template unit such as "web@.service" or "web@8080.service"' <<'EOF'
node = { name = "n1"; bind = "127.0.0.1:7946"; };
cluster = { name = "demo"; };
services = (
        { name = "web"; unit = "web.service"; address = "127.0.0.1"; port = 8080;
          replicas = 2; }
);
EOF

check_bad replica-ports.conf '5: services[0].replica_ports: MIN 9000 is above MAX 8100' <<'EOF'
node = { name = "n1"; bind = "127.0.0.1:7946"; };
cluster = { name = "demo"; };
services = (
        { name = "web"; unit = "web@.service"; address = "127.0.0.1"; port = 8080; replicas = 2;
          replica_ports = [ 9000, 8100 ]; }
);
EOF

check_bad election.conf '4: cluster.election: election timeout must be at least the lease (timeout_min 500ms, timeout_max 3s, heartbeat 100ms, lease 1s, lease_guard 50ms)' <<'EOF'
node = { name = "n1"; bind = "127.0.0.1:7946"; };
cluster = { name = "demo";
        election = {
                timeout_min = "500ms"; }; };
EOF

check_bad missing.conf '1: missing required group "cluster"' <<'EOF'
node = { name = "n1"; bind = "127.0.0.1:7946"; };
EOF

# A file that does not exist: no line applies.
"$AGENTD" --check-config --config "$T/absent.conf" >"$T/out" 2>"$T/err"
rc=$?
want="$T/absent.conf: cannot open: No such file or directory"
if [ "$rc" -ne 1 ] || [ "$(cat "$T/err")" != "$want" ]; then
        fail "absent.conf: exit $rc, stderr: $(cat "$T/err") (want 1 and: $want)"
else
        echo "ok: absent.conf: $want"
fi

if [ "$failures" -ne 0 ]; then
        echo "$failures check(s) failed" >&2
        exit 1
fi
exit 0
