#!/bin/bash
# Benchmarks for slate's apps (issue 4, "Benchmarks"), on loopback ports 19000+:
#   1. redeploy: time from `slate redeploy` to the new instance serving on the
#      published port and to the command's return (median of RUNS), and
#      requests lost by wrk while a redeploy happens under load;
#   2. the published port (monitor relay, splice, PROXY line) against a direct
#      connection to the same nginx+php-fpm inside the instance's network
#      namespace: wrk requests/s and p99, and a 100 MiB static download;
#   3. monitor memory with 20 apps of one bundle, and how the store shares
#      one copy of that bundle between them.
# Prints a markdown report on stdout, progress on stderr.
#   sudo bench/apps.sh [RUNS]     (root; wrk, curl, jq, python3, nsenter,
#                                 perf optional; run `make` first)
# Environment: DUR (wrk seconds, default 10), ROUNDS (wrk rounds per side,
# default 5), DOWNLOADS (runs per side, default 11), APPS (default 20),
# LONG=0 to skip a slow download across a redeploy (past the drain timeout, about 35 s).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
dur=${DUR:-10}
rounds=${ROUNDS:-5}
downloads=${DOWNLOADS:-11}
napps=${APPS:-20}
long=${LONG:-1}
drain=$(sed -n 's/^#define MONITOR_DRAIN_SECONDS \([0-9]*\).*/\1/p' runtime/monitor.h)

if [ "$(id -u)" != 0 ]; then
	echo "bench/apps.sh: slate deploys instances in namespaces and cgroups: run it as root" >&2
	exit 2
fi
for t in wrk curl jq python3 nsenter; do
	command -v "$t" >/dev/null || {
		echo "bench/apps.sh: needs $t" >&2
		exit 2
	}
done
if [ ! -x build/slate ] || [ ! -x build/slate-bundle ]; then
	echo "bench/apps.sh: run make first" >&2
	exit 2
fi

WORK=$(mktemp -d /tmp/slate-bench-apps.XXXXXX)
# A private copy of the binaries: slate runs the slate-monitor beside it, and
# a rebuild of build/ during the run must not change what is measured.
cp build/slate build/slate-monitor build/slate-bundle "$WORK/"
SLATE=("$WORK/slate" --root "$WORK/root" --run-dir "$WORK/run")
SB=$WORK/slate-bundle
apps=()
bg=()

