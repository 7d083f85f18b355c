#!/bin/bash
# An app's network: nothing but what is granted. The instance has only
# `lo`; `--connect 3306=127.0.0.1:PORT` reaches a TCP service on the host's
# loopback (a tiny echo server here) and nothing else is reachable from
# inside: not another host service, not the app's own published port, not
# 127.0.0.1:22, not the host's address, not the outside. `slate connect`
# closes and reopens the granted service, `slate port` the published port,
# without a redeploy; a later deploy's -p moves the published port.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/apps-lib.sh"

APP=t82net

# tcp_try HOST PORT, from inside: "open <reply>" or "closed <errno> <message>".
TCP_TRY='$s = @fsockopen($argv[1], (int) $argv[2], $errno, $errstr, 3);
if ($s) { fwrite($s, "ping\n"); stream_set_timeout($s, 3); echo "open ", fgets($s); }
else { echo "closed $errno $errstr\n"; }'

tcp_try() { php_in "$APP" "$TCP_TRY" "$1" "$2"; }

# A tiny line echo server on 127.0.0.1:PORT in the background (recorded,
# stopped at the end): answers "echo <line>".
echo_server() { # PORT
	bg_start "$TEST_TMP/echo-$1.log" python3 -c '
import socketserver, sys
class H(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"echo " + self.rfile.readline())
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()' "$1"
}

host_echo() { # PORT: from the host
	python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
s.sendall(b"ping\n")
print(s.makefile().readline().strip())' "$1"
}

test_expect_success 'setup: bundles v1 and v2; ports; two echo servers on the host loopback' '
	apps_setup v1 v2
	pick_ports 4 18340 18359 >"$TEST_TMP/ports"
	for p in $(sed -n 2,3p "$TEST_TMP/ports"); do
		echo_server "$p"
		for i in $(seq 50); do host_echo "$p" >/dev/null 2>&1 && break; sleep 0.1; done
		test "$(host_echo "$p")" = "echo ping"
	done
'
require_bundles "$V1" "$V2"
PORT=$(sed -n 1p "$TEST_TMP/ports")
SVC=$(sed -n 2p "$TEST_TMP/ports")
OTHER=$(sed -n 3p "$TEST_TMP/ports")
PORT2=$(sed -n 4p "$TEST_TMP/ports")
HOST_IP=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n "s/.* src \([0-9.]*\).*/\1/p")

test_expect_success 'deploy with -p and --connect 3306=127.0.0.1:SVC: the page is served' '
	test "$(sl deploy --key "$PUB" "$APP" "$V1" -p "127.0.0.1:$PORT:80" --connect "3306=127.0.0.1:$SVC")" = 1
	test "$(get "$PORT" /)" = 200
	grep -q "PHP 8\.2\." "$TEST_TMP/body"
	pj "j[\"options\"][\"connects\"]" <"$ROOT/apps/$APP/app.json" | grep -F "3306=127.0.0.1:$SVC" >/dev/null
'

test_expect_success 'the instance has only lo' '
	php_in "$APP" "echo file_get_contents(\"/proc/net/dev\");" >"$TEST_TMP/netdev"
	cat "$TEST_TMP/netdev"
	test "$(grep -cE "^ *[a-z0-9]+:" "$TEST_TMP/netdev")" = 1
	grep -qE "^ *lo:" "$TEST_TMP/netdev"
'

test_expect_success '--connect: 127.0.0.1:3306 inside reaches the host service (the issue'"'"'s php one-liner too)' '
	tcp_try 127.0.0.1 3306 >"$TEST_TMP/try"
	cat "$TEST_TMP/try"
	grep -qx "open echo ping" "$TEST_TMP/try"
	php_in "$APP" "\$s=fsockopen(\"127.0.0.1\",3306); fwrite(\$s,\"ping\\n\"); echo fgets(\$s);" >"$TEST_TMP/try"
	grep -qx "echo ping" "$TEST_TMP/try"
'

test_expect_success 'nothing else is reachable from inside: other host port, own published port, :22, host address, outside' '
	for target in "127.0.0.1 $OTHER" "127.0.0.1 $SVC" "127.0.0.1 $PORT" "127.0.0.1 22" \
		${HOST_IP:+"$HOST_IP $SVC" "$HOST_IP $OTHER"} "1.1.1.1 53" "10.0.0.1 3306"; do
		tcp_try $target >"$TEST_TMP/try"
		echo "$target: $(cat "$TEST_TMP/try")"
		grep -q "^closed " "$TEST_TMP/try"
	done
