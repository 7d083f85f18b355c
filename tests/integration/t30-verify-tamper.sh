#!/bin/bash
# slate-bundle verify against forged bundles: every tamper and unsafe-entry
# case of the format gives exit 1 and one line naming the problem.
# tests/forge.py writes the forgeries with stock tools (zstd, Python's
# tarfile, openssl). Cases that change the manifest re-sign it with the
# TRUSTED test key, so the signature is valid and the structural check is
# what must refuse.
#
# The forgeries start from a bundle of the example built with a trimmed
# copy of the image (its rootfs and pins, but none of the host's PHP/nginx
# files), so that each forgery takes milliseconds; the checks they hit do
# not depend on the image's size. The full bundle is used where no
# rewriting is needed (limits, truncation).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/bundle-lib.sh"
BASE=$TEST_TMP/base.slate

# forged CASE [--key K] REGEX...: forge CASE from the base bundle; verify
# must refuse it naming every REGEX.
forged() {
	local c=$1 out=$TEST_TMP/f-$1.slate key=()
	shift
	if [ "${1:-}" = --key ]; then key=(--key "$2"); shift 2; fi
	python3 "$SLATE_TOP/tests/forge.py" "$c" "$BASE" "$out" "${key[@]}" &&
	verify_refuses "$out" "$@"
}

test_expect_success 'setup: keys, the example bundle, and a base bundle for forging' '
	copy_keys &&
	copy_image &&
	build_with "$EXAMPLE" "$IMAGE" "$GOOD" --repin >"$TEST_TMP/good.id" 2>/dev/null &&
	make_small_image &&
	build_with "$EXAMPLE" "$SMALL_IMAGE" "$BASE" >"$TEST_TMP/base.id" &&
	"$SLATE_BUNDLE" verify --key "$PUB" "$BASE" >/dev/null &&
	"$SLATE_BUNDLE" verify --key "$PUB" "$GOOD" >/dev/null
'

# Controls: the forger's rewriting alone changes nothing that matters.
test_expect_success 'control: the base rewritten by forge.py, unchanged, verifies (same id)' '
	python3 "$SLATE_TOP/tests/forge.py" copy "$BASE" "$TEST_TMP/copy.slate" &&
	"$SLATE_BUNDLE" verify --key "$PUB" "$TEST_TMP/copy.slate" >"$TEST_TMP/copy.id" &&
	test_cmp "$TEST_TMP/base.id" "$TEST_TMP/copy.id"
'

test_expect_success 'control: the manifest re-serialised and re-signed with the test key verifies (same id)' '
	python3 "$SLATE_TOP/tests/forge.py" resign "$BASE" "$TEST_TMP/resign.slate" --key "$KEY" &&
	"$SLATE_BUNDLE" verify --key "$PUB" "$TEST_TMP/resign.slate" >"$TEST_TMP/resign.id" &&
	test_cmp "$TEST_TMP/base.id" "$TEST_TMP/resign.id"
'

test_expect_success 'a bundle signed (and naming) another key: "unknown key"; verifies once that key is trusted' '
	forged other-signer --key "$OTHER" "unknown key" "cff9af40260904dd" &&
	"$SLATE_BUNDLE" verify --key "$PUB" --key "$OTHER_PUB" "$TEST_TMP/f-other-signer.slate" >/dev/null
'

# Signature.
test_expect_success 'a flipped bit in the signature: "bad signature"' '
	forged sig-flip "bad signature"
'
test_expect_success 'a 63-byte signature: "bad signature"' '
	forged sig-short "bad signature"
'
test_expect_success 'a changed manifest byte, not re-signed: "bad signature"' '
	forged manifest-flip "bad signature"
'
test_expect_success 'a valid signature by a trusted key that the manifest does not name: "bad signature"' '
	forged resign-other --key "$OTHER" "bad signature" -- --key "$PUB" --key "$OTHER_PUB"
'

# Members against the manifest.
test_expect_success 'an extra member app/web/x.php: "not in manifest" naming it' '
	forged extra-member "member .app/web/x\.php. not in manifest"
'
test_expect_success 'changed content of a vendor file (same size): "content of ... does not match"' '
	forged content "content of .app/vendor/acme/greeter/src/Greeter\.php. does not match"
'
test_expect_success 'changed content of an image file (etc/passwd): "content of ... does not match"' '
	forged content-image "content of .etc/passwd. does not match"
'
test_expect_success 'a file with another size: "size of ... does not match"' '
	forged size "size of .app/vendor/acme/greeter/src/Greeter\.php. does not match"
'
test_expect_success 'a file with another mode: "mode of ... does not match"' '
	forged mode "mode of .app/web/index\.php. does not match"
'
test_expect_success 'a file member replaced by a directory: the type mismatch is named' '
	forged type "app/web/index\.php. is a dir, the manifest says file"
'
test_expect_success 'a symlink with another target: named' '
	forged symlink-target "symlink target of .etc/localtime. does not match"
'
test_expect_success 'the last entry missing from the archive: "missing"' '
	forged drop-last "member .app/web/index\.php. missing"
'
test_expect_success 'an entry in the middle missing from the archive: "missing" naming it' '
	forged drop-middle "app/templates/about\.html" "missing"
'

# Truncation.
test_expect_success 'the compressed bundle cut in half: "truncated"' '
	size=$(stat -c %s "$GOOD") &&
	head -c $((size / 2)) "$GOOD" >"$TEST_TMP/half.slate" &&
	verify_refuses "$TEST_TMP/half.slate" "truncated"
