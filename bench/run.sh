#!/bin/bash
# Benchmarks for `slate run` (issue 3, "Benchmarks"), each a single
# hyperfine run with the commands side by side:
#   1. warm start of a trivial command (probe exit 0) on the same rootfs,
#      the store copy of the test bundle: slate run (everything on) vs crun
#      run without and with seccomp (slate's default profile in OCI form, for
#      x86_64 alone and for the three x86 ABIs as Docker lists them) vs
#      bwrap (unshare-all, ro-bind root, tmpfs, slate's cached BPF) vs plain
#      exec, plus the cost of the wrappers crun and bwrap need here;
#   1b. the same for slate and crun, each start 0.2 s after the last (the
#      cgroup v1 attach cost that a tight loop hides);
#   2. cold start: slate run with an empty store (on a tmpfs) vs
#      tar -I zstd -xf of the same bundle into a tmpfs;
#   3. seccomp's cost: probe syscall-loop under slate's default profile vs
#      under an allow-everything profile;
#   4. idmapped store mount vs a shifted copy (cp -a + chown -R).
# Prints medians and ratios, and writes the tables into bench/run/RESULTS.md
# (between its generated-section markers).
#   bench/run.sh [RUNS]     (as root; default 30 runs; BUILD=dir to build elsewhere)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
runs=${1:-30}
build=${BUILD:-build}
helpers=$top/bench/run

if [ "$(id -u)" != 0 ]; then
	echo "bench/run.sh: needs root (namespaces, mounts, cgroups)" >&2
	exit 2
fi
for tool in hyperfine crun bwrap unshare zstd tar python3 cc; do
	command -v "$tool" >/dev/null || { echo "bench/run.sh: needs $tool (make deps)" >&2; exit 2; }
