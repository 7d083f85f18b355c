#!/bin/bash
# slate test driver: runs the unit tests (cmocka, TAP output) and the
# integration tests (tests/integration/t*.sh, which print one line per
# case: "ok - NAME", "not ok - NAME", "skip - NAME: REASON"), and ends with
# one line "N passed, N failed, N skipped". Exits non-zero on any failure.
#   tests/run.sh [unit|integration] [PATTERN]
set -u
cd "$(dirname "$0")/.."
top=$PWD
build=${BUILD:-build}
what=${1:-all}
pattern=${2:-}
passed=0 failed=0 skipped=0
failures=()
log_dir=$(mktemp -d /tmp/slate-tests.XXXXXX)
trap 'rm -rf "$log_dir"' EXIT

count_output() { # name file rc
	local name=$1 file=$2 rc=$3 p f s
	# cmocka marks a skipped test "ok N # SKIP" or "not ok N # SKIP": neither a pass nor a failure.
	p=$(grep -E '^ok( [0-9]+)? ' "$file" | grep -civE '# skip')
	f=$(grep -E '^not ok( [0-9]+)? ' "$file" | grep -civE '# skip')
	s=$(grep -ciE '^(skip - |(not )?ok [0-9]+ .*# skip)' "$file")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "not ok - $name exited with status $rc" >>"$file"
	fi
	passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
	if [ "$f" -gt 0 ]; then
		failures+=("$name")
		# Each failure with the diagnostics under it (first five).
		awk -v n="$name" '/^not ok/ { shown++; on = (shown <= 5); if (on) print "    " n ": " $0; next }
			/^#/ && on { if (++lines[shown] <= 15) print "    | " $0; next } { on = 0 }' "$file"
		if ! grep -q '^#' "$file"; then
			echo "    --- last lines of $name:"
			tail -n 25 "$file" | sed 's/^/    | /'
		fi
	fi
}

run_unit() {
	local t name out rc
	for t in "$build"/tests/test_*; do
		[ -x "$t" ] || continue
		name=$(basename "$t")
		[ -n "$pattern" ] && [[ $name != *$pattern* ]] && continue
		out=$log_dir/$name.log
		if [ "${VALGRIND:-0}" = 1 ]; then
			CMOCKA_MESSAGE_OUTPUT=TAP valgrind -q --error-exitcode=99 --leak-check=full \
				--errors-for-leak-kinds=definite "$t" >"$out" 2>&1
		else
			CMOCKA_MESSAGE_OUTPUT=TAP "$t" >"$out" 2>&1
		fi
		rc=$?
		printf '%-40s %s\n' "unit/$name" "$(grep -cE '^ok ' "$out") ok, $(grep -cE '^not ok ' "$out") not ok"
		count_output "unit/$name" "$out" "$rc"
	done
}

# With SANITIZERS=1 (make check-asan) every slate process of an integration
# script reports to a file (a monitor's stderr is its log, not the
# terminal); any report fails that script. (Unit tests report on stderr:
# some interpose libc calls that a report file's set-up would run into.)
san_dir=$log_dir/sanitizers
san_env=()
if [ "${SANITIZERS:-0}" = 1 ]; then
	mkdir -p "$san_dir"
	san_env=("ASAN_OPTIONS=log_path=$san_dir/asan:detect_leaks=1"
		"UBSAN_OPTIONS=log_path=$san_dir/ubsan:print_stacktrace=1:halt_on_error=1")
fi

sanitizer_reports() { # out: a failure per report, then the reports are gone
	local f
	[ "${SANITIZERS:-0}" = 1 ] || return 0
	for f in "$san_dir"/*; do
		[ -f "$f" ] || continue
		echo "not ok - sanitizer report $(basename "$f")" >>"$1"
		head -n 40 "$f" | sed 's/^/#   /' >>"$1"
		rm -f "$f"
	done
}

run_integration() {
	local t name out rc
	for t in tests/integration/t*.sh; do
		[ -f "$t" ] || continue
		name=$(basename "$t" .sh)
		[ -n "$pattern" ] && [[ $name != *$pattern* ]] && continue
		out=$log_dir/$name.log
		env "${san_env[@]}" SLATE_TOP=$top SLATE_BUILD=$top/$build bash "$t" >"$out" 2>&1
		rc=$?
		sanitizer_reports "$out"
		printf '%-40s %s\n' "integration/$name" "$(grep -cE '^ok ' "$out") ok, $(grep -cE '^not ok ' "$out") not ok, $(grep -ciE '^skip ' "$out") skipped"
		grep -iE '^skip - ' "$out" | sed 's/^/    /'
		count_output "integration/$name" "$out" "$rc"
	done
}

case $what in
unit) run_unit ;;
integration) run_integration ;;
all) run_unit; run_integration ;;
*) echo "usage: tests/run.sh [unit|integration|all] [PATTERN]" >&2; exit 2 ;;
esac

[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ $((passed + failed)) -gt 0 ]
