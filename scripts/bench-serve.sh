#!/usr/bin/env bash
# Paired benchmark of `vprocfs serve`: what a VPS's own mount buys against the shared
# mount (docs/performance.md, "serve: the shared mount and each VPS's own").
#
#   scripts/bench-serve.sh [N…]   default: 1000 10000; `scripts/bench-serve.sh 200` is a quick run
#
# Why: serve's shared mount answers each reader with its own VPS, so the kernel may cache
# nothing of it (every path walk is a FUSE lookup); a mount of one VPS's own (the default,
# `<dir of --ctl>/vps/NAME`, put over /proc by `vprocfs exec`) lets the kernel keep its
# entries and attributes. This measures the difference on real readers, against the
# kernel's own procfs of the same processes.
#
# For each N: a farm of N processes (scripts/bench/farm.py) in a kernel pid namespace of
# its own (`unshare --pid --fork --mount-proc`; its master, the child of unshare, is the
# namespace's init). Two daemons then serve it at once, each from a temporary directory of
# its own (mount point, control socket, state) with `--vps farm:tree=<master's pid>`:
# "own" = `vprocfs serve` (the VPS gets its own mount) and "shared" = `vprocfs serve
# --no-vps-mounts`. Both serve during the whole run so that the readers can be
# interleaved; each has its own membership (the idle one costs ~1 % of a CPU). The driver
# (scripts/bench/serve.py) starts three timing workers (scripts/bench/worker.py) that see
# the same processes:
#   (a) kernel: `nsenter -t <master> -p -m`: the kernel's procfs of the farm's namespace;
#   (b) own:    `vprocfs exec --socket <own's socket> farm`: the VPS's own mount on /proc;
#   (c) shared: `vprocfs exec --socket <shared's socket> farm`: the shared mount on /proc.
# (`ps` needs /proc/self: the readers of (b) and (c) are members of the VPS, as exec makes
# them.) After a check that all three list the same processes, it times `ps -ef`,
# `ps -eLf` and `top -b -n1` (output to /dev/null), one untimed a, b, c first, then
# a, b, c … BENCH_REPS times; each time is taken inside the worker, from the command's
# fork to its exit, so the start of `vprocfs exec` and `nsenter` is not counted.
#
# Placements (BENCH_PLACEMENTS), one after the other on the same farm and daemons:
# "free", the scheduler places everything; "pinned", the three workers (hence every
# command they time) and every thread of both daemons (supervisor and worker, `taskset -a
# -p`, again before each measure since a VPS's mount is served by threads of its own) on
# CPU BENCH_PIN_CPU. On this VM a FUSE round trip costs ~3 µs when reader and daemon share
# a CPU and 45–60 µs when the reply must wake a halted vCPU, so "pinned" shows the
# daemon's own work and "free" what a reader sees.
#
# Between the placements, the FUSE requests of one `ps -ef` (after an untimed one, as for
# every timed run) in (b) and (c): the difference of `vprocfs ctl stats` counters around
# it (0.3 s after it: releases are not waited for), divided by N.
#
# Output: a markdown table, a row per N, placement and measure: the medians of (a), (b),
# (c), the ratios (b)/(a) and (c)/(a), and (b)/(c) (below 1: the own mount is faster);
# then the requests per farm process of one `ps -ef` by kind, in all, waited for (all but
# release and forget), and the daemon's CPU time for that `ps -ef`. The log above it has
# every single run.
#
# Environment:
#   BENCH_REPS=5          timed triples per measure (medians are over these)
#   BENCH_PLACEMENTS="free pinned"  which placements, in this order (free and/or pinned)
#   BENCH_PIN_CPU=0       the CPU of the pinned placement
#   BENCH_TIMEOUT=1800    seconds allowed per N for the measures before they are stopped
#   BENCH_OUT=DIR         keep the raw per-N results (logs, tsv) in DIR
#   VPROCFS=BINARY        use this binary instead of `cargo build --release`
#
# Must run as root. Leaves no process, mount or file behind (EXIT trap): each daemon is
# stopped by SIGTERM to its supervisor (which unmounts), the farm by SIGKILL to its
# namespace's init; processes are only ever signalled by the pids this script got.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bench=$here/bench

