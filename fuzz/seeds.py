#!/usr/bin/env python3
"""seeds.py: seed inputs for the bundle and manifest fuzz harnesses.

    seeds.py BUNDLE KEY OUTDIR

From a real bundle (built by slate-bundle with the tests' key), write
OUTDIR/manifest/full.json (its manifest), and a small bundle of the same
shape, re-signed with KEY: its image and settings, every directory
(the runtime's mount points among them), the app's links, the app's files
of at most 4 KiB and the image's of at most 256 bytes, as
OUTDIR/bundle/small.slate (zstd) and OUTDIR/bundle_tar/small.tar (the tar
inside), plus OUTDIR/manifest/small.json. A small seed keeps every
execution fast; the fuzzer grows it from there.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import forge  # noqa: E402

LIMIT = 4096


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main():
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    src, key, out = sys.argv[1:]
    raw = subprocess.run(["zstd", "-dc", src], check=True, stdout=subprocess.PIPE).stdout
    b = forge.Bundle(raw)
    write(os.path.join(out, "manifest", "full.json"), b.manifest_bytes)
    keep = set()
    for e in b.manifest["entries"]:
        p = e["path"]
        is_app = p == "app" or p.startswith("app/")
        if e["type"] == "dir" or (is_app and e["type"] == "symlink") or (e["type"] == "file" and e["size"] <= (LIMIT if is_app else 256)):
            keep.add(p)
    for p in list(keep):
        while "/" in p:
            p = p.rsplit("/", 1)[0]
            keep.add(p)
    b.manifest["entries"] = [e for e in b.manifest["entries"] if e["path"] in keep]
    b.members = b.members[:2] + [m for m in b.members[2:] if m[0].name in keep]
    b.resign(key)
    tar = b.tar_bytes()
    write(os.path.join(out, "manifest", "small.json"), b.manifest_bytes)
    write(os.path.join(out, "bundle_tar", "small.tar"), tar)
    z = subprocess.run(["zstd", "-q", "-19", "-c"], input=tar, check=True, stdout=subprocess.PIPE).stdout
    write(os.path.join(out, "bundle", "small.slate"), z)
    return 0


if __name__ == "__main__":
    sys.exit(main())
