#!/bin/bash
# stock-verify.sh BUNDLE PUBKEY: verify a slate bundle with stock tools only
# (zstd, tar, openssl, sha256sum, coreutils/findutils, and python3 to read
# the JSON manifest): the recipe of docs/FORMAT.md, as a script.
#
#   1. the first two members are .slate/manifest.json and .slate/manifest.sig
#   2. the signature: Ed25519 over "slate-manifest-v1\n" || manifest bytes
#   3. the manifest names the key that signed it (key id = first 8 bytes of
#      SHA-256 of the raw 32-byte public key)
#   4. the archive holds exactly the manifest's entries, in order (checked
#      before anything is extracted: nothing unlisted reaches the disk)
#   5. extracted, every entry has its type, mode and symlink target
#   6. every file's SHA-256 matches (sha256sum -c)
#
# Prints the bundle id (SHA-256 of the manifest) and exits 0 when valid;
# exits 1 naming the first problem otherwise, 2 on usage errors.
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: stock-verify.sh BUNDLE PUBKEY" >&2
	exit 2
fi
bundle=$(realpath -- "$1")
pub=$(realpath -- "$2")
fail() {
	echo "stock-verify: $*" >&2
	exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# 1. The two .slate members come first.
zstd -q -dc "$bundle" | tar -tf - >members || fail "not a zstd-compressed tar: $1"
printf '.slate/manifest.json\n.slate/manifest.sig\n' >head.expected
sed -n 1,2p members | cmp -s - head.expected || fail "the first members are not .slate/manifest.json, .slate/manifest.sig"
zstd -q -dc "$bundle" | tar -xf - .slate/manifest.json .slate/manifest.sig
[ "$(wc -c <.slate/manifest.sig)" -eq 64 ] || fail "the signature is not 64 bytes"

# 2. The signature, over the domain-separation prefix and the exact bytes.
{ printf 'slate-manifest-v1\n'; cat .slate/manifest.json; } >signed.bin
openssl pkeyutl -verify -pubin -inkey "$pub" -rawin -in signed.bin -sigfile .slate/manifest.sig >/dev/null ||
	fail "bad signature (not signed by $2)"

# 3. The signer the manifest names is this key.
key_id=$(openssl pkey -pubin -in "$pub" -outform DER | tail -c 32 | sha256sum | cut -c1-16)
signer=$(python3 -c 'import json; print(json.load(open(".slate/manifest.json"))["signer"])')
[ "$signer" = "$key_id" ] || fail "the manifest names signer $signer, the key is $key_id"

# What the manifest says, in the shapes the stock tools print.
python3 - <<'EOF'
import json
m = json.load(open(".slate/manifest.json"))
kind = {"dir": "d", "file": "f", "symlink": "l"}
with open("paths", "w") as paths, open("tree", "w") as tree, \
        open("links", "w") as links, open("sums", "w") as sums:
    for e in m["entries"]:
        p = e["path"]
        paths.write(p + "\n")
        tree.write("%s %o %s\n" % (kind[e["type"]], 0o777 if e["type"] == "symlink" else e["mode"], p))
        if e["type"] == "symlink":
            links.write("%s -> %s\n" % (p, e["target"]))
        if e["type"] == "file":
            name = "root/" + p
            if "\\" in name:
                sums.write("\\%s  %s\n" % (e["sha256"], name.replace("\\", "\\\\")))
            else:
                sums.write("%s  %s\n" % (e["sha256"], name))
EOF

# 4. Exactly the listed members, in order (tar lists directories with a /).
sed -e 1,2d -e 's|/$||' members >members.entries
cmp -s members.entries paths ||
	fail "the archive's members differ from the manifest's entries: $(diff paths members.entries | sed -n 2p)"

# 5. Extract (into a fresh directory, keeping modes), compare the tree.
mkdir root
zstd -q -dc "$bundle" | tar -C root -xpf - --no-same-owner
rm -rf root/.slate
find root -mindepth 1 -printf '%y %m %P\n' | LC_ALL=C sort >tree.found
LC_ALL=C sort tree >tree.expected
cmp -s tree.found tree.expected ||
	fail "extracted types or modes differ from the manifest: $(diff tree.expected tree.found | sed -n 2p)"
find root -type l -printf '%P -> %l\n' | LC_ALL=C sort >links.found
LC_ALL=C sort links | cmp -s - links.found || fail "symlink targets differ from the manifest"

# 6. Every file's content.
sha256sum --quiet --strict -c sums >sums.out 2>&1 || fail "content differs: $(head -n 1 sums.out)"

sha256sum <.slate/manifest.json | cut -d' ' -f1
