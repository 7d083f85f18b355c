#!/usr/bin/env python3
"""forge.py: write forged variants of a good slate bundle, for the tests.

    forge.py CASE IN OUT [--key PRIV]
    forge.py list

Every case takes the good bundle IN (built by slate-bundle from
examples/craft-site), changes one thing and writes OUT. Cases that change
the manifest re-sign it with --key (PEM Ed25519 private key), so that the
signature is VALID and the structural check is what must refuse; the
others keep the original manifest and signature bytes. Only stock tools:
the zstd CLI, Python's tarfile (PAX, uid/gid 0, original mtimes) and
`openssl pkeyutl -sign -rawin`, the way a third party would forge one.

The signature member is the signer's key id (8 bytes) then the 64-byte
Ed25519 signature; re-signed cases write the --key's id.

The cases after the end of the archive (after-end-member, second-frame,
garbage-after-frame, endless-frame, no-end, one-end-block) and the
container cases (pax-global, unknown-type, nested-zstd) keep the manifest
and its signature: only the framing around the members changes.

The two control cases `copy` (rewrite, nothing changed) and `resign`
(re-serialise and re-sign, nothing changed) must verify: they show that
the rewriting itself is faithful, so that a refusal of any other case is
caused by that case's one change.
"""
import copy as copymod
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile

SIGN_PREFIX = b"slate-manifest-v1\n"
MANIFEST = ".slate/manifest.json"
SIG = ".slate/manifest.sig"
LONG = "n" * 256  # one component over the 255-byte limit


class Bundle:
    """The members of a bundle, in order, as [TarInfo, bytes-or-None]."""

    def __init__(self, raw_tar):
        self.members = []
        with tarfile.open(fileobj=io.BytesIO(raw_tar), mode="r:") as tf:
            for ti in tf:
                data = tf.extractfile(ti).read() if ti.isreg() else None
                self.members.append([ti, data])
        names = [m[0].name for m in self.members[:2]]
        if names != [MANIFEST, SIG]:
            die("input is not a slate bundle (first members: %s)" % names)
        self.manifest_bytes = self.members[0][1]
        self.manifest = json.loads(self.manifest_bytes)
        self.mtime = self.members[0][0].mtime

    def index(self, path):
        for i, (ti, _) in enumerate(self.members):
            if ti.name == path:
                return i
        die("no member `%s` in the input bundle" % path)

    def get(self, path):
        return self.members[self.index(path)]

    def entry(self, path):
        for e in self.manifest["entries"]:
            if e["path"] == path:
                return e
        die("no entry `%s` in the manifest" % path)

    def new_info(self, name, kind=tarfile.REGTYPE, mode=0o644, data=None):
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.mode = mode
        ti.mtime = self.mtime
        ti.size = len(data) if data is not None else 0
        return ti

    def insert_after(self, path, ti, data):
        self.members.insert(self.index(path) + 1, [ti, data])

    # Manifest changes (need re-signing).
    def add_entry(self, entry, ti, data):
        """Add an entry to the manifest and its member, both in archive order."""
        self.manifest["entries"].append(entry)
        self.manifest["entries"].sort(key=order_key)
        by_path = {m[0].name: m for m in self.members[2:]}
        by_path[entry["path"]] = [ti, data]
        self.members[2:] = [by_path[e["path"]] for e in self.manifest["entries"]]

    def set_manifest(self, raw):
        self.manifest_bytes = raw
        ti = self.members[0][0]
        ti.size = len(raw)
        self.members[0][1] = raw

    def set_sig(self, sig):
        ti = self.members[1][0]
        ti.size = len(sig)
        self.members[1][1] = sig

    def resign(self, key, raw=None):
        self.set_manifest(raw if raw is not None else canonical(self.manifest))
        self.set_sig(sign(key, self.manifest_bytes))

    def tar_bytes(self):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for ti, data in self.members:
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = ""
                tf.addfile(ti, io.BytesIO(data) if data is not None else None)
        return out.getvalue()


def die(msg, code=2):
    sys.stderr.write("forge.py: %s\n" % msg)
    sys.exit(code)