REPS=${BENCH_REPS:-5}
TIMEOUT=${BENCH_TIMEOUT:-1800}
read -r -a PLACEMENTS <<<"${BENCH_PLACEMENTS:-free pinned}"
PIN_CPU=${BENCH_PIN_CPU:-0}
if [ $# -gt 0 ]; then NS=("$@"); else NS=(1000 10000); fi

say() { printf 'bench-serve: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (namespaces, FUSE mounts)"
for n in "${NS[@]}"; do
    if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 10 ]; then die "N must be an integer >= 10, got '$n'"; fi
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPS must be a positive integer, got '$REPS'"
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "BENCH_TIMEOUT must be a number of seconds, got '$TIMEOUT'"
[ ${#PLACEMENTS[@]} -gt 0 ] || die "BENCH_PLACEMENTS is empty (free, pinned or both)"
for p in "${PLACEMENTS[@]}"; do
    case $p in free | pinned) ;; *) die "BENCH_PLACEMENTS: '$p' is not free or pinned" ;; esac
done
if [ "${#PLACEMENTS[@]}" -gt 2 ] || { [ "${#PLACEMENTS[@]}" = 2 ] && [ "${PLACEMENTS[0]}" = "${PLACEMENTS[1]}" ]; }; then
    die "BENCH_PLACEMENTS: '${PLACEMENTS[*]}' names a placement twice"
fi
for tool in ps top unshare nsenter taskset timeout python3 mount umount; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/setup.sh installs it)"
done
# The real interpreter, not a version manager's shim (a shell script per start).
PY=$(python3 -c 'import sys; print(sys.executable)')
[[ $PIN_CPU =~ ^(0|[1-9][0-9]*)$ ]] || die "BENCH_PIN_CPU must be a CPU number, got '$PIN_CPU'"
"$PY" -c 'import os, sys; sys.exit(int(sys.argv[1]) not in os.sched_getaffinity(0))' "$PIN_CPU" ||
    die "BENCH_PIN_CPU=$PIN_CPU is not one of the CPUs this script may run on"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vprocfs-bench-serve.XXXXXX")
UNSHARE=    # the farm's `unshare` (our child)
MASTER=     # the farm's master: unshare's child, init of the farm's pid namespace
SUPS=()     # the supervisors of `vprocfs serve` still running
DRIVER=     # the driver (under `timeout`)
TAIL=       # the tail that shows the driver's log
# shellcheck source=scripts/bench/limits.sh
. "$root/scripts/bench/limits.sh"

# Stops a `vprocfs serve` supervisor: SIGTERM (it unmounts every mount it made or holds
# and ends its worker), SIGKILL after 20 s; then drops it from SUPS.
stop_serve() {
    local s=$1 keep=() x
    if kill -0 "$s" 2>/dev/null; then
        kill -TERM "$s" 2>/dev/null || true
        for _ in $(seq 200); do kill -0 "$s" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$s" 2>/dev/null; then
            say "vprocfs serve (pid $s) did not stop on SIGTERM in 20 s: SIGKILL"
            kill -KILL "$s" 2>/dev/null || true
        fi
    fi
    wait "$s" 2>/dev/null || true
    # A supervisor that could not clean up leaves its runtime directory.
    [ -d "/run/vprocfs/serve-$s" ] && ! kill -0 "$s" 2>/dev/null && rm -rf "/run/vprocfs/serve-$s"
    for x in "${SUPS[@]}"; do [ "$x" = "$s" ] || keep+=("$x"); done
    SUPS=("${keep[@]}")
}

# Ends the farm: SIGKILL to its namespace's init ends every process in it; unshare
# returns once the kernel has reaped them all.
stop_farm() {
    [ -n "$UNSHARE" ] || return 0
    if [ -n "$MASTER" ] && [ "$(ps -o ppid= -p "$MASTER" 2>/dev/null | tr -d ' ')" = "$UNSHARE" ]; then
        kill -KILL "$MASTER" 2>/dev/null || true
    fi
    for _ in $(seq 600); do kill -0 "$UNSHARE" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$UNSHARE" 2>/dev/null || true
    wait "$UNSHARE" 2>/dev/null || true
    UNSHARE='' MASTER=''
}

