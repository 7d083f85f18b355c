#!/bin/bash
# slate run: cgroup limits and teardown. The limits are written to the
# instance's cgroup (host view); a fork bomb stops at the pids limit, a
# memory hog is killed inside its cgroup, a tmpfs fill ends in ENOSPC, and
# the host is unaffected each time; when an instance ends, or when slate
# itself is killed with SIGKILL, nothing of it remains (after the next
# slate command, for the cgroup and scratch dir of a killed slate).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/run-lib.sh"

# cgroup_dir CONTROLLER NAME: the instance's (exactly one) cgroup there.
cgroup_dir() {
	local d
	d=$(instance_entries "$CGROUP_ROOT/$1/slate" "$2")
	[ -n "$d" ] && [ "$(echo "$d" | wc -l)" -eq 1 ] || { echo "no single $1 cgroup for $2: $d" >&2; return 1; }
	echo "$d"
}

host_can_fork() {
	local i
	for i in $(seq 20); do /bin/true || return 1; done
	test "$(echo ok | cat)" = ok
}

test_expect_success 'setup: the test bundle; the host uses cgroup v1 memory, pids, cpu here' '
	run_setup &&
	probe -- exit 0 &&
	for c in memory pids cpu; do test -d "$CGROUP_ROOT/$c"; done
'
require_bundle

test_expect_success 'limits reach the cgroup: --memory 64M (no swap), --pids 30, --cpus 0.5; the CMD is inside' '
	trap bg_stop_all EXIT
	slate_bg "$TEST_TMP/lim.out" --name limits --memory 64M --pids 30 --cpus 0.5 "$SITE" -- "$PROBE" sleep 30
	wait_for_line "$TEST_TMP/lim.out" "^sleeping 30$"
	init=$(instance_init "$BG_PID")
	cmd=$(pgrep -P "$init")
	mem=$(cgroup_dir memory limits)
	pids=$(cgroup_dir pids limits)
	cpu=$(cgroup_dir cpu limits)
	test "$(cat "$mem/memory.limit_in_bytes")" -eq $((64 << 20))
	if [ -f "$mem/memory.memsw.limit_in_bytes" ]; then
		test "$(cat "$mem/memory.memsw.limit_in_bytes")" -eq $((64 << 20))
	fi
	test "$(cat "$pids/pids.max")" -eq 30
	test "$(cat "$cpu/cpu.cfs_quota_us")" -eq $(($(cat "$cpu/cpu.cfs_period_us") / 2))
	for d in "$mem" "$pids" "$cpu"; do
		grep -qx "$init" "$d/cgroup.procs" || { echo "init not in $d" >&2; exit 1; }
		grep -qx "$cmd" "$d/cgroup.procs" || { echo "CMD not in $d" >&2; exit 1; }
	done
	test "$(grep -c . "$pids/cgroup.procs")" -eq 2
	pidns=$(readlink /proc/$init/ns/pid)
	kill -KILL "$BG_PID"
	wait "$BG_PID" || true
	assert_pidns_empty "$pidns"
'

test_expect_success 'default limits: pids 1024, memory 1G, no CPU quota' '
	trap bg_stop_all EXIT
	slate_bg "$TEST_TMP/def.out" --name defaults "$SITE" -- "$PROBE" sleep 30
	wait_for_line "$TEST_TMP/def.out" "^sleeping 30$"
	init=$(instance_init "$BG_PID")
	test "$(cat "$(cgroup_dir pids defaults)/pids.max")" -eq 1024
	test "$(cat "$(cgroup_dir memory defaults)/memory.limit_in_bytes")" -eq $((1 << 30))
	test "$(cat "$(cgroup_dir cpu defaults)/cpu.cfs_quota_us")" -eq -1
	pidns=$(readlink /proc/$init/ns/pid)
	kill -KILL "$BG_PID"
	wait "$BG_PID" || true
	assert_pidns_empty "$pidns"
	probe -- exit 0
	assert_instance_gone limits
	assert_instance_gone defaults
'

test_expect_success 'fork bomb: stopped by --pids 30 (EAGAIN); the host still forks; nothing left' '
	probe --name bomb --pids 30 -- forkbomb 200 5 >"$TEST_TMP/bomb" &&
	grep -qx "fork_error EAGAIN" "$TEST_TMP/bomb" &&
	forks=$(awk "\$1 == \"forks\" { print \$2 }" "$TEST_TMP/bomb") &&
	test "$forks" -gt 0 && test "$forks" -lt 30 &&
	grep -qx "reaped $forks" "$TEST_TMP/bomb" &&
	host_can_fork &&
	assert_instance_gone bomb
'

test_expect_success 'memory hog: killed at --memory 64M inside its cgroup (exit 137); the host is fine; nothing left' '
	rc=0
	probe --name hog --memory 64M -- memhog 512 >"$TEST_TMP/hog" || rc=$?
	test "$rc" -eq 137 || { echo "exit $rc, want 137" >&2; cat "$TEST_TMP/hog" >&2; exit 1; }
	if grep -qx "memhog done" "$TEST_TMP/hog"; then echo "the hog got its 512 MiB" >&2; exit 1; fi
	last=$(awk "\$1 == \"touched\" { n = \$2 } END { print n + 0 }" "$TEST_TMP/hog")
	test "$last" -le 64
	host_can_fork
	assert_instance_gone hog
'

test_expect_success 'tmpfs fill: --tmpfs-size 8M ends in ENOSPC, in /tmp and in a writable path; nothing left' '
	probe --name fill --tmpfs-size 8M -- fill /tmp/f 64 >"$TEST_TMP/fill" &&
	grep -qx "fill_error ENOSPC" "$TEST_TMP/fill" &&
	written=$(awk "\$1 == \"written\" { print \$2 }" "$TEST_TMP/fill") &&
	test "$written" -le $((8 << 20)) &&
	probe --name fill --tmpfs-size 8M -- fill /app/storage/f 64 >"$TEST_TMP/fill2" &&
	grep -qx "fill_error ENOSPC" "$TEST_TMP/fill2" &&
	assert_instance_gone fill
'

test_expect_success 'SIGKILL of slate mid-run: the instance dies within seconds; the next command removes the rest' '
	trap bg_stop_all EXIT
	slate_bg "$TEST_TMP/killed.out" --name killed "$SITE" -- "$PROBE" sleep 30
	wait_for_line "$TEST_TMP/killed.out" "^sleeping 30$"
	init=$(instance_init "$BG_PID")
	cmd=$(pgrep -P "$init")
	pidns=$(readlink /proc/$init/ns/pid)
	kill -KILL "$BG_PID"
	wait "$BG_PID" || true
	assert_pidns_empty "$pidns"
	for p in $init $cmd; do
		if kill -0 "$p" 2>/dev/null; then echo "pid $p survived" >&2; exit 1; fi
	done
	# The next slate command (any run) cleans what the killed one left.
	probe -- exit 0
	assert_instance_gone killed
'

test_expect_success 'nothing is left of any instance above' '
	for n in limits defaults bomb hog fill killed craft-site; do assert_instance_gone "$n"; done &&
	test -z "$(ls -A "$ROOT/mnt")"
'

test_done
