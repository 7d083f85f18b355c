# Helpers for the `slate run` tests (t7x), sourced after tests/lib.sh.
#
# The test bundle: the example site built with a copy of images/php-8.2
# that also carries the probe (tests/probe, static) as
# /usr/local/bin/probe and, when the toolchain built it, probe32. Every
# slate command uses --root $ROOT, so the tests never touch /var/lib/slate.
#
#   run_setup                 build the test bundle (first case of a script)
#   require_bundle            stop the script here if the setup failed
#   slate_run OPTS... BUNDLE [-- CMD...]   slate run with the test key
#   probe OPTS... -- ARGS...  slate run OPTS $SITE -- /usr/local/bin/probe ARGS
#   slate_bg OUT OPTS...      slate run in the background, output to OUT;
#                             sets BG_PID (the slate process) and records it
#   wait_for_line FILE REGEX  wait (bounded) until FILE has a matching line
#   instance_init PID         the init of the instance run by slate PID
#   bg_stop PID               TERM, then KILL after 5 s; wait for it
#   bg_stop_all               every background slate still running
#   assert_instance_gone NAME no process, cgroup or scratch dir of it left
#   assert_pidns_empty NS     no process left in the pid namespace NS
#   store_hash                hash of every path, mode, owner, size, link
#                             and content under the store copy
#
# Every background slate is stopped when the script ends, whatever failed.
require_user_namespaces

FIXTURES=$SLATE_TOP/tests/fixtures
KEY=$TEST_TMP/test.key PUB=$TEST_TMP/test.key.pub
IMAGE=$TEST_TMP/image SITE=$TEST_TMP/site.slate
ROOT=$TEST_TMP/root
PROBE=/usr/local/bin/probe PROBE32=/usr/local/bin/probe32
# The instance's root is this host uid (runtime/userns.h, SLATE_UID_BASE).
INSTANCE_UID=1879048192
CGROUP_ROOT=/sys/fs/cgroup
BG_PIDS=$TEST_TMP/.bg-pids
export SOURCE_DATE_EPOCH=1700000000

run_lib_exit() {
	bg_stop_all
	cleanup_test_tmp
}
trap run_lib_exit EXIT

run_setup() {
	mkdir -p "$ROOT" &&
	cp "$FIXTURES/test.key" "$FIXTURES/test.key.pub" "$FIXTURES/other.key" "$FIXTURES/other.key.pub" "$TEST_TMP/" &&
	chmod 600 "$KEY" "$TEST_TMP/other.key" &&
	cp -a "$SLATE_TOP/images/php-8.2" "$IMAGE" &&
	install -d "$IMAGE/rootfs/usr/local/bin" &&
	install -m 0755 "$SLATE_BUILD/tests/probe" "$IMAGE/rootfs/usr/local/bin/probe" &&
	if [ -x "$SLATE_BUILD/tests/probe32" ]; then
		install -m 0755 "$SLATE_BUILD/tests/probe32" "$IMAGE/rootfs/usr/local/bin/probe32"
	fi &&
	if ! "$SLATE_BUNDLE" build "$SLATE_TOP/examples/craft-site" --image "$IMAGE" --key "$KEY" -o "$SITE" \
		--repin >"$TEST_TMP/site.id" 2>"$TEST_TMP/build.err"; then
		cat "$TEST_TMP/build.err" >&2
		rm -f "$SITE"
		return 1
	fi &&
	grep -qxE '[0-9a-f]{64}' "$TEST_TMP/site.id"
}

# After the setup case: without the test bundle nothing else can run.
require_bundle() {
	[ -s "$SITE" ] && [ -x "$SLATE" ] && return 0
	echo "# setup failed: the other cases of $(basename "$0") are not run"
	test_done
}

have_probe32() { [ -x "$SLATE_BUILD/tests/probe32" ]; }
site_id() { cat "$TEST_TMP/site.id"; }
store_dir() { echo "$ROOT/store/$(site_id)"; }

slate_run() { "$SLATE" --root "$ROOT" run --key "$PUB" "$@"; }

# probe [SLATE-OPTIONS...] -- PROBE-ARGS...
probe() {
	local opts=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	slate_run "${opts[@]}" "$SITE" -- "$PROBE" "$@"
}