# Mounts under $tmp still there (a daemon that could not unmount): detached.
unmount_leftovers() {
    local m
    awk -v t="$tmp/" 'index($2, t) == 1 {print $2}' /proc/self/mounts | sort -r |
        while IFS= read -r m; do
            say "detaching $m, left mounted (umount -l)"
            umount -l "$m" 2>/dev/null || true
        done
}

cleanup() {
    local s
    set +e
    [ -n "$DRIVER" ] && kill -TERM "$DRIVER" 2>/dev/null && wait "$DRIVER" 2>/dev/null
    [ -n "$TAIL" ] && kill -TERM "$TAIL" 2>/dev/null && wait "$TAIL" 2>/dev/null
    for s in "${SUPS[@]}"; do stop_serve "$s"; done
    stop_farm
    unmount_leftovers
    restore_limits
    if [ -n "${BENCH_OUT:-}" ]; then
        mkdir -p "$BENCH_OUT" && cp -r "$tmp"/n-* "$BENCH_OUT"/ 2>/dev/null
    fi
    if awk -v t="$tmp/" 'index($2, t) == 1 {found = 1} END {exit !found}' /proc/self/mounts; then
        say "error: mounts under $tmp remain; $tmp is left in place"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the binary ----------------------------------------------------------------------
# shellcheck source=scripts/bench/binary.sh
. "$root/scripts/bench/binary.sh"

# ---- limits: 10,000 processes and their threads ----------------------------------------
max_n=$(largest "${NS[@]}")
raise_limits "$max_n"

say "machine: nproc=$(nproc), CPU '$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)'," \
    "kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)," \
    "$(ps -e --no-headers | wc -l) host processes"
say "cpuidle: driver $(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo none)," \
    "guest_halt_poll_ns=$(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns 2>/dev/null || echo n/a)"

# ---- the farm and the daemons ----------------------------------------------------------
# Starts farm.py N in a pid namespace of its own; sets UNSHARE and MASTER.
start_farm() {
    local n=$1 dir=$2 t0=$SECONDS
    unshare --pid --fork --mount-proc "$PY" "$bench/farm.py" "$n" >"$dir/farm.out" 2>"$dir/farm.err" &
    UNSHARE=$!
    for _ in $(seq 100); do
        MASTER=$(ps -o pid= --ppid "$UNSHARE" 2>/dev/null | tr -d ' ' | head -1)
        [ -n "$MASTER" ] && break
        sleep 0.05
    done
    [ -n "$MASTER" ] || die "N=$n: the farm's master did not start ($(tail -1 "$dir/farm.err"))"
    until grep -q '^ready ' "$dir/farm.out"; do
        kill -0 "$UNSHARE" 2>/dev/null || die "N=$n: the farm ended ($(tail -1 "$dir/farm.err"))"
        [ $((SECONDS - t0)) -lt 900 ] || die "N=$n: the farm was not ready in 900 s"
        sleep 0.2
    done
    say "N=$n: farm up in $((SECONDS - t0)) s: $(cut -d' ' -f2 "$dir/farm.out") processes," \
        "$(cut -d' ' -f3 "$dir/farm.out") tasks; master pid $MASTER ($(cat "/proc/$MASTER/comm"))"
}

# Starts `vprocfs serve` from directory $2 (mnt/, ctl.sock, state) with the options that
# follow; waits until it serves (the VPS's own mount too, unless --no-vps-mounts); sets
# SERVED to the supervisor's pid.
SERVED=
start_serve() {
    local name=$1 d=$2 s list mount t0=$SECONDS
    shift 2
    mkdir -p "$d/mnt"
    "$VP" serve "$d/mnt" --ctl "$d/ctl.sock" --state "$d/state" --vps "farm:tree=$MASTER" "$@" \
        >"$d/serve.log" 2>&1 &
    s=$!
    SUPS+=("$s")
    while :; do
        kill -0 "$s" 2>/dev/null || die "$name: vprocfs serve ended: $(tail -3 "$d/serve.log")"
        [ $((SECONDS - t0)) -lt 120 ] || die "$name: vprocfs serve not ready in 120 s"
        sleep 0.1
        grep -qF " $d/mnt " /proc/self/mounts || continue
        list=$("$VP" ctl --socket "$d/ctl.sock" list 2>/dev/null) || continue
        mount=$(awk '$2 == "farm" {print $7}' <<<"$list")
        [ -n "$mount" ] || continue
        [ "$name" = shared ] && break
        [ "$mount" != - ] && grep -qF " $mount " /proc/self/mounts && break
    done
    say "$name: vprocfs serve (supervisor pid $s, worker $(ps -o pid= --ppid "$s" | tr -d ' '))" \
        "serves $d/mnt; the VPS's own mount: $mount"
    SERVED=$s
}

# ---- one N ---------------------------------------------------------------------------
run_one() {
    local n=$1 dir=$tmp/n-$1 own shared rc=0
    mkdir -p "$dir/own" "$dir/shared"
    say "N=$n: building the farm (host load average $(cut -d' ' -f1-3 /proc/loadavg))"
    start_farm "$n" "$dir"
    start_serve own "$dir/own"
    own=$SERVED
    start_serve shared "$dir/shared" --no-vps-mounts
    shared=$SERVED
    : >"$dir/driver.log"
    timeout --kill-after=30 "$TIMEOUT" "$PY" "$bench/serve.py" run --dir "$dir" --n "$n" \
        --reps "$REPS" --vprocfs "$VP" --master "$MASTER" \
        --own "$dir/own/ctl.sock" "$own" --shared "$dir/shared/ctl.sock" "$shared" \
        --shared-mount "$dir/shared/mnt" --placements "${PLACEMENTS[@]}" --pin-cpu "$PIN_CPU" \
        >"$dir/driver.log" 2>&1 &
    DRIVER=$!
    tail -n +1 -f --pid="$DRIVER" "$dir/driver.log" >&2 &
    TAIL=$!
    wait "$DRIVER" || rc=$?
    DRIVER=
    wait "$TAIL" 2>/dev/null || true
    TAIL=
    [ "$rc" = 124 ] && say "N=$n: timed out after ${TIMEOUT}s (BENCH_TIMEOUT)"
    stop_serve "$own"
    stop_serve "$shared"
    stop_farm
    unmount_leftovers
    if [ "$rc" != 0 ] || [ ! -s "$dir/results.tsv" ]; then
        say "N=$n: the run failed (status $rc); the daemons' logs:"
        tail -n 5 "$dir/own/serve.log" "$dir/shared/serve.log" >&2 || true
        return 1
    fi
}

start=$SECONDS
dirs=()
failed=()
for n in "${NS[@]}"; do
    if run_one "$n"; then dirs+=("$tmp/n-$n"); else failed+=("$n"); fi
done

echo
echo "vprocfs serve: own mount against shared mount ($rev): N = ${NS[*]}, BENCH_REPS=$REPS;" \
    "$(nproc) vCPU, kernel $(uname -r); $((SECONDS - start)) s"
echo "(a) kernel = procfs of the farm's pid namespace; (b) own = vprocfs exec through the" \
    "VPS's own mount (serve, default); (c) shared = vprocfs exec through the shared mount" \
    "(serve --no-vps-mounts); same processes, same run, interleaved."
echo "Placements (BENCH_PLACEMENTS=\"${PLACEMENTS[*]}\"): free = the scheduler places" \
    "everything; pinned = the three readers and every thread of both daemons on CPU $PIN_CPU."
echo
if [ ${#dirs[@]} -gt 0 ]; then "$PY" "$bench/serve.py" report "${dirs[@]}"; fi
if [ ${#failed[@]} -gt 0 ]; then
    echo
    echo "FAILED for N = ${failed[*]} (see the log above)"
    exit 1
fi