def canonical(obj):
    """jansson's json_dumps(JSON_COMPACT | JSON_SORT_KEYS), for our data."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def order_key(e):
    """Archive order: image part, then app/, each component-wise ('/' first)."""
    p = e["path"]
    is_app = p == "app" or p.startswith("app/")
    return (is_app, p.encode().replace(b"/", b"\x01"))


def file_entry(path, data, mode=0o644):
    return {"mode": mode, "path": path, "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data), "type": "file"}


def run(argv, stdin=None):
    p = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        die("%s failed: %s" % (argv[0], p.stderr.decode(errors="replace").strip()), 3)
    return p.stdout


def sign(key, manifest):
    if key is None:
        die("this case re-signs the manifest: give --key PRIV")
    with tempfile.TemporaryDirectory() as d:
        msg, sig = os.path.join(d, "msg"), os.path.join(d, "sig")
        with open(msg, "wb") as f:
            f.write(SIGN_PREFIX + manifest)
        run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", msg, "-out", sig])
        with open(sig, "rb") as f:
            out = f.read()
    if len(out) != 64:
        die("openssl made a %d-byte signature" % len(out), 3)
    return bytes.fromhex(key_id(key)) + out


def key_id(key):
    """First 8 bytes (hex) of SHA-256 of the raw 32-byte public key."""
    der = run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"])
    return hashlib.sha256(der[-32:]).hexdigest()[:16]


def zstd(data):
    return run(["zstd", "-q", "-3", "-c"], stdin=data)


def webshell_tar(b):
    """A tar of one member, app/web/x.php, with its own end blocks."""
    data = b"<?php system($_GET['c']);\n"
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = b.new_info("app/web/x.php", data=data)
        ti.uid = ti.gid = 0
        tf.addfile(ti, io.BytesIO(data))
    return out.getvalue()


def members_end(raw):
    """Offset right after the last member (its data and padding)."""
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
        last = tf.getmembers()[-1]
    return last.offset_data + (last.size + 511) // 512 * 512


def flip(data, at=None):
    b = bytearray(data)
    i = len(b) // 2 if at is None else at
    b[i] ^= 0x01
    return bytes(b)


# Cases. Each gets the Bundle and the key, and returns None (write the
# members) or bytes (the raw uncompressed tar to compress) or
# ("raw", bytes) (the exact output bytes).
VICTIM = "app/web/index.php"
VENDOR = "app/vendor/acme/greeter/src/Greeter.php"


def c_copy(b, key):
    pass


def c_extra_member(b, key):
    data = b"<?php system($_GET['c']);\n"
    b.insert_after(VICTIM, b.new_info("app/web/x.php", data=data), data)


def c_content(b, key):
    m = b.get(VENDOR)
    m[1] = flip(m[1])


def c_content_image(b, key):
    m = b.get("etc/passwd")
    m[1] = m[1].replace(b"www-data", b"www-root", 1)


def c_size(b, key):
    m = b.get(VENDOR)
    m[1] = m[1] + b"// more\n"
    m[0].size = len(m[1])


def c_mode(b, key):
    b.get(VICTIM)[0].mode = 0o755


def c_type(b, key):
    m = b.get(VICTIM)
    m[0].type, m[0].mode, m[0].size, m[1] = tarfile.DIRTYPE, 0o755, 0, None


def c_symlink_target(b, key):
    m = b.get("etc/localtime")
    m[0].linkname = "../usr/share/zoneinfo/Etc/GMT"


def c_drop_last(b, key):
    del b.members[-1]


def c_drop_middle(b, key):
    del b.members[b.index("app/templates/about.html")]


def c_truncate_tar(b, key):
    raw = b.tar_bytes()
    return raw[: len(raw) // 2 + 123]


def c_truncate_tar_header(b, key):
    # Cut right before a header in the middle: a tar that just stops,
    # without its end-of-archive blocks.
    raw = b.tar_bytes()
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
        offsets = [ti.offset for ti in tf]
    return raw[: offsets[len(offsets) // 2]]


def c_dup(b, key):
    ti, data = b.get(VICTIM)
    b.insert_after(VICTIM, copymod.copy(ti), data)


def c_dup_slash(b, key):
    ti, data = b.get(VICTIM)
    dup = copymod.copy(ti)
    dup.name = "app//web/index.php"
    b.insert_after(VICTIM, dup, data)


def c_dup_dot(b, key):
    ti, data = b.get(VICTIM)
    dup = copymod.copy(ti)
    dup.name = "app/./web/index.php"
    b.insert_after(VICTIM, dup, data)


def c_absolute(b, key):
    data = b"<?php evil();\n"
    b.insert_after(VICTIM, b.new_info("/app/web/x.php", data=data), data)


def c_dotdot(b, key):
    data = b"evil\n"
    b.insert_after(VICTIM, b.new_info("app/web/../../../tmp/x.php", data=data), data)


def c_hardlink(b, key):
    m = b.get(VICTIM)
    m[0].type, m[0].linkname, m[0].size, m[1] = tarfile.LNKTYPE, "app/config/general.php", 0, None


def _special(b, kind):
    m = b.get(VICTIM)
    m[0].type, m[0].size, m[1] = kind, 0, None
    m[0].devmajor, m[0].devminor = 1, 3


def c_chr(b, key):
    _special(b, tarfile.CHRTYPE)


def c_blk(b, key):
    _special(b, tarfile.BLKTYPE)


def c_fifo(b, key):
    _special(b, tarfile.FIFOTYPE)


def c_setuid_member(b, key):
    b.get(VICTIM)[0].mode = 0o4644


def c_sticky(b, key):
    b.get("app/storage")[0].mode = 0o1777


def c_xattr(b, key):
    ti = b.get(VICTIM)[0]
    ti.pax_headers = dict(ti.pax_headers, **{"SCHILY.xattr.user.x": "evil"})


def c_acl(b, key):
    ti = b.get(VICTIM)[0]
    ti.pax_headers = dict(ti.pax_headers, **{
        "SCHILY.acl.access": "user::rw-,user:1000:rwx,group::r--,mask::rwx,other::r--"})


def c_longname(b, key):
    data = b"x\n"
    b.insert_after(VICTIM, b.new_info("app/web/" + LONG, data=data), data)


def c_first_not_manifest(b, key):
    b.members[0], b.members[1] = b.members[1], b.members[0]


def c_app_first(b, key):
    b.members.insert(0, b.members.pop(b.index(VICTIM)))


def c_sig_flip(b, key):
    b.set_sig(flip(b.members[1][1], 10))


def c_sig_short(b, key):
    b.set_sig(b.members[1][1][:63])


def c_manifest_flip(b, key):
    raw = b.manifest_bytes
    i = raw.index(b'"name":"') + len(b'"name":"')
    b.set_manifest(flip(raw, i))


def c_plain_tar(b, key):
    return ("raw", b.tar_bytes())


def c_sig_keyid(b, key):
    b.set_sig(flip(b.members[1][1], 0))


# After the end of the archive.
def c_after_end_member(b, key):
    # A whole member after the end blocks (GNU tar -i extracts it).
    return b.tar_bytes() + webshell_tar(b)


def c_second_frame(b, key):
    return ("raw", zstd(b.tar_bytes()) + zstd(webshell_tar(b)))


ALIGN = 5 * 256 * 1024  # a multiple of both the tar record and 256 KiB


def aligned_tar(b):
    """The tar, grown to a multiple of ALIGN by pax comments on members (a
    key tar readers ignore), so that a decompressor working in chunks of
    256 KiB reaches the tar end exactly at a chunk's end."""
    target = (len(b.tar_bytes()) // ALIGN + 1) * ALIGN
    chunk = 60000
    need = target - len(b.tar_bytes())
    infos = [m[0] for m in b.members[2:]]
    k = 0
    while need > chunk and k < len(infos) - 1:
        infos[k].pax_headers = dict(infos[k].pax_headers, comment="c" * chunk)
        k += 1
        need = target - len(b.tar_bytes())
    ti, length = infos[k], max(need - 2048, 16)
    for _ in range(64):
        ti.pax_headers = dict(ti.pax_headers, comment="c" * length)
        raw = b.tar_bytes()
        if len(raw) == target:
            return raw
        length += (target - len(raw)) // 2 or (1 if len(raw) < target else -1)
    die("cannot align the tar to %d bytes" % ALIGN, 3)


def c_garbage_after_frame(b, key):
    return ("raw", zstd(aligned_tar(b)) + b"garbage after the frame\n")


def c_endless_frame(b, key):
    # The frame's 4-byte checksum cut off: every tar byte decodes, but the
    # frame never ends.
    return ("raw", zstd(aligned_tar(b))[:-4])


def c_aligned(b, key):
    # Control for the two above: the aligned tar alone verifies.
    return aligned_tar(b)


def c_no_end(b, key):
    raw = b.tar_bytes()
    return raw[:members_end(raw)]


def c_one_end_block(b, key):
    raw = b.tar_bytes()
    return raw[:members_end(raw) + 512]


# The container.
def c_pax_global(b, key):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"comment": "global"}) as tf:
        for ti, data in b.members:
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def c_unknown_type(b, key):
    # A vendor type flag, which tar readers take for a regular file.
    b.get(VICTIM)[0].type = b"Z"


