#!/bin/bash
# Apps when things go wrong: a replayed older bundle is refused by deploy
# (unless --allow-downgrade); an unhealthy release leaves the old one
# serving; kill -9 of `slate deploy` (during the health check, or early,
# while it stores the bundle) leaves the old release serving and the state
# intact; kill -9 of the monitor gives a truthful `ps`, takes the instance
# with it, and `start` brings the app back; two concurrent deploys of one
# app are serialized; after a reboot `start --all` brings back the apps that
# were running, not the stopped ones, and reports one it cannot start; a
# connection open at a switch keeps the old instance until it closes, or
# until --drain-timeout.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/apps-lib.sh"

APP=t81fail
CONC=t81conc

# page_is PORT v1|v2: GET / is 200 and shows that version.
page_is() {
	local code
	code=$(get "$1" /)
	[ "$code" = 200 ] || { echo "GET / on $1: $code" >&2; app_log_tail "$APP"; return 1; }
	grep -q "PHP 8\.2\." "$TEST_TMP/body" || { echo "no PHP 8.2 page" >&2; return 1; }
	case $2 in
	v1) if grep -q "Version t" "$TEST_TMP/body"; then echo "not v1" >&2; return 1; fi ;;
	v2) grep -q "Version two" "$TEST_TMP/body" || { echo "not v2" >&2; return 1; } ;;
	v3) grep -q "Version three" "$TEST_TMP/body" || { echo "not v3" >&2; return 1; } ;;
	esac
}

# state_snapshot NAME: the app's releases.json and app.json, kept aside.
state_snapshot() {
	cp "$ROOT/apps/$APP/releases.json" "$TEST_TMP/$1.releases.json"
	cp "$ROOT/apps/$APP/app.json" "$TEST_TMP/$1.app.json"
}

test_expect_success 'setup: bundles v1 (10), v2 (20), bad (30), slow (25), v3 (40); two free ports' '
	apps_setup v1 v2 bad slow v3
	pick_ports 2 18320 18339 >"$TEST_TMP/ports"
'
require_bundles "$V1" "$V2" "$BAD" "$SLOW" "$V3"
PORT=$(sed -n 1p "$TEST_TMP/ports")
CPORT=$(sed -n 2p "$TEST_TMP/ports")

test_expect_success 'deploy v1 then v2: releases 1 and 2, v2 served' '
	test "$(sl deploy --key "$PUB" "$APP" "$V1" -p "127.0.0.1:$PORT:80")" = 1
	page_is "$PORT" v1
	test "$(sl deploy --key "$PUB" "$APP" "$V2")" = 2
	page_is "$PORT" v2
'

test_expect_success 'a replayed older bundle (v1 after v2) is refused: exit 1, nothing changed, v2 serves' '
	state_snapshot replay
	mpid=$(monitor_pid "$APP")
	test_must_fail --code 1 sl deploy --key "$PUB" "$APP" "$V1" 2>"$TEST_TMP/err"
	cat "$TEST_TMP/err"
	grep -q "sequence 10 is lower than the current release.s 20" "$TEST_TMP/err"
	grep -q "downgrade" "$TEST_TMP/err"
	test_cmp "$TEST_TMP/replay.releases.json" "$ROOT/apps/$APP/releases.json"
	test_cmp "$TEST_TMP/replay.app.json" "$ROOT/apps/$APP/app.json"
	page_is "$PORT" v2
	sl status --json "$APP" >"$TEST_TMP/st.json"
	test "$(pj "j[\"serving_release\"]" <"$TEST_TMP/st.json")" = 2
	test "$(pj "j[\"monitor_pid\"]" <"$TEST_TMP/st.json")" = "$mpid"
	sl audit "$APP" | grep -E "deploy +$APP +release=- bundle=$(bundle_id "$V1" | cut -c1-12) bundle sequence 10 is lower" >/dev/null
'

