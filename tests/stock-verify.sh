#!/bin/bash
# stock-verify.sh BUNDLE PUBKEY: verify a slate bundle with stock tools only
# (zstd, tar, openssl, sha256sum, coreutils/findutils, and python3 to read
# the JSON manifest): the recipe of docs/FORMAT.md, as a script.
#
#   0. exactly one zstd frame, which ends where the file ends
#   1. the tar's framing: no pax global header, no unknown type flag, and
#      after the last member its two end blocks and at most one record of
#      zero padding, nothing else; the first two members are
#      .slate/manifest.json and .slate/manifest.sig
#   2. the signature member is the key id (8 bytes) and the Ed25519
#      signature (64 bytes) over "slate-manifest-v1\n" || manifest bytes
#   3. the member and the manifest name the key that signed it (key id =
#      first 8 bytes of SHA-256 of the raw 32-byte public key)
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

# 0. One zstd frame (zstd -d refuses anything after it, or a frame that
#    does not end).
frames=$(zstd -lv "$bundle" 2>/dev/null | sed -n 's/^# Zstandard Frames: //p') || frames=unreadable
[ "$frames" = 1 ] || fail "not exactly one zstd frame: $1"
zstd -q -dc "$bundle" >bundle.tar || fail "not a zstd-compressed tar, or a frame that does not end: $1"

# 1. The framing (Python's tarfile reads what tar does, and shows the type
#    flags, the global pax headers and where the members end), then the
#    two .slate members first.
python3 - <<'PY' || fail "$(cat framing.err)"
import sys, tarfile
def refuse(msg):
    open("framing.err", "w").write(msg)
    sys.exit(1)
known = {tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
         tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE}
with open("bundle.tar", "rb") as f:
    try:
        tf = tarfile.open(fileobj=f, mode="r:")
        members = list(tf)
    except tarfile.TarError as e:
        refuse("not a tar archive: %s" % e)
    if tf.pax_headers:
        refuse("a pax global header")
    for ti in members:
        if ti.type not in known:
            refuse("member %s has the unknown type flag %r" % (ti.name, ti.type))
    f.seek(tf.offset)
    tail = f.read(2 * 512 + 10240 + 1)
if len(tail) < 1024 or len(tail) > 1024 + 10240 or len(tail) % 512 or tail.strip(b"\0"):
    refuse("after the last member: not two end blocks and zero padding only")
PY
tar -tf bundle.tar >members || fail "not a tar: $1"
printf '.slate/manifest.json\n.slate/manifest.sig\n' >head.expected
sed -n 1,2p members | cmp -s - head.expected || fail "the first members are not .slate/manifest.json, .slate/manifest.sig"
tar -xf bundle.tar .slate/manifest.json .slate/manifest.sig
[ "$(wc -c <.slate/manifest.sig)" -eq 72 ] || fail "the signature member is not 72 bytes"
head -c 8 .slate/manifest.sig | od -An -tx1 | tr -d ' \n' >sig.keyid
tail -c 64 .slate/manifest.sig >sig.bin

# 2. The signature, over the domain-separation prefix and the exact bytes.
{ printf 'slate-manifest-v1\n'; cat .slate/manifest.json; } >signed.bin
openssl pkeyutl -verify -pubin -inkey "$pub" -rawin -in signed.bin -sigfile sig.bin >/dev/null ||
	fail "bad signature (not signed by $2)"

# 3. The signer the member and the manifest name is this key.
key_id=$(openssl pkey -pubin -in "$pub" -outform DER | tail -c 32 | sha256sum | cut -c1-16)
[ "$(cat sig.keyid)" = "$key_id" ] || fail "the signature member names key $(cat sig.keyid), the key is $key_id"
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
tar -C root -xpf bundle.tar --no-same-owner
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