cleanup() {
	set +e
	for p in "${bg[@]}"; do
		kill "$p" 2>/dev/null
	done
	for a in "${apps[@]}"; do
		"${SLATE[@]}" rm "$a" >/dev/null 2>&1
	done
	# Leftovers: processes running our private copies (monitors, instance
	# inits; an init's death ends its pid namespace), by pid.
	local left=() exe
	for d in /proc/[0-9]*; do
		exe=$(readlink "$d/exe" 2>/dev/null)
		case $exe in "$WORK/slate" | "$WORK/slate-monitor") left+=("${d#/proc/}") ;; esac
	done
	if [ ${#left[@]} -gt 0 ]; then
		echo "cleanup: killing leftover slate processes ${left[*]}" >&2
		kill -9 "${left[@]}" 2>/dev/null
		sleep 0.5
		for p in "${left[@]}"; do # their now empty cgroups
			rmdir /sys/fs/cgroup/slate/*."$p" /sys/fs/cgroup/*/slate/*."$p" 2>/dev/null
		done
	fi
	rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

quiet() { "$@" >"$WORK/quiet.out" 2>&1 || { # its output only when it fails
	cat "$WORK/quiet.out" >&2
	return 1
}; }
log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
running() { jq -r ".$2" "$WORK/run/$1/running.json"; } # app field
cpu_ns() { cut -d' ' -f1 "/proc/$1/schedstat"; }       # time on CPU
kb() { awk -v k="$2:" '$1 == k { print $2 }' "$1"; }    # /proc file, field -> kB
median() { python3 -c 'import statistics, sys; v = [float(x) for x in sys.argv[1:]]; print(statistics.median(v) if v else "nan")' "$@"; }
deploy_failures=()
deploy() { # app bundle port [options]; a failure is reported, and tried once more
	local app=$1 b=$2 port=$3
	shift 3
	apps+=("$app")
	if ! "${SLATE[@]}" deploy --key "$WORK/key.pub" "$app" "$b" -p "127.0.0.1:$port:80" "$@" >/dev/null 2>"$WORK/deploy.err"; then
		deploy_failures+=("$app: $(tr '\n' ' ' <"$WORK/deploy.err")")
		echo "slate deploy $app failed: $(cat "$WORK/deploy.err"); once more" >&2
		"${SLATE[@]}" deploy --key "$WORK/key.pub" "$app" "$b" -p "127.0.0.1:$port:80" "$@" >/dev/null
	fi
}
rm_retries=0
remove() { # app...
	for a in "$@"; do
		# `slate rm` can report "did not stop" when it checks the monitor's
		# lock before the monitor, having replied, has exited: once more.
		if ! "${SLATE[@]}" rm "$a" >/dev/null 2>"$WORK/rm.err"; then
			echo "slate rm $a: $(cat "$WORK/rm.err"); again in 1 s" >&2
			rm_retries=$((rm_retries + 1))
			sleep 1
			"${SLATE[@]}" rm "$a" >/dev/null
		fi
		for i in "${!apps[@]}"; do
			[ "${apps[$i]}" != "$a" ] || unset 'apps[i]'
		done
	done
}

# wrk's summary as "rps p99_ms requests non2xx connect read write timeout".
cat >"$WORK/wrkparse.py" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def unit(v, u):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[u]
rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
p99 = re.search(r"99%\s+([\d.]+)(us|ms|s|m)\b", t)
n = re.search(r"(\d+) requests in", t)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
print(rps.group(1) if rps else "nan", f"{unit(*p99.groups()):.2f}" if p99 else "nan",
      n.group(1) if n else "0", non2xx.group(1) if non2xx else "0",
      " ".join(sock.groups()) if sock else "0 0 0 0")
PY

# Redeploy timing: polls GET / on the published port, one new connection
# per request, until the page's request counter starts again (a fresh
# instance on a fresh filesystem counts from 1: the health check, then us).
cat >"$WORK/poll.py" <<'PY'
import http.client, json, re, subprocess, sys, threading, time
port, cmd = int(sys.argv[1]), sys.argv[2:]
rx = re.compile(rb"#(\d+) at")
def get():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/", headers={"Connection": "close"})
        r = c.getresponse()
        m = rx.search(r.read())
        return r.status, int(m.group(1)) if m else None
    finally:
        c.close()
for _ in range(3):
    st, last = get()
assert st == 200 and last is not None, (st, last)
done = {}
t0 = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
def wait():
    p.wait()
    done["ret"] = time.monotonic() - t0
w = threading.Thread(target=wait)
w.start()
serve, polls, failed = None, 0, 0
while serve is None and time.monotonic() - t0 < 60:
    try:
        st, n = get()
        polls += 1
        if st != 200 or n is None:
            failed += 1
        elif n < last:
            serve = time.monotonic() - t0
        else:
            last = n
    except OSError:
        polls += 1
        failed += 1
w.join()
print(json.dumps({"serve_ms": serve * 1e3 if serve else None, "return_ms": done["ret"] * 1e3,
                  "rc": p.returncode, "polls": polls, "failed": failed}))
PY

echo "# slate apps benchmarks"
echo
echo "Generated by \`bench/apps.sh $runs\` (DUR=$dur ROUNDS=$rounds DOWNLOADS=$downloads APPS=$napps LONG=$long)."
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r);" \
	"$(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), curl $(curl --version | head -1 | cut -d' ' -f2);" \
	"slate $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- runtime lib include 2>/dev/null || echo ' (with uncommitted changes)')."
echo "Load average at the start: $(loadavg) (1, 5, 15 min)."

# ---- bundles ----
log "building the bundles (examples/craft-site; and a copy with web/big.bin, 100 MiB)"
quiet "$SB" keygen -o "$WORK/key"
cp -a images/php-8.2 "$WORK/image"
quiet "$SB" build examples/craft-site --image "$WORK/image" --key "$WORK/key" -o "$WORK/site.slate" --repin
cp -a examples/craft-site "$WORK/big"
head -c $((100 << 20)) /dev/urandom >"$WORK/big/web/big.bin"
quiet "$SB" build "$WORK/big" --image "$WORK/image" --key "$WORK/key" -o "$WORK/big.slate" --repin

# ---- 3. 20 apps of one bundle (first, so that the store holds only it) ----
log "deploying $napps apps of one bundle on ports 19100..$((19100 + napps - 1))"
deploy_ms=()
for i in $(seq 0 $((napps - 1))); do
	a=$(printf 'm%02d' "$i")
	t0=$(date +%s%N)
	deploy "$a" "$WORK/site.slate" $((19100 + i)) --memory 256M --pids 256
	deploy_ms+=($((($(date +%s%N) - t0) / 1000000)))
done
for i in $(seq 0 $((napps - 1))); do
	c=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((19100 + i))/")
	[ "$c" = 200 ] || {
		echo "bench/apps.sh: app m$i answers $c" >&2
		exit 1
	}
done
sleep 2
{
	echo "app monitor_pid rss_kb anon_kb file_kb pss_kb uss_kb init_rss_kb init_pss_kb tmpfs_used_kb cgroup_kb bundle"
	for i in $(seq 0 $((napps - 1))); do
		a=$(printf 'm%02d' "$i")
		m=$(running "$a" monitor_pid)
		p=$(running "$a" instance_pid)
		st=/proc/$m/status
		sr=/proc/$m/smaps_rollup
		uss=$(($(kb "$sr" Private_Clean) + $(kb "$sr" Private_Dirty)))
		read -r blocks free bs < <(stat -f -c '%b %f %S' "/proc/$p/root/tmp")
		cg=$(awk -F: '$2 == "memory" || $2 == "" { print $3; exit }' "/proc/$p/cgroup")
		if [ -r "/sys/fs/cgroup/memory$cg/memory.usage_in_bytes" ]; then
			cgm=$(($(cat "/sys/fs/cgroup/memory$cg/memory.usage_in_bytes") / 1024))
		elif [ -r "/sys/fs/cgroup$cg/memory.current" ]; then
			cgm=$(($(cat "/sys/fs/cgroup$cg/memory.current") / 1024))
		else
			cgm=nan
		fi
		echo "$a $m $(kb "$st" VmRSS) $(kb "$st" RssAnon) $(kb "$st" RssFile) $(kb "$sr" Pss) $uss" \
			"$(kb "/proc/$p/status" VmRSS) $(kb "/proc/$p/smaps_rollup" Pss)" \
			"$(((blocks - free) * bs / 1024)) $cgm $(running "$a" bundle)"
	done
} >"$WORK/mem.txt"
m00=$(running m00 monitor_pid)
# Where one monitor's resident pages are, by mapping.
awk '/^[0-9a-f]+-[0-9a-f]+ / { n = NF >= 6 ? $6 : "[anon]" } /^Rss:/ { r[n] += $2 } /^Anonymous:/ { an[n] += $2 }
	END { for (k in r) if (r[k] > 0) printf "%d %d %s\n", r[k], an[k], k }' "/proc/$m00/smaps" | sort -rn >"$WORK/smaps.txt"
# The store: one copy; every instance maps the same php-fpm8.2 inode.
store_ids=$(find "$WORK/root/store" -mindepth 1 -maxdepth 1 -type d -printf '%f\n')
store_du=$(du -sh "$WORK/root/store" | cut -f1)
store_ino=$(stat -c %i "$WORK/root/store/$(running m00 bundle)/root/usr/sbin/php-fpm8.2")
fpm_inos=$(for i in $(seq 0 $((napps - 1))); do
	p=$(running "$(printf 'm%02d' "$i")" instance_pid)
	f=$(pgrep -P "$p" -x php-fpm8.2 | head -1)
	awk '$6 ~ /\/php-fpm8\.2$/ { print $5; exit }' "/proc/$f/maps"
done | sort | uniq -c)
smaps_lines=$(head -8 "$WORK/smaps.txt")

python3 - "$WORK/mem.txt" "${deploy_ms[*]}" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
head, rows = rows[0], rows[1:]
col = {k: i for i, k in enumerate(head)}
def v(k): return [float(r[col[k]]) for r in rows]
n = len(rows)
print(f"\n## Monitor memory with {n} apps of one bundle\n")
print(f"{n} apps of examples/craft-site (`--memory 256M --pids 256`), ports 19100..{19099 + n}, all answering 200; "
      "measured 2 s after the last deploy. Deploy times: first "
      f"{sys.argv[2].split()[0]} ms (verify and unpack into the store), the others median "
      f"{statistics.median([float(x) for x in sys.argv[2].split()[1:]] or [0]):.0f} ms.\n")
print("| per app | mean | min | max | sum over all |")
print("|:---|---:|---:|---:|---:|")
for k, label in [("rss_kb", "monitor VmRSS"), ("anon_kb", "monitor RssAnon"), ("file_kb", "monitor RssFile (shared libraries, binary)"),
                 ("pss_kb", "monitor Pss (shared pages divided among sharers)"), ("uss_kb", "monitor Private_Clean + Private_Dirty (USS)"),
                 ("init_rss_kb", "instance init VmRSS (a fork of the monitor)"), ("init_pss_kb", "instance init Pss"),
                 ("tmpfs_used_kb", "instance tmpfs used (upper, /tmp, /run)"), ("cgroup_kb", "instance cgroup memory (php-fpm, nginx, page cache)")]:
    x = v(k)
    print(f"| {label} | {statistics.mean(x) / 1024:.2f} MiB | {min(x) / 1024:.2f} MiB | {max(x) / 1024:.2f} MiB | {sum(x) / 1024:.1f} MiB |")
rss = statistics.mean(v("rss_kb")) / 1024
pss = statistics.mean(v("pss_kb")) / 1024
print(f"\nTarget < 2 MiB per monitor: VmRSS {rss:.2f} MiB ({'met' if rss < 2 else 'missed'}); "
      f"Pss {pss:.2f} MiB ({'met' if pss < 2 else 'missed'}).")
print(f"Distinct bundle ids among the apps: {len(set(r[col['bundle']] for r in rows))}.")
PY
echo
echo "Where one monitor's resident memory is (\`/proc/$m00/smaps\`, largest mappings):"
echo
echo "| RSS [KiB] | of it anonymous [KiB] | mapping |"
echo "|---:|---:|:---|"
while read -r r an name; do
	echo "| $r | $an | \`${name/#$WORK/WORK}\` |"
done <<<"$smaps_lines"
echo
echo "The store: \`du -sh ROOT/store\` = $store_du, directories: $(echo "$store_ids" | sed "s/.*/\`&\`/" | paste -sd' ')" \
	"(one bundle). php-fpm8.2 of every instance's master, as mapped (\`/proc/PID/maps\` inode; overlayfs maps the" \
	"lower file itself): $(echo "$fpm_inos" | awk '{printf "%s instances -> inode %s; ", $1, $2}')the store's file is inode" \
	"$store_ino, so the $napps instances share one copy on disk and in the page cache."
log "removing the $napps apps"
mapfile -t many < <(for i in $(seq 0 $((napps - 1))); do printf 'm%02d\n' "$i"; done)
remove "${many[@]}"

# ---- 1. redeploy ----
log "redeploy: $runs timed redeploys of app 'rd' on 127.0.0.1:19000"
deploy rd "$WORK/site.slate" 19000
url=http://127.0.0.1:19000/
: >"$WORK/redeploy.jsonl"
for i in $(seq "$runs"); do
	python3 "$WORK/poll.py" 19000 "${SLATE[@]}" redeploy rd | tee -a "$WORK/redeploy.jsonl" >&2
	sleep 1
done
echo
echo "## Redeploy"
echo
echo "\`slate redeploy rd\` (examples/craft-site), $runs times. \"Serving\": from the command's start to the first"
echo "response from the new instance on the published port (a poller sends GET / on a new connection each time, one"
echo "after another, and sees the page's request counter start again); \"return\": to the command's exit."
echo
python3 - "$WORK/redeploy.jsonl" <<'PY'
import json, statistics, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
print("| run | to serving [ms] | to return [ms] | exit | polls | failed polls |")
print("|---:|---:|---:|---:|---:|---:|")
for i, r in enumerate(rs, 1):
    s = f"{r['serve_ms']:.0f}" if r["serve_ms"] is not None else "never"
    print(f"| {i} | {s} | {r['return_ms']:.0f} | {r['rc']} | {r['polls']} | {r['failed']} |")
sv = [r["serve_ms"] for r in rs if r["serve_ms"] is not None]
print(f"| **median** | **{statistics.median(sv):.0f}** | **{statistics.median(r['return_ms'] for r in rs):.0f}** | | | "
      f"{sum(r['failed'] for r in rs)} |")
PY

# Redeploy under wrk load: keep-alive (wrk's default), a new connection per
# request.
under_load() { # label wrk_seconds [wrk options]
	local label=$1 d=$2
	shift 2
	local old new t0 t1 stop_file=$WORK/stopped.$RANDOM
	old=$(running rd instance_pid)
	wrk -t2 -c16 -d"${d}s" --latency "$@" "$url" >"$WORK/wrk.load" 2>&1 &
	local w=$!
	bg+=("$w")
	(while kill -0 "$old" 2>/dev/null; do sleep 0.05; done; date +%s%N >"$stop_file") &
	bg+=("$!")
	sleep 3
	t0=$(date +%s%N)
	"${SLATE[@]}" redeploy rd >/dev/null
	t1=$(date +%s%N)
	new=$(running rd instance_pid)
	wait "$w"
	sleep 0.5
	local served stopped
	served=$(curl -s "$url" | sed -n 's/.*#\([0-9]*\) at.*/\1/p')
	stopped=$([ -s "$stop_file" ] && echo "$((($(cat "$stop_file") - t0) / 1000000)) ms" || echo "still running")
	read -r rps p99 n non2xx sc sr sw st < <(python3 "$WORK/wrkparse.py" "$WORK/wrk.load")
	echo "| $label | $n | $rps | $p99 | $non2xx | $sc / $sr / $sw / $st | $(((t1 - t0) / 1000000)) | $stopped | $((served - 2)) |"
	[ "$old" != "$new" ] || echo "bench/apps.sh: $label: the instance did not change" >&2
	sleep 2
}
log "redeploy under wrk load (redeploy at 3 s)"
echo
echo "Under load: \`wrk -t2 -c16 -dNs --latency $url\`, \`slate redeploy rd\` 3 s after wrk starts."
echo "\"Old instance stopped\": from the redeploy's start until the old instance's init is gone; \"new served\":"
echo "requests the new instance counted by the end of the run (its counter, less the health check and the check itself)."
echo
echo "| wrk | requests | req/s | p99 [ms] | non-2xx | socket errors connect / read / write / timeout | redeploy [ms] | old instance stopped after | new served |"
echo "|:---|---:|---:|---:|---:|:---|---:|---:|---:|"
under_load "keep-alive, ${dur} s" "$dur"
under_load "\`Connection: close\`, ${dur} s" "$dur" -H "Connection: close"
remove rd

# ---- 2. published port vs direct ----
log "relay vs direct: app 'px' (the site with web/big.bin) on 127.0.0.1:19001"
deploy px "$WORK/big.slate" 19001 --memory 512M
mon=$(running px monitor_pid)
ipid=$(running px instance_pid)
inns=(nsenter "--net=/proc/$ipid/ns/net")
init_ns() { cut -d' ' -f1 "/proc/$ipid/schedstat"; }
: >"$WORK/relay.txt"
wrk_one() { # path via
	local path=$1 via=$2 c0 i0 c1 i1
	local cmd=(wrk -t2 -c16 -d"${dur}s" --latency "http://127.0.0.1:19001$path")
	[ "$via" = port ] || cmd=("${inns[@]}" wrk -t2 -c16 -d"${dur}s" --latency "http://127.0.0.1:80$path")
	c0=$(cpu_ns "$mon")
	i0=$(init_ns)
	"${cmd[@]}" >"$WORK/wrk.out" 2>&1
	c1=$(cpu_ns "$mon")
	i1=$(init_ns)
	echo "$path $via $(python3 "$WORK/wrkparse.py" "$WORK/wrk.out") $((c1 - c0)) $((i1 - i0))" | tee -a "$WORK/relay.txt" >&2
}
for path in / /css/site.css; do
	for r in $(seq "$rounds"); do
		if [ $((r % 2)) = 1 ]; then
			wrk_one "$path" port
			wrk_one "$path" direct
		else
			wrk_one "$path" direct
			wrk_one "$path" port
		fi
	done
done
echo
echo "## Published port vs direct"
echo
echo "App \`px\` (the site plus web/big.bin). Through the port: \`wrk -t2 -c16 -d${dur}s --latency http://127.0.0.1:19001PATH\`"
echo "(monitor: accept, PROXY line, splice both ways, to nginx's port 8080). Direct:"
echo "\`nsenter --net=/proc/INIT/ns/net wrk -t2 -c16 -d${dur}s --latency http://127.0.0.1:80PATH\` (same nginx, port 80)."
echo "$rounds rounds per side, alternating which goes first; medians. Monitor and init CPU: time on CPU"
echo "(\`/proc/PID/schedstat\`) per request; both forward nginx's access log, so they work in the direct case too."
echo
python3 - "$WORK/relay.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print("| path | via | req/s | p99 [ms] | errors | monitor CPU [µs/req] | init CPU [µs/req] | req/s vs direct | p99 vs direct |")
print("|:---|:---|---:|---:|---:|---:|---:|---:|---:|")
res = {}
for path in dict.fromkeys(r[0] for r in rows):
    for via in ("port", "direct"):
        rs = [r for r in rows if r[0] == path and r[1] == via]
        res[path, via] = (statistics.median(float(r[2]) for r in rs), statistics.median(float(r[3]) for r in rs),
                          sum(int(x) for r in rs for x in r[5:10]),
                          statistics.median(int(r[10]) / 1e3 / max(int(r[4]), 1) for r in rs),
                          statistics.median(int(r[11]) / 1e3 / max(int(r[4]), 1) for r in rs))
    d = res[path, "direct"]
    for via in ("port", "direct"):
        rps, p99, err, mon, ini = res[path, via]
        print(f"| `{path}` | {via} | {rps:.0f} | {p99:.1f} | {err} | {mon:.1f} | {ini:.1f} | "
              f"{'**%.2f**' % (rps / d[0]) if via == 'port' else '1.00'} | {'%.2f' % (p99 / d[1]) if via == 'port' else '1.00'} |")
print()
for path in dict.fromkeys(r[0] for r in rows):
    for via in ("port", "direct"):
        print(f"- req/s of each round, `{path}` {via}: " + " ".join(r[2] for r in rows if r[0] == path and r[1] == via))
PY

log "100 MiB download, $downloads runs per side"
: >"$WORK/dl.txt"
for r in $(seq "$downloads"); do
	for via in port direct; do
		[ $((r % 2)) = 1 ] || via=$([ "$via" = port ] && echo direct || echo port)
		c0=$(cpu_ns "$mon")
		if [ "$via" = port ]; then
			out=$(curl -s -o /dev/null -w '%{http_code} %{size_download} %{time_total}' http://127.0.0.1:19001/big.bin)
		else
			out=$("${inns[@]}" curl -s -o /dev/null -w '%{http_code} %{size_download} %{time_total}' http://127.0.0.1:80/big.bin)
		fi
		c1=$(cpu_ns "$mon")
		echo "$via $out $((c1 - c0))" | tee -a "$WORK/dl.txt" >&2
	done
done
echo
echo "100 MiB static file (\`web/big.bin\`, nginx sendfile from the store's lower layer): \`curl -s -o /dev/null\`"
echo "through the port vs \`nsenter --net=... curl\` to port 80; $downloads runs per side, alternating; medians."
echo
python3 - "$WORK/dl.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
assert all(r[1] == "200" and r[2] == str(100 << 20) for r in rows), rows
print("| via | time [ms] | MB/s | MB/s of each run | monitor CPU [ms] | vs direct |")
print("|:---|---:|---:|:---|---:|---:|")
res = {}
for via in ("direct", "port"):
    t = [float(r[3]) for r in rows if r[0] == via]
    c = [int(r[4]) / 1e6 for r in rows if r[0] == via]
    mbs = [(100 << 20) / 1e6 / x for x in t]
    res[via] = statistics.median(mbs)
    print(f"| {via} | {statistics.median(t) * 1e3:.0f} | {res[via]:.0f} | {' '.join('%.0f' % x for x in mbs)} | "
          f"{statistics.median(c):.1f} | {'**%.2f**' % (res[via] / res['direct']) if via == 'port' else '1.00'} |")
PY
echo
echo "Monitor of \`px\` after all this traffic: VmRSS $(kb "/proc/$mon/status" VmRSS) kB, Pss $(kb "/proc/$mon/smaps_rollup" Pss) kB."

if command -v perf >/dev/null; then
	log "perf record -g of the monitor under wrk load (through the port, /css/site.css)"
	wrk -t2 -c16 -d8s "http://127.0.0.1:19001/css/site.css" >/dev/null 2>&1 &
	w=$!
	bg+=("$w")
	sleep 1
	perf record -q -g -p "$mon" -o "$WORK/perf.data" -- sleep 5 >/dev/null 2>&1 || true
	wait "$w"
	echo
	echo "\`perf record -g -p MONITOR -- sleep 5\` under \`wrk -t2 -c16 http://127.0.0.1:19001/css/site.css\`, self time by symbol:"
	echo
	echo '```'
	perf report -i "$WORK/perf.data" --no-children --stdio --sort sym 2>/dev/null | grep -E '^ +[0-9.]+%' | head -20 || true
	echo '```'
fi
if [ "$long" = 1 ]; then
	# A transfer that outlives the drain: what happens to it at the deadline.
	log "a slow 100 MiB download (2 MiB/s) across a redeploy (drain timeout $drain s)"
	old=$(running px instance_pid)
	curl -s --limit-rate 2M -o /dev/null -w '%{http_code} %{size_download} %{time_total} %{exitcode} %{errormsg}' \
		http://127.0.0.1:19001/big.bin >"$WORK/slow.txt" 2>&1 &
	c=$!
	bg+=("$c")
	sleep 2
	t0=$(date +%s%N)
	"${SLATE[@]}" redeploy px >/dev/null
	t1=$(date +%s%N)
	while kill -0 "$old" 2>/dev/null; do sleep 0.05; done
	t2=$(date +%s%N)
	wait "$c" || true
	read -r code size total rc msg <"$WORK/slow.txt" || true # no newline at the end
	echo
	echo "A slow client across a redeploy: \`curl --limit-rate 2M\` of big.bin (50 s at that rate), \`slate redeploy px\`"
	echo "2 s in ($(((t1 - t0) / 1000000)) ms). The old instance was stopped $(((t2 - t0) / 1000000)) ms after the redeploy's start;"
	echo "curl got HTTP $code and $size of 104857600 bytes in $total s, exit code $rc${msg:+ ($msg)}."
fi
remove px

echo
echo "Load average at the end: $(loadavg). \`slate rm\` needed a second try $rm_retries times (\"the monitor of APP did not stop\")."
echo
echo "Failed deploys (each tried once more): ${#deploy_failures[@]}."
for f in "${deploy_failures[@]}"; do
	echo "- \`${f//$WORK/WORK}\`"
done
log "done"
