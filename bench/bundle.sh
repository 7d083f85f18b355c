#!/bin/bash
# Benchmarks for slate-bundle (issue: build and verify speed), side by side
# in one hyperfine run each:
#   build:  slate-bundle build  vs  tar --sort=name -I 'zstd -3 -T0' -cf  of the same files
#   verify: slate-bundle verify vs  zstd -dc | tar -xOf - >/dev/null  (decompress + read every byte)
#                               vs  zstd -dc | tar -t  plus sha256sum of the extracted files
# on (1) examples/craft-site with the php-8.2 runtime, (2) the same with a
# synthetic 20,000-file vendor/. Also prints the runtime image's size by part.
#   bench/bundle.sh [RUNS]      (needs hyperfine, zstd; run `make` first)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
runs=${1:-10}
sb=$top/build/slate-bundle
work=$(mktemp -d /tmp/slate-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1700000000

cp -a images/php-8.2 "$work/image"
"$sb" keygen -o "$work/key" >/dev/null
# Pin a copy of the image to what is installed, as CI would.
"$sb" build examples/craft-site --image "$work/image" --key "$work/key" -o "$work/warm.slate" --repin >/dev/null 2>&1

# A Craft-sized vendor/: 20,000 PHP files of 1-12 KiB in 400 packages.
make_vendor_project() {
	cp -a examples/craft-site "$1"
	python3 - "$1/vendor" <<'PY'
import os, random, sys
random.seed(7)
root = sys.argv[1]
words = "function return public private static class namespace use array string int $this->".split()
for p in range(400):
    d = os.path.join(root, f"vendor{p // 20}", f"package{p}", "src", "Sub")
    os.makedirs(d, exist_ok=True)
    for f in range(50):
        n = random.randint(1024, 12 * 1024)
        body = " ".join(random.choice(words) for _ in range(n // 6))[:n]
        with open(os.path.join(d, f"Class{f}.php"), "w") as fh:
            fh.write("<?php\n// generated\n" + body + "\n")
PY
}

# The files a tar of the same content reads: the manifest's paths, mapped
# back to where they live on this host.
file_list() { # bundle project_dir > list
	zstd -dc "$1" | tar -xOf - .slate/manifest.json | python3 -c '
import json, sys
proj = sys.argv[1].lstrip("/")
for e in json.load(sys.stdin)["entries"]:
    p = e["path"]
    if p == "app" or p.startswith("app/"):
        if p.startswith("app/.slate"):
            continue
        p = proj + p[3:]
    print(p)' "$2"
}

bench_one() { # label project_dir
	local label=$1 proj=$2 b=$work/$1.slate
	"$sb" build "$proj" --image "$work/image" --key "$work/key" -o "$b" >/dev/null
	file_list "$b" "$(realpath "$proj")" >"$work/$label.list"
	local n bytes
	n=$(wc -l <"$work/$label.list")
	bytes=$(stat -c %s "$b")
	echo
	echo "== $label: $n entries, bundle $((bytes / 1024 / 1024)) MiB"
	hyperfine -N --warmup 1 --runs "$runs" --export-markdown "$work/$label-build.md" \
		-n "slate-bundle build" "$sb build $proj --image $work/image --key $work/key -o $work/out.slate" \
		-n "tar+zstd -3 -T0" "tar --sort=name --no-recursion -C / -T $work/$label.list -I 'zstd -3 -T0' -cf $work/out.tar.zst"
	mkdir -p "$work/x"
	hyperfine --warmup 1 --runs "$runs" --export-markdown "$work/$label-verify.md" \
		-n "slate-bundle verify" "$sb verify --key $work/key.pub $b" \
		-n "zstd -dc | tar -xOf - >/dev/null" "zstd -dc $b | tar -xOf - >/dev/null" \
		-n "zstd -dc | tar -t; sha256sum" "zstd -dc $b | tar -t >/dev/null; rm -rf $work/x/*; zstd -dc $b | tar -C $work/x -xf -; find $work/x -type f -print0 | xargs -0 sha256sum >/dev/null"
	cat "$work/$label-build.md" "$work/$label-verify.md"
}

bench_one example examples/craft-site
make_vendor_project "$work/vendor20k"
bench_one vendor20k "$work/vendor20k"

echo
echo "== runtime image size by part (example bundle)"
zstd -dc "$work/example.slate" | tar -xOf - .slate/manifest.json | python3 -c '
import json, sys
m = json.load(sys.stdin)
parts = [("PHP binaries (php-fpm8.2, php8.2)", lambda p: p in ("usr/sbin/php-fpm8.2", "usr/bin/php8.2")),
         ("PHP extensions (.so)", lambda p: p.startswith("usr/lib/php/")),
         ("nginx", lambda p: p == "usr/sbin/nginx"),
         ("ICU data (libicudata)", lambda p: "libicudata" in p),
         ("image codecs for gd (x265, aom, SvtAv1, rav1e, dav1d, de265, heif, avif, webp, tiff, jpeg, png, ...)",
          lambda p: any(k in p for k in ("x265", "aom", "SvtAv1", "rav1e", "dav1d", "de265", "heif", "avif", "webp", "tiff", "jpeg", "png", "libgd", "libXpm", "libX", "libxcb", "freetype", "fontconfig", "libjbig", "libLerc", "libdeflate", "libsharpyuv", "libyuv", "libgav1", "libnuma"))),
         ("other shared libraries", lambda p: ".so" in p and p.startswith(("usr/lib/x86_64-linux-gnu", "lib"))),
         ("time zones", lambda p: p.startswith("usr/share/zoneinfo")),
         ("locale, gconv, CA certificates, configs", lambda p: not p.startswith("app"))]
sizes = {name: 0 for name, _ in parts}
for e in m["entries"]:
    if e["type"] != "file": continue
    for name, match in parts:
        if match(e["path"]):
            sizes[name] += e["size"]; break
total = sum(e.get("size", 0) for e in m["entries"] if not e["path"].startswith("app"))
print("| part | MiB | share |\n|---|---:|---:|")
for name, _ in parts:
    print(f"| {name} | {sizes[name] / 2**20:.1f} | {100 * sizes[name] / total:.0f}% |")
print(f"| **runtime image total** | {total / 2**20:.1f} | 100% |")'
