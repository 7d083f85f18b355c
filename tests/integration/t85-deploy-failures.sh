#!/bin/bash
# Deploys that fail say so and leave nothing (attack review items 15-17):
# an env file is refused when it is a symbolic link, not root's, or
# writable by its group, and a malformed line is named by number while its
# content (a fake secret here) appears nowhere: not on stderr, not in the
# app's log, not in the audit log; a published port that cannot be bound
# (in use, or not an address) fails the deploy with the reason while the
# old release keeps serving, and ps/status show the addresses that really
# listen (port 0: the port the kernel chose); a failed first deploy leaves
# no monitor and no state, `status` knows no such app, and `rm` removes
# what a killed deploy left.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/apps-lib.sh"

SECRET=sk_live_t85e9f1c0ffee5ecre7
ENVD=$TEST_TMP/etc

# no_trace APP: no monitor of APP, no state of it, and status knows no such app.
no_trace() {
	local pid
	for pid in $(our_monitors); do
		if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE " $1 \$"; then
			echo "a monitor of $1 is left: $pid" >&2
			return 1
		fi
	done
	test ! -e "$ROOT/apps/$1" || { echo "state of $1 left: $(ls -A "$ROOT/apps/$1")" >&2; return 1; }
	test ! -e "$RUN/$1" || { echo "run dir of $1 left" >&2; return 1; }
	test_must_fail --code 1 sl status "$1" 2>"$TEST_TMP/status.err"
	assert_file_has_content "$TEST_TMP/status.err" "no app \`$1\`"
	sl ps --json | pj "[a[\"app\"] for a in j]" >"$TEST_TMP/ps.apps"
	assert_file_lacks_content "$TEST_TMP/ps.apps" "\"$1\""
}

# wait_no_monitor APP: its monitor is gone (at most 5 s).
wait_no_monitor() {
	local i pid left
	for i in $(seq 50); do
		left=""
		for pid in $(our_monitors); do
			tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qE " $1 \$" && left="$left $pid"
		done
		[ -z "$left" ] && return 0
		sleep 0.1
	done
	echo "monitor of $1 still running after 5 s:$left" >&2
	return 1
}

# A listener that holds a port (python3, on 127.0.0.1) until killed.
hold_port() { # PORT
	bg_start "$TEST_TMP/hold-$1.out" python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
print("listening", flush=True)
time.sleep(600)' "$1"
	for i in $(seq 50); do
		grep -q listening "$TEST_TMP/hold-$1.out" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "could not hold port $1" >&2
	return 1
}

test_expect_success 'setup: bundles v1, v2, bad, slow; free ports; env files owned by root' '
	apps_setup v1 v2 bad slow
	pick_ports 3 18440 18459 >"$TEST_TMP/ports"
	mkdir -m 0700 "$ENVD"
	printf "DB_PASS=good-pass\n" >"$ENVD/good.env"
	chmod 600 "$ENVD/good.env"
'
require_bundles "$V1" "$V2" "$BAD" "$SLOW"
PORT=$(sed -n 1p "$TEST_TMP/ports")
BUSY=$(sed -n 2p "$TEST_TMP/ports")
PORT2=$(sed -n 3p "$TEST_TMP/ports")

# ---- 15: env files ----

test_expect_success 'env file: a symbolic link (to a good file, or in its directory) is refused, exit 1, no app' '
	ln -s "$ENVD/good.env" "$TEST_TMP/link.env"
	test_must_fail --code 1 sl deploy --key "$PUB" t85env "$V1" --env-file "$TEST_TMP/link.env" 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	assert_file_has_content "$TEST_TMP/err" "link\.env.* symbolic link"
	ln -s "$ENVD" "$TEST_TMP/etc-link"
	test_must_fail --code 1 sl deploy --key "$PUB" t85env "$V1" --env-file "$TEST_TMP/etc-link/good.env" 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	assert_file_has_content "$TEST_TMP/err" "etc-link"
	no_trace t85env
	# slate run reads --env-file the same way: refused before anything runs.
	test_must_fail --code 1 sl run --key "$PUB" --env-file "$TEST_TMP/link.env" "$V1" -- php -r "echo 1;" \
		>"$TEST_TMP/out" 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	assert_file_has_content "$TEST_TMP/err" "link\.env.* symbolic link"
	test ! -s "$TEST_TMP/out"
