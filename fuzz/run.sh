#!/bin/bash
# fuzz/run.sh: run every libFuzzer harness for FUZZ_SECONDS (default 60)
# on its corpus: fuzz/corpus/NAME, fuzz/regress/NAME, and seeds made from
# a freshly built bundle signed with the tests' key. Prints executions per
# harness and a total; exits 1 if any harness crashed, leaked, timed out
# or ran out of memory (the input that did is kept in $FUZZ_WORK, to be
# added to fuzz/regress/NAME as a regression test once fixed).
#   make fuzz FUZZ_SECONDS=N [FUZZ_ONLY="manifest spec"]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build-fuzz}
secs=${FUZZ_SECONDS:-60}
names=${FUZZ_ONLY:-$(ls fuzz/fuzz_*.c | sed 's|fuzz/fuzz_||; s|\.c$||' | tr '\n' ' ')}
work=${FUZZ_WORK:-$build/fuzz-work}
mkdir -p "$work"

# Seeds from a real bundle: the example site with the pinned image (a
# copy, re-pinned to this host as the tests do), signed with the test key.
seeds=$work/seeds
if [ ! -f "$seeds/bundle/small.slate" ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	cp -a images/php-8.2 "$tmp/image"
	build/slate-bundle build examples/craft-site --image "$tmp/image" --key tests/fixtures/test.key \
		-o "$tmp/site.slate" --repin --sequence 1 >/dev/null
	python3 fuzz/seeds.py "$tmp/site.slate" tests/fixtures/test.key "$seeds"
fi

total=0 bad=0
for name in $names; do
	corpus=$work/corpus/$name
	mkdir -p "$corpus"
	for d in fuzz/corpus/$name fuzz/regress/$name $seeds/$name; do
		[ -d "$d" ] && cp -n "$d"/* "$corpus"/ 2>/dev/null || true
	done
	log=$work/$name.log
	rc=0
	# Inputs may grow to 64 KiB, or to the largest seed (a whole tar).
	max_len=$(find "$corpus" -type f -printf '%s\n' | sort -n | tail -1)
	[ "${max_len:-0}" -gt 65536 ] || max_len=65536
	"$build/fuzz/fuzz_$name" -max_total_time="$secs" -print_final_stats=1 -max_len="$max_len" \
		-rss_limit_mb=1024 -malloc_limit_mb=512 -timeout=10 -artifact_prefix="$work/$name-" \
		"$corpus" >"$log" 2>&1 || rc=$?
	execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")
	execs=${execs:-0}
	total=$((total + execs))
	if [ "$rc" -ne 0 ]; then
		bad=$((bad + 1))
		printf '%-12s %12s executions  FAILED (exit %d): see %s\n' "$name" "$execs" "$rc" "$log"
		grep -E '^==[0-9]+==|^SUMMARY|artifact' "$log" | head -5 | sed 's/^/    /'
	else
		printf '%-12s %12s executions  0 crashes\n' "$name" "$execs"
	fi
done
printf '%-12s %12s executions, %d harness(es) failed\n' "total" "$total" "$bad"
[ "$bad" -eq 0 ]