done
make -s BUILD="$build" all probes
case $build in /*) ;; *) build=$top/$build ;; esac
slate=$build/slate

work=$(mktemp -d /tmp/slate-bench-run.XXXXXX)
mounts=() # mounted by this script, unmounted in reverse order

cleanup() {
	local i
	set +e
	if [ -d "$work/crun-state" ]; then
		for id in $(crun --root "$work/crun-state" list -q 2>/dev/null); do
			crun --root "$work/crun-state" delete -f "$id" >/dev/null 2>&1
		done
	fi
	for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
		umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}"
	done
	# Whatever is still mounted below $work (nothing, unless a run was cut short).
	findmnt -rn -o TARGET | grep -F "$work/" | sort -r | while read -r m; do umount -l "$m"; done
	for d in /sys/fs/cgroup/*/slate-bench-crun /sys/fs/cgroup/slate-bench-crun; do
		[ -d "$d" ] && rmdir "$d" 2>/dev/null
	done
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount_tmpfs() { # DIR SIZE
	mkdir -p "$1"
	mount -t tmpfs -o "size=$2,mode=0755" slate-bench "$1"
	mounts+=("$1")
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# ---- setup: the test bundle, in the store once ----------------------------
export SOURCE_DATE_EPOCH=1700000000
echo "== setup (work dir $work, load average $(loadavg))"
loadavg >"$work/load-start"
install -m 0600 tests/fixtures/test.key "$work/test.key"
install -m 0644 tests/fixtures/test.key.pub "$work/test.key.pub"
cp -a images/php-8.2 "$work/image"
install -D -m 0755 "$build/tests/probe" "$work/image/rootfs/usr/local/bin/probe"
"$build/slate-bundle" build examples/craft-site --image "$work/image" --key "$work/test.key" \
	-o "$work/site.slate" --repin >"$work/site.id" 2>"$work/build.err" ||
	{ cat "$work/build.err" >&2; exit 1; }
id=$(cat "$work/site.id")
bundle=$work/site.slate
run="$slate --root $work/root run --key $work/test.key.pub"
$run "$bundle" -- /usr/local/bin/probe exit 0
rootfs=$work/root/store/$id/root
bpfs=("$work"/root/cache/*.bpf)
[ ${#bpfs[@]} = 1 ] || { echo "bench/run.sh: expected one cached filter, found ${#bpfs[@]}" >&2; exit 1; }
# The cache file holds a header and its key ahead of the program
# (docs/SECCOMP.md): bwrap wants the program alone.
bpf=$work/filter.bpf
python3 - "${bpfs[0]}" "$bpf" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
keylen = struct.unpack_from("<Q", data, 16)[0]
start = (24 + keylen + 7) // 8 * 8
open(sys.argv[2], "wb").write(data[start:])
PY
probe=/usr/local/bin/probe

# crun: an overlay of the store copy with upper/work on a tmpfs, and configs
# from `crun spec`: without seccomp, with slate's default profile (x86_64
# rules; rules on the three x86 ABIs), and one that checks the filter.
mount_tmpfs "$work/crun-upper" 256m
mkdir -p "$work/crun-upper/upper" "$work/crun-upper/work" "$work/crun/rootfs" "$work/crun-state"
mount -t overlay slate-bench -o "lowerdir=$rootfs,upperdir=$work/crun-upper/upper,workdir=$work/crun-upper/work" \
	"$work/crun/rootfs"
mounts+=("$work/crun/rootfs")
(cd "$work/crun" && crun spec)
python3 "$helpers/oci_seccomp.py" runtime/seccomp-default.json >"$work/oci-seccomp.json"
python3 "$helpers/oci_seccomp.py" --all-arches runtime/seccomp-default.json >"$work/oci-seccomp-3.json"
python3 "$helpers/crun_config.py" "$work/crun/config.json" "$work/crun/rootfs" /slate-bench-crun \
	-- "$probe" exit 0 >"$work/crun/plain.json"
python3 "$helpers/crun_config.py" "$work/crun/config.json" "$work/crun/rootfs" /slate-bench-crun \
	"$work/oci-seccomp.json" -- "$probe" exit 0 >"$work/crun/seccomp.json"
python3 "$helpers/crun_config.py" "$work/crun/config.json" "$work/crun/rootfs" /slate-bench-crun \
	"$work/oci-seccomp-3.json" -- "$probe" exit 0 >"$work/crun/seccomp-3.json"
python3 "$helpers/crun_config.py" "$work/crun/config.json" "$work/crun/rootfs" /slate-bench-crun \
	"$work/oci-seccomp.json" -- "$probe" status >"$work/crun/status.json"
# crun 1.8 refuses this machine's hybrid cgroups: hide the v2 hierarchy in a
# private mount namespace. $$ is that shell's pid: a unique container id.
hide_unified=true
if mountpoint -q /sys/fs/cgroup/unified; then
	hide_unified="mount -t tmpfs none /sys/fs/cgroup/unified"
fi
crun_cmd() { # CONFIG
	echo "unshare -m --propagation private sh -c '$hide_unified && exec crun --root $work/crun-state run -b $work/crun -f $1 b\$\$'"
}
# The converted profile must behave as slate's: compare the probe's view.
eval "$(crun_cmd "$work/crun/status.json")" | grep -x 'Seccomp 2' >/dev/null ||
	{ echo "bench/run.sh: crun did not start with a filter" >&2; exit 1; }
# bwrap reads the filter from an fd: a shell opens it.
bwrap_cmd="sh -c 'exec bwrap --unshare-all --die-with-parent --ro-bind $rootfs / --tmpfs /tmp --proc /proc --dev /dev --seccomp 9 $probe exit 0 9<$bpf'"

# ---- 1. warm start ----------------------------------------------------------
echo
echo "== 1. warm start of \`probe exit 0\` (rootfs: the store copy)"
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/1-warm.json" \
	-n "slate run" "$run $bundle -- $probe exit 0" \
	-n "crun run, no seccomp" "$(crun_cmd "$work/crun/plain.json")" \
	-n "crun run, seccomp" "$(crun_cmd "$work/crun/seccomp.json")" \
	-n "crun run, seccomp, 3 ABIs" "$(crun_cmd "$work/crun/seccomp-3.json")" \
	-n "crun's wrapper alone" "unshare -m --propagation private sh -c '$hide_unified && exec true'" \
	-n "bwrap" "$bwrap_cmd" \
	-n "bwrap's wrapper alone" "sh -c 'exec true 9<$bpf'" \
	-n "plain exec" "$rootfs$probe exit 0"

# The same spaced out: writing a pid to a v1 cgroup.procs takes the
# cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period
# (several ms at HZ=250) unless another writer just took it, as happens in
# a tight loop of starts.
echo
echo "== 1b. warm start, each run 0.2 s after the previous one"
hyperfine -N --warmup 1 --runs "$runs" --prepare "sleep 0.2" --export-json "$work/1b-spaced.json" \
	-n "slate run" "$run $bundle -- $probe exit 0" \
	-n "crun run, no seccomp" "$(crun_cmd "$work/crun/plain.json")" \
	-n "crun run, seccomp" "$(crun_cmd "$work/crun/seccomp.json")"

# ---- 2. cold start ----------------------------------------------------------
echo
echo "== 2. cold start: verify + unpack into an empty store (tmpfs) vs tar -I zstd -xf into tmpfs"
mount_tmpfs "$work/cold" 2g
cold_run="$slate --root $work/cold/root run --key $work/test.key.pub"
$cold_run "$bundle" -- "$probe" exit 0 # the seccomp cache; the store is emptied before each run
hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/2-cold.json" \
	--prepare "rm -rf $work/cold/root/store" \
	--prepare "sh -c 'rm -rf $work/cold/tar && mkdir $work/cold/tar'" \
	--prepare "true" \
	-n "slate run, empty store" "$cold_run $bundle -- $probe exit 0" \
	-n "tar -I zstd -xf" "tar -I zstd -xf $bundle -C $work/cold/tar" \
	-n "slate run, bundle in store" "$cold_run $bundle -- $probe exit 0"

# ---- 3. seccomp's cost --------------------------------------------------------
loops=2000000
echo
echo "== 3. seccomp: probe syscall-loop $loops, default profile vs allow-all profile"
cat >"$work/allow-all.json" <<'EOF'
{
  "slate_seccomp": 1,
  "comment": "bench/run.sh: a filter that allows everything, as the baseline for the default profile's cost",
  "default": { "action": "allow" },
  "architectures": { "x86_64": "rules", "x32": "rules", "x86": "rules" },
  "rules": []
}
EOF
hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/3-seccomp.json" \
	-n "slate run, default profile" "$run $bundle -- $probe syscall-loop $loops" \
	-n "slate run, allow-all profile" "$run --seccomp-profile $work/allow-all.json $bundle -- $probe syscall-loop $loops" \
	-n "plain exec, no filter" "$rootfs$probe syscall-loop $loops"

# ---- 4. idmapped mount vs shifted copy --------------------------------------
echo
echo "== 4. ownership: idmapped mount of the store copy vs a shifted copy on a tmpfs"
mount_tmpfs "$work/shift" 2g
cp -a "$rootfs" "$work/shift/inplace"
base=1879048192 # runtime/userns.h SLATE_UID_BASE; every store entry is owned by 0:0
hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/4-shift.json" \
	--prepare "rm -rf $work/shift/copy" --prepare "rm -rf $work/shift/copy" --prepare "true" \
	-n "cp -a + chown -hR (shifted copy)" "sh -c 'cp -a $rootfs $work/shift/copy && chown -hR $base:$base $work/shift/copy'" \
	-n "cp -a" "cp -a $rootfs $work/shift/copy" \
	-n "chown -hR (shift in place)" "chown -hR $base:$base $work/shift/inplace"
cc -O2 -Wall -Wextra -o "$work/idmap" "$helpers/idmap.c"
mkdir "$work/idmap-target"
"$work/idmap" "$rootfs" "$work/idmap-target" 1000 >"$work/4-idmap.txt"
sed 's/^/    /' "$work/4-idmap.txt"

# ---- summary -------------------------------------------------------------------
loadavg >"$work/load-end"
{
	echo "kernel $(uname -r)"
	echo "cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
	echo "slate $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- runtime lib include 2>/dev/null || echo ' (with uncommitted changes)')"
	echo "crun $(crun --version | head -1 | cut -d' ' -f3), $(bwrap --version), $(hyperfine --version), zstd $(zstd -V | grep -o 'v[0-9.]*')"
	echo "bundle $(($(stat -c %s "$bundle") / 1048576)) MiB, unpacked $(du -sm "$rootfs" | cut -f1) MiB, $(find "$rootfs" | wc -l) entries"
	echo "runs $runs"
	echo "loops $loops"
} >"$work/meta.txt"
python3 "$helpers/summary.py" "$work" "$helpers/RESULTS.md"
