#!/bin/bash
# No host resource enters an instance (attack review items 8, 9).
#
# fds: a process of the instance (the probe's `grabber`, detached, as
# www-data) takes every fd of a command that `slate exec` runs (the probe's
# `victim`), with pidfd_getfd and by reopening /proc/PID/fd/N, and once the
# exec returned it writes a marker to each and reads each: the marker must
# not reach the operator's file or terminal, and what the operator types
# next must not reach it. Without a terminal, with -i, with -t (a pty inside
# the instance) and with the operator on a terminal (a pty made here with
# python's pty module). Also: the relay keeps bytes, EOF and exit status;
# `slate run` gives its command pipes, and the image's processes get the
# instance's own /dev/null.
#
# quotas: the instance's user namespace is owned by its own host root, not
# host root, so its inotify instances are charged there, capped per user
# inside (16); host root can still make inotify instances while an
# instance holds its maximum; io_setup (AIO: the host-wide fs.aio-nr) is
# refused.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/apps-lib.sh"

APP=hostfds
PROBE=/usr/local/bin/probe
PBUNDLE=$TEST_TMP/probe.slate

test_expect_success 'setup: a bundle with the probe, deployed' '
	apps_setup &&
	install -d "$IMAGE/rootfs/usr/local/bin" &&
	install -m 0755 "$SLATE_BUILD/tests/probe" "$IMAGE/rootfs/usr/local/bin/probe" &&
	build_bundle "$SLATE_TOP/examples/craft-site" "$PBUNDLE" 10 &&
	sl deploy "$APP" "$PBUNDLE" --key "$PUB" >"$TEST_TMP/deploy.out" &&
	wait_running "$APP"
'
require_bundles "$PBUNDLE"

px() { sl exec "$@"; } # px [FLAGS] APP -- probe ARGS

wait_for_line() { # FILE REGEX: at most 10 s
	local i
	for i in $(seq 100); do
		grep -qE -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "no line /$2/ in $1 after 10 s; it holds:" >&2
	head -c 2000 "$1" >&2
	return 1
}

# ---- item 9: kernel quotas ----

test_expect_success 'inotify: capped at 16 per user of the instance, host root unaffected meanwhile' '
	bg_start "$TEST_TMP/ino" sl exec "$APP" -- $PROBE inotify 200 8 &&
	wait_for_line "$TEST_TMP/ino" "^holding" &&
	assert_file_has_content "$TEST_TMP/ino" "^inotify 16$" &&
	assert_file_has_content "$TEST_TMP/ino" "^inotify_error EMFILE$" &&
	python3 -c "
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
fds = [libc.inotify_init1(0o2000000) for _ in range(4)]
assert all(fd >= 0 for fd in fds), \"host root: inotify_init1 failed: %s\" % os.strerror(ctypes.get_errno())
" &&
	px --user root "$APP" -- $PROBE inotify 200 0 >"$TEST_TMP/ino-root" &&
	assert_file_has_content "$TEST_TMP/ino-root" "^inotify 16$"
'

# A process of the app's instance: a descendant of its monitor in another
# user namespace.
instance_proc() {
	local p host
	host=$(readlink /proc/self/ns/user)
	for p in $(descendants "$(monitor_pid "$APP")"); do
		[ "$(readlink "/proc/$p/ns/user" 2>/dev/null)" != "$host" ] && { echo "$p"; return 0; }
	done
	echo "no process of $APP in a user namespace" >&2
	return 1
}

test_expect_success 'the user namespace is owned by the instance'"'"'s host root; its quotas are set, read-only inside' '
	pid=$(instance_proc) &&
	python3 -c "
