# Helpers for the slate-bundle tests (t1x-t6x), sourced after tests/lib.sh.
#   copy_keys                 the fixture keys (test, other) into $TEST_TMP, private ones 0600
#   copy_image                images/php-8.2 into $IMAGE (tests repin the copy, never the repository's)
#   make_small_image          $IMAGE without its captured paths, at $SMALL_IMAGE:
#                             a small bundle to forge quickly
#   build_with SRC IMAGE OUT [OPTIONS...]   slate-bundle build with the test key
#   bundle_build SRC OUT [OPTIONS...]       the same with $IMAGE
#   verify_refuses BUNDLE REGEX... [-- VERIFY-OPTIONS]
#                             exit 1, one line on stderr matching every
#                             REGEX, nothing on stdout
FIXTURES=$SLATE_TOP/tests/fixtures
EXAMPLE=$SLATE_TOP/examples/craft-site
IMAGE=$TEST_TMP/php-8.2 SMALL_IMAGE=$TEST_TMP/php-8.2-small
KEY=$TEST_TMP/test.key PUB=$TEST_TMP/test.key.pub
OTHER=$TEST_TMP/other.key OTHER_PUB=$TEST_TMP/other.key.pub
GOOD=$TEST_TMP/good.slate
export SOURCE_DATE_EPOCH=1700000000

copy_keys() {
	cp "$FIXTURES/test.key" "$FIXTURES/test.key.pub" "$FIXTURES/other.key" "$FIXTURES/other.key.pub" "$TEST_TMP/" &&
	chmod 600 "$KEY" "$OTHER"
}

copy_image() {
	cp -a "$SLATE_TOP/images/php-8.2" "$IMAGE"
}

make_small_image() {
	cp -a "$IMAGE" "$SMALL_IMAGE" &&
	python3 -c "import json, sys
d = json.load(open(sys.argv[1])); d[\"paths\"] = []
json.dump(d, open(sys.argv[1], \"w\"), indent=2)" "$SMALL_IMAGE/image.json"
}

build_with() {
	local src=$1 image=$2 out=$3
	shift 3
	"$SLATE_BUNDLE" build "$src" --image "$image" --key "$KEY" -o "$out" "$@"
}

bundle_build() {
	local src=$1 out=$2
	shift 2
	build_with "$src" "$IMAGE" "$out" "$@"
}

verify_refuses() {
	local bundle=$1 res=() opts=()
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do res+=("$1"); shift; done
	[ $# -gt 0 ] && shift && opts=("$@")
	[ ${#opts[@]} -gt 0 ] || opts=(--key "$PUB")
	test_must_fail --code 1 "$SLATE_BUNDLE" verify "${opts[@]}" "$bundle" >"$TEST_TMP/vout" 2>"$TEST_TMP/verr" &&
	test ! -s "$TEST_TMP/vout" &&
	test "$(wc -l <"$TEST_TMP/verr")" -eq 1 || { cat "$TEST_TMP/verr" >&2; return 1; }
	for re in "${res[@]}"; do assert_file_has_content "$TEST_TMP/verr" "$re" || return 1; done
}
