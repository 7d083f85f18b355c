#!/bin/bash
# slate run, the basics: the privileges a CMD runs with (as the instance
# sees them in /proc/self/status and as the host sees them), --user, the
# exit status passed through, stdio, cwd, fds, the environment and
# --env/--env-file, signal forwarding, and usage errors.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/run-lib.sh"

test_expect_success 'setup: the test bundle (example site + image with the probe)' '
	run_setup
'
require_bundle

test_expect_success 'CMD: no capability at all, no_new_privs, seccomp filter, uid 33 (www-data)' '
	probe -- status >"$TEST_TMP/status" &&
	for k in CapInh CapPrm CapEff CapBnd CapAmb; do
		grep -qx "$k 0000000000000000" "$TEST_TMP/status" || { echo "$k not 0" >&2; cat "$TEST_TMP/status" >&2; exit 1; }
	done &&
	grep -qx "NoNewPrivs 1" "$TEST_TMP/status" &&
	grep -qx "Seccomp 2" "$TEST_TMP/status" &&
	grep -qx "Uid 33 33 33 33" "$TEST_TMP/status" &&
	grep -qx "Gid 33 33 33 33" "$TEST_TMP/status" &&
	grep -qx "Groups 33" "$TEST_TMP/status"
'

test_expect_success '--user root and --user 0: uid 0 inside, and still no capability' '
	for u in root 0; do
		probe --user "$u" -- status >"$TEST_TMP/status-$u" &&
		grep -qx "Uid 0 0 0 0" "$TEST_TMP/status-$u" &&
		grep -qx "Gid 0 0 0 0" "$TEST_TMP/status-$u" &&
		for k in CapInh CapPrm CapEff CapBnd CapAmb; do
			grep -qx "$k 0000000000000000" "$TEST_TMP/status-$u" ||
				{ echo "--user $u: $k not 0" >&2; cat "$TEST_TMP/status-$u" >&2; exit 1; }
		done &&
		grep -qx "NoNewPrivs 1" "$TEST_TMP/status-$u" &&
		grep -qx "Seccomp 2" "$TEST_TMP/status-$u" || exit 1
	done
'

test_expect_success '--user NAME, UID:GID from the image; unknown names and ids >= 65536 refused (exit 1)' '
	probe --user nobody -- id >"$TEST_TMP/id" &&
	grep -qx "uid 65534" "$TEST_TMP/id" && grep -qx "gid 65534" "$TEST_TMP/id" &&
	probe --user 1000:1001 -- id >"$TEST_TMP/id" &&
	grep -qx "uid 1000" "$TEST_TMP/id" && grep -qx "gid 1001" "$TEST_TMP/id" &&
	test_must_fail --code 1 probe --user no-such-user -- id >"$TEST_TMP/out" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "no-such-user" &&
	test ! -s "$TEST_TMP/out" &&
	test_must_fail --code 1 probe --user 65536 -- id >"$TEST_TMP/out" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "65536" &&
	test ! -s "$TEST_TMP/out"
'

test_expect_success 'host view of a CMD: own namespaces, host uid 1879048192+33, no capability, init 1879048192' '
	trap bg_stop_all EXIT
	slate_bg "$TEST_TMP/bg.out" --name hostview "$SITE" -- "$PROBE" sleep 30
	wait_for_line "$TEST_TMP/bg.out" "^sleeping 30$"
	init=$(instance_init "$BG_PID")
	cmd=$(pgrep -P "$init")
	test "$(echo "$cmd" | wc -l)" -eq 1
	for ns in user mnt pid uts ipc net cgroup; do
		test "$(readlink /proc/$cmd/ns/$ns)" != "$(readlink /proc/self/ns/$ns)" ||
			{ echo "the CMD shares the host $ns namespace" >&2; exit 1; }
		test "$(readlink /proc/$cmd/ns/$ns)" = "$(readlink /proc/$init/ns/$ns)"
	done
	grep -qP "^Uid:\t$((INSTANCE_UID + 33))\t$((INSTANCE_UID + 33))\t$((INSTANCE_UID + 33))\t$((INSTANCE_UID + 33))$" /proc/$cmd/status
	grep -qP "^NSpid:\t$cmd\t2$" /proc/$cmd/status
	grep -qP "^Uid:\t$INSTANCE_UID\t$INSTANCE_UID\t$INSTANCE_UID\t$INSTANCE_UID$" /proc/$init/status
	grep -qP "^NSpid:\t$init\t1$" /proc/$init/status
	# The CMD: nothing. Init: CAP_KILL only (0x20, scoped to the instance
	# user namespace), to forward signals to a CMD that runs as www-data.
	for p in $init $cmd; do
		want=0000000000000000
		[ "$p" = "$init" ] && want=0000000000000020
		for k in CapPrm CapEff CapBnd; do
			grep -qP "^$k:\t$want$" /proc/$p/status ||
				{ echo "pid $p: $k not $want" >&2; grep ^Cap /proc/$p/status >&2; exit 1; }
		done
		for k in CapInh CapAmb; do
			grep -qP "^$k:\t0000000000000000$" /proc/$p/status ||
				{ echo "pid $p: $k not 0" >&2; grep ^Cap /proc/$p/status >&2; exit 1; }
		done
		grep -qP "^NoNewPrivs:\t1$" /proc/$p/status
		grep -qP "^Seccomp:\t2$" /proc/$p/status
	done
	# The uid map: instance 0..65535 = host 1879048192..
	test "$(awk "{ print \$1, \$2, \$3 }" /proc/$cmd/uid_map)" = "0 $INSTANCE_UID 65536"
	test "$(awk "{ print \$1, \$2, \$3 }" /proc/$cmd/gid_map)" = "0 $INSTANCE_UID 65536"
	pidns=$(readlink /proc/$init/ns/pid)
	assert_pidns_uids_unprivileged "$pidns"
	kill -KILL "$BG_PID"
	assert_pidns_empty "$pidns"