import fcntl, os, struct, sys
fd = os.open(\"/proc/$pid/ns/user\", os.O_RDONLY)
buf = fcntl.ioctl(fd, 0xb704, struct.pack(\"I\", 0))
print(struct.unpack(\"I\", buf)[0])
" >"$TEST_TMP/owner" &&
	test "$(cat "$TEST_TMP/owner")" = 1879048192 &&
	px "$APP" -- $PROBE read /proc/sys/user/max_inotify_instances >"$TEST_TMP/q1" &&
	test "$(cat "$TEST_TMP/q1")" = 16 &&
	for ns in user mnt pid net ipc uts cgroup; do
		px "$APP" -- $PROBE read /proc/sys/user/max_${ns}_namespaces >"$TEST_TMP/q2" &&
		test "$(cat "$TEST_TMP/q2")" = 0 || exit 1
	done &&
	px --user root "$APP" -- $PROBE write /proc/sys/user/max_inotify_instances 1000 >"$TEST_TMP/q3" &&
	! grep -qx "write OK" "$TEST_TMP/q3"
'

test_expect_success 'io_setup (AIO, the host-wide fs.aio-nr quota) is refused' '
	px "$APP" -- $PROBE aio >"$TEST_TMP/aio" &&
	assert_file_has_content "$TEST_TMP/aio" "^io_setup EPERM$" &&
	px --user root "$APP" -- $PROBE aio >"$TEST_TMP/aio-root" &&
	assert_file_has_content "$TEST_TMP/aio-root" "^io_setup EPERM$"
'

# ---- item 8: no host fd ----

# grab_setup NAME: a grabber waiting in /tmp/g-NAME of the instance.
grab_setup() {
	px "$APP" -- $PROBE grabber "/tmp/g-$1" 40 "MARKER-$1" >"$TEST_TMP/grabber-$1" &&
	assert_file_has_content "$TEST_TMP/grabber-$1" "^grabber [0-9]+$"
}

# grab_finish NAME: say go (the victim's exec has returned), wait for the
# grabber's report ($TEST_TMP/report-NAME), check that it grabbed fds 0-2.
grab_finish() {
	local i
	px "$APP" -- $PROBE write "/tmp/g-$1/go" >/dev/null &&
	for i in $(seq 50); do
		px "$APP" -- $PROBE read "/tmp/g-$1/report" >"$TEST_TMP/report-$1" || true
		grep -qx done "$TEST_TMP/report-$1" && break
		sleep 0.2
	done &&
	assert_file_has_content "$TEST_TMP/report-$1" "^done$" &&
	for fd in 0 1 2; do
		assert_file_has_content "$TEST_TMP/report-$1" "^getfd $fd OK " || return 1
	done
}

# The grabber read nothing that the operator typed.
no_typed() {
	assert_file_lacks_content "$TEST_TMP/report-$1" "^read [0-9]+ DATA"
}

grab_pipes() { # NAME EXEC-FLAGS...: the operator on files and a pipe
	local name=$1
	shift
	grab_setup "$name" &&
	{ sleep 2; echo "TYPED-$name"; } | sl exec "$@" "$APP" -- $PROBE victim "/tmp/g-$name" 20 \
		>"$TEST_TMP/out-$name" 2>"$TEST_TMP/err-$name" || { echo "exec: ${PIPESTATUS[*]}" >&2; true; }
	assert_file_has_content "$TEST_TMP/out-$name" "^victim done$" &&
	grab_finish "$name" &&
	assert_file_lacks_content "$TEST_TMP/out-$name" "MARKER" &&
	assert_file_lacks_content "$TEST_TMP/err-$name" "MARKER" &&
	no_typed "$name"
}

test_expect_success 'exec: a process that grabs the command'"'"'s fds gets nothing of the operator'"'"'s files or pipe' '
	grab_pipes plain
'

test_expect_success 'exec -i: the same; after exec returns the grabbed stdin reads EOF, writes fail' '
	grab_pipes stdin -i &&
	assert_file_has_content "$TEST_TMP/report-stdin" "^read 0 EOF$" &&
	assert_file_has_content "$TEST_TMP/report-stdin" "^write 1 EPIPE$"
'

# on_pty NAME EXEC-FLAGS...: slate exec ... victim on a new terminal
# (python's pty; slate is the session leader's child, so the terminal is
# its controlling terminal). Once slate exited: type TYPED-NAME on that
# terminal, say go, wait for the grabber's report; keep what the terminal
# showed before ($TEST_TMP/NAME.before) and after (NAME.after) slate
# exited, and slate's exit status (NAME.rc).
on_pty() {
	SL_ROOT=$ROOT SL_RUN=$RUN SL_APP=$APP SL_PROBE=$PROBE python3 - "$TEST_TMP" "$@" <<-'EOF'
	import os, pty, select, subprocess, sys, time
	tmp, name, flags = sys.argv[1], sys.argv[2], sys.argv[3:]
	e = os.environ
	sl = [e["SLATE"], "--root", e["SL_ROOT"], "--run-dir", e["SL_RUN"], "exec"]
	d = "/tmp/g-" + name
	pid, fd = pty.fork()
	if pid == 0:
	    os.execvp(sl[0], sl + flags + [e["SL_APP"], "--", e["SL_PROBE"], "victim", d, "20"])
	def drain(seconds):
	    got, end = b"", time.time() + seconds
	    while time.time() < end:
	        r, _, _ = select.select([fd], [], [], 0.1)
	        if r:
	            try:
	                data = os.read(fd, 4096)
	            except OSError:
	                break
	            if not data:
	                break
	            got += data
	    return got
	before, status, end = b"", None, time.time() + 60
	while status is None and time.time() < end:
	    before += drain(0.2)
	    p, st = os.waitpid(pid, os.WNOHANG)
	    if p:
	        status = os.waitstatus_to_exitcode(st)
	before += drain(0.3)
	try:
	    os.write(fd, ("TYPED-%s\n" % name).encode())
	except OSError:
	    pass
	probe = sl + [e["SL_APP"], "--", e["SL_PROBE"]]
	subprocess.run(probe + ["write", d + "/go"], check=True, stdout=subprocess.DEVNULL, timeout=60)
	report = b""
	for _ in range(50):
	    report = subprocess.run(probe + ["read", d + "/report"], stdout=subprocess.PIPE, timeout=60).stdout
	    if b"\ndone\n" in b"\n" + report:
	        break
	    time.sleep(0.2)
	after = drain(1.5)
	for ext, data in ((".before", before), (".after", after), ("", report)):
	    open("%s/%s%s" % (tmp, name, ext), "wb").write(data)
	open("%s/%s.rc" % (tmp, name), "w").write("%s\n" % status)
	EOF
}

grab_tty() { # NAME EXEC-FLAGS...: the operator on a terminal
	local name=$1 fd
	grab_setup "$name" &&
	on_pty "$@" &&
	mv "$TEST_TMP/$name" "$TEST_TMP/report-$name" &&
	for f in "$name.before" "$name.after" "report-$name"; do
		echo "--- $f:" >&2
		cat -v "$TEST_TMP/$f" >&2
	done &&
	assert_file_has_content "$TEST_TMP/report-$name" "^done$" &&
	for fd in 0 1 2; do
		assert_file_has_content "$TEST_TMP/report-$name" "^getfd $fd OK " || return 1
	done &&
	test "$(cat "$TEST_TMP/$name.rc")" = 0 &&
	grep -qa "victim done" "$TEST_TMP/$name.before" &&
	! grep -qa MARKER "$TEST_TMP/$name.before" "$TEST_TMP/$name.after" &&
	no_typed "$name"
}

test_expect_success 'exec on the operator'"'"'s terminal: no /dev/tty (own session), nothing grabbed reaches it' '
	grab_tty term &&
	grep -qa "victim_tty ENXIO" "$TEST_TMP/term.before"
'

test_expect_success 'exec -t: a pty of the instance'"'"'s devpts; once exec returns, the grabbed pty is dead' '
	grab_tty pty -t &&
	grep -qa "victim_tty OK" "$TEST_TMP/pty.before" &&
	assert_file_has_content "$TEST_TMP/report-pty" "^getfd 0 OK /dev/pts/[0-9]+$" &&
	assert_file_lacks_content "$TEST_TMP/report-pty" "^write [0-9]+ OK$"
'

# slate exec -it on a terminal made here (30x100): the command reads a
# line typed on it, sees the size, and a SIGWINCH after a resize (40x120);
# slate's terminal is raw meanwhile, and canonical with echo again after.
tty_session() {
	SL_ROOT=$ROOT SL_RUN=$RUN SL_APP=$APP SL_PROBE=$PROBE python3 - <<-'EOF'
	import fcntl, os, select, struct, sys, termios, time
	e = os.environ
	m, s = os.openpty()
	fcntl.ioctl(m, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
	pid = os.fork()
	if pid == 0:
	    os.setsid()
	    fcntl.ioctl(s, termios.TIOCSCTTY, 0)
	    for i in range(3):
	        os.dup2(s, i)
	    os.execvp(e["SLATE"], [e["SLATE"], "--root", e["SL_ROOT"], "--run-dir", e["SL_RUN"], "exec", "-it",
	                           e["SL_APP"], "--", e["SL_PROBE"], "tty-echo", "20"])
	os.close(s)
	seen = b""
	def until(what, seconds=20):
	    global seen
	    end = time.time() + seconds
	    while what not in seen and time.time() < end:
	        r, _, _ = select.select([m], [], [], 0.1)
	        if r:
	            try:
	                seen += os.read(m, 4096)
	            except OSError:
	                break
	    if what not in seen:
	        sys.exit("no %r on the terminal; it shows %r" % (what, seen))
	until(b"ready")
	if termios.tcgetattr(m)[3] & termios.ICANON:
	    sys.exit("the operator's terminal is not raw while the command runs")
	os.write(m, b"hello\r")
	until(b"got hello")
	fcntl.ioctl(m, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
	until(b"winsize 40 120")
	_, st = os.waitpid(pid, 0)
	lflag = termios.tcgetattr(m)[3]
	print(seen.decode(errors="replace"))
	print("status %d" % os.waitstatus_to_exitcode(st))
	print("restored %s" % ("yes" if lflag & termios.ICANON and lflag & termios.ECHO else "no"))
	EOF
}

test_expect_success 'exec -it: typed input reaches the command, window size and SIGWINCH pass, the terminal is restored' '
	tty_session >"$TEST_TMP/it" &&
	assert_file_has_content "$TEST_TMP/it" "winsize 30 100" &&
	assert_file_has_content "$TEST_TMP/it" "got hello" &&
	assert_file_has_content "$TEST_TMP/it" "^status 3$" &&
	assert_file_has_content "$TEST_TMP/it" "^restored yes$"
'

# ---- the relay keeps what it carries ----

test_expect_success 'exec -i: binary data both ways, EOF on stdin, stderr apart, the exit status' '
	head -c 3000000 /dev/urandom >"$TEST_TMP/bin" &&
	sl exec -i "$APP" -- php -r "stream_copy_to_stream(STDIN, STDOUT); fwrite(STDERR, \"err\n\"); exit(7);" \
		<"$TEST_TMP/bin" >"$TEST_TMP/bin.out" 2>"$TEST_TMP/bin.err" || rc=$?
	test "${rc:-0}" = 7 &&
	cmp "$TEST_TMP/bin" "$TEST_TMP/bin.out" &&
	test "$(cat "$TEST_TMP/bin.err")" = err &&
	px "$APP" -- $PROBE kill-self TERM >/dev/null || rc=$?
	test "$rc" = 143
'

test_expect_success 'exec without -i: stdin is the instance'"'"'s /dev/null, the operator'"'"'s stdin is not read' '
	echo "not for the command" | sl exec "$APP" -- php -r "var_dump(stream_get_contents(STDIN));" >"$TEST_TMP/noi" &&
	assert_file_has_content "$TEST_TMP/noi" "string\(0\)"
'

# ---- slate run, the image's processes ----

test_expect_success 'run: the command'"'"'s stdio are pipes, none of the operator'"'"'s files' '
	"$SLATE" --root "$ROOT" run --key "$PUB" "$PBUNDLE" -- $PROBE fds <"$TEST_TMP/bin" >"$TEST_TMP/run-fds" &&
	assert_file_has_content "$TEST_TMP/run-fds" "^fd 0 -> pipe:" &&
	assert_file_has_content "$TEST_TMP/run-fds" "^fd 1 -> pipe:" &&
	assert_file_has_content "$TEST_TMP/run-fds" "^fd 2 -> pipe:" &&
	assert_file_lacks_content "$TEST_TMP/run-fds" "$TEST_TMP"
'

test_expect_success 'run on the operator'"'"'s terminal: the instance has its own session, /dev/tty does not open' '
	python3 - "$SLATE" "$ROOT" "$PUB" "$PBUNDLE" "$PROBE" >"$TEST_TMP/run-tty" <<-'EOF'
	import os, pty, sys, time
	slate, root, pub, bundle, probe = sys.argv[1:]
	pid, fd = pty.fork()
	if pid == 0:
	    os.execv(slate, [slate, "--root", root, "run", "--key", pub, bundle, "--", probe, "write", "/dev/tty", "MARKER"])
	out = b""
	while True:
	    try:
	        data = os.read(fd, 4096)
	    except OSError:
	        break
	    if not data:
	        break
	    out += data
	_, st = os.waitpid(pid, 0)
	print(out.decode(errors="replace"))
	print("status %d" % os.waitstatus_to_exitcode(st))
	EOF
	assert_file_has_content "$TEST_TMP/run-tty" "write ENXIO" &&
	assert_file_has_content "$TEST_TMP/run-tty" "^status 0" &&
	assert_file_lacks_content "$TEST_TMP/run-tty" MARKER
'

test_expect_success 'the image'"'"'s processes: stdin is the instance'"'"'s own /dev/null (a mount of its own namespace)' '
	pid=$(instance_proc) &&
	test "$(readlink "/proc/$pid/fd/0")" = /dev/null &&
	mnt=$(awk "/^mnt_id:/ { print \$2 }" "/proc/$pid/fdinfo/0") &&
	awk -v m="$mnt" "\$1 == m { found = 1 } END { exit !found }" "/proc/$pid/mountinfo"
'

test_done
