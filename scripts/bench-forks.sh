#!/usr/bin/env bash
# What following a VPS's processes costs: a loop of forks in a VPS, against the same
# loop in a kernel pid namespace (docs/performance.md, "Following forks").
#
#   scripts/bench-forks.sh [N]     N forks a loop (default 2000)
#
# Three loops, each N times: `fork` (a child that exits at once, reaped) and `spawn` (a
# child that execs /bin/true, as a shell or a build runs its commands), each run as the
# init of `unshare --pid --fork --mount-proc` (the kernel: no daemon) and of `vprocfs
# run`; and `host`, the `fork` loop run on the host beside such an init that waits (a
# daemon also hears of the host's forks). In three placements of `vprocfs run`: the default (kernel pid view, a pid namespace followed for
# the virtual global files), `--full-view` and `--no-pidns`. Printed, medians of
# BENCH_REPS runs: the loop's wall time, its ratio to the kernel's, and the daemon's
# CPU time (user + system, from its /proc/<pid>/stat around the loop) per fork. Each in
# two CPU placements: "free" (the scheduler places the loop and the daemon) and
# "pinned" (the whole run, daemon and loop, on CPU BENCH_PIN_CPU: the daemon's work
# then adds to the loop's wall time).
#
# Environment: BENCH_REPS=5, BENCH_PIN_CPU=0, VPROCFS=BINARY (instead of `cargo build
# --release`).
# Must run as root. Leaves no process or file behind.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

root=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-2000}
REPS=${BENCH_REPS:-5}
PIN_CPU=${BENCH_PIN_CPU:-0}
PY=/usr/bin/python3
say() { printf 'bench-forks: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
case $N in '' | *[!0-9]*) die "N must be a number of forks, not '$N'" ;; esac
case $REPS in '' | *[!0-9]* | 0) die "BENCH_REPS must be a positive number" ;; esac
taskset -c "$PIN_CPU" true 2>/dev/null || die "BENCH_PIN_CPU=$PIN_CPU is not a CPU this script may run on"
[ "$(id -u)" = 0 ] || die "run as root (namespaces, FUSE mounts)"
tmp=$(mktemp -d)
pids=()
cleanup() {
    touch "$tmp/quit" 2>/dev/null || true
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
# shellcheck source=scripts/bench/binary.sh
. "$root/scripts/bench/binary.sh"

# The loop: waits for $D/go, runs, writes its seconds to $D/wall, then waits for
# $D/quit (so that the daemon's CPU is read while it lives). Kind `idle` only waits.
cat >"$tmp/loop.py" <<'EOF'
import os, subprocess, sys, time
kind, n, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
while kind != "idle" and not os.path.exists(f"{d}/go"):
    time.sleep(0.02)
t = time.perf_counter()
for _ in range(n if kind != "idle" else 0):
    if kind == "fork":
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    else:
        subprocess.run(["/bin/true"], check=True)
wall = time.perf_counter() - t
if kind != "idle":
    time.sleep(0.5)  # the daemon follows the last exits
    with open(f"{d}/wall.tmp", "w") as f:
        f.write(f"{wall}\n")
    os.rename(f"{d}/wall.tmp", f"{d}/wall")
while not os.path.exists(f"{d}/quit"):
    time.sleep(0.02)
EOF

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# One run: prints "WALL_SECONDS DAEMON_TICKS" (ticks 0 for the kernel).
one_run() {
    local placement=$1 kind=$2 cpus=$3 p a b inside=$2 wall=$tmp/wall
    local pin=()
    [ "$cpus" = pinned ] && pin=(taskset -c "$PIN_CPU")
    [ "$kind" = host ] && inside=idle wall=$tmp/host/wall
    rm -rf "$tmp/go" "$tmp/wall" "$tmp/quit" "$tmp/host"
    case $placement in
        kernel) "${pin[@]}" unshare --pid --fork --mount-proc "$PY" "$tmp/loop.py" "$inside" "$N" "$tmp" & ;;
        default) "${pin[@]}" "$VP" run -- "$PY" "$tmp/loop.py" "$inside" "$N" "$tmp" 2>/dev/null & ;;
        *) "${pin[@]}" "$VP" run "$placement" -- "$PY" "$tmp/loop.py" "$inside" "$N" "$tmp" 2>/dev/null & ;;
    esac
    p=$!
    pids+=("$p")
    sleep 1 # the VPS starts, its daemon settles
    a=$(cpu_ticks "$p")
    if [ "$kind" = host ]; then
        mkdir "$tmp/host"
        touch "$tmp/host/go" "$tmp/host/quit"
        "${pin[@]}" "$PY" "$tmp/loop.py" fork "$N" "$tmp/host"
    else
        touch "$tmp/go"
    fi
    while [ ! -e "$wall" ]; do
        kill -0 "$p" 2>/dev/null || { echo "bench-forks: the $placement run ended early" >&2; exit 1; }
        sleep 0.05
    done
    b=$(cpu_ticks "$p")
    touch "$tmp/quit"
    wait "$p" || true
    [ "$placement" = kernel ] && b=$a
    echo "$(cat "$wall") $((b - a))"
}

hz=$(getconf CLK_TCK)
echo "bench-forks: $N forks a loop, medians of $REPS runs"
printf '| %-6s | %-12s | %-5s | %12s | %9s | %18s |\n' CPUs placement loop "loop wall" ratio "daemon CPU a fork"
printf '|%s|%s|%s|%s|%s|%s|\n' -------- --------------  ------- -------------- ----------- --------------------
for cpus in free pinned; do
for kind in fork spawn host; do
    kernel_wall=
    for placement in kernel default --full-view --no-pidns; do
        walls=() ticks=()
        for _ in $(seq "$REPS"); do
            read -r w t < <(one_run "$placement" "$kind" "$cpus")
            walls+=("$w") ticks+=("$t")
        done
        read -r wall tick < <("$PY" - "$REPS" "${walls[@]}" "${ticks[@]}" <<'EOF'
import statistics, sys
n = int(sys.argv[1])
walls, ticks = map(float, sys.argv[2:2 + n]), map(float, sys.argv[2 + n:])
print(statistics.median(walls), statistics.median(ticks))
EOF
)
        [ -n "$kernel_wall" ] || kernel_wall=$wall
        "$PY" - "$cpus" "$placement" "$kind" "$wall" "$kernel_wall" "$tick" "$hz" "$N" <<'EOF'
import sys
cpus, placement, kind, wall, kwall, tick, hz, n = sys.argv[1:]
wall, kwall, tick, hz, n = float(wall), float(kwall), float(tick), int(hz), int(n)
cpu = "—" if placement == "kernel" else f"{tick / hz / n * 1e6:.0f} µs"
print(f"| {cpus:<6} | {placement:<12} | {kind:<5} | {wall * 1000:9.0f} ms | {wall / kwall:8.2f}× | {cpu:>18} |")
EOF
    done
done
done
