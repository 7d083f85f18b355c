#!/bin/bash
# slate run: what an instance can see and change. Network (only lo), the
# root filesystem (the image's, read-only but for the project's writable
# paths, /tmp and /run), /proc (own pids only, masked paths), /dev
# (exactly the minimal set, the real devices), other instances and the
# store (invisible), the store's bytes (unchanged by any run), and the
# slate binary (CVE-2019-5736: /proc/<pid>/exe cannot be opened for
# writing from inside).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/run-lib.sh"

test_expect_success 'setup: the test bundle, a first run to store it, the store hash' '
	run_setup &&
	probe -- exit 0 &&
	test -d "$(store_dir)/root" &&
	store_hash >"$TEST_TMP/store.hash" &&
	sha256sum <"$SLATE" >"$TEST_TMP/slate.hash"
'
require_bundle

# Network.
test_expect_success 'network: only lo; the instance'"'"'s /sys shows no host interface' '
	probe -- net >"$TEST_TMP/net" &&
	test "$(grep "^iface " "$TEST_TMP/net")" = "iface lo" &&
	! grep -q "^sysfs_iface " "$TEST_TMP/net"
'

test_expect_success 'network: the host'"'"'s addresses are unreachable (ENETUNREACH)' '
	addr=$(ip -4 -o addr show scope global | awk "{ sub(\"/.*\", \"\", \$4); print \$4; exit }")
	test -n "$addr" || addr=192.0.2.2
	probe -- connect "$addr" 22 >"$TEST_TMP/conn"
	grep -qx "connect ENETUNREACH" "$TEST_TMP/conn" || { cat "$TEST_TMP/conn" >&2; exit 1; }
	probe -- connect 127.0.0.1 80 >"$TEST_TMP/conn"
	grep -qx "connect ECONNREFUSED" "$TEST_TMP/conn" || { cat "$TEST_TMP/conn" >&2; exit 1; }
'

# The root filesystem.
test_expect_success '/ is the image'"'"'s root: the store copy'"'"'s entries, no host directory' '
	probe -- ls / >"$TEST_TMP/ls-root" &&
	(cd "$(store_dir)/root" && ls -A | LC_ALL=C sort) >"$TEST_TMP/ls-store" &&
	test_cmp "$TEST_TMP/ls-store" "$TEST_TMP/ls-root" &&
	! grep -qxE "home|root|work|var|boot|mnt|srv|opt|media" "$TEST_TMP/ls-root"
'

test_expect_success 'the host'"'"'s /tmp, the state root and the store are invisible' '
	probe -- ls /tmp >"$TEST_TMP/ls-tmp" &&
	test ! -s "$TEST_TMP/ls-tmp" &&
	probe -- stat "$ROOT" >"$TEST_TMP/stat-root" &&
	grep -qx "stat_error ENOENT" "$TEST_TMP/stat-root" &&
	probe -- stat "$(store_dir)/root/app" >"$TEST_TMP/stat-store" &&
	grep -qx "stat_error ENOENT" "$TEST_TMP/stat-store" &&
	probe -- read /proc/self/mountinfo >"$TEST_TMP/mountinfo" &&
	! grep -qF "$ROOT/store" "$TEST_TMP/mountinfo"
'

test_expect_success 'mounts: / and /dev read-only; rw only where writable, always noexec; nosuid everywhere' '
	probe -- read /proc/self/mountinfo >"$TEST_TMP/mountinfo"
	awk "\$5 == \"/\" { print \$6 }" "$TEST_TMP/mountinfo" | grep -qE "^ro,"
	awk "\$5 == \"/dev\" { print \$6 }" "$TEST_TMP/mountinfo" | grep -qE "^ro,"
	# Device nodes and the /proc masks (bound from /dev/null) keep their mount flags.
	devs="/dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /proc/keys /proc/timer_list /proc/kcore /proc/sched_debug /proc/latency_stats /proc/timer_stats"
	writable="/app/storage /app/web/cpresources /tmp /run /dev/shm /dev/pts /proc"
	bad=0
	while read -r _ _ _ _ mp opts _; do
		case " $devs " in *" $mp "*) continue ;; esac
		case ",$opts," in *,nosuid,*) ;; *) echo "$mp: no nosuid ($opts)" >&2; bad=1 ;; esac
		case ",$opts," in
		*,rw,*)
			case " $writable " in *" $mp "*) ;; *) echo "$mp is writable ($opts)" >&2; bad=1 ;; esac
			case ",$opts," in *,noexec,*) ;; *) echo "$mp: writable without noexec ($opts)" >&2; bad=1 ;; esac
			;;
		esac
		case "$mp:,$opts," in /dev/pts:*) ;; *,nodev,*) ;; *) echo "$mp: no nodev ($opts)" >&2; bad=1 ;; esac
	done <"$TEST_TMP/mountinfo"
	test "$bad" -eq 0
	for mp in /app/storage /app/web/cpresources /tmp /run; do
		awk -v m="$mp" "\$5 == m { print \$6 }" "$TEST_TMP/mountinfo" | grep -qE "^rw," ||
			{ echo "$mp not mounted rw" >&2; exit 1; }
	done