# slate_bg OUT SLATE-RUN-ARGS...: `&` on the command itself, so that $! is
# slate and not a subshell.
slate_bg() {
	local out=$1
	shift
	"$SLATE" --root "$ROOT" run --key "$PUB" "$@" >"$out" 2>&1 </dev/null &
	BG_PID=$!
	echo "$BG_PID" >>"$BG_PIDS"
}

wait_for_line() { # FILE REGEX [TENTHS]: at most TENTHS/10 s (default 10 s)
	local i
	for i in $(seq "${3:-100}"); do
		grep -qE -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "no line /$2/ in $1 after $((${3:-100} / 10)) s; it holds:" >&2
	head -c 2000 "$1" >&2
	return 1
}

# The instance's init: slate's only child once the setup is done (the user
# namespace helper is gone by then).
instance_init() {
	local i kids
	for i in $(seq 50); do
		kids=$(pgrep -P "$1" || true)
		if [ -n "$kids" ] && [ "$(echo "$kids" | wc -l)" -eq 1 ]; then
			echo "$kids"
			return 0
		fi
		sleep 0.1
	done
	echo "slate $1 has no single child: ${kids:-none}" >&2
	return 1
}

bg_stop() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

bg_stop_all() {
	local pid
	[ -f "$BG_PIDS" ] || return 0
	for pid in $(cat "$BG_PIDS"); do
		if kill -0 "$pid" 2>/dev/null; then
			bg_stop "$pid"
		fi
	done
	: >"$BG_PIDS"
}

# pids_in_pidns NS: every process whose pid namespace is NS (pid:[N]).
pids_in_pidns() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/ns/pid" 2>/dev/null)" = "$1" ] && echo "${p#/proc/}"
	done
	return 0
}

assert_pidns_empty() { # NS: within 5 s
	local i left
	for i in $(seq 50); do
		left=$(pids_in_pidns "$1")
		[ -z "$left" ] && return 0
		sleep 0.1
	done
	echo "processes left in $1:" >&2
	for p in $left; do ps -o pid=,uid=,args= -p "$p" >&2 || true; done
	return 1
}

# The entries of DIR that belong to instance NAME: NAME.PID or
# NAME-SERIAL.PID (cgroups and scratch mount points are named so).
instance_entries() { # DIR NAME
	[ -d "$1" ] || return 0
	ls -A "$1" | grep -E "^$2(-[0-9]+)?\.[0-9]+\$" | sed "s|^|$1/|" || true
}

# Processes in a cgroup of instance NAME (any controller), cgroup dirs and
# scratch mount points of it: none may be left.
assert_instance_gone() {
	local name=$1 left d
	left=$(grep -lE ":/slate/$name(-[0-9]+)?\.[0-9]+(/|\$)" /proc/[0-9]*/cgroup 2>/dev/null || true)
	if [ -n "$left" ]; then echo "processes of $name left: $left" >&2; return 1; fi
	left=$(for d in "$CGROUP_ROOT"/*/slate "$CGROUP_ROOT"/slate; do instance_entries "$d" "$name"; done)
	if [ -n "$left" ]; then echo "cgroups of $name left: $left" >&2; return 1; fi
	left=$(instance_entries "$ROOT/mnt" "$name")
	if [ -n "$left" ]; then echo "scratch dirs of $name left: $left" >&2; return 1; fi
	if grep -qE " $ROOT/mnt/$name(-[0-9]+)?\." /proc/self/mountinfo; then
		echo "mounts of $name left in the host's namespace" >&2
		return 1
	fi
	return 0
}

store_hash() {
	local dir=${1:-$(store_dir)/root}
	(cd "$dir" && find . -printf '%p %y %m %U %G %s %l\n' | LC_ALL=C sort &&
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum
}

# No process of any instance runs with a host uid outside the instance
# range: the instance's processes (by pid namespace) all have host uids in
# [INSTANCE_UID, INSTANCE_UID + 65536).
assert_pidns_uids_unprivileged() { # NS
	local p u bad=0
	for p in $(pids_in_pidns "$1"); do
		u=$(awk '/^Uid:/ { print $2; exit }' "/proc/$p/status" 2>/dev/null) || continue
		[ -n "$u" ] || continue
		if [ "$u" -lt "$INSTANCE_UID" ] || [ "$u" -ge $((INSTANCE_UID + 65536)) ]; then
			echo "pid $p runs as host uid $u" >&2
			bad=1
		fi
	done
	return $bad
}