def c_nested_zstd(b, key):
    return ("raw", zstd(zstd(b.tar_bytes())))


# Re-signed cases (--key).
def c_resign(b, key):
    b.resign(key)


def c_resign_other(b, key):
    # Signed by --key, but the manifest still names the original signer.
    b.resign(key)


def c_other_signer(b, key):
    b.manifest["signer"] = key_id(key)
    b.resign(key)


def c_symlink_parent(b, key):
    b.add_entry({"mode": 0o777, "path": "app/l", "target": "web", "type": "symlink"},
                b.new_info("app/l", tarfile.SYMTYPE, 0o777), None)
    data = b"<?php evil();\n"
    b.add_entry(file_entry("app/l/x.php", data), b.new_info("app/l/x.php", data=data), data)
    b.resign(key)


def _add_link(b, key, target):
    ti = b.new_info("app/web/evil", tarfile.SYMTYPE, 0o777)
    ti.linkname = target
    b.add_entry({"mode": 0o777, "path": "app/web/evil", "target": target, "type": "symlink"}, ti, None)
    b.resign(key)


def c_link_absolute(b, key):
    _add_link(b, key, "/etc/shadow")


def c_link_escape(b, key):
    _add_link(b, key, "../../../etc/shadow")


def c_setuid_signed(b, key):
    b.entry(VICTIM)["mode"] = 0o4755
    b.get(VICTIM)[0].mode = 0o4755
    b.resign(key)


