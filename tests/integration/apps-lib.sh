# Helpers for the app tests (t8x: deploy, redeploy, rollback, the monitor,
# published ports, granted services), sourced after tests/lib.sh.
#
# Every slate command uses --root $ROOT and --run-dir $RUN under $TEST_TMP,
# never /var/lib/slate or /run/slate. When the script ends, whatever
# failed, every app it made is removed (`slate rm`), any monitor of its
# root still alive is killed (by pid) with everything under it, and the
# background helpers it started (deploys, load generators, echo servers)
# are stopped.
#
# Bundles (apps_setup NAMES...), all of examples/craft-site with a copy of
# images/php-8.2 (repinned to this host), SOURCE_DATE_EPOCH=1700000000:
#   v1    the example as is                              sequence 10
#   v2    templates/index.html says "Version two"         sequence 20
#   bad   web/index.php dies with a PHP fatal error (500) sequence 30
#   slow  v2 whose web/index.php sleeps 3 s per request   sequence 25
#   v3    templates/index.html says "Version three"       sequence 40
#
#   sl ARGS...                 slate --root $ROOT --run-dir $RUN ARGS (bounded: 120 s)
#   pick_ports N LO HI         N loopback ports in LO..HI that nothing listens on
#   get PORT PATH              GET http://127.0.0.1:PORT/PATH, body to $TEST_TMP/body,
#                              prints the status (000: no connection)
#   wait_http PORT [CODE]      wait (at most 10 s) until GET / gives CODE (200)
#   wait_refused PORT          wait (at most 5 s) until PORT refuses connections
#   php_in APP CODE [ARGS...]  slate exec APP -- php -r CODE ARGS
#   pj EXPR                    a Python expression on the JSON on stdin (as j)
#   release_count APP, current_release APP   from releases.json
#   monitor_pid APP            from `slate status --json` (empty when none)
#   descendants PID            every process under PID (recursively)
#   wait_gone PIDS...          wait (at most 5 s) until none of PIDS runs
#   wait_children PID N        wait (at most 10 s) until PID has N children
#   bg_start OUT CMD...        CMD in the background, output to OUT; sets BG_PID
#   assert_no_processes MPID [PIDS...]  the monitor MPID, PIDS and every
#                              process in a cgroup of MPID's instances are gone
#   assert_no_leftovers MPID [PIDS...]  and no cgroup, mount or scratch dir of
#                              them is left
require_user_namespaces

FIXTURES=$SLATE_TOP/tests/fixtures
KEY=$TEST_TMP/test.key PUB=$TEST_TMP/test.key.pub
IMAGE=$TEST_TMP/image
ROOT=$TEST_TMP/root RUN=$TEST_TMP/run
V1=$TEST_TMP/v1.slate V2=$TEST_TMP/v2.slate V3=$TEST_TMP/v3.slate BAD=$TEST_TMP/bad.slate SLOW=$TEST_TMP/slow.slate
CGROUP_ROOT=/sys/fs/cgroup
BG_PIDS=$TEST_TMP/.bg-pids
export SOURCE_DATE_EPOCH=1700000000

sl() { timeout -k 5 120 "$SLATE" --root "$ROOT" --run-dir "$RUN" "$@"; }

# ---- cleanup, whatever failed ----

# Monitors of this script's root (their command line is
# `slate-monitor --root ROOT --run-dir RUN APP`), by pid.
our_monitors() {
	local p
	for p in /proc/[0-9]*; do
		tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "slate-monitor --root $ROOT --run-dir $RUN " &&
			echo "${p#/proc/}"
	done
	return 0
}

descendants() {
	local kid
	for kid in $(pgrep -P "$1" 2>/dev/null); do
		echo "$kid"
		descendants "$kid"
	done
	return 0
}

wait_gone() {
	local i p alive
	for i in $(seq 50); do
		alive=""
		for p in "$@"; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
		[ -z "$alive" ] && return 0
		sleep 0.1
	done
	echo "still running after 5 s:$alive" >&2
	for p in $alive; do ps -o pid=,args= -p "$p" >&2 || true; done
	return 1
}

bg_start() { # OUT CMD...: `&` on the command itself, so that $! is CMD
	local out=$1
	shift
	"$@" >"$out" 2>&1 </dev/null &
	BG_PID=$!
	echo "$BG_PID" >>"$BG_PIDS"
}

