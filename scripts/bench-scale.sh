#!/usr/bin/env bash
# Scale benchmark of the vprocfs view (docs/performance.md, "Scale: a small VPS on a busy
# host"): does one `ps -ef` in a small VPS depend on the host's processes outside it, and
# does it grow linearly with the VPS's own?
#
#   scripts/bench-scale.sh            busy-host test, then linearity at 100 1000 10000
#
# Busy-host test: a VPS (`vprocfs run`, own pid namespace, pidns membership, /proc = the
# view) whose init is scripts/bench/scale.py builds a farm of SCALE_VPS processes
# (scripts/bench/farm.py) and times `ps -ef` paired on the kernel's procfs of its pid
# namespace and on the view (scripts/bench/worker.py), in blocks of SCALE_REPS pairs:
# idle host, busy host, idle, busy … idle (SCALE_CYCLES busy blocks). For a busy block
# this script starts SCALE_HOST sleepers outside the VPS (farm.py under
# `unshare --pid --fork`: a pid namespace of their own, every one of them a host process
# in the host's /proc) and waits until the daemon's CPU time settles; afterwards it ends
# them by SIGKILL to that namespace's init (by pid) and waits until they are gone.
# Linearity: a fresh VPS per N in SCALE_LINEAR, `ps -ef` pairs on the idle host.
#
# Environment:
#   SCALE_VPS=100            processes in the VPS of the busy-host test
#   SCALE_HOST=10000         processes outside it
#   SCALE_REPS=15            pairs per block
#   SCALE_CYCLES=2           busy blocks (each between two idle blocks)
#   SCALE_LINEAR="100 1000 10000"   VPS sizes of the linearity test ("" skips it)
#   SCALE_LINEAR_REPS=7      pairs per size (5 at 10,000 and above)
#   SCALE_BUSY=1             0: skip the busy-host test
#   BENCH_OUT=DIR            keep the raw results (logs, tsv) in DIR
#   VPROCFS=BINARY           use this binary instead of `cargo build --release`
#
# Must run as root. Leaves no process, mount or file behind (EXIT trap).
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bench=$here/bench

VPS_N=${SCALE_VPS:-100}
HOST_N=${SCALE_HOST:-10000}
REPS=${SCALE_REPS:-15}
CYCLES=${SCALE_CYCLES:-2}
LINEAR=${SCALE_LINEAR-100 1000 10000}
LINEAR_REPS=${SCALE_LINEAR_REPS:-7}
DO_BUSY=${SCALE_BUSY:-1}

say() { printf 'bench-scale: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (namespaces, FUSE mounts)"
for tool in ps unshare python3 mount getconf; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/setup.sh installs it)"
done
PY=$(python3 -c 'import sys; print(sys.executable)')
TCK=$(getconf CLK_TCK)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vprocfs-scale.XXXXXX")
DAEMONS=()
HOSTFARM=        # the `unshare` of the host farm
# shellcheck source=scripts/bench/limits.sh
. "$root/scripts/bench/limits.sh"

# shellcheck source=scripts/bench/vps.sh
. "$root/scripts/bench/vps.sh"

# Ends the host farm: SIGKILL to its pid namespace's init ends every process in it.
stop_hostfarm() {
    local u=$HOSTFARM init i
    [ -n "$u" ] || return 0
    for init in $(children_of "$u"); do kill -KILL "$init" 2>/dev/null || true; done
    kill -KILL "$u" 2>/dev/null || true
    wait "$u" 2>/dev/null || true
    HOSTFARM=
}

cleanup() {
    local d
    set +e
    stop_hostfarm
    for d in "${DAEMONS[@]}"; do stop_vps "$d"; done
    restore_limits
    if [ -n "${BENCH_OUT:-}" ]; then
        mkdir -p "$BENCH_OUT" && cp -r "$tmp"/run-* "$BENCH_OUT"/ 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the binary ----------------------------------------------------------------------
# shellcheck source=scripts/bench/binary.sh
. "$root/scripts/bench/binary.sh"

# ---- limits --------------------------------------------------------------------------
# shellcheck disable=SC2086  # LINEAR is a list of numbers
max_n=$(largest "$VPS_N" $LINEAR)
[ "$DO_BUSY" = 1 ] && [ $((VPS_N + HOST_N)) -gt "$max_n" ] && max_n=$((VPS_N + HOST_N))
raise_limits "$max_n"

BASE_PROCS=$(ps -e --no-headers | wc -l)
say "machine: nproc=$(nproc), kernel $(uname -r), load average" \
    "$(cut -d' ' -f1-3 /proc/loadavg), $BASE_PROCS host processes"

# ---- the outside half's answers --------------------------------------------------------
cpu_ms() {   # utime + stime of the daemon (all its threads), ms
    awk -v t="$TCK" '{ sub(/^.*\) /, ""); printf "%.0f", ($12 + $13) * 1000 / t }' \
        "/proc/$1/stat" 2>/dev/null || echo 0
}

# Median ms of one listing of the host's /proc (what the daemon's list_root reads).
listdir_ms() {
    "$PY" -c 'import os, statistics, time
ts = []
for _ in range(9):
    t = time.perf_counter(); os.listdir("/proc"); ts.append((time.perf_counter() - t) * 1e3)
print("%.2f" % statistics.median(ts))'
}

# Waits until the daemon's CPU time grows by < 20 ms over a second (at most 30 s); logs
# the daemon's CPU ms per second meanwhile.
settle() {
    local d=$1 t0=$SECONDS a b deltas=
    a=$(cpu_ms "$d")
    while [ $((SECONDS - t0)) -lt 30 ]; do
        sleep 1
        b=$(cpu_ms "$d")
        deltas+=" $((b - a))"
        [ $((b - a)) -lt 20 ] && break
        a=$b
    done
    say "daemon CPU ms per second while settling:$deltas (load $(cut -d' ' -f1 /proc/loadavg))"
    echo $((SECONDS - t0))
}

hostup() {
    local d=$1 c0 t0 line s
    c0=$(cpu_ms "$d")
    t0=$(date +%s.%N)
    unshare --pid --fork --kill-child "$PY" "$bench/farm.py" "$HOST_N" \
        >"$tmp/hostfarm.out" 2>"$tmp/hostfarm.err" &
    HOSTFARM=$!
    line=
    for _ in $(seq 6000); do
        line=$(head -1 "$tmp/hostfarm.out" 2>/dev/null || true)
        [ -n "$line" ] && break
        kill -0 "$HOSTFARM" 2>/dev/null || break
        sleep 0.1
    done
    case $line in ready*) ;; *) echo "ok=0 error=farm"; return ;; esac
    local built
    built=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    s=$(settle "$d")
    echo "ok=1 host_procs=$(ps -e --no-headers | wc -l) host_tasks=$(ps -eL --no-headers | wc -l)" \
        "farm=${line#ready } build_s=$built daemon_cpu_ms=$(($(cpu_ms "$d") - c0)) settle_s=$s" \
        "host_listdir_ms=$(listdir_ms)"
}