test_expect_success 'an unhealthy release (--timeout 10): exit 1 with the reason and its log; v2 serves all along' '
	state_snapshot bad
	mpid=$(monitor_pid "$APP")
	bg_start "$TEST_TMP/bad.out" "$SLATE" --root "$ROOT" --run-dir "$RUN" deploy --key "$PUB" --timeout 10 "$APP" "$BAD"
	pid=$BG_PID
	# While the broken release is health checked, the old one serves (bounded: 30 s).
	n=0
	while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 60 ]; do
		page_is "$PORT" v2
		n=$((n + 1))
		sleep 0.5
	done
	echo "$n pages served by v2 during the deploy"
	test "$n" -ge 10
	rc=0
	wait "$pid" || rc=$?
	cat "$TEST_TMP/bad.out"
	test "$rc" = 1
	grep -q "release 3 not healthy: no answer below 500 to the health check in time" "$TEST_TMP/bad.out"
	grep -q "the running release keeps serving" "$TEST_TMP/bad.out"
	grep -q "^--- last lines of the log:" "$TEST_TMP/bad.out"
	grep -q "PHP Fatal error: *slate test: broken release" "$TEST_TMP/bad.out"
	grep -q "\"GET / HTTP/1.0\" 500 " "$TEST_TMP/bad.out"
	test_cmp "$TEST_TMP/bad.releases.json" "$ROOT/apps/$APP/releases.json"
	page_is "$PORT" v2
	test "$(sl status --json "$APP" | pj "j[\"serving_release\"]")" = 2
	# The broken instance is removed: the monitor is left with one instance.
	wait_children "$mpid" 1
	sl audit "$APP" | grep -E "deploy +$APP +release=- bundle=$(bundle_id "$BAD" | cut -c1-12) release 3 not healthy" >/dev/null
'

