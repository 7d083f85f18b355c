#!/bin/bash
# slate run of the example without a CMD: the image's processes (php-fpm
# and nginx) start as the instance's root with the masters' few
# capabilities, workers as www-data with none, and the site answers over
# HTTP inside the instance's network namespace (reached from the host with
# nsenter --net). A request writes storage/logs/web.log in the instance's
# tmpfs, never in the store. Stopping (SIGTERM to slate, or SIGKILL of
# slate) leaves nothing behind.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/run-lib.sh"

# The masters' capabilities (runtime/privs.c): chown, dac_override,
# fowner, kill, setgid, setuid, net_bind_service.
MASTER_CAPS=00000000000004eb

# http INIT PATH: GET http://127.0.0.1PATH in the instance's netns.
http() {
	nsenter --net="/proc/$1/ns/net" curl -s -m 5 -o - -w "\nhttp_code %{http_code}\n" "http://127.0.0.1$2"
}

# start_web NAME: start the example in the background and wait (at most
# 10 s) until it answers; sets BG_PID and INIT.
start_web() {
	local i
	slate_bg "$TEST_TMP/$1.out" --name "$1" "$SITE" || return 1
	INIT=$(instance_init "$BG_PID") || return 1
	for i in $(seq 100); do
		if http "$INIT" / >"$TEST_TMP/$1.page" 2>/dev/null && grep -qx "http_code 200" "$TEST_TMP/$1.page"; then
			return 0
		fi
		kill -0 "$BG_PID" 2>/dev/null || { echo "slate exited:" >&2; cat "$TEST_TMP/$1.out" >&2; return 1; }
		sleep 0.1
	done
	echo "no answer in 10 s; slate said:" >&2
	cat "$TEST_TMP/$1.out" >&2
	return 1
}

test_expect_success 'setup: the test bundle, stored' '
	run_setup &&
	probe -- exit 0 &&
	store_hash >"$TEST_TMP/store.hash"
'
require_bundle

test_expect_success 'the example answers over HTTP in the instance'"'"'s netns: PHP 8.2, storage writable; /about' '
	trap bg_stop_all EXIT
	start_web web1
	grep -q "PHP 8\.2\." "$TEST_TMP/web1.page"
	grep -q "Craft Site on slate" "$TEST_TMP/web1.page"
	grep -qi "writable" "$TEST_TMP/web1.page"
	http "$INIT" /about >"$TEST_TMP/about"
	grep -qx "http_code 200" "$TEST_TMP/about"
	grep -q "About Craft Site on slate" "$TEST_TMP/about"
	http "$INIT" /no-such-page >"$TEST_TMP/404"
	grep -qx "http_code 404" "$TEST_TMP/404"
	# Not reachable from the host'"'"'s own network namespace.
	if ! ss -Hltn "sport = :80" | grep -q .; then
		if curl -s -m 1 -o /dev/null http://127.0.0.1/; then echo "the site answers on the host" >&2; exit 1; fi
	fi
	bg_stop "$BG_PID"
'

test_expect_success 'a request writes storage/logs/web.log in the instance, never in the store' '
	trap bg_stop_all EXIT
	start_web web2
	http "$INIT" "/?from=test" >"$TEST_TMP/page2"
	grep -qx "http_code 200" "$TEST_TMP/page2"
	log=/proc/$INIT/root/app/storage/logs/web.log
	test -f "$log"
	grep -q "GET" "$log"
	# Owned by the instance'"'"'s www-data (host uid base + 33).
	test "$(stat -c %u "$log")" -eq $((INSTANCE_UID + 33))
	test ! -e "$(store_dir)/root/app/storage/logs/web.log"
	bg_stop "$BG_PID"
	store_hash >"$TEST_TMP/store.hash2"
	test_cmp "$TEST_TMP/store.hash" "$TEST_TMP/store.hash2"
'

test_expect_success 'host view: masters as instance root with the masters'"'"' caps only, workers www-data with none' '
	trap bg_stop_all EXIT
	start_web web3
	pidns=$(readlink /proc/$INIT/ns/pid)
	# init: CAP_KILL only (signal forwarding inside the instance namespace)
	grep -qP "^CapEff:\t0000000000000020$" /proc/$INIT/status
	grep -qP "^CapBnd:\t0000000000000020$" /proc/$INIT/status
	grep -qP "^Seccomp:\t2$" /proc/$INIT/status
	masters=$(pgrep -P "$INIT")
	test "$(echo "$masters" | wc -l)" -eq 2
	names=""
	for m in $masters; do
		names="$names $(awk "/^Name:/ { print \$2 }" /proc/$m/status)"
		grep -qP "^Uid:\t$INSTANCE_UID\t" /proc/$m/status
		grep -qP "^CapEff:\t$MASTER_CAPS$" /proc/$m/status
		grep -qP "^CapBnd:\t$MASTER_CAPS$" /proc/$m/status
		grep -qP "^CapInh:\t0000000000000000$" /proc/$m/status
		grep -qP "^CapAmb:\t0000000000000000$" /proc/$m/status
		grep -qP "^NoNewPrivs:\t1$" /proc/$m/status
		grep -qP "^Seccomp:\t2$" /proc/$m/status
		workers=$(pgrep -P "$m")
		test -n "$workers"
		for w in $workers; do
			grep -qP "^Uid:\t$((INSTANCE_UID + 33))\t" /proc/$w/status ||
				{ echo "worker $w:" >&2; grep -E "^(Name|Uid)" /proc/$w/status >&2; exit 1; }
			grep -qP "^CapEff:\t0000000000000000$" /proc/$w/status
			grep -qP "^CapPrm:\t0000000000000000$" /proc/$w/status
			grep -qP "^Seccomp:\t2$" /proc/$w/status
		done
	done
	echo "$names" | grep -q "php-fpm"
	echo "$names" | grep -q "nginx"
	assert_pidns_uids_unprivileged "$pidns"
	bg_stop "$BG_PID"
'

test_expect_success 'SIGTERM to slate stops php-fpm and nginx: slate exits, nothing remains' '
	trap bg_stop_all EXIT
	start_web web4
	pidns=$(readlink /proc/$INIT/ns/pid)
	scratch=$(instance_entries "$ROOT/mnt" web4)
	test -n "$scratch"
	kill -TERM "$BG_PID"
	for i in $(seq 100); do kill -0 "$BG_PID" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$BG_PID" 2>/dev/null; then echo "slate still runs 10 s after SIGTERM" >&2; exit 1; fi
	rc=0
	wait "$BG_PID" || rc=$?
	echo "slate exited $rc after SIGTERM"
	test "$rc" -lt 126
	grep -q "Terminating\|exiting" "$TEST_TMP/web4.out"
	assert_pidns_empty "$pidns"
	assert_instance_gone web4
'

test_expect_success 'SIGKILL of slate with php-fpm and nginx running: they die; the next command cleans up' '
	trap bg_stop_all EXIT
	start_web web5
	pidns=$(readlink /proc/$INIT/ns/pid)
	test "$(pids_in_pidns "$pidns" | wc -l)" -ge 5
	kill -KILL "$BG_PID"
	wait "$BG_PID" || true
	assert_pidns_empty "$pidns"
	probe -- exit 0
	assert_instance_gone web5
'

test_expect_success 'nothing is left; the store is unchanged' '
	for n in web1 web2 web3 web4 web5; do assert_instance_gone "$n"; done &&
	test -z "$(ls -A "$ROOT/mnt")" &&
	store_hash >"$TEST_TMP/store.hash3" &&
	test_cmp "$TEST_TMP/store.hash" "$TEST_TMP/store.hash3"
'

test_done
