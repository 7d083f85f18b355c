#!/bin/bash
# slate-bundle build refusals and project rules: secrets, slate.json, pins,
# symlinks, always-excluded and excluded paths, the webroot, output errors
# (a refused build writes nothing: no output, no temp file, an existing
# bundle unchanged), and the command line of every command.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/bundle-lib.sh"
committed_image_sum=$(sha256sum <"$SLATE_TOP/images/php-8.2/image.json")

# site NAME: a fresh copy of the example project at $TEST_TMP/NAME.
site() {
	cp -a "$EXAMPLE" "$TEST_TMP/$1"
}
# slate_json NAME JSON-MEMBERS: the example's settings plus JSON-MEMBERS.
slate_json() {
	printf '{"name": "craft-site", "webroot": "web", "writable": ["storage", "web/cpresources"]%s}\n' \
		"${2:+, $2}" >"$TEST_TMP/$1/slate.json"
}
# build_refuses SRC REGEX... [-- OPTIONS]: exit 1, stderr matching every
# REGEX, and nothing at all written to the (fresh) output directory.
build_refuses() {
	local src=$1 res=() opts=() out
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do res+=("$1"); shift; done
	[ $# -gt 0 ] && shift && opts=("$@")
	out=$(mktemp -d "$TEST_TMP/out.XXXXXX")
	test_must_fail --code 1 bundle_build "$src" "$out/bundle.slate" "${opts[@]}" >"$TEST_TMP/bout" 2>"$TEST_TMP/berr" &&
	test ! -s "$TEST_TMP/bout" &&
	test -z "$(ls -A "$out")" || { ls -A "$out" >&2; cat "$TEST_TMP/berr" >&2; return 1; }
	for re in "${res[@]}"; do assert_file_has_content "$TEST_TMP/berr" "$re" || return 1; done
}
# members BUNDLE: the member list, long form, as tar prints it.
members() {
	zstd -q -dc "$1" | tar -tvf -
}

test_expect_success 'setup: keys, a repinned image copy, the example bundle' '
	copy_keys &&
	copy_image &&
	bundle_build "$EXAMPLE" "$GOOD" --repin >/dev/null 2>&1 &&
	cp "$IMAGE/image.json" "$TEST_TMP/image.json.pinned"
'

# Secrets.
test_expect_success 'a .env file stops the build naming .env (and never its content); nothing written' '
	site env && echo "DB_PASSWORD=hunter2" >"$TEST_TMP/env/.env" &&
	build_refuses "$TEST_TMP/env" "secret" "\`\.env\`" &&
	assert_file_lacks_content "$TEST_TMP/berr" "hunter2"
'

test_expect_success 'a refused build leaves an existing bundle at -o unchanged, and no temp file' '
	mkdir "$TEST_TMP/keep" && cp "$GOOD" "$TEST_TMP/keep/site.slate" &&
	test_must_fail --code 1 bundle_build "$TEST_TMP/env" "$TEST_TMP/keep/site.slate" 2>/dev/null &&
	cmp "$GOOD" "$TEST_TMP/keep/site.slate" &&
	test "$(ls -A "$TEST_TMP/keep")" = site.slate
'

test_expect_success 'the same project with exclude [".env"] builds, without .env' '
	site env-excluded && echo "DB_PASSWORD=hunter2" >"$TEST_TMP/env-excluded/.env" &&
	slate_json env-excluded "\"exclude\": [\".env\"]" &&
	bundle_build "$TEST_TMP/env-excluded" "$TEST_TMP/env-excluded.slate" >/dev/null &&
	members "$TEST_TMP/env-excluded.slate" >"$TEST_TMP/list" &&
	assert_file_lacks_content "$TEST_TMP/list" "\.env" &&
	assert_file_has_content "$TEST_TMP/list" " app/web/index\.php$"
'

test_expect_success 'allow_secrets [".env"] builds, and packs .env' '
	site env-allowed && echo "APP_ENV=production" >"$TEST_TMP/env-allowed/.env" &&
	slate_json env-allowed "\"allow_secrets\": [\".env\"]" &&
	bundle_build "$TEST_TMP/env-allowed" "$TEST_TMP/env-allowed.slate" >/dev/null &&
	members "$TEST_TMP/env-allowed.slate" >"$TEST_TMP/list" &&
	assert_file_has_content "$TEST_TMP/list" " app/\.env$"
'

test_expect_success 'config/server.key stops the build naming it' '
	site key && echo "-----BEGIN PRIVATE KEY-----" >"$TEST_TMP/key/config/server.key" &&
	build_refuses "$TEST_TMP/key" "config/server\.key"
'

test_expect_success 'every secret is named (id_rsa, web/cert.pem, .env.local)' '
	site many && for f in id_rsa web/cert.pem .env.local; do echo x >"$TEST_TMP/many/$f"; done &&
	build_refuses "$TEST_TMP/many" "\`id_rsa\`" "\`web/cert\.pem\`" "\`\.env\.local\`"
'

test_expect_success '.env.example is a template, not a secret: packed' '
	site envexample && echo "DB_PASSWORD=" >"$TEST_TMP/envexample/.env.example" &&
	bundle_build "$TEST_TMP/envexample" "$TEST_TMP/envexample.slate" >/dev/null &&
	members "$TEST_TMP/envexample.slate" >"$TEST_TMP/list" &&
	assert_file_has_content "$TEST_TMP/list" " app/\.env\.example$"
'

# slate.json.
test_expect_success 'an unknown key in slate.json stops the build naming the key' '
	site unknown && slate_json unknown "\"writeable\": [\"storage\"]" &&
	build_refuses "$TEST_TMP/unknown" "slate\.json" "writeable"
'

test_expect_success 'a slate.json that is not JSON stops the build naming slate.json' '
	site badjson && echo "{name: craft-site" >"$TEST_TMP/badjson/slate.json" &&
	test_must_fail bundle_build "$TEST_TMP/badjson" "$TEST_TMP/badjson.slate" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "slate\.json" &&
	test ! -e "$TEST_TMP/badjson.slate"
'

test_expect_success 'a missing webroot is refused naming it' '
	site nowebroot && slate_json nowebroot "" &&
	sed -i "s/\"webroot\": \"web\"/\"webroot\": \"public\"/" "$TEST_TMP/nowebroot/slate.json" &&
	build_refuses "$TEST_TMP/nowebroot" "webroot" "public"
'

test_expect_success 'a writable path that contains the webroot is refused' '
	site writable-web && slate_json writable-web "" &&
	sed -i "s|\"writable\": \[\"storage\", \"web/cpresources\"\]|\"writable\": [\"web\"]|" \
		"$TEST_TMP/writable-web/slate.json" &&
	build_refuses "$TEST_TMP/writable-web" "writable" "web"
'

test_expect_success 'a writable path that is a symlink (storage -> web) is refused naming it' '
	site wlink && rm -rf "$TEST_TMP/wlink/storage" && ln -s web "$TEST_TMP/wlink/storage" &&
	build_refuses "$TEST_TMP/wlink" "writable \`storage\` is a symlink"
'

test_expect_success 'a symlink chain that climbs out through another link is refused' '
	site chain && ln -s .. "$TEST_TMP/chain/web/up" &&
	ln -s up/../outside.txt "$TEST_TMP/chain/web/t" && echo secret >"$TEST_TMP/outside.txt" &&
	build_refuses "$TEST_TMP/chain" "leave the project" "web/t"
'

test_expect_success 'an exclude with a trailing slash ("storage/logs/") excludes that directory' '
	site exslash && slate_json exslash "\"exclude\": [\"storage/logs/\"]" &&
	bundle_build "$TEST_TMP/exslash" "$TEST_TMP/exslash.slate" >/dev/null &&
	members "$TEST_TMP/exslash.slate" >"$TEST_TMP/exslash.list" &&
	assert_file_lacks_content "$TEST_TMP/exslash.list" " app/storage/logs" &&
	assert_file_has_content "$TEST_TMP/exslash.list" " app/storage/$"
'

test_expect_success 'a .slate directory in the project is refused (reserved)' '
	site reserved && mkdir "$TEST_TMP/reserved/.slate" && echo x >"$TEST_TMP/reserved/.slate/nginx.conf" &&
	build_refuses "$TEST_TMP/reserved" "\.slate" "reserved"
'

# Pins.
test_expect_success 'a pin mismatch stops the build naming the package, both versions and --repin' '
	installed=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))[\"packages\"][\"nginx\"])" "$IMAGE/image.json") &&
	python3 -c "import json, sys