'

# /proc.
test_expect_success '/proc holds only the instance'"'"'s pids: 1 (init) and 2 (the probe)' '
	probe -- ls /proc >"$TEST_TMP/ls-proc" &&
	test "$(grep -xE "[0-9]+" "$TEST_TMP/ls-proc" | tr "\n" " ")" = "1 2 "
'

test_expect_success '/proc: Docker'"'"'s masked and read-only paths' '
	probe -- proc-masks >"$TEST_TMP/masks" 2>"$TEST_TMP/masks.err" &&
	test "$(grep -c " yes$" "$TEST_TMP/masks")" -eq 15 &&
	! grep -q " no$" "$TEST_TMP/masks" &&
	probe --user root -- proc-masks >"$TEST_TMP/masks-root" 2>"$TEST_TMP/masks.err" &&
	test "$(grep -c " yes$" "$TEST_TMP/masks-root")" -eq 15
'

test_expect_success 'the cgroup namespace: the instance sees its cgroup as /' '
	probe -- read /proc/self/cgroup >"$TEST_TMP/cgroup" &&
	test -s "$TEST_TMP/cgroup" &&
	! grep -qv ":/$" "$TEST_TMP/cgroup"
'

test_expect_success 'hostname is --name (default: the bundle'"'"'s name)' '
	probe --name isobox -- hostname >"$TEST_TMP/hn" &&
	test "$(cat "$TEST_TMP/hn")" = "hostname isobox" &&
	probe -- hostname >"$TEST_TMP/hn" &&
	test "$(cat "$TEST_TMP/hn")" = "hostname craft-site" &&
	test "$(hostname)" != isobox
'

# /dev.
test_expect_success '/dev holds exactly null zero full random urandom tty, pts+ptmx, shm and the fd links' '
	probe -- devices >"$TEST_TMP/devices" &&
	LC_ALL=C sort "$TEST_TMP/devices" >"$TEST_TMP/devices.sorted" &&
	cat >"$TEST_TMP/devices.want" <<-EOF &&
	dev /dev/fd link /proc/self/fd
	dev /dev/full char 1:7
	dev /dev/null char 1:3
	dev /dev/ptmx link pts/ptmx
	dev /dev/pts dir
	dev /dev/pts/ptmx char 5:2
	dev /dev/random char 1:8
	dev /dev/shm dir
	dev /dev/stderr link /proc/self/fd/2
	dev /dev/stdin link /proc/self/fd/0
	dev /dev/stdout link /proc/self/fd/1
	dev /dev/tty char 5:0
	dev /dev/urandom char 1:9
	dev /dev/zero char 1:5
	EOF
	test_cmp "$TEST_TMP/devices.want" "$TEST_TMP/devices.sorted"
'

test_expect_success '/dev: the devices work, nothing can be added' '
	probe -- write /dev/null text >"$TEST_TMP/w" && grep -qx "write OK" "$TEST_TMP/w" &&
	probe -- write /dev/sda >"$TEST_TMP/w" && grep -qx "write EROFS" "$TEST_TMP/w" &&
	probe --user root -- write /dev/sda >"$TEST_TMP/w" && grep -qx "write EROFS" "$TEST_TMP/w" &&
	probe -- write /dev/shm/x text >"$TEST_TMP/w" && grep -qx "write OK" "$TEST_TMP/w"
'

# Other instances.
test_expect_success 'another running instance is invisible: its processes, its /tmp, its hostname' '
	trap bg_stop_all EXIT
	slate_bg "$TEST_TMP/other.out" --name other-a "$SITE" -- php -r "file_put_contents(\"/tmp/marker-a\", \"a\"); echo \"ready\n\"; sleep(30);"
	wait_for_line "$TEST_TMP/other.out" "^ready$"
	init=$(instance_init "$BG_PID")
	test "$(cat /proc/$init/root/tmp/marker-a)" = a
	probe --name other-b -- ls /proc >"$TEST_TMP/ls-proc-b"
	test "$(grep -xE "[0-9]+" "$TEST_TMP/ls-proc-b" | tr "\n" " ")" = "1 2 "
	probe --name other-b -- ls /tmp >"$TEST_TMP/ls-tmp-b"
	test ! -s "$TEST_TMP/ls-tmp-b"
	# The host side of the scratch mount point shows nothing either.
	scratch=$(instance_entries "$ROOT/mnt" other-a)
	test -n "$scratch"
	test -z "$(ls -A "$scratch")"
	# (SIGKILL: what SIGTERM does is t70'"'"'s business; the next run cleans up.)
	pidns=$(readlink /proc/$init/ns/pid)
	kill -KILL "$BG_PID"
	wait "$BG_PID" || true
	assert_pidns_empty "$pidns"
	probe -- exit 0
	assert_instance_gone other-a
