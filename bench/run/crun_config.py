#!/usr/bin/env python3
"""Edit the config.json of `crun spec` for bench/run.sh.

    crun_config.py CONFIG ROOTFS CGROUP_PATH [SECCOMP.json] -- ARGS...

Runs ARGS non-interactively in ROOTFS (an overlay the script mounted:
writable, so readonly false), in new pid, net, ipc, uts, mount and cgroup
namespaces (no user namespace: crun runs as root), in the cgroup
CGROUP_PATH with slate's default limits (memory 1G without swap, 1024
pids), and with SECCOMP.json as linux.seccomp when given. The runs are
sequential and crun removes the cgroup when a container ends, so one path
serves them all.
"""
import json
import sys


def main(argv):
    sep = argv.index("--")
    config, rootfs, cgroup = argv[1:4]
    seccomp = argv[4] if sep > 4 else None
    args = argv[sep + 1:]
    with open(config) as f:
        c = json.load(f)
    c["process"]["args"] = args
    c["process"]["terminal"] = False
    c["root"] = {"path": rootfs, "readonly": False}
    linux = c["linux"]
    linux["namespaces"] = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")]
    linux["cgroupsPath"] = cgroup
    limit = 1 << 30
    linux["resources"]["memory"] = {"limit": limit, "swap": limit}
    linux["resources"]["pids"] = {"limit": 1024}
    if seccomp:
        with open(seccomp) as f:
            linux["seccomp"] = json.load(f)
    else:
        linux.pop("seccomp", None)
    json.dump(c, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
