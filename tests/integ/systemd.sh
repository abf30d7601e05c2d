# The systemd adapter (src/io/systemd.c) against a real `systemd --user`
# manager in a private test host: tests/integ/test_systemd runs inside it.

. "$top_srcdir/tests/integ/lib.sh"
. "$top_srcdir/tests/integ/sdhost.sh"

sdhost_need
: "${top_builddir:?top_builddir must point to the build directory (make check sets it)}"
TEST_SYSTEMD=$top_builddir/tests/integ/test_systemd
[ -x "$TEST_SYSTEMD" ] || fail "$TEST_SYSTEMD is not built (make tests/integ/test_systemd)"

integ_tmpdir
sdhost_start h1

sdhost_unit h1 sleeper.service '[Service]
ExecStart=/bin/sleep 100000'
sdhost_unit h1 failer.service '[Service]
Type=oneshot
ExecStart=/bin/false'
sdhost_unit h1 always.service '[Service]
ExecStart=/bin/sleep 100000
Restart=always
RestartSec=1s'
sdhost_unit h1 reexec.service '[Service]
ExecStart=/bin/sleep 100000'
sdhost_unit h1 buskill.service '[Service]
ExecStart=/bin/sleep 100000'

# The binary may be a libtool wrapper or sanitized: run it as it is, from the
# host's mount namespace (which sees the build tree: only /run is private).
sdhost_exec h1 "$TEST_SYSTEMD"
rc=$?
[ $rc = 0 ] || fail "test_systemd failed (exit $rc)"
pass "systemd adapter against a private user manager"