'
test_expect_success 'the compressed bundle cut inside the manifest: "truncated"' '
	head -c 300 "$BASE" >"$TEST_TMP/head.slate" &&
	verify_refuses "$TEST_TMP/head.slate" "truncated"
'
test_expect_success 'the tar cut inside a member, recompressed: "truncated"' '
	forged truncate-tar "truncated"
'
test_expect_success 'the tar cut before a header (no end blocks), recompressed: "truncated"' '
	forged truncate-tar-header "truncated"
'

# Duplicates and unsafe paths.
test_expect_success 'the same member twice: "duplicate"' '
	forged dup "duplicate member .app/web/index\.php."
'
test_expect_success 'app//web/index.php after app/web/index.php: "duplicate" after normalisation' '
	forged dup-slash "duplicate member .app/web/index\.php."
'
test_expect_success 'app/./web/index.php after app/web/index.php: "duplicate" after normalisation' '
	forged dup-dot "duplicate member .app/web/index\.php."
'
test_expect_success 'a duplicate entry in a re-signed manifest: "duplicate"' '
	forged dup-signed --key "$KEY" "duplicate entry .app/web/index\.php."
'
test_expect_success 'an absolute member path: "absolute"' '
	forged absolute "/app/web/x\.php" "absolute"
'
test_expect_success 'an absolute entry in a re-signed manifest: "absolute"' '
	forged absolute-signed --key "$KEY" "/etc/cron\.d/evil" "absolute"
'
test_expect_success 'a member path with "..": refused naming it' '
	forged dotdot "app/web/\.\./\.\./\.\./tmp/x\.php" "\.\.. component"
'
test_expect_success 'an entry with ".." in a re-signed manifest: refused naming it' '
	forged dotdot-signed --key "$KEY" "app/web/\.\./\.\./x\.php" "\.\.. component"
'
test_expect_success 'a member under a symlink (app/l -> web, then app/l/x.php; re-signed): "symlink"' '
	forged symlink-parent --key "$KEY" "app/l/x\.php" "symlink"
'
test_expect_success 'a symlink with an absolute target (re-signed): refused naming it' '
	forged link-absolute --key "$KEY" "app/web/evil" "absolute target"
'
test_expect_success 'a symlink whose target leaves the tree (re-signed): refused naming it' '
	forged link-escape --key "$KEY" "app/web/evil" "leaves the tree"
'
test_expect_success 'a component longer than 255 bytes in a member: refused' '
	forged longname "app/web/nnnn" "longer than 255"
'
test_expect_success 'a component longer than 255 bytes in a re-signed manifest: refused' '
	forged longname-signed --key "$KEY" "app/web/nnnn" "longer than 255"
'

# Kinds of member the manifest cannot express.
test_expect_success 'a hard link member: refused' '
	forged hardlink "app/web/index\.php" "hard link"
'
test_expect_success 'a character device member: refused' '
	forged chr "app/web/index\.php" "device"
'
test_expect_success 'a block device member: refused' '
	forged blk "app/web/index\.php" "device"
'
test_expect_success 'a fifo member: refused' '
	forged fifo "app/web/index\.php" "fifo"
'
test_expect_success 'a setuid member (manifest unchanged): refused' '
	forged setuid-member "app/web/index\.php" "set-id"
'
test_expect_success 'a setuid file, mode 04755 in a re-signed manifest: refused' '
	forged setuid-signed --key "$KEY" "app/web/index\.php" "set-id"
'
test_expect_success 'a sticky directory member: refused' '
	forged sticky "app/storage" "sticky"
'
test_expect_success 'a member with an xattr (PAX SCHILY.xattr.user.x): refused' '
	forged xattr "app/web/index\.php" "extended attributes"
'
test_expect_success 'a member with an ACL (PAX SCHILY.acl.access): refused' '
	forged acl "app/web/index\.php" "ACL"
'

# The container.
test_expect_success 'a manifest that is not canonical (spaces; re-signed): refused' '
	forged noncanonical --key "$KEY" "canonical"
'
test_expect_success 'a manifest with an unknown field (re-signed): refused naming it' '
	forged unknown-field --key "$KEY" "comment"
'
test_expect_success 'the signature as the first member: refused' '
	forged first-not-manifest "not a slate bundle" "manifest\.json"
'
test_expect_success 'a project file as the first member: refused' '
	forged app-first "not a slate bundle" "manifest\.json"
'
test_expect_success 'an uncompressed tar: refused' '
	forged plain-tar "not zstd-compressed"
'

# Limits.
test_expect_success '--max-entries 10 refuses the good bundle: "limit"' '
	verify_refuses "$GOOD" "limit" -- --key "$PUB" --max-entries 10
'
test_expect_success '--max-entries at the entry count passes, one below refuses' '
	n=$(zstd -q -dc "$GOOD" | tar -xOf - .slate/manifest.json |
		python3 -c "import json, sys; print(len(json.load(sys.stdin)[\"entries\"]))") &&
	"$SLATE_BUNDLE" verify --key "$PUB" --max-entries "$n" "$GOOD" >/dev/null &&
	verify_refuses "$GOOD" "limit" -- --key "$PUB" --max-entries $((n - 1))
'
test_expect_success '--max-size 1K refuses the good bundle: "limit"' '
	verify_refuses "$GOOD" "limit" -- --key "$PUB" --max-size 1K
'
test_expect_success '--max-file-size 1K refuses the good bundle: "limit"' '
	verify_refuses "$GOOD" "limit" -- --key "$PUB" --max-file-size 1K
'

test_done
