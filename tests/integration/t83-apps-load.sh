#!/bin/bash
# A redeploy under a bounded HTTP load loses no request: new connections
# go to the new instance, open ones finish on the old. Two loads of 6 s
# each, a redeploy 2 s in: wrk with keep-alive connections (they drain on
# the old instance), and a Python client on 4 threads that opens a new
# connection for every request (they move to the new instance). Each
# prints "failed requests: N"; N must be 0.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/apps-lib.sh"

APP=t83load
COUNT_WEBLOG='echo count(preg_grep("#GET /\?load=py#", @file("/app/storage/logs/web.log") ?: [])), "\n";'

# py_load PORT SECONDS THREADS: GET /?load=py, a new connection each time,
# until SECONDS pass; prints "requests: N", "failed requests: N" and the
# first few failures.
py_load() {
	python3 - "$@" <<'EOF'
import http.client, sys, threading, time
port, seconds, threads = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
end = time.monotonic() + seconds
lock = threading.Lock()
count = {"ok": 0, "failed": 0}
errors = []
def worker():
    while time.monotonic() < end:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/?load=py", headers={"Connection": "close"})
            r = c.getresponse()
            body = r.read()
            c.close()
            good = r.status == 200 and b"PHP 8.2." in body
            why = "status %d, %d bytes" % (r.status, len(body))
        except Exception as e:
            good, why = False, repr(e)
        with lock:
            if good:
                count["ok"] += 1
            else:
                count["failed"] += 1
                if len(errors) < 5:
                    errors.append(why)
ts = [threading.Thread(target=worker) for _ in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
print("requests: %d" % (count["ok"] + count["failed"]))
print("failed requests: %d" % count["failed"])
for e in errors: print("failure: " + e)
EOF
}

# redeploy_during LOADPID OUT: redeploy 2 s into the load (which must still
# run then: before and after the redeploy), then wait for the load to end.
redeploy_during() {
	local before after
	before=$(pj "j[\"instance_pid\"]" <"$RUN/$APP/running.json")
	sleep 2
	kill -0 "$1"
	sl redeploy "$APP" >"$TEST_TMP/redeploy.out"
	test "$(cat "$TEST_TMP/redeploy.out")" = 1
	kill -0 "$1"
	after=$(pj "j[\"instance_pid\"]" <"$RUN/$APP/running.json")
	echo "redeployed under load: instance $before -> $after"
	test "$after" != "$before"
	wait "$1" || { echo "the load generator failed:" >&2; cat "$2" >&2; return 1; }
}

test_expect_success 'setup: bundle v1; a free port; the app deployed and serving' '
	apps_setup v1
	pick_ports 1 18360 18379 >"$TEST_TMP/ports"
	port=$(cat "$TEST_TMP/ports")
	test "$(sl deploy --key "$PUB" "$APP" "$V1" -p "127.0.0.1:$port:80")" = 1
	test "$(get "$port" /)" = 200
'
require_bundles "$V1"
PORT=$(cat "$TEST_TMP/ports")

if command -v wrk >/dev/null; then
	test_expect_success 'wrk -t2 -c8 -d6s (keep-alive) with a redeploy 2 s in: no failed request' '
		bg_start "$TEST_TMP/wrk.out" wrk -t2 -c8 -d6s --timeout 10s "http://127.0.0.1:$PORT/"
		redeploy_during "$BG_PID" "$TEST_TMP/wrk.out"
		cat "$TEST_TMP/wrk.out"
		requests=$(sed -nE "s/^ *([0-9]+) requests in .*/\1/p" "$TEST_TMP/wrk.out")
		non2xx=$(sed -nE "s/^ *Non-2xx or 3xx responses: *([0-9]+).*/\1/p" "$TEST_TMP/wrk.out")
		socket=$(sed -nE "s/^ *Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+).*/\1+\2+\3+\4/p" "$TEST_TMP/wrk.out")
		failed=$((${non2xx:-0} + ${socket:-0}))
		echo "failed requests: $failed"
		echo "wrk: $requests requests, failed requests: $failed" >"$TEST_TMP/wrk.result"
		test "${requests:-0}" -ge 100
		test "$failed" -eq 0
	'
	echo "# $(cat "$TEST_TMP/wrk.result" 2>/dev/null || echo "wrk: no result")"
else
	test_skip 'wrk -t2 -c8 -d6s (keep-alive) with a redeploy 2 s in' 'no wrk on this host'
fi

test_expect_success 'python3, 4 threads, a new connection per request, 6 s, a redeploy 2 s in: no failed request' '
	bg_start "$TEST_TMP/py.out" py_load "$PORT" 6 4
	redeploy_during "$BG_PID" "$TEST_TMP/py.out"
	cat "$TEST_TMP/py.out"
	echo "python: $(grep -E "^(requests|failed requests):" "$TEST_TMP/py.out" | tr "\n" " ")" >"$TEST_TMP/py.result"
	grep -E "^failed requests: [0-9]+$" "$TEST_TMP/py.out"
	test "$(sed -nE "s/^requests: ([0-9]+)$/\1/p" "$TEST_TMP/py.out")" -ge 100
	grep -qx "failed requests: 0" "$TEST_TMP/py.out"
	# The new instance took over new connections under the load.
	served=$(php_in "$APP" "$COUNT_WEBLOG")
	echo "requests of the load served by the new instance: $served"
	test "$served" -ge 10
'
echo "# $(cat "$TEST_TMP/py.result" 2>/dev/null || echo "python: no result")"

test_expect_success 'after the loads: the old instances are gone, one instance serves, release 1' '
	mpid=$(monitor_pid "$APP")
	wait_children "$mpid" 1
	test "$(sl status --json "$APP" | pj "j[\"serving_release\"]")" = 1
	test "$(release_count "$APP")" = 1
	test "$(get "$PORT" /)" = 200
'

test_done