hostdown() {
    local d=$1 c0 t0=$SECONDS left s
    c0=$(cpu_ms "$d")
    stop_hostfarm
    for _ in $(seq 600); do
        left=$(ps -e --no-headers | wc -l)
        [ "$left" -le $((BASE_PROCS + VPS_N + 50)) ] && break
        sleep 0.1
    done
    s=$(settle "$d")
    echo "ok=1 teardown_s=$((SECONDS - t0)) host_procs=$(ps -e --no-headers | wc -l)" \
        "daemon_cpu_ms=$(($(cpu_ms "$d") - c0)) settle_s=$s host_listdir_ms=$(listdir_ms)"
}

serve_reqs() {
    local dir=$1 d=$2 req tag ans
    for req in "$dir"/req.*; do
        [ -e "$req" ] || continue
        tag=${req##*/req.}
        case $tag in
            cpu) ans="cpu_ms=$(cpu_ms "$d")" ;;
            # Not in a subshell: hostup records the farm's pid in HOSTFARM.
            hostup) hostup "$d" >"$tmp/ans"; ans=$(cat "$tmp/ans") ;;
            hostdown) hostdown "$d" >"$tmp/ans"; ans=$(cat "$tmp/ans") ;;
            *) ans="ok=0 error=unknown" ;;
        esac
        rm -f "$req"
        printf '%s\n' "$ans" >"$dir/.snap.$tag"
        mv "$dir/.snap.$tag" "$dir/snap.$tag"
    done
}

# ---- one VPS -------------------------------------------------------------------------
run_one() {
    local name=$1 dir=$tmp/run-$1 d pending= line rc
    shift
    mkdir -p "$dir"
    : >"$dir/scale.log"
    # The full view, whose every request the daemon answers: the kernel pid view (run's
    # default with a pid namespace) is the kernel's own procfs, which never asks it.
    "$VP" run --full-view -- "$PY" "$bench/scale.py" --dir "$dir" "$@" >"$dir/scale.log" \
        2>"$dir/daemon.err" &
    d=$!
    DAEMONS+=("$d")
    exec 3<"$dir/scale.log"
    while kill -0 "$d" 2>/dev/null; do
        serve_reqs "$dir" "$d"
        while IFS= read -r -u 3 line; do printf '%s\n' "$pending$line" >&2; pending=; done
        pending+=$line
        sleep 0.05
    done
    rc=0
    wait "$d" || rc=$?
    DAEMONS=()
    stop_hostfarm
    while IFS= read -r -u 3 line; do printf '%s\n' "$pending$line" >&2; pending=; done
    [ -n "$pending$line" ] && printf '%s\n' "$pending$line" >&2
    exec 3<&-
    if [ "$rc" != 0 ] || [ ! -s "$dir/scale.tsv" ]; then
        say "$name: the run failed (status $rc); daemon's stderr:"
        tail -n 20 "$dir/daemon.err" >&2 || true
        return 1
    fi
}

start=$SECONDS
dirs=()
failed=()
if [ "$DO_BUSY" = 1 ]; then
    if run_one busy --mode busy --n "$VPS_N" --reps "$REPS" --cycles "$CYCLES"; then
        dirs+=("$tmp/run-busy")
    else failed+=(busy); fi
fi
for n in $LINEAR; do
    r=$LINEAR_REPS
    [ "$n" -ge 10000 ] && [ "$r" -gt 5 ] && r=5
    if run_one "linear-$n" --mode linear --n "$n" --reps "$r"; then
        dirs+=("$tmp/run-linear-$n")
    else failed+=("linear-$n"); fi
done

echo
echo "vprocfs scale benchmark ($rev): VPS $VPS_N, host farm $HOST_N, $REPS pairs per block," \
    "$CYCLES busy blocks; linearity N = ${LINEAR:-none}; $(nproc) vCPU, kernel $(uname -r);" \
    "$((SECONDS - start)) s"
if [ ${#dirs[@]} -gt 0 ]; then "$PY" "$bench/scale.py" --report "${dirs[@]}"; fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]} (see the log above)"
    exit 1
fi