'

test_expect_success 'env file: writable by its group, or owned by another uid: refused, exit 1, no app' '
	cp "$ENVD/good.env" "$ENVD/group.env"
	chmod 620 "$ENVD/group.env"
	test_must_fail --code 1 sl deploy --key "$PUB" t85env "$V1" --env-file "$ENVD/group.env" 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	assert_file_has_content "$TEST_TMP/err" "group\.env.*writable by its group"
	cp "$ENVD/good.env" "$ENVD/other.env"
	chmod 600 "$ENVD/other.env"
	chown 65534:65534 "$ENVD/other.env"
	test_must_fail --code 1 sl deploy --key "$PUB" t85env "$V1" --env-file "$ENVD/other.env" 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	assert_file_has_content "$TEST_TMP/err" "other\.env.*owned by uid 65534"
	no_trace t85env
'

test_expect_success 'env file: a malformed line holding a secret is named by number, its content shown nowhere' '
	printf "A=1\n# comment\n%s\nB=2\n" "$SECRET" >"$ENVD/bad.env"
	chmod 600 "$ENVD/bad.env"
	test_must_fail --code 2 sl deploy --key "$PUB" t85env "$V1" --env-file "$ENVD/bad.env" 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	assert_file_has_content "$TEST_TMP/err" "bad\.env. line 3 "
	assert_file_lacks_content "$TEST_TMP/err" "$SECRET"
	no_trace t85env
'

test_expect_success 'env file turned malformed after the deploy: redeploy, exec and restarts never show the secret' '
	cp "$ENVD/good.env" "$ENVD/app.env"
	test "$(sl deploy --key "$PUB" t85env "$V1" --env-file "$ENVD/app.env" -p "127.0.0.1:$PORT2:80")" = 1
	test "$(php_in t85env "echo getenv(\"DB_PASS\");")" = good-pass
	printf "DB_PASS=good-pass\nmy %s=x\n" "$SECRET" >"$ENVD/app.env"
	test_must_fail --code 2 sl redeploy t85env 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	assert_file_has_content "$TEST_TMP/err" "app\.env. line 2: "
	test_must_fail --code 2 sl exec t85env -- true 2>"$TEST_TMP/exec.err"
	cat "$TEST_TMP/exec.err"
	assert_file_has_content "$TEST_TMP/exec.err" "app\.env. line 2: "
	# The instance dies: the monitor restarts it, reading the file again.
	kill -KILL "$(sl status --json t85env | pj "j[\"instance_pid\"]")"
	for i in $(seq 50); do
		grep -q "restart failed" "$ROOT/apps/t85env/logs/current.log" && break
		sleep 0.1
	done
	grep "restart failed" "$ROOT/apps/t85env/logs/current.log"
	grep "restart failed.*app\.env. line 2: " "$ROOT/apps/t85env/logs/current.log" >/dev/null
	! grep -rqF "$SECRET" "$ROOT" "$RUN" "$TEST_TMP/err" "$TEST_TMP/exec.err"
	sl rm t85env
'

# ---- 16: published ports ----

test_expect_success '-p with an invalid address: usage error (exit 2), nothing started, no app' '
	test_must_fail --code 2 sl deploy --key "$PUB" t85port "$V1" -p 999.1.1.1:8080:80 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	assert_file_has_content "$TEST_TMP/err" "999\.1\.1\.1"
	no_trace t85port
'

test_expect_success 'first deploy on a port in use: exit 1 with the reason, no app, no monitor' '
	hold_port "$BUSY"
	test_must_fail --code 1 sl deploy --key "$PUB" t85port "$V1" -p "127.0.0.1:$BUSY:80" 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	assert_file_has_content "$TEST_TMP/err" "127\.0\.0\.1:$BUSY"
	assert_file_has_content "$TEST_TMP/err" "in use"
	no_trace t85port