'

test_expect_success 'connect off: the granted service is closed (state kept); on: reachable again' '
	sl connect "$APP" off
	tcp_try 127.0.0.1 3306 >"$TEST_TMP/try"
	cat "$TEST_TMP/try"
	grep -q "^closed " "$TEST_TMP/try"
	test "$(pj "j[\"options\"][\"connects_off\"]" <"$ROOT/apps/$APP/app.json")" = true
	test "$(pj "j[\"connects_off\"]" <"$RUN/$APP/running.json")" = true
	# Closed also for a fresh instance of the app.
	sl redeploy "$APP" >/dev/null
	tcp_try 127.0.0.1 3306 >"$TEST_TMP/try"
	grep -q "^closed " "$TEST_TMP/try"
	sl connect "$APP" on
	tcp_try 127.0.0.1 3306 >"$TEST_TMP/try"
	grep -qx "open echo ping" "$TEST_TMP/try"
	test "$(pj "j[\"options\"][\"connects_off\"]" <"$ROOT/apps/$APP/app.json")" = false
	sl audit "$APP" | grep -E " connect +$APP .* off$" >/dev/null
'

test_expect_success 'port off: the published port refuses connections (ps shows it off); on: served again' '
	test "$(get "$PORT" /)" = 200
	sl port "$APP" off
	wait_refused "$PORT"
	test "$(curl -s -m 3 -o /dev/null -w "%{exitcode}" "http://127.0.0.1:$PORT/")" = 7
	sl ps | grep -E "^$APP +running .*127\.0\.0\.1:$PORT->80 \(off\)" >/dev/null
	test "$(pj "j[\"options\"][\"ports_off\"]" <"$ROOT/apps/$APP/app.json")" = "[$PORT]"
	# The app itself still runs.
	tcp_try 127.0.0.1 3306 | grep -x "open echo ping" >/dev/null
	sl port "$APP" on "$PORT"
	wait_http "$PORT"
	grep -q "PHP 8\.2\." "$TEST_TMP/body"
	sl ps | grep -E "^$APP +running .*127\.0\.0\.1:$PORT->80$" >/dev/null
'

test_expect_success 'port off HOSTPORT survives a redeploy and a restart of the monitor (stop, start)' '
	sl port "$APP" off "$PORT"
	wait_refused "$PORT"
	sl redeploy "$APP" >/dev/null
	wait_refused "$PORT"
	sl stop "$APP"
	sl start "$APP"
	wait_running "$APP"
	php_in "$APP" "echo 1;" >/dev/null
	wait_refused "$PORT"
	sl port "$APP" on
	wait_http "$PORT"
'

test_expect_success 'port off (all ports) survives a restart of the monitor (stop, start)' '
	sl port "$APP" off
	wait_refused "$PORT"
	sl stop "$APP"
	sl start "$APP"
	wait_running "$APP"
	php_in "$APP" "echo 1;" >/dev/null
	wait_refused "$PORT"
	sl ps | grep -E "^$APP +running .*127\.0\.0\.1:$PORT->80 \(off\)" >/dev/null
	sl port "$APP" on
	wait_http "$PORT"
'

test_expect_success 'a later deploy with a new -p publishes there (options given replace the kept ones)' '
	test "$(sl deploy --key "$PUB" "$APP" "$V2" -p "127.0.0.1:$PORT2:80")" = 2
	pj "j[\"options\"][\"ports\"]" <"$ROOT/apps/$APP/app.json" >"$TEST_TMP/ports.json"
	grep -F "127.0.0.1:$PORT2:80" "$TEST_TMP/ports.json"
	code=$(get "$PORT2" /)
	echo "GET / on the new port $PORT2: $code"
	test "$code" = 200
	grep -q "Version two" "$TEST_TMP/body"
	wait_refused "$PORT"
	# The granted service was not given again: it is kept.
	tcp_try 127.0.0.1 3306 | grep -x "open echo ping" >/dev/null
'

test_done
