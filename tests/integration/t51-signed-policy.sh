#!/bin/bash
# Signed bundles that the bundler would never make: a careless or
# compromised CI can sign anything, so the runtime applies the bundler's
# rules (lib/policy.c) to every signed manifest. Each forgery below is a
# hand-made manifest signed with the test key (tests/forge.py's Bundle):
# `slate-bundle verify` and `slate run` refuse it with exit 1 and one line,
# and nothing is unpacked, mounted or started. Links that lead into what the
# runtime mounts over (/proc, /dev, /sys, /tmp, /run, the writable paths)
# are refused at build and at verify. Bytes from an untrusted bundle come out
# escaped (slate_escape): inspect's output and every error message.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/run-lib.sh"

ESC=$(printf '\033')
RLO=$(printf '\342\200\256') # U+202E RIGHT-TO-LEFT OVERRIDE

# forge_edit OUT PYTHON [SIGN]: the test bundle with PYTHON applied to b (a
# forge.Bundle: b.manifest, b.add_entry, ...), re-signed with the test key
# unless SIGN is "unsigned" (then the original signature stays).
forge_edit() {
	python3 - "$SITE" "$1" "$KEY" "${3:-signed}" "$2" <<'EOF'
import os, re, sys, tarfile
sys.path.insert(0, os.path.join(os.environ["SLATE_TOP"], "tests"))
import forge
src, dst, key, sign, code = sys.argv[1:]
b = forge.Bundle(forge.run(["zstd", "-q", "-dc", src]))
exec(code, {"b": b, "forge": forge, "tarfile": tarfile})
# jansson writes control characters as \u001B (upper-case hex).
raw = re.sub(rb"\\u([0-9a-f]{4})", lambda m: b"\\u" + m.group(1).upper(), forge.canonical(b.manifest))
if sign == "signed":
    b.resign(key, raw)
else:
    b.set_manifest(raw)
with open(dst, "wb") as f:
    f.write(forge.run(["zstd", "-q", "-3", "-c"], stdin=b.tar_bytes()))
EOF
}

# add_link PATH TARGET: Python adding the symlink PATH -> TARGET.
add_link() {
	printf '%s' "ti = b.new_info('$1', tarfile.SYMTYPE, 0o777); ti.linkname = '$2'
b.add_entry({'mode': 0o777, 'path': '$1', 'target': '$2', 'type': 'symlink'}, ti, None)"
}

# Nothing of a refused bundle in the store, no instance, no mount.
nothing_left() {
	local left
	if [ -d "$ROOT/store" ]; then
		left=$(find "$ROOT/store" -mindepth 1 ! -name "*.lock")
		[ -z "$left" ] || { echo "left in the store: $left" >&2; return 1; }
	fi
	if [ -d "$ROOT/mnt" ]; then
		left=$(find "$ROOT/mnt" -mindepth 1)
		[ -z "$left" ] || { echo "left in mnt: $left" >&2; return 1; }
	fi
	! grep -q " $ROOT/" /proc/self/mountinfo || { echo "mounts left under $ROOT" >&2; return 1; }
}

# refused BUNDLE REGEX: slate-bundle verify and slate run both exit 1 with
# one line matching REGEX, print nothing else, and leave nothing behind.
refused() {
	local bundle=$1 re=$2
	test_must_fail --code 1 "$SLATE_BUNDLE" verify --key "$PUB" "$bundle" >"$TEST_TMP/out" 2>"$TEST_TMP/err" &&
	test ! -s "$TEST_TMP/out" && test "$(wc -l <"$TEST_TMP/err")" -eq 1 &&
	assert_file_has_content "$TEST_TMP/err" "$re" &&
	test_must_fail --code 1 slate_run "$bundle" -- "$PROBE" write /tmp/ran >"$TEST_TMP/out" 2>"$TEST_TMP/err" &&
	test ! -s "$TEST_TMP/out" && test "$(wc -l <"$TEST_TMP/err")" -eq 1 &&
	assert_file_has_content "$TEST_TMP/err" "$re" &&
	nothing_left
}