'

# Exit status.
test_expect_success 'the CMD exit status is slate'"'"'s: probe exit 7 -> 7, exit 0 -> 0' '
	probe -- exit 0 &&
	test_must_fail --code 7 probe -- exit 7
'

test_expect_success 'a CMD that exits at once, 100 runs in a row: every run exits 0 (no start-up race)' '
	fails=0
	for i in $(seq 100); do
		rc=0
		probe -- exit 0 2>>"$TEST_TMP/quick.err" || rc=$?
		if [ "$rc" -ne 0 ]; then fails=$((fails + 1)); echo "run $i: exit $rc" >>"$TEST_TMP/quick.err"; fi
	done
	if [ "$fails" -ne 0 ]; then
		echo "$fails of 100 runs failed:" >&2
		sort "$TEST_TMP/quick.err" | uniq -c | sort -rn | head -n 5 >&2
		exit 1
	fi
'

test_expect_success 'a CMD killed by SIGTERM -> 143 (128+15)' '
	rc=0
	probe -- kill-self TERM || rc=$?
	test "$rc" -eq 143
'

test_expect_success 'a CMD that does not exist -> 127, with a message naming it; not executable -> 126' '
	test_must_fail --code 127 slate_run "$SITE" -- /usr/local/bin/no-such-command >"$TEST_TMP/out" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "no-such-command" &&
	test_must_fail --code 127 slate_run "$SITE" -- no-such-command-in-path 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "no-such-command-in-path" &&
	test_must_fail --code 126 slate_run "$SITE" -- /etc/passwd 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "/etc/passwd"
'

test_expect_success 'SIGTERM to slate reaches the CMD (www-data): it dies of it, slate exits 143' '
	trap bg_stop_all EXIT
	slate_bg "$TEST_TMP/term.out" --name termcmd "$SITE" -- "$PROBE" sleep 20
	wait_for_line "$TEST_TMP/term.out" "^sleeping 20$"
	init=$(instance_init "$BG_PID")
	pidns=$(readlink /proc/$init/ns/pid)
	start=$(date +%s)
	kill -TERM "$BG_PID"
	rc=0
	for i in $(seq 30); do kill -0 "$BG_PID" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$BG_PID" 2>/dev/null; then
		echo "slate still runs 3 s after SIGTERM (the CMD did not get it); init:" >&2
		grep -E "^(Uid|SigBlk|CapEff)" /proc/$init/status >&2 || true
		kill -KILL "$BG_PID"
		exit 1
	fi
	wait "$BG_PID" || rc=$?
	test "$rc" -eq 143 || { echo "exit $rc, want 143" >&2; cat "$TEST_TMP/term.out" >&2; exit 1; }
	if grep -qx slept "$TEST_TMP/term.out"; then echo "the CMD slept to its end" >&2; exit 1; fi
	assert_pidns_empty "$pidns"
	assert_instance_gone termcmd
'

test_expect_success 'SIGTERM to slate reaches a CMD run as --user root: exit 143' '
	trap bg_stop_all EXIT
	slate_bg "$TEST_TMP/term0.out" --name termroot --user root "$SITE" -- "$PROBE" sleep 20
	wait_for_line "$TEST_TMP/term0.out" "^sleeping 20$"
	kill -TERM "$BG_PID"
	for i in $(seq 30); do kill -0 "$BG_PID" 2>/dev/null || break; sleep 0.1; done
	rc=0
	kill -0 "$BG_PID" 2>/dev/null && { echo "slate still runs 3 s after SIGTERM" >&2; kill -KILL "$BG_PID"; exit 1; }
	wait "$BG_PID" || rc=$?
	test "$rc" -eq 143
	assert_instance_gone termroot
'

# stdio, cwd, fds.
test_expect_success 'stdin, stdout and stderr pass through' '
	echo hello | slate_run "$SITE" -- php -r "echo strtoupper(stream_get_contents(STDIN)); fwrite(STDERR, \"to-stderr\n\");" \
		>"$TEST_TMP/out" 2>"$TEST_TMP/err" &&
	test "$(cat "$TEST_TMP/out")" = HELLO &&
	test "$(cat "$TEST_TMP/err")" = to-stderr
