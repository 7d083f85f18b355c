#!/bin/bash
# slate end to end, for a person to follow: build a signed bundle of the
# example Craft site, deploy it, attack it, look at what the attacker wrote,
# redeploy, and see the attack gone. Run as root from the repository
# (`make demo` does: it installs what is missing and builds first).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
SB=$top/build/slate-bundle
demo=$top/build/demo
SLATE=("$top/build/slate" --root "$demo/root" --run-dir "$demo/run")
url=http://127.0.0.1:8080

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
fetch() { curl -s -o /dev/null -w '%{http_code}' "$1"; }

if [ "$(id -u)" != 0 ]; then
	echo "make demo: slate runs instances in namespaces and cgroups: run it as root" >&2
	exit 2
fi
if "${SLATE[@]}" status demo >/dev/null 2>&1; then
	"${SLATE[@]}" rm demo >/dev/null 2>&1 || true
fi
rm -rf "$demo"
mkdir -p "$demo"

step "1. A signing key (in CI this stays in the CI's secrets; hosts get only the .pub)"
run "$SB" keygen -o "$demo/demo.key"

step "2. Build the signed, reproducible bundle of examples/craft-site with the PHP 8.2 runtime"
echo "(from a copy of images/php-8.2 repinned to this host's packages: the repository's pins stay)"
cp -a images/php-8.2 "$demo/image"
run "$SB" build examples/craft-site --image "$demo/image" --key "$demo/demo.key" -o "$demo/site.slate" \
	--version 1.0.0 --repin
run "$SB" inspect "$demo/site.slate" | head -8

step "3. Deploy it as app 'demo', published on $url"
run "${SLATE[@]}" deploy --key "$demo/demo.key.pub" demo "$demo/site.slate" -p 127.0.0.1:8080:80
run "${SLATE[@]}" ps

step "4. The site"
run curl -s "$url/" | sed -n 's/<[^>]*>/ /g; s/  */ /g; /[A-Za-z]/p' | head -8

step "5. An attacker gets code execution and drops a webshell and a defacement (here through slate exec)"
run "${SLATE[@]}" exec demo -- php -r 'file_put_contents("/app/web/cpresources/shell.php", "<?php system(\$_GET[\"c\"]);");
file_put_contents("/app/web/cpresources/hacked.html", "<h1>owned</h1>");
echo "written\n";'
echo "The code tree itself is read-only, even for the instance's root:"
"${SLATE[@]}" exec --user root demo -- php -r 'var_dump(@file_put_contents("/app/web/index.php", "x"));' || true
echo "GET /cpresources/hacked.html -> $(fetch "$url/cpresources/hacked.html") (served: writable paths serve static files)"
echo "GET /cpresources/shell.php   -> $(fetch "$url/cpresources/shell.php") (PHP never runs from a writable path)"

step "6. What did the instance write since it started?"
run "${SLATE[@]}" diff demo
run "${SLATE[@]}" diff demo --save "$demo/evidence.tar" >/dev/null
echo "(kept for forensics in $demo/evidence.tar)"

step "7. Redeploy: a fresh instance of the same signed release, zero downtime"
run "${SLATE[@]}" redeploy demo

step "8. The attacker's files are gone; the site still serves"
echo "GET /cpresources/hacked.html -> $(fetch "$url/cpresources/hacked.html")"
echo "GET /cpresources/shell.php   -> $(fetch "$url/cpresources/shell.php")"
echo "GET /                        -> $(fetch "$url/")"
run "${SLATE[@]}" diff demo
run "${SLATE[@]}" releases demo

step "Done"
echo "The demo app keeps running. Look around with:"
echo "  ${SLATE[*]} logs demo"
echo "  ${SLATE[*]} audit"
echo "and remove it with:  ${SLATE[*]} rm demo"