test_expect_success 'setup: the test bundle; the control forgery (re-signed, unchanged) runs' '
	run_setup &&
	forge_edit "$TEST_TMP/control.slate" "pass" &&
	"$SLATE_BUNDLE" verify --key "$PUB" "$TEST_TMP/control.slate" &&
	slate_run "$TEST_TMP/control.slate" -- "$PROBE" write /tmp/ran >"$TEST_TMP/out" &&
	rm -rf "$ROOT"/store/* "$ROOT/store/"*.lock
'
require_bundle

# ---- settings (item 3) ----

test_expect_success 'signed writable "../etc" (a writable /etc): refused at verify and run' '
	forge_edit "$TEST_TMP/w-etc.slate" "b.manifest[\"settings\"][\"writable\"] = [\"../etc\"]" &&
	refused "$TEST_TMP/w-etc.slate" "settings: writable: unsafe path \`\.\./etc\`"
'

test_expect_success 'signed writable "/etc" (absolute): refused at verify and run' '
	forge_edit "$TEST_TMP/w-abs.slate" "b.manifest[\"settings\"][\"writable\"] = [\"/etc\"]" &&
	refused "$TEST_TMP/w-abs.slate" "writable: unsafe path \`/etc\`: absolute"
'

test_expect_success 'signed writable "web" (holds the webroot): refused at verify and run' '
	forge_edit "$TEST_TMP/w-web.slate" "b.manifest[\"settings\"][\"writable\"] = [\"web\"]" &&
	refused "$TEST_TMP/w-web.slate" "writable \`web\` contains the webroot"
'

test_expect_success 'signed writable "vendor" (the code): refused at verify and run' '
	forge_edit "$TEST_TMP/w-vendor.slate" "b.manifest[\"settings\"][\"writable\"] = [\"vendor/acme\"]" &&
	refused "$TEST_TMP/w-vendor.slate" "writable \`vendor/acme\` overlaps the code"
'

test_expect_success 'signed writable path that holds PHP (config/ of Craft): refused at verify and run' '
	forge_edit "$TEST_TMP/w-php.slate" "b.manifest[\"settings\"][\"writable\"] = [\"config\"]" &&
	refused "$TEST_TMP/w-php.slate" "writable \`/app/config\` holds PHP code"
'

test_expect_success 'signed writable path missing from the bundle: refused at verify and run' '
	forge_edit "$TEST_TMP/w-missing.slate" "b.manifest[\"settings\"][\"writable\"] = [\"nothere\"]" &&
	refused "$TEST_TMP/w-missing.slate" "writable \`/app/nothere\` is not in the bundle"
'

test_expect_success 'signed writable path that is a symlink in the bundle: refused at verify and run' '
	forge_edit "$TEST_TMP/w-link.slate" "$(add_link app/www web)
b.manifest[\"settings\"][\"writable\"] = [\"www\"]" &&
	refused "$TEST_TMP/w-link.slate" "writable \`/app/www\` is a symlink in the bundle"
'

test_expect_success 'signed webroot "../.." : refused at verify and run' '
	forge_edit "$TEST_TMP/webroot.slate" "b.manifest[\"settings\"][\"webroot\"] = \"../..\"" &&
	refused "$TEST_TMP/webroot.slate" "webroot: unsafe path"
'

test_expect_success 'signed unknown settings key: refused at verify and run' '
	forge_edit "$TEST_TMP/s-key.slate" "b.manifest[\"settings\"][\"persistent\"] = [\"/\"]" &&
	refused "$TEST_TMP/s-key.slate" "settings: unknown key \`persistent\`"
'

# ---- image ----

test_expect_success 'signed image without processes: refused at verify and run' '
	forge_edit "$TEST_TMP/i-procs.slate" "b.manifest[\"image\"][\"processes\"] = []" &&
	refused "$TEST_TMP/i-procs.slate" "image: \`processes\` must be a non-empty list"
'

test_expect_success 'signed image process with a relative argv[0]: refused at verify and run' '
	forge_edit "$TEST_TMP/i-argv.slate" "b.manifest[\"image\"][\"processes\"][0][\"argv\"][0] = \"php-fpm\"" &&
	refused "$TEST_TMP/i-argv.slate" "process \`php-fpm\` needs an absolute argv\[0\]"
'

test_expect_success 'signed image user that is not NAME or UID[:GID]: refused at verify and run (exit 1, not 2)' '
	forge_edit "$TEST_TMP/i-user.slate" "b.manifest[\"image\"][\"user\"] = \"0:x\"" &&
	refused "$TEST_TMP/i-user.slate" "user \`0:x\` is not NAME or UID\[:GID\]"
'

test_expect_success 'signed health path with a line break (request smuggling): refused at verify and run' '
	forge_edit "$TEST_TMP/i-health.slate" "b.manifest[\"image\"][\"health\"][\"path\"] = \"/ HTTP/1.0\\r\\nX: y\"" &&
	refused "$TEST_TMP/i-health.slate" "health path .* must be printable ASCII"
'

test_expect_success 'a signed bundle without /run (the runtime mounts there): exit 1 at verify and run, not 3' '
	forge_edit "$TEST_TMP/no-run.slate" "b.manifest[\"entries\"] = [e for e in b.manifest[\"entries\"] if e[\"path\"] != \"run\"]
del b.members[b.index(\"run\")]" &&
	refused "$TEST_TMP/no-run.slate" "mount point \`/run\` is not in the bundle"
'

test_expect_success 'a signed bundle without /etc/passwd: slate run refuses it with exit 1 (its content), not 3' '
	forge_edit "$TEST_TMP/no-passwd.slate" "b.manifest[\"entries\"] = [e for e in b.manifest[\"entries\"] if e[\"path\"] != \"etc/passwd\"]
del b.members[b.index(\"etc/passwd\")]" &&
	"$SLATE_BUNDLE" verify --key "$PUB" "$TEST_TMP/no-passwd.slate" >/dev/null &&
	test_must_fail --code 1 slate_run "$TEST_TMP/no-passwd.slate" -- "$PROBE" write /tmp/ran >"$TEST_TMP/out" 2>"$TEST_TMP/err" &&
	test ! -s "$TEST_TMP/out" && test "$(wc -l <"$TEST_TMP/err")" -eq 1 &&
	assert_file_has_content "$TEST_TMP/err" "the image has no \`/etc/passwd\`" &&
	! grep -q " $ROOT/" /proc/self/mountinfo && test -z "$(ls -A "$ROOT/mnt")" &&
	rm -rf "$ROOT"/store/* "$ROOT/store/"*.lock
'

# ---- links into the runtime's mounts (item 4) ----

test_expect_success 'signed link web/env.txt -> ../../proc/self/environ: refused at verify and run' '
	forge_edit "$TEST_TMP/l-environ.slate" "$(add_link app/web/env.txt ../../proc/self/environ)" &&
	refused "$TEST_TMP/l-environ.slate" "symlink \`app/web/env.txt\` -> \`\.\./\.\./proc/self/environ\` leads into \`/proc\`, which the runtime mounts over"
'

test_expect_success 'signed link chain web/a -> b, web/b -> ../../dev: refused, naming the first link' '
	forge_edit "$TEST_TMP/l-chain.slate" "$(add_link app/web/a b)
$(add_link app/web/b ../../dev)" &&
	refused "$TEST_TMP/l-chain.slate" "symlink \`app/web/a\` -> \`b\` leads into \`/dev\`"
'

test_expect_success 'signed links into /tmp, /run, /sys and a writable path: refused at verify and run' '
	for t in tmp/x:tmp run/secrets:run sys/kernel:sys app/storage/logs:app/storage; do
		forge_edit "$TEST_TMP/l.slate" "$(add_link app/web/l "../../${t%%:*}")" &&
		refused "$TEST_TMP/l.slate" "leads into \`/${t#*:}\`, which the runtime mounts over" || return 1
	done
'

test_expect_success 'signed link to a directory that holds a mount (web/up -> ../..): refused' '
	forge_edit "$TEST_TMP/l-root.slate" "$(add_link app/web/up ../..)" &&
	refused "$TEST_TMP/l-root.slate" "symlink \`app/web/up\` -> \`\.\./\.\.\` leads to \`/\`, which holds \`/proc\`"
'

test_expect_success 'build: a project link into a writable path (web/logs -> ../storage/logs) is refused naming it' '
	cp -a "$SLATE_TOP/examples/craft-site" "$TEST_TMP/proj" && ln -s ../storage/logs "$TEST_TMP/proj/web/logs" &&
	test_must_fail --code 1 "$SLATE_BUNDLE" build "$TEST_TMP/proj" --image "$IMAGE" --key "$KEY" \
		-o "$TEST_TMP/proj.slate" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "symlink \`app/web/logs\` -> \`\.\./storage/logs\` leads into \`/app/storage\`" &&
	test ! -e "$TEST_TMP/proj.slate"
'

test_expect_success 'build: an image link into /proc (etc/leak -> ../proc/self/environ) is refused naming it' '
	cp -a "$IMAGE" "$TEST_TMP/img2" && ln -s ../proc/self/environ "$TEST_TMP/img2/rootfs/etc/leak" &&
	test_must_fail --code 1 "$SLATE_BUNDLE" build "$SLATE_TOP/examples/craft-site" --image "$TEST_TMP/img2" \
		--key "$KEY" -o "$TEST_TMP/img2.slate" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "symlink \`etc/leak\` -> \`\.\./proc/self/environ\` leads into \`/proc\`, which the runtime mounts over" &&
	test ! -e "$TEST_TMP/img2.slate"
'

# ---- escaped output (item 7) ----

test_expect_success 'inspect of an unsigned forgery: ESC and bidi controls in its name and pins come out escaped' '
	forge_edit "$TEST_TMP/esc.slate" "b.manifest[\"name\"] = \"\\x1b]0;owned\\x07\\x1b[31mred\\u202etxt.php\"
b.manifest[\"image\"][\"packages\"][\"nginx\"] = \"1\\x9b2\"" unsigned &&
	"$SLATE_BUNDLE" inspect "$TEST_TMP/esc.slate" >"$TEST_TMP/out" &&
	assert_file_has_content "$TEST_TMP/out" "^name +\\\\x1b\]0;owned\\\\x07\\\\x1b\[31mred\\\\u202etxt\.php\$" &&
	assert_file_has_content "$TEST_TMP/out" "pin +nginx 1\\\\u009b2" &&
	! grep -q "$ESC" "$TEST_TMP/out" && ! grep -q "$RLO" "$TEST_TMP/out" &&
	"$SLATE_BUNDLE" inspect --json "$TEST_TMP/esc.slate" >"$TEST_TMP/out" &&
	! grep -q "$ESC" "$TEST_TMP/out" && ! grep -q "$RLO" "$TEST_TMP/out" &&
	python3 -c "import json, sys; n = json.load(open(sys.argv[1]))[\"name\"]; assert n.endswith(\"red\\u202etxt.php\"), n" "$TEST_TMP/out"
'

test_expect_success 'an error naming a manifest path with ESC and bidi controls: escaped, one line' '
	forge_edit "$TEST_TMP/esc-path.slate" "b.manifest[\"entries\"][0][\"path\"] = \"\\x1b[2J\\u202eetc\"" unsigned &&
	test_must_fail --code 1 "$SLATE_BUNDLE" inspect "$TEST_TMP/esc-path.slate" 2>"$TEST_TMP/err" &&
	test "$(wc -l <"$TEST_TMP/err")" -eq 1 &&
	assert_file_has_content "$TEST_TMP/err" "\\\\x1b\[2J\\\\u202eetc" &&
	! grep -q "$ESC" "$TEST_TMP/err" && ! grep -q "$RLO" "$TEST_TMP/err"
'

test_expect_success 'slate-bundle diff: a path with bidi controls (valid in the format) comes out escaped' '
	forge_edit "$TEST_TMP/bidi.slate" "b.manifest[\"entries\"].append(forge.file_entry(\"app/web/evil\u202egnp.php\", b\"x\"))
b.manifest[\"entries\"].append(forge.file_entry(\"app/web/mark\u200fx\", b\"x\"))
b.manifest[\"entries\"].sort(key=forge.order_key)" unsigned &&
	"$SLATE_BUNDLE" diff "$SITE" "$TEST_TMP/bidi.slate" >"$TEST_TMP/out" &&
	assert_file_has_content "$TEST_TMP/out" "^\+ app/web/evil\\\\u202egnp\.php\$" &&
	assert_file_has_content "$TEST_TMP/out" "^\+ app/web/mark\\\\u200fx\$" &&
	! grep -q "$RLO" "$TEST_TMP/out" &&
	"$SLATE_BUNDLE" diff --json "$SITE" "$TEST_TMP/bidi.slate" >"$TEST_TMP/out" &&
	! LC_ALL=C grep -q "[^[:print:][:space:]]" "$TEST_TMP/out"
'

test_done