bg_kill_all() {
	local pid
	[ -f "$BG_PIDS" ] || return 0
	for pid in $(cat "$BG_PIDS"); do
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	done
	: >"$BG_PIDS"
	return 0
}

apps_cleanup() {
	local app left pid
	bg_kill_all
	if [ -d "$ROOT/apps" ]; then
		for app in $(ls "$ROOT/apps"); do
			timeout -k 2 60 "$SLATE" --root "$ROOT" --run-dir "$RUN" rm "$app" >/dev/null 2>&1 || true
		done
	fi
	left=""
	for pid in $(our_monitors); do left="$left $pid $(descendants "$pid")"; done
	if [ -n "${left// /}" ]; then
		echo "# cleanup: killing what is left of the monitors of $ROOT:$left"
		for pid in $left; do kill -KILL "$pid" 2>/dev/null || true; done
		wait_gone $left 2>/dev/null || true
	fi
	return 0
}

apps_lib_exit() {
	apps_cleanup
	cleanup_test_tmp
}
trap apps_lib_exit EXIT
trap 'exit 130' INT TERM HUP

# ---- setup ----

build_bundle() { # SRC OUT SEQUENCE
	"$SLATE_BUNDLE" build "$1" --image "$IMAGE" --key "$KEY" -o "$2" --repin --sequence "$3" \
		>"$2.id" 2>"$2.err" || { cat "$2.err" >&2; rm -f "$2"; return 1; }
	grep -qxE '[0-9a-f]{64}' "$2.id"
}

bundle_id() { cat "$1.id"; }

apps_setup() { # NAMES...: v1 v2 bad slow v3
	local what src
	mkdir -p "$ROOT" &&
	cp "$FIXTURES/test.key" "$FIXTURES/test.key.pub" "$TEST_TMP/" &&
	chmod 600 "$KEY" &&
	cp -a "$SLATE_TOP/images/php-8.2" "$IMAGE" || return 1
	for what in "$@"; do
		src=$TEST_TMP/src-$what
		case $what in
		v1) build_bundle "$SLATE_TOP/examples/craft-site" "$V1" 10 || return 1 ;;
		v2)
			cp -a "$SLATE_TOP/examples/craft-site" "$src" &&
			sed -i 's|<h1>{{ siteName }}</h1>|&\n  <p>Version two</p>|' "$src/templates/index.html" &&
			grep -q "Version two" "$src/templates/index.html" &&
			build_bundle "$src" "$V2" 20 || return 1
			;;
		bad)
			cp -a "$SLATE_TOP/examples/craft-site" "$src" &&
			printf '<?php\nhttp_response_code(500);\ntrigger_error("slate test: broken release", E_USER_ERROR);\n' \
				>"$src/web/index.php" &&
			build_bundle "$src" "$BAD" 30 || return 1
			;;
		v3)
			cp -a "$SLATE_TOP/examples/craft-site" "$src" &&
			sed -i 's|<h1>{{ siteName }}</h1>|&\n  <p>Version three</p>|' "$src/templates/index.html" &&
			grep -q "Version three" "$src/templates/index.html" &&
			build_bundle "$src" "$V3" 40 || return 1
			;;
		slow)
			cp -a "$SLATE_TOP/examples/craft-site" "$src" &&
			sed -i 's|<h1>{{ siteName }}</h1>|&\n  <p>Version two</p>|' "$src/templates/index.html" &&
			sed -i '1a usleep(3000000);' "$src/web/index.php" &&
			grep -q "^usleep(3000000);" "$src/web/index.php" &&
			build_bundle "$src" "$SLOW" 25 || return 1
			;;
		*) echo "apps_setup: no bundle $what" >&2; return 1 ;;
		esac
	done
}

# After the setup case: without the bundles nothing else can run.
require_bundles() {
	local b
	for b in "$@"; do
		[ -s "$b" ] && continue
		echo "# setup failed: the other cases of $(basename "$0") are not run"
		test_done
	done
	[ -x "$SLATE" ] || { echo "# no $SLATE"; test_done; }
}

# ---- ports and HTTP ----