'

test_expect_success 'redeploy onto a port in use: exit 1, the old release still serves its port, ps truthful' '
	test "$(sl deploy --key "$PUB" t85port "$V1" -p "127.0.0.1:$PORT:80")" = 1
	wait_http "$PORT"
	cp "$ROOT/apps/t85port/releases.json" "$TEST_TMP/rel.before"
	cp "$ROOT/apps/t85port/app.json" "$TEST_TMP/app.before"
	test_must_fail --code 1 sl deploy --key "$PUB" t85port "$V2" -p "127.0.0.1:$BUSY:80" 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	assert_file_has_content "$TEST_TMP/err" "127\.0\.0\.1:$BUSY.*in use"
	assert_file_has_content "$TEST_TMP/err" "keeps serving"
	test_cmp "$TEST_TMP/rel.before" "$ROOT/apps/t85port/releases.json"
	test_cmp "$TEST_TMP/app.before" "$ROOT/apps/t85port/app.json"
	test "$(get "$PORT" /)" = 200
	! grep -q "Version two" "$TEST_TMP/body"
	test "$(sl status --json t85port | pj "j[\"ports\"]")" = "[\"127.0.0.1:$PORT->80\"]"
	test "$(sl ps --json | pj "[a[\"ports\"] for a in j if a[\"app\"] == \"t85port\"]")" = "[[\"127.0.0.1:$PORT->80\"]]"
	# start --all after it has nothing to fail on.
	sl stop t85port
	sl start --all >"$TEST_TMP/start.out"
	cat "$TEST_TMP/start.out"
	grep -qx "t85port: stopped" "$TEST_TMP/start.out"
	sl start t85port
	wait_http "$PORT"
'

test_expect_success 'port 0: ps and status show the port the kernel chose, and it serves' '
	test "$(sl deploy --key "$PUB" t85zero "$V1" -p 127.0.0.1:0:80)" = 1
	sl status --json t85zero >"$TEST_TMP/st.json"
	cat "$TEST_TMP/st.json"
	real=$(pj "j[\"ports\"][0]" <"$TEST_TMP/st.json")
	echo "$real" | grep -qE "^127\.0\.0\.1:[0-9]+->80\$"
	p=${real#127.0.0.1:}
	p=${p%%->80}
	test "$p" -gt 0
	wait_http "$p"
	test "$(sl ps --json | pj "[a[\"ports\"] for a in j if a[\"app\"] == \"t85zero\"]")" = "[[\"$real\"]]"
	sl port t85zero off
	test "$(sl status --json t85zero | pj "j[\"ports\"]")" = "[\"127.0.0.1:0->80 (off)\"]"
	sl rm t85zero
	sl rm t85port
'

test_expect_success 'an instance that dies under its health check fails its deploy at once; the old release serves' '
	test "$(sl deploy --key "$PUB" t85die "$V1" -p 127.0.0.1:0:80)" = 1
	real=$(sl status --json t85die | pj "j[\"ports\"][0]")
	p=${real#127.0.0.1:}
	p=${p%%->80}
	wait_http "$p"
	mpid=$(monitor_pid t85die)
	wait_children "$mpid" 1
	# The bad release answers 500: its health check would go on for 60 s.
	bg_start "$TEST_TMP/die.out" "$SLATE" --root "$ROOT" --run-dir "$RUN" deploy --key "$PUB" --timeout 60 t85die "$BAD"
	pid=$BG_PID
	wait_children "$mpid" 2
	new=$(ps --ppid "$mpid" -o pid= --sort=start_time | tail -n 1)
	kill -KILL $new
	start=$(date +%s)
	rc=0; wait "$pid" || rc=$?
	cat "$TEST_TMP/die.out"
	test "$rc" = 1
	test $(($(date +%s) - start)) -lt 10
	assert_file_has_content "$TEST_TMP/die.out" "its instance exited"
	test "$(sl status --json t85die | pj "j[\"release\"]")" = 1
	test "$(get "$p" /)" = 200
	kill -0 "$mpid"
	sl rm t85die
'

# ---- 17: failed first deploys ----

test_expect_success 'a failed first deploy (unhealthy bundle): exit 1, no monitor, no state, status and ps know nothing' '
	test_must_fail --code 1 sl deploy --key "$PUB" --timeout 5 t85ghost "$BAD" -p "127.0.0.1:$PORT:80" 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	assert_file_has_content "$TEST_TMP/err" "not healthy"
	wait_no_monitor t85ghost
	no_trace t85ghost
	wait_refused "$PORT"
	sl audit t85ghost | grep -q "not healthy"
'

test_expect_success 'a first deploy refused before it starts (a truncated bundle): exit 1, no state' '
	head -c 4096 "$V1" >"$TEST_TMP/short.slate"
	test_must_fail --code 1 sl deploy --key "$PUB" t85ghost "$TEST_TMP/short.slate" 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	no_trace t85ghost
'

test_expect_success 'slate killed (SIGKILL) during a first deploy: its monitor goes, rm removes what is left' '
	bg_start "$TEST_TMP/kill.out" "$SLATE" --root "$ROOT" --run-dir "$RUN" deploy --key "$PUB" --timeout 60 t85ghost "$BAD"
	pid=$BG_PID
	# Kill it while the monitor health checks the broken instance (which
	# answers 500 for 60 s): once the log shows a health check (at most 20 s).
	for i in $(seq 200); do
		grep -q "slate-health" "$ROOT/apps/t85ghost/logs/current.log" 2>/dev/null && break
		sleep 0.1
	done
	grep -q "slate-health" "$ROOT/apps/t85ghost/logs/current.log"
	kill -0 "$pid"
	kill -KILL "$pid"
	rc=0; wait "$pid" || rc=$?
	test "$rc" = 137
	test -d "$ROOT/apps/t85ghost"
	wait_no_monitor t85ghost
	test_must_fail --code 1 sl status t85ghost 2>/dev/null
	sl rm t85ghost
	no_trace t85ghost
'

test_expect_success 'rm removes a leftover whose monitor is still alive (killed deploy before its request)' '
	mkdir -p -m 0700 "$ROOT/apps/t85left" "$RUN/t85left"
	"$SLATE_BUILD/slate-monitor" --root "$ROOT" --run-dir "$RUN" t85left >/dev/null 2>&1 </dev/null &
	for i in $(seq 50); do test -S "$RUN/t85left/monitor.sock" && break; sleep 0.1; done
	test -S "$RUN/t85left/monitor.sock"
	sl rm t85left
	wait_no_monitor t85left
	no_trace t85left
	test_must_fail --code 1 sl rm t85left 2>"$TEST_TMP/err"
	assert_file_has_content "$TEST_TMP/err" "no app"
'

test_expect_success 'a failed first deploy racing a good one: the good one gets the app, release 1' '
	bg_start "$TEST_TMP/race-bad.out" "$SLATE" --root "$ROOT" --run-dir "$RUN" deploy --key "$PUB" --timeout 3 t85race "$BAD"
	bad=$BG_PID
	sleep 0.3
	bg_start "$TEST_TMP/race-good.out" "$SLATE" --root "$ROOT" --run-dir "$RUN" deploy --key "$PUB" t85race "$V1" -p "127.0.0.1:$PORT:80"
	good=$BG_PID
	rc=0; wait "$bad" || rc=$?
	cat "$TEST_TMP/race-bad.out"
	test "$rc" = 1
	rc=0; wait "$good" || rc=$?
	cat "$TEST_TMP/race-good.out"
	test "$rc" = 0
	test "$(cat "$TEST_TMP/race-good.out")" = 1
	wait_http "$PORT"
	test "$(sl status --json t85race | pj "j[\"serving_release\"]")" = 1
	sl rm t85race
	no_trace t85race
'

test_done