'

# Writes.
test_expect_success 'code is read-only: /app/web/x.php, /app/vendor/autoload.php, /etc/passwd give EROFS' '
	for p in /app/web/x.php /app/vendor/autoload.php /app/web/index.php /etc/passwd /usr/local/bin/probe /x; do
		probe -- write "$p" "<?php evil();" >"$TEST_TMP/w" &&
		grep -qx "write EROFS" "$TEST_TMP/w" || { echo "$p: $(cat "$TEST_TMP/w")" >&2; exit 1; }
	done
'

test_expect_success 'read-only even for the instance'"'"'s root (--user root)' '
	for p in /app/web/x.php /app/vendor/autoload.php /etc/passwd /usr/sbin/nginx; do
		probe --user root -- write "$p" "<?php evil();" >"$TEST_TMP/w" &&
		grep -qx "write EROFS" "$TEST_TMP/w" || { echo "$p: $(cat "$TEST_TMP/w")" >&2; exit 1; }
	done
'

test_expect_success 'writable paths accept writes: /app/storage, /app/web/cpresources, /tmp; /run for root' '
	for p in /app/storage/x /app/web/cpresources/x /app/storage/logs/x /tmp/x /dev/shm/x; do
		probe -- write "$p" data >"$TEST_TMP/w" &&
		grep -qx "write OK" "$TEST_TMP/w" || { echo "$p: $(cat "$TEST_TMP/w")" >&2; exit 1; }
	done &&
	probe --user root -- write /run/x data >"$TEST_TMP/w" && grep -qx "write OK" "$TEST_TMP/w" &&
	probe -- stat /app/storage >"$TEST_TMP/st" && grep -qx "uid 33" "$TEST_TMP/st" && grep -qx "gid 33" "$TEST_TMP/st"
'

test_expect_success 'a write to /app/storage is gone at the next run, and never reached the store' '
	probe -- write /app/storage/x persisted? >"$TEST_TMP/w" &&
	grep -qx "write OK" "$TEST_TMP/w" &&
	probe -- read /app/storage/x >"$TEST_TMP/r" &&
	grep -qx "read_error ENOENT" "$TEST_TMP/r" &&
	test ! -e "$(store_dir)/root/app/storage/x" &&
	probe -- ls /app/storage >"$TEST_TMP/ls" &&
	(cd "$(store_dir)/root/app/storage" && ls -A | LC_ALL=C sort) >"$TEST_TMP/ls.want" &&
	test_cmp "$TEST_TMP/ls.want" "$TEST_TMP/ls"
'

test_expect_success 'the store: root-owned, 0700 above the trees, its bytes unchanged by every run above' '
	test "$(stat -c "%U %a" "$ROOT/store")" = "root 700" &&
	test "$(stat -c "%U %a" "$(store_dir)")" = "root 700" &&
	store_hash >"$TEST_TMP/store.hash.after" &&
	test_cmp "$TEST_TMP/store.hash" "$TEST_TMP/store.hash.after"
'

# CVE-2019-5736: the slate binary behind /proc/1/exe.
test_expect_success 'CVE-2019-5736: /proc/1/exe (slate'"'"'s init) and /proc/self/exe cannot be opened for writing' '
	for u in www-data root; do
		probe --user "$u" -- exe-write 1 >"$TEST_TMP/exe-1" &&
		grep -qE "^exe_write E[A-Z]+$" "$TEST_TMP/exe-1" &&
		grep -qE "^exe_self_write E[A-Z]+$" "$TEST_TMP/exe-1" &&
		grep -qE "^exe_read E[A-Z]+$" "$TEST_TMP/exe-1" &&
		probe --user "$u" -- exe-write self >"$TEST_TMP/exe-self" &&
		grep -qE "^exe_write E[A-Z]+$" "$TEST_TMP/exe-self" &&
		grep -qE "^exe_self_write E[A-Z]+$" "$TEST_TMP/exe-self" ||
			{ echo "--user $u:" >&2; cat "$TEST_TMP/exe-1" "$TEST_TMP/exe-self" >&2; exit 1; }
	done &&
	sha256sum <"$SLATE" >"$TEST_TMP/slate.hash.after" &&
	test_cmp "$TEST_TMP/slate.hash" "$TEST_TMP/slate.hash.after" &&
	store_hash >"$TEST_TMP/store.hash.after" &&
	test_cmp "$TEST_TMP/store.hash" "$TEST_TMP/store.hash.after"
'

test_expect_success 'nothing is left: no process, cgroup or scratch dir of any instance above' '
	for n in craft-site isobox other-a other-b; do assert_instance_gone "$n"; done &&
	test -z "$(ls -A "$ROOT/mnt")"
'

test_done