test_expect_success 'with --allow-downgrade the older bundle is accepted: release 3 serves v1' '
	test "$(sl deploy --key "$PUB" --allow-downgrade "$APP" "$V1")" = 3
	page_is "$PORT" v1
	rel=$ROOT/apps/$APP/releases.json
	test "$(pj "[(r[\"number\"], r[\"sequence\"], r[\"kind\"]) for r in j[\"releases\"]]" <"$rel")" = "[[1, 10, \"deploy\"], [2, 20, \"deploy\"], [3, 10, \"deploy\"]]"
	test "$(current_release "$APP")" = 3
'

test_expect_success 'kill -9 of slate deploy during the health check: the old release serves, nothing recorded' '
	state_snapshot killed
	mpid=$(monitor_pid "$APP")
	bg_start "$TEST_TMP/slow.out" "$SLATE" --root "$ROOT" --run-dir "$RUN" deploy --key "$PUB" "$APP" "$SLOW"
	pid=$BG_PID
	# The new instance runs (a second child of the monitor) and answers
	# its health check only after 3 s: kill the deploy while it waits.
	wait_children "$mpid" 2
	sleep 0.5
	kill -0 "$pid"
	kill -KILL "$pid"
	rc=0
	wait "$pid" || rc=$?
	test "$rc" = 137
	page_is "$PORT" v1
	test_cmp "$TEST_TMP/killed.releases.json" "$ROOT/apps/$APP/releases.json"
	# The slow instance would be healthy by now: it never took over.
	sleep 4
	page_is "$PORT" v1
	wait_children "$mpid" 1
	test "$(sl status --json "$APP" | pj "j[\"serving_release\"]")" = 3
	test_cmp "$TEST_TMP/killed.releases.json" "$ROOT/apps/$APP/releases.json"
	sl logs -n 200 "$APP" | grep "release 4 not healthy: the deploy command went away before the switch" >/dev/null
'

test_expect_success 'kill -9 of slate deploy early (storing the bundle): old release serves; the next deploy works' '
	state_snapshot early
	# v3 is not in the store yet: deploy unpacks it first.
	test ! -e "$ROOT/store/$(bundle_id "$V3")"
	bg_start "$TEST_TMP/early.out" "$SLATE" --root "$ROOT" --run-dir "$RUN" deploy --key "$PUB" "$APP" "$V3"
	pid=$BG_PID
	# Kill it as soon as it unpacks into the store (at most 3 s).
	for i in $(seq 300); do
		ls -A "$ROOT/store" | grep "^\.tmp-" >/dev/null && break
		sleep 0.01
	done
	kill -KILL "$pid"
	wait "$pid" || true
	echo "killed after $i polls; store: $(ls -A "$ROOT/store" | tr "\n" " ")"
	page_is "$PORT" v1
	test_cmp "$TEST_TMP/early.releases.json" "$ROOT/apps/$APP/releases.json"
	test "$(sl status --json "$APP" | pj "j[\"serving_release\"]")" = 3
	test "$(sl deploy --key "$PUB" "$APP" "$V3")" = 4
	page_is "$PORT" v3
	ls -A "$ROOT/store" >"$TEST_TMP/store.list"
	assert_file_lacks_content "$TEST_TMP/store.list" "^\.tmp-"
	test "$(pj "[r[\"number\"] for r in j[\"releases\"]]" <"$ROOT/apps/$APP/releases.json")" = "[1, 2, 3, 4]"
	sl verify "$APP" >/dev/null
'

test_expect_success 'kill -9 of the monitor: its instance dies with it, ps tells the truth, the port refuses' '
	state_snapshot monitor
	mpid=$(monitor_pid "$APP")
	test -n "$mpid"
	echo "$mpid" >"$TEST_TMP/killed-monitor"
	kids=$(descendants "$mpid")
	# Its instance: php-fpm and nginx, under the monitor.
	ps -o comm= -p "$(echo $kids | tr " " ",")" >"$TEST_TMP/kids"
	grep -q "^php-fpm" "$TEST_TMP/kids"
	grep -q "^nginx" "$TEST_TMP/kids"
	kill -KILL "$mpid"
	assert_no_processes "$mpid" $kids
	wait_refused "$PORT"
	sl status --json "$APP" >"$TEST_TMP/st.json"
	cat "$TEST_TMP/st.json"
	test "$(pj "j[\"state\"]" <"$TEST_TMP/st.json")" = stopped
	test "$(pj "j.get(\"monitor_pid\")" <"$TEST_TMP/st.json")" = null
	sl ps >"$TEST_TMP/ps.txt"
	grep -E "^$APP +stopped +4 " "$TEST_TMP/ps.txt"
	test_cmp "$TEST_TMP/monitor.releases.json" "$ROOT/apps/$APP/releases.json"
	test ! -S "$RUN/$APP/monitor.sock" || test_must_fail sl exec "$APP" -- true
'

test_expect_success 'after the killed monitor, start serves release 4 again; nothing of the old one is left' '
	old=$(cat "$TEST_TMP/killed-monitor")
	sl start "$APP"
	wait_http "$PORT"
	page_is "$PORT" v3
	sl status --json "$APP" >"$TEST_TMP/st.json"
	test "$(pj "j[\"state\"]" <"$TEST_TMP/st.json")" = running
	test "$(pj "j[\"serving_release\"]" <"$TEST_TMP/st.json")" = 4
	test "$(pj "j[\"monitor_pid\"]" <"$TEST_TMP/st.json")" != "$old"
	ls -A "$ROOT/mnt" >"$TEST_TMP/mnt.list"
	assert_file_lacks_content "$TEST_TMP/mnt.list" "\.$old\$"
	assert_no_leftovers "$old"
	test "$(release_count "$APP")" = 4
'

test_expect_success 'two concurrent deploys of one app are serialized: releases 2 and 3, in order, state intact' '
	test "$(sl deploy --key "$PUB" "$CONC" "$V1" -p "127.0.0.1:$CPORT:80")" = 1
	bg_start "$TEST_TMP/c1.out" "$SLATE" --root "$ROOT" --run-dir "$RUN" deploy --key "$PUB" "$CONC" "$V2"
	p1=$BG_PID
	bg_start "$TEST_TMP/c2.out" "$SLATE" --root "$ROOT" --run-dir "$RUN" deploy --key "$PUB" "$CONC" "$V2"
	p2=$BG_PID
	r1=0 r2=0
	wait "$p1" || r1=$?
	wait "$p2" || r2=$?
	cat "$TEST_TMP/c1.out" "$TEST_TMP/c2.out"
	test "$r1" = 0
	test "$r2" = 0
	test "$(cat "$TEST_TMP/c1.out" "$TEST_TMP/c2.out" | sort | tr "\n" " ")" = "2 3 "
	rel=$ROOT/apps/$CONC/releases.json
	test "$(pj "[(r[\"number\"], r[\"kind\"], r[\"sequence\"]) for r in j[\"releases\"]]" <"$rel")" = "[[1, \"deploy\", 10], [2, \"deploy\", 20], [3, \"deploy\", 20]]"
	test "$(pj "j[\"current\"]" <"$rel")" = 3
	test "$(pj "j[\"releases\"][1][\"deployed\"] <= j[\"releases\"][2][\"deployed\"]" <"$rel")" = true
	page_is "$CPORT" v2
	sl logs -n 500 "$CONC" | grep -E " slate serving release [0-9]+$" >"$TEST_TMP/serving"
	test "$(awk "{ print \$NF }" "$TEST_TMP/serving" | tr "\n" " ")" = "1 2 3 "
	sl audit "$CONC" >"$TEST_TMP/audit"
	assert_file_lacks_content "$TEST_TMP/audit" "in progress"
	test "$(grep -E " deploy +$CONC +release=[0-9]+ .* ok$" "$TEST_TMP/audit" | sed -E "s/.*release=([0-9]+).*/\1/" | tr "\n" " ")" = "1 2 3 "
	test "$(sl status --json "$CONC" | pj "j[\"serving_release\"]")" = 3
'

test_expect_success 'after a reboot (monitors gone, run dir empty) start --all brings back the running app, not the stopped one' '
	sl stop "$CONC"
	wait_refused "$CPORT"
	mpid=$(monitor_pid "$APP")
	kids=$(descendants "$mpid")
	kill -KILL "$mpid"
	assert_no_processes "$mpid" $kids
	rm -rf "$RUN"
	sl start --all >"$TEST_TMP/all.out"
	cat "$TEST_TMP/all.out"
	test "$(sort "$TEST_TMP/all.out" | tr "\n" " ")" = "$CONC: stopped $APP: started "
	wait_http "$PORT"
	page_is "$PORT" v3
	wait_refused "$CPORT"
	sl ps >"$TEST_TMP/ps.txt"
	grep -E "^$APP +running +4 " "$TEST_TMP/ps.txt"
	grep -E "^$CONC +stopped +3 " "$TEST_TMP/ps.txt"
	# Again: nothing to do, exit 0; --json for scripts.
	sl start --all --json >"$TEST_TMP/all.json"
	test "$(pj "\" \".join(sorted(a[\"app\"] + \"=\" + a[\"result\"] for a in j))" <"$TEST_TMP/all.json")" = "$CONC=stopped $APP=running"
	sl audit "$APP" | grep -E "start +$APP +release=- .*started$" >/dev/null
	# Usage: --all or one APP, not both, not neither.
	test_must_fail --code 2 sl start --all "$APP" 2>"$TEST_TMP/err"
	grep -q "start: --all takes no APP" "$TEST_TMP/err"
	test_must_fail --code 2 sl start 2>"$TEST_TMP/err"
	grep -q "start: needs APP, or --all" "$TEST_TMP/err"
'

test_expect_success 'start --all: an app that cannot start is reported (exit 1) and the others are still started' '
	mpid=$(monitor_pid "$APP")
	kids=$(descendants "$mpid")
	kill -KILL "$mpid"
	assert_no_processes "$mpid" $kids
	# A broken app: its releases file is not JSON.
	mkdir -p "$ROOT/apps/aaa-broken"
	echo "{" >"$ROOT/apps/aaa-broken/releases.json"
	rc=0
	sl start --all >"$TEST_TMP/all.out" 2>&1 || rc=$?
	cat "$TEST_TMP/all.out"
	test "$rc" = 1
	grep -E "^aaa-broken: failed: .*releases.json" "$TEST_TMP/all.out"
	grep -x "$APP: started" "$TEST_TMP/all.out"
	wait_http "$PORT"
	rm -rf "$ROOT/apps/aaa-broken"
'

DRAIN=t81drain

# instance_pid APP: the serving instance's init.
instance_pid() { sl status --json "$1" | pj "j[\"instance_pid\"]"; }

test_expect_success 'drain: an idle connection open at a redeploy keeps the old instance until it closes (default 30 s)' '
	test "$(sl deploy --key "$PUB" "$DRAIN" "$V1" -p "127.0.0.1:$CPORT:80")" = 1
	wait_http "$CPORT"
	old=$(instance_pid "$DRAIN")
	exec 7<>"/dev/tcp/127.0.0.1/$CPORT"
	sl redeploy "$DRAIN" >/dev/null
	test "$(instance_pid "$DRAIN")" != "$old"
	page_is "$CPORT" v1
	sleep 2
	kill -0 "$old"
	exec 7>&-
	wait_gone "$old"
'

test_expect_success 'drain: --drain-timeout 1 (kept with the app) stops the old instance 1 s after the switch, the open connection with it' '
	test "$(sl deploy --key "$PUB" --drain-timeout 1 "$DRAIN" "$V1")" = 2
	test "$(pj "j[\"options\"][\"drain_timeout\"]" <"$ROOT/apps/$DRAIN/app.json")" = 1
	old=$(instance_pid "$DRAIN")
	exec 7<>"/dev/tcp/127.0.0.1/$CPORT"
	start=$(date +%s%N)
	sl redeploy "$DRAIN" >/dev/null
	wait_gone "$old"
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	echo "old instance gone $ms ms after the redeploy started"
	test "$ms" -ge 900
	test "$ms" -lt 4000
	# The held connection was closed with it: reading it ends at once.
	test -z "$(timeout 5 cat <&7)"
	exec 7>&-
	page_is "$CPORT" v1
	test_must_fail --code 2 sl deploy --key "$PUB" --drain-timeout 0 "$DRAIN" "$V1"
'

test_done