d = json.load(open(sys.argv[1])); d[\"packages\"][\"nginx\"] = \"1.0.0-1\"
json.dump(d, open(sys.argv[1], \"w\"), indent=2)" "$IMAGE/image.json" &&
	cp "$IMAGE/image.json" "$TEST_TMP/image.json.altered" &&
	build_refuses "$EXAMPLE" "nginx" "1\.0\.0-1" "$(printf %s "$installed" | sed "s/[.+]/\\\\&/g")" "--repin" &&
	cmp "$IMAGE/image.json" "$TEST_TMP/image.json.altered"
'

test_expect_success '--repin then rewrites the pin and builds the same bundle as before' '
	bundle_build "$EXAMPLE" "$TEST_TMP/repinned.slate" --repin >/dev/null 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "repin: nginx" &&
	python3 -c "import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a == b, (a[\"packages\"], b[\"packages\"])" "$IMAGE/image.json" "$TEST_TMP/image.json.pinned" &&
	cmp "$GOOD" "$TEST_TMP/repinned.slate"
'

test_expect_success 'a PHP version mismatch stops the build naming PHP and the pinned version' '
	cp -a "$IMAGE" "$TEST_TMP/php-old" &&
	sed -i "s/\"php\": \"[^\"]*\"/\"php\": \"8.2.0\"/" "$TEST_TMP/php-old/image.json" &&
	test_must_fail --code 1 "$SLATE_BUNDLE" build "$EXAMPLE" --image "$TEST_TMP/php-old" --key "$KEY" \
		-o "$TEST_TMP/php-old.slate" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "PHP" &&
	assert_file_has_content "$TEST_TMP/err" "8\.2\.0 pinned" &&
	test ! -e "$TEST_TMP/php-old.slate"
'

# Symlinks.
test_expect_success 'a dangling symlink stops the build naming it' '
	site dangling && ln -s missing.php "$TEST_TMP/dangling/web/dangling.php" &&
	build_refuses "$TEST_TMP/dangling" "dangling" "web/dangling\.php"
'

test_expect_success 'symlinks leaving the tree (absolute or ../) stop the build naming them' '
	echo "outside content" >"$TEST_TMP/outside.txt" &&
	site outside &&
	ln -s "$TEST_TMP/outside.txt" "$TEST_TMP/outside/web/outside.txt" &&
	ln -s ../../outside.txt "$TEST_TMP/outside/config/rel.txt" &&
	build_refuses "$TEST_TMP/outside" "web/outside\.txt" "config/rel\.txt" "--dereference"
'

test_expect_success 'with --dereference the targets are packed as regular files with their content' '
	bundle_build "$TEST_TMP/outside" "$TEST_TMP/deref.slate" --dereference >/dev/null &&
	members "$TEST_TMP/deref.slate" >"$TEST_TMP/list" &&
	assert_file_has_content "$TEST_TMP/list" "^-rw-r--r-- .* app/web/outside\.txt$" &&
	assert_file_has_content "$TEST_TMP/list" "^-rw-r--r-- .* app/config/rel\.txt$" &&
	test "$(zstd -q -dc "$TEST_TMP/deref.slate" | tar -xOf - app/web/outside.txt)" = "outside content" &&
	"$SLATE_BUNDLE" verify --key "$PUB" "$TEST_TMP/deref.slate" >/dev/null
'

test_expect_success 'symlinks inside the project stay relative symlinks' '
	site inside &&
	ln -s index.php "$TEST_TMP/inside/web/home.php" &&
	ln -s "$TEST_TMP/inside/templates/index.html" "$TEST_TMP/inside/web/tpl.html" &&
	bundle_build "$TEST_TMP/inside" "$TEST_TMP/inside.slate" >/dev/null &&
	members "$TEST_TMP/inside.slate" >"$TEST_TMP/list" &&
	assert_file_has_content "$TEST_TMP/list" "^l.* app/web/home\.php -> index\.php$" &&
	assert_file_has_content "$TEST_TMP/list" "^l.* app/web/tpl\.html -> \.\./templates/index\.html$"
'

# What is packed.
test_expect_success '.git and node_modules are never packed, at any depth' '
	site vcs &&
	mkdir -p "$TEST_TMP/vcs/.git" "$TEST_TMP/vcs/node_modules/left-pad" "$TEST_TMP/vcs/vendor/acme/node_modules/x" &&
	echo "ref: refs/heads/main" >"$TEST_TMP/vcs/.git/HEAD" &&
	echo "module.exports = 1" >"$TEST_TMP/vcs/node_modules/left-pad/index.js" &&
	echo "x" >"$TEST_TMP/vcs/vendor/acme/node_modules/x/x.js" &&
	bundle_build "$TEST_TMP/vcs" "$TEST_TMP/vcs.slate" >/dev/null &&
	members "$TEST_TMP/vcs.slate" >"$TEST_TMP/list" &&
	assert_file_lacks_content "$TEST_TMP/list" "\.git|node_modules" &&
	assert_file_has_content "$TEST_TMP/list" " app/vendor/acme/greeter/src/App\.php$"
'

test_expect_success 'exclude globs work: "*.log" anywhere, "storage/runtime" and what is below it' '
	site excl && slate_json excl "\"exclude\": [\"*.log\", \"storage/runtime\"]" &&
	mkdir -p "$TEST_TMP/excl/storage/runtime/cache" &&
	echo x >"$TEST_TMP/excl/storage/runtime/cache/data.bin" &&
	echo x >"$TEST_TMP/excl/storage/logs/web.log" &&
	echo x >"$TEST_TMP/excl/web/debug.log" &&
	echo x >"$TEST_TMP/excl/storage/keep.txt" &&
	bundle_build "$TEST_TMP/excl" "$TEST_TMP/excl.slate" >/dev/null &&
	members "$TEST_TMP/excl.slate" >"$TEST_TMP/list" &&
	assert_file_lacks_content "$TEST_TMP/list" "\.log$|storage/runtime" &&
	assert_file_has_content "$TEST_TMP/list" " app/storage/keep\.txt$" &&
	assert_file_has_content "$TEST_TMP/list" " app/storage/logs/$"
'

# Output errors: exit 3 and no temp file.
test_expect_success 'output into a missing directory: exit 3, naming it' '
	test_must_fail --code 3 bundle_build "$EXAMPLE" "$TEST_TMP/no/such/dir/x.slate" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "no/such/dir/x\.slate" &&
	test ! -e "$TEST_TMP/no"
'

test_expect_success 'output to an unwritable location (/proc): exit 3' '
	test_must_fail --code 3 bundle_build "$EXAMPLE" /proc/slate-test.slate 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "/proc/slate-test\.slate"
'

# read_only DIR CMD...: run CMD with DIR read-only: mode 0555 for a user;
# for root (whom modes do not stop), a read-only bind mount in a private
# mount namespace.
read_only() {
	local dir=$1
	shift
	if [ "$(id -u)" != 0 ]; then
		chmod 0555 "$dir" && "$@"
	else
		unshare -m sh -c 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"' - "$dir" "$@"
	fi
}
if [ "$(id -u)" != 0 ] || unshare -m true 2>/dev/null; then
	test_expect_success 'output into a read-only directory: exit 3, nothing left in it' '
		mkdir "$TEST_TMP/ro" &&
		test_must_fail --code 3 read_only "$TEST_TMP/ro" "$SLATE_BUNDLE" build "$EXAMPLE" --image "$IMAGE" \
			--key "$KEY" -o "$TEST_TMP/ro/x.slate" 2>"$TEST_TMP/err" &&
		assert_file_has_content "$TEST_TMP/err" "ro/x\.slate" &&
		test -z "$(ls -A "$TEST_TMP/ro")"
	'
else
	test_skip 'output into a read-only directory' 'running as root without mount namespaces'
fi

test_expect_success 'output path is a directory (the final rename fails): exit 3, no temp file left' '
	mkdir -p "$TEST_TMP/isdir/x.slate" &&
	test_must_fail --code 3 bundle_build "$EXAMPLE" "$TEST_TMP/isdir/x.slate" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "x\.slate" &&
	test "$(ls -A "$TEST_TMP/isdir")" = x.slate &&
	test -z "$(ls -A "$TEST_TMP/isdir/x.slate")"
'

test_expect_success 'a write that fails half-way (file size limit): exit 3, no temp file left' '
	mkdir "$TEST_TMP/full" &&
	test_must_fail --code 3 bash -c "trap \"\" XFSZ; ulimit -f 256; exec \"\$@\"" - \
		"$SLATE_BUNDLE" build "$EXAMPLE" --image "$IMAGE" --key "$KEY" -o "$TEST_TMP/full/x.slate" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "too large" &&
	test -z "$(ls -A "$TEST_TMP/full")"
'

# Inputs that are not there.
test_expect_success 'a missing project, image or key is named; a public key is not a signing key' '
	test_must_fail bundle_build "$TEST_TMP/nosuchsite" "$TEST_TMP/x.slate" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "nosuchsite" &&
	test_must_fail "$SLATE_BUNDLE" build "$EXAMPLE" --image "$TEST_TMP/noimage" --key "$KEY" -o "$TEST_TMP/x.slate" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "noimage" &&
	test_must_fail "$SLATE_BUNDLE" build "$EXAMPLE" --image "$IMAGE" --key "$TEST_TMP/nokey" -o "$TEST_TMP/x.slate" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "nokey" &&
	test_must_fail --code 1 "$SLATE_BUNDLE" build "$EXAMPLE" --image "$IMAGE" --key "$PUB" -o "$TEST_TMP/x.slate" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "private key" &&
	test ! -e "$TEST_TMP/x.slate"
'

# The command line.
test_expect_success 'bad arguments to every command: exit 2 with a usage line' '
	B=$SLATE_BUNDLE G=$GOOD K=$KEY P=$PUB E=$EXAMPLE I=$IMAGE O=$TEST_TMP/x.slate &&
	while read -r cmd args; do
		# shellcheck disable=SC2086
		test_must_fail --code 2 "$B" $cmd $args >/dev/null 2>"$TEST_TMP/err" &&
		assert_file_has_content "$TEST_TMP/err" "usage: slate-bundle" || { echo "for: $cmd $args" >&2; exit 1; }
	done <<-EOF &&
	bogus-command
	build
	build $E
	build $E $E --image $I --key $K -o $O
	build $E --image $I -o $O
	build $E --image $I --key $K
	build $E --image $I --key $K -o $O --sequence abc
	build $E --image $I --key $K -o $O --threads 0
	build $E --image $I --key $K -o $O --level 99
	build $E --image $I --key $K -o $O --bogus
	build $E --image $I --key $K -o
	verify
	verify $G
	verify --key $P
	verify --key $P $G $G
	verify --key $P --bogus $G
	verify --key $P --max-entries abc $G
	verify --key $P --max-size 12Q $G
	inspect
	inspect $G $G
	inspect --bogus $G
	diff
	diff $G
	diff $G $G $G
	diff --bogus $G $G
	keygen
	keygen -o $TEST_TMP/k extra
	EOF
	test ! -e "$O" && test ! -e "$TEST_TMP/k"
'

test_expect_success 'slate-bundle with no command: exit 2 with the command list' '
	test_must_fail --code 2 "$SLATE_BUNDLE" 2>"$TEST_TMP/err" &&
	assert_file_has_content "$TEST_TMP/err" "usage: slate-bundle COMMAND"
'

test_expect_success 'every command has --help: exit 0, its usage on stdout' '
	"$SLATE_BUNDLE" --help >"$TEST_TMP/help" &&
	assert_file_has_content "$TEST_TMP/help" "^usage: slate-bundle COMMAND" &&
	for cmd in keygen build verify inspect diff; do
		"$SLATE_BUNDLE" $cmd --help >"$TEST_TMP/help" 2>"$TEST_TMP/err" &&
		assert_file_has_content "$TEST_TMP/help" "^usage: slate-bundle $cmd " &&
		test ! -s "$TEST_TMP/err" || exit 1
	done
'

test_expect_success 'the committed image description was not touched' '
	test "$(sha256sum <"$SLATE_TOP/images/php-8.2/image.json")" = "$committed_image_sum"
'

test_done