port_free() {
	[ -z "$(ss -Hltn "sport = :$1")" ] && ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_ports() { # N LO HI
	local n=$1 p got=0
	for p in $(seq "$2" "$3"); do
		[ "$got" -lt "$n" ] || break
		if port_free "$p"; then
			echo "$p"
			got=$((got + 1))
		fi
	done
	[ "$got" -eq "$n" ] || { echo "no $n free ports in $2-$3" >&2; return 1; }
}

get() { # PORT PATH
	curl -s -m 10 -o "$TEST_TMP/body" -w '%{http_code}' "http://127.0.0.1:$1/${2#/}" || true
}

# app_log_tail APP: the last lines of the app's log (monitor and
# instance), on stderr: what a failing case shows besides its own output.
app_log_tail() {
	echo "--- last lines of $ROOT/apps/$1/logs/current.log:" >&2
	tail -n 20 "$ROOT/apps/$1/logs/current.log" >&2 || true
}

wait_running() { # APP: its monitor has an instance up (at most 5 s)
	local i
	for i in $(seq 50); do
		[ "$(sl status --json "$1" | pj "j[\"state\"]")" = running ] && return 0
		sleep 0.1
	done
	echo "app $1 is not running after 5 s" >&2
	return 1
}

wait_http() { # PORT [CODE]
	local i code
	for i in $(seq 100); do
		code=$(get "$1" /)
		[ "$code" = "${2:-200}" ] && return 0
		sleep 0.1
	done
	echo "GET / on port $1 gives $code, not ${2:-200}, after 10 s" >&2
	return 1
}

wait_refused() { # PORT
	local i
	for i in $(seq 50); do
		curl -s -m 2 -o /dev/null "http://127.0.0.1:$1/" && { sleep 0.1; continue; }
		[ "$(curl -s -m 2 -o /dev/null -w '%{exitcode}' "http://127.0.0.1:$1/")" = 7 ] && return 0
		sleep 0.1
	done
	echo "port $1 still accepts connections after 5 s" >&2
	return 1
}

# ---- state ----

php_in() { # APP CODE [ARGS...]
	local app=$1 code=$2
	shift 2
	sl exec "$app" -- php -r "$code" "$@"
}

pj() {
	python3 -c '
import json, sys
j = json.load(sys.stdin)
r = eval(sys.argv[1])
print(r if isinstance(r, (str, int, float)) and not isinstance(r, bool) else json.dumps(r))' "$1"
}

release_count() { pj 'len(j["releases"])' <"$ROOT/apps/$1/releases.json"; }
current_release() { pj 'j["current"]' <"$ROOT/apps/$1/releases.json"; }

monitor_pid() {
	sl status --json "$1" | pj 'j.get("monitor_pid") or ""'
}

wait_children() { # PID N
	local i n
	for i in $(seq 100); do
		n=$(pgrep -P "$1" | wc -l)
		[ "$n" -eq "$2" ] && return 0
		sleep 0.1
	done
	echo "monitor $1 has $n children, not $2, after 10 s" >&2
	return 1
}

# The monitor MPID is gone and with it its instances (PIDS, and any
# process in a cgroup of it: they are named APP-SERIAL.MPID).
# They die with it (the parent-death signal), a moment later: wait up to
# 5 s for them too.
assert_no_processes() { # MPID [PIDS...]
	local mpid=$1 left i
	wait_gone "$@" || return 1
	for i in $(seq 50); do
		left=$(grep -lE ":/slate/[a-z0-9-]+-[0-9]+\.$mpid(/|\$)" /proc/[0-9]*/cgroup 2>/dev/null || true)
		[ -z "$left" ] && return 0
		sleep 0.1
	done
	echo "processes of monitor $mpid left after 5 s: $left" >&2
	return 1
}

# ... and also no cgroup dir of it, no mount of it in the host's namespace,
# no scratch dir of it.
assert_no_leftovers() { # MPID [PIDS...]
	local mpid=$1 left d
	assert_no_processes "$@" || return 1
	if ls -A "$ROOT/mnt" 2>/dev/null | grep -E "^[a-z0-9-]+-[0-9]+\.$mpid\$" >&2; then
		echo "scratch dirs of monitor $mpid left in $ROOT/mnt" >&2
		return 1
	fi
	for d in "$CGROUP_ROOT"/*/slate "$CGROUP_ROOT"/slate; do
		[ -d "$d" ] || continue
		left=$(ls -A "$d" | grep -E "^[a-z0-9-]+-[0-9]+\.$mpid\$" || true)
		if [ -n "$left" ]; then echo "cgroups of monitor $mpid left in $d: $left" >&2; return 1; fi
	done
	if grep -qE " $ROOT/mnt/[a-z0-9-]+-[0-9]+\.$mpid " /proc/self/mountinfo; then
		echo "mounts of monitor $mpid left in the host's namespace" >&2
		return 1
	fi
	return 0
}