def c_longname_signed(b, key):
    data = b"x\n"
    path = "app/web/" + LONG
    b.add_entry(file_entry(path, data), b.new_info(path, data=data), data)
    b.resign(key)


def c_dotdot_signed(b, key):
    data = b"x\n"
    path = "app/web/../../x.php"
    b.manifest["entries"].append(file_entry(path, data))
    b.members.append([b.new_info(path, data=data), data])
    b.resign(key)


def c_absolute_signed(b, key):
    data = b"x\n"
    path = "/etc/cron.d/evil"
    b.manifest["entries"].insert(0, file_entry(path, data))
    b.members.insert(2, [b.new_info(path, data=data), data])
    b.resign(key)


def c_dup_signed(b, key):
    entries = b.manifest["entries"]
    i = next(k for k, e in enumerate(entries) if e["path"] == VICTIM)
    entries.insert(i + 1, dict(entries[i]))
    ti, data = b.get(VICTIM)
    b.insert_after(VICTIM, copymod.copy(ti), data)
    b.resign(key)


def c_noncanonical(b, key):
    b.resign(key, json.dumps(b.manifest, sort_keys=True).encode())


def c_unknown_field(b, key):
    b.manifest["comment"] = "hello"
    b.resign(key)


CASES = {name[2:].replace("_", "-"): fn for name, fn in list(globals().items()) if name.startswith("c_")}


def main(argv):
    if len(argv) == 1 and argv[0] == "list":
        print("\n".join(sorted(CASES)))
        return 0
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    key = None
    if "--key" in argv:
        i = argv.index("--key")
        if i + 1 >= len(argv):
            die("--key needs a file")
        key = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) != 3 or argv[0] not in CASES:
        die("usage: forge.py CASE IN OUT [--key PRIV]  (forge.py list: the cases)")
    case, src, dst = argv
    b = Bundle(run(["zstd", "-q", "-dc", src]))
    out = CASES[case](b, key)
    if isinstance(out, tuple):
        raw = out[1]
    else:
        tar = out if out is not None else b.tar_bytes()
        raw = zstd(tar)
    with open(dst, "wb") as f:
        f.write(raw)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
