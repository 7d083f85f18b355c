#!/usr/bin/env python3
"""Convert a slate seccomp profile (runtime/seccomp.h, docs/SECCOMP.md) to
the OCI runtime spec's `linux.seccomp` object, for crun in bench/run.sh.

    oci_seccomp.py [--all-arches] PROFILE.json > seccomp.json

The same rules, in the form OCI runtimes understand:
- default: SCMP_ACT_ERRNO with defaultErrnoRet (EPERM = 1), as in slate;
- one syscalls entry per allow/errno rule; OCI ANDs the comparisons of an
  entry and allows one comparison per argument, so a "value" list (OR)
  becomes one entry per value;
- "unless" (allow when arg & mask is none of the values) becomes the same
  union of masked equalities slate compiles it to: walking the mask's bits
  from the top, wherever the excluded values split, the side holding none
  of them is one entry (34 entries for ioctl minus TIOCSTI and TIOCLINUX);
- architectures: x86_64 only. slate puts x32 and i386 in the filter and
  refuses every syscall through them; OCI cannot refuse an ABI as a whole,
  and libseccomp's bad-architecture action (kill) refuses them too.
  With --all-arches: x86_64, x86 and x32 with the rules applied to each, as
  Docker's default profile lists them (a filter three times the size, and
  what OCI runtimes usually compile).
  "refuse" needs nothing: those syscalls get the default action.
"""
import errno
import json
import sys


def number(v):
    if isinstance(v, int):
        return v
    s = v.strip().lower()
    if s.startswith("0x"):
        return int(s, 16)
    if len(s) > 1 and s.startswith("0"):
        return int(s, 8)
    return int(s, 10)


def errno_of(spec):
    e = spec.get("errno", "EPERM")
    return e if isinstance(e, int) else getattr(errno, e)


def action(spec):
    a = spec["action"]
    if a == "allow":
        return {"action": "SCMP_ACT_ALLOW"}
    if a == "errno":
        return {"action": "SCMP_ACT_ERRNO", "errnoRet": errno_of(spec)}
    return {"action": {"kill": "SCMP_ACT_KILL_PROCESS", "trap": "SCMP_ACT_TRAP",
                       "log": "SCMP_ACT_LOG"}[a]}


def cmp(c, value):
    """One OCI comparison; for masked_eq OCI takes the mask in `value` and
    the compared value in `valueTwo` (runc and crun pass them to libseccomp
    as datum_a and datum_b)."""
    if c["op"] == "masked_eq":
        return {"index": c["arg"], "value": number(c["mask"]), "valueTwo": value,
                "op": "SCMP_CMP_MASKED_EQ"}
    return {"index": c["arg"], "value": value, "op": "SCMP_CMP_" + c["op"].upper()}


def unless_cubes(mask, values):
    """(mask, value) pairs whose union is every x with x & mask not in values."""
    bits = [1 << b for b in range(63, -1, -1) if mask & (1 << b)]
    out = []

    def walk(i, pm, pv, vals):
        if i == len(bits):
            return
        b = bits[i]
        for side in (0, b):
            vs = [v for v in vals if v & b == side]
            if not vs:
                out.append((pm | b, pv | side))
            else:
                walk(i + 1, pm | b, pv | side, vs)

    walk(0, 0, 0, [number(v) & mask for v in values])
    return out


def arg_sets(rule):
    """Each element: the comparisons of one OCI entry (ANDed)."""
    fixed, alts = [], [[]]
    for c in rule.get("args", []):
        vals = c["value"] if isinstance(c["value"], list) else [c["value"]]
        if len(vals) == 1:
            fixed.append(cmp(c, number(vals[0])))
        else:
            alts = [[cmp(c, number(v))] for v in vals]
    if "unless" in rule:
        u = rule["unless"]
        alts = [[{"index": u["arg"], "value": m, "valueTwo": v, "op": "SCMP_CMP_MASKED_EQ"}]
                for m, v in unless_cubes(number(u["mask"]), u["values"])]
    return [fixed + a for a in alts]


def convert(profile, all_arches):
    d = profile["default"]
    arches = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"] if all_arches else ["SCMP_ARCH_X86_64"]
    out = {"defaultAction": "SCMP_ACT_ERRNO" if d["action"] == "errno" else action(d)["action"],
           "architectures": arches, "syscalls": []}
    if d["action"] == "errno":
        out["defaultErrnoRet"] = errno_of(d)
    for rule in profile["rules"]:
        for args in arg_sets(rule):
            entry = {"names": rule["syscalls"], **action(rule)}
            if args:
                entry["args"] = args
            out["syscalls"].append(entry)
    return out


if __name__ == "__main__":
    all_arches = sys.argv[1:2] == ["--all-arches"]
    with open(sys.argv[-1]) as f:
        json.dump(convert(json.load(f), all_arches), sys.stdout, indent=1)
    sys.stdout.write("\n")
