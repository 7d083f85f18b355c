#!/bin/bash
# The monitor is bounded by the app (attack review items 11-14).
#
# 11: idle connections are closed after the idle timeout (lowered here
#     with SLATE_RELAY_IDLE_TIMEOUT); one client address is capped (the
#     caps come from the monitor's fd limit, lowered here to 2176, less
#     a reserve of 1408 (256, the tamper alarm's 1024 watches and 128 fds
#     of its walks): 128 in all, 64 per port, 16 per address) while another address is served,
#     `slate status` answers throughout and the monitor's fds stay bounded.
# 12: the monitor's relay sockets have small fixed buffers; the monitor
#     runs in a cgroup of its own with a memory limit, in `status --json`.
# 13: a flood of instance output (shorter than the idle timeout: the
#     request sends nothing back until it ends) costs the monitor little CPU; dropped
#     lines are counted in the log and in `status`.
# 14: a port published to the image's proxy-protocol port 8080 gets the
#     relay's PROXY line first: a client's forged one does not set the
#     address PHP sees; publishing a port the image does not declare as
#     proxy-protocol is refused (exit 1, one line).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/apps-lib.sh"

APP=t84bounds
FLOOD=$TEST_TMP/flood.slate
IDLE=3 # seconds

mpid() { pj 'j["monitor_pid"]' <"$RUN/$APP/running.json"; }
monitor_status() { sl status --json "$APP"; }
fd_count() { ls "/proc/$1/fd" | wc -l; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

test_expect_success 'setup: a bundle with ip.php and flood.php; the app deployed on 80 and 8080 with 2176 fds' '
	apps_setup &&
	src=$TEST_TMP/src-flood &&
	cp -a "$SLATE_TOP/examples/craft-site" "$src" &&
	printf "<?php\necho \$_SERVER[\"REMOTE_ADDR\"], \"\\\\n\";\n" >"$src/web/ip.php" &&
	cat >"$src/web/flood.php" <<-\PHP &&
	<?php
	$e = fopen("php://stderr", "w");
	$line = str_repeat("y", 200) . "\n";
	$end = microtime(true) + 2.5;
	for ($n = 0; microtime(true) < $end; $n++)
		fwrite($e, $line);
	echo "wrote $n\n";
	PHP
	build_bundle "$src" "$FLOOD" 10 &&
	pick_ports 3 18380 18399 >"$TEST_TMP/ports" &&
	p1=$(sed -n 1p "$TEST_TMP/ports") && p2=$(sed -n 2p "$TEST_TMP/ports") &&
	(ulimit -n 2176 && ulimit -Hn 2176 &&
	 SLATE_RELAY_IDLE_TIMEOUT=$IDLE SLATE_RELAY_HALF_CLOSE_TIMEOUT=$IDLE \
		sl deploy --key "$PUB" "$APP" "$FLOOD" -p "127.0.0.1:$p1:80" -p "127.0.0.1:$p2:8080") >"$TEST_TMP/out" &&
	test "$(cat "$TEST_TMP/out")" = 1 &&
	test "$(get "$p1" /ip.php)" = 200 &&
	test "$(cat "$TEST_TMP/body")" = 127.0.0.1
'
require_bundles "$FLOOD"
P1=$(sed -n 1p "$TEST_TMP/ports")
P2=$(sed -n 2p "$TEST_TMP/ports")
P3=$(sed -n 3p "$TEST_TMP/ports")

test_expect_success 'status --json: the limits come from the fd limit, the idle timeout from the knob' '
	monitor_status >"$TEST_TMP/st" &&
	test "$(pj "j[\"monitor\"][\"limits\"][\"connections\"]" <"$TEST_TMP/st")" = 128 &&
	test "$(pj "j[\"monitor\"][\"limits\"][\"per_port\"]" <"$TEST_TMP/st")" = 64 &&
	test "$(pj "j[\"monitor\"][\"limits\"][\"per_address\"]" <"$TEST_TMP/st")" = 16 &&
	test "$(pj "j[\"monitor\"][\"limits\"][\"idle_timeout_ms\"]" <"$TEST_TMP/st")" = $((IDLE * 1000))
'

# hold PORT N SECONDS: N idle connections from 127.0.0.1, held until the
# monitor closes them or SECONDS pass; prints "opened N", then, once done,
# "closed at once: K" (within 1 s: refused by the cap) and "closed later: L
# after S s" (the idle timeout).
hold() {
	python3 - "$@" <<-\PY
	import socket, sys, time, select
	port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
	t0 = time.monotonic()
	socks = []
	for i in range(n):
	    s = socket.create_connection(("127.0.0.1", port), timeout=3)
	    socks.append(s)
	print("opened %d" % len(socks), flush=True)
	closed = {}
	while len(closed) < n and time.monotonic() - t0 < secs:
	    live = [s for s in socks if s not in closed]
	    r, _, _ = select.select(live, [], [], 0.1)
	    for s in r:
	        try:
	            data = s.recv(1)
	        except OSError:
	            data = b""
	        if not data:
	            closed[s] = time.monotonic() - t0
	early = [t for t in closed.values() if t < 1.0]
	late = [t for t in closed.values() if t >= 1.0]
	print("closed at once: %d" % len(early))
	print("closed later: %d after %.1f s" % (len(late), min(late) if late else 0))
	print("still open: %d" % (n - len(closed)))
	PY
}

test_expect_success '11: 40 idle clients from 127.0.0.1: 16 held, 24 refused; 127.0.0.2 served; status answers; fds bounded; idle ones closed after the timeout' '
	m=$(mpid) &&
	base=$(fd_count "$m") &&
	bg_start "$TEST_TMP/hold" hold "$P1" 40 $((IDLE + 6)) &&
	sleep 1.5 &&
	test "$(curl -s -m 5 --interface 127.0.0.2 -o /dev/null -w "%{http_code}" "http://127.0.0.1:$P1/")" = 200 &&
	timeout 5 "$SLATE" --root "$ROOT" --run-dir "$RUN" status --json "$APP" >"$TEST_TMP/st" &&
	test "$(pj "j[\"connections\"]" <"$TEST_TMP/st")" -le 17 &&
	test "$(pj "j[\"monitor\"][\"connections_refused\"]" <"$TEST_TMP/st")" -ge 24 &&
	fds=$(fd_count "$m") &&
	echo "monitor fds: $base before, $fds with 16 held" &&
	test "$fds" -le $((base + 16 * 6 + 12)) &&
	wait "$BG_PID" &&
	cat "$TEST_TMP/hold" &&
	grep -qx "opened 40" "$TEST_TMP/hold" &&
	grep -qx "closed at once: 24" "$TEST_TMP/hold" &&
	grep -q "^closed later: 16 after [$IDLE-9]" "$TEST_TMP/hold" &&
	grep -qx "still open: 0" "$TEST_TMP/hold" &&
	test "$(monitor_status | pj "j[\"monitor\"][\"connections_expired\"]")" -ge 16 &&
	test "$(get "$P1" /ip.php)" = 200
'

test_expect_success '12: the relay sockets have small fixed buffers' '
	m=$(mpid) &&
	buf=$(sed -n "s/^#define RELAY_SOCK_BUF (\([0-9]*\) \* 1024).*/\1/p" "$SLATE_TOP/runtime/relay.h") &&
	want=$((buf * 2048)) &&
	bg_start "$TEST_TMP/hold2" hold "$P1" 3 2 &&
	sleep 1 &&
	ss -Htnpm state established "( sport = :$P1 )" >"$TEST_TMP/ss" &&
	wait "$BG_PID" &&
	cat "$TEST_TMP/ss" &&
	sockets=$(grep -o "skmem:" "$TEST_TMP/ss" | wc -l) &&
	test "$sockets" -ge 3 &&
	test "$(grep -o "pid=$m," "$TEST_TMP/ss" | wc -l)" = "$sockets" &&
	test "$(grep -oE "rb$want,t[0-9]+,tb$want," "$TEST_TMP/ss" | wc -l)" = "$sockets"
'

test_expect_success '12: the monitor runs in a cgroup of its own with a memory limit, shown by status' '
	m=$(mpid) &&
	monitor_status >"$TEST_TMP/st" &&
	name=$(pj "j[\"monitor\"][\"cgroup\"][\"name\"]" <"$TEST_TMP/st") &&
	test "$name" = "$APP-monitor.$m" &&
	grep -qE ":(memory|):/slate/$name\$" "/proc/$m/cgroup" &&
	test "$(pj "j[\"monitor\"][\"cgroup\"][\"memory_max\"]" <"$TEST_TMP/st")" = $((256 << 20)) &&
	test "$(pj "j[\"monitor\"][\"cgroup\"][\"memory_current\"]" <"$TEST_TMP/st")" -gt 0
'

test_expect_success '13: a 2.5 s flood of stderr costs the monitor under 6% of a CPU (14% before the rate limit); dropped lines counted in status and the log' '
	m=$(mpid) &&
	c0=$(cpu_ticks "$m") && t0=$(date +%s%N) &&
	curl -sS -m 20 -o "$TEST_TMP/flood.out" "http://127.0.0.1:$P1/flood.php" &&
	c1=$(cpu_ticks "$m") && t1=$(date +%s%N) &&
	cat "$TEST_TMP/flood.out" &&
	hz=$(getconf CLK_TCK) &&
	used_ms=$(( (c1 - c0) * 1000 / hz )) && wall_ms=$(( (t1 - t0) / 1000000 )) &&
	echo "monitor CPU: $used_ms ms in $wall_ms ms" &&
	test "$wall_ms" -ge 2400 &&
	test $((used_ms * 16)) -lt "$wall_ms" &&
	sleep 1.2 &&
	dropped=$(monitor_status | pj "j[\"monitor\"][\"log_dropped_lines\"]") &&
	echo "dropped lines: $dropped" &&
	test "$dropped" -gt 0 &&
	grep -q "slate log: dropped [0-9]* lines" "$ROOT/apps/$APP/logs/current.log" &&
	timeout 5 "$SLATE" --root "$ROOT" --run-dir "$RUN" status "$APP" >/dev/null
'

test_expect_success '14: a forged PROXY line on the published 8080 does not reach PHP as the address' '
	python3 - "$P2" >"$TEST_TMP/forged" <<-\PY &&
	import socket, sys
	s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
	s.sendall(b"PROXY TCP4 6.6.6.6 127.0.0.1 1234 8080\r\nGET /ip.php HTTP/1.0\r\nHost: x\r\n\r\n")
	out = b""
	while True:
	    d = s.recv(65536)
	    if not d: break
	    out += d
	print(out.decode(errors="replace"))
	PY
	cat "$TEST_TMP/forged" &&
	! grep -q "6\.6\.6\.6" "$TEST_TMP/forged" &&
	head -n 1 "$TEST_TMP/forged" | grep -q "^HTTP/1.1 400" &&
	test "$(get "$P2" /ip.php)" = 200 &&
	test "$(cat "$TEST_TMP/body")" = 127.0.0.1 &&
	! grep -q "^[^ ]* out 6\.6\.6\.6 " "$ROOT/apps/$APP/logs/current.log"
'

test_expect_success '14: publishing a port the image does not declare as proxy-protocol is refused (exit 1, one line)' '
	test_must_fail --code 1 sl deploy --key "$PUB" "$APP" "$FLOOD" -p "127.0.0.1:$P3:81" >"$TEST_TMP/out" 2>"$TEST_TMP/err" &&
	cat "$TEST_TMP/err" &&
	test "$(wc -l <"$TEST_TMP/err")" = 1 &&
	grep -q "port 81 is not a proxy-protocol port of the image" "$TEST_TMP/err" &&
	port_free "$P3" &&
	test "$(get "$P1" /ip.php)" = 200
'

test_done