'

test_expect_success 'cwd is /app, inside the root' '
	probe -- cwd >"$TEST_TMP/cwd" &&
	test "$(cat "$TEST_TMP/cwd")" = "cwd /app"
'

test_expect_success 'no fd of slate reaches the CMD: only 0, 1, 2 (even with fds open in the caller)' '
	exec 7<"$SITE" 8>"$TEST_TMP/fd8"
	probe -- fds >"$TEST_TMP/fds"
	exec 7<&- 8>&-
	test "$(cut -d" " -f2 "$TEST_TMP/fds" | tr "\n" " ")" = "0 1 2 " || { cat "$TEST_TMP/fds" >&2; exit 1; }
'

# Environment.
test_expect_success 'environment: only PATH, HOME and HOSTNAME (= --name), none of the caller'"'"'s' '
	FOO_LEAK=leaked probe --name envbox -- env >"$TEST_TMP/env" &&
	LC_ALL=C sort "$TEST_TMP/env" >"$TEST_TMP/env.sorted" &&
	printf "%s\n" "HOME=/" "HOSTNAME=envbox" \
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" >"$TEST_TMP/env.want" &&
	test_cmp "$TEST_TMP/env.want" "$TEST_TMP/env.sorted"
'

test_expect_success '--env and --env-file add (later wins), --env PATH replaces the default' '
	printf "# db\nexport DB_HOST=db.internal\r\nDB_PASS=file-secret-4f2a\nA=from-file\n" >"$TEST_TMP/app.env" &&
	chmod 600 "$TEST_TMP/app.env" &&
	probe --name envbox --env A=1 --env-file "$TEST_TMP/app.env" --env A=2 --env PATH=/usr/local/bin -- env \
		>"$TEST_TMP/env" &&
	LC_ALL=C sort "$TEST_TMP/env" >"$TEST_TMP/env.sorted" &&
	printf "%s\n" "A=2" "DB_HOST=db.internal" "DB_PASS=file-secret-4f2a" "HOME=/" "HOSTNAME=envbox" \
		"PATH=/usr/local/bin" >"$TEST_TMP/env.want" &&
	test_cmp "$TEST_TMP/env.want" "$TEST_TMP/env.sorted"
'

test_expect_success 'env values are never written under the state root' '
	probe --env SECRET_TOKEN=tok-9d81c0ffee -- exit 0 &&
	! grep -rqs "tok-9d81c0ffee" "$ROOT" &&
	! grep -rqs "file-secret-4f2a" "$ROOT"
'

test_expect_success '--env-file readable by everyone: refused (exit 1) naming the file, nothing runs' '
	printf "DB_PASS=s\n" >"$TEST_TMP/public.env" &&
	chmod 644 "$TEST_TMP/public.env" &&
	test_must_fail --code 1 probe --env-file "$TEST_TMP/public.env" -- write /tmp/ran >"$TEST_TMP/out" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "public\.env" &&
	test ! -s "$TEST_TMP/out" &&
	test "$(wc -l <"$TEST_TMP/err")" -eq 1
'

test_expect_success '--env-file missing: an error naming it; --env with a bad name: usage (exit 2)' '
	rc=0
	probe --env-file "$TEST_TMP/missing.env" -- exit 0 2>"$TEST_TMP/err" || rc=$?
	test "$rc" -ne 0
	test "$rc" -lt 128
	assert_file_has_content "$TEST_TMP/err" "missing\.env"
	test_must_fail --code 2 probe --env "BAD-NAME=1" -- exit 0 2>"$TEST_TMP/err"
	assert_file_has_content "$TEST_TMP/err" "BAD-NAME"
'

# Usage.
test_expect_success 'usage errors exit 2: no bundle, CMD without --, bad --name, --pids 0, unknown option' '
	test_must_fail --code 2 "$SLATE" --root "$ROOT" run --key "$PUB" 2>/dev/null &&
	test_must_fail --code 2 slate_run "$SITE" "$PROBE" exit 0 2>/dev/null &&
	test_must_fail --code 2 slate_run --name "a/b" "$SITE" -- "$PROBE" exit 0 2>/dev/null &&
	test_must_fail --code 2 slate_run --name "-x" "$SITE" -- "$PROBE" exit 0 2>/dev/null &&
	test_must_fail --code 2 slate_run --pids 0 "$SITE" -- "$PROBE" exit 0 2>/dev/null &&
	test_must_fail --code 2 slate_run --tmpfs-size 4k "$SITE" -- "$PROBE" exit 0 2>/dev/null &&
	test_must_fail --code 2 slate_run --no-such-option "$SITE" -- "$PROBE" exit 0 2>/dev/null
'

test_expect_success 'nothing is left after the runs above: no process, cgroup or scratch dir' '
	for n in craft-site envbox hostview termcmd termroot; do assert_instance_gone "$n"; done &&
	test -z "$(ls -A "$ROOT/mnt")"
'

test_done
