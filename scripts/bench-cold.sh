#!/usr/bin/env bash
# The first look at new processes: `ps -ef` over N processes that nobody has looked at
# yet, in the full view, against the kernel's procfs of a pid namespace
# (docs/performance.md, "The first look at new processes").
#
#   scripts/bench-cold.sh [N]     N processes (default 1000)
#
# scripts/bench.sh times `ps -ef` again and again over the same processes, whose names
# the kernel keeps after the first run; this times the first run over each new farm: N
# sleepers are started, `ps -ef` is timed once, they are ended, BENCH_REPS times. The
# same driver runs as the init of `unshare --pid --fork --mount-proc` (the kernel) and
# of `vprocfs run --full-view`, in two placements: "free" and "pinned" (the whole run,
# daemon included, on CPU BENCH_PIN_CPU). Printed: medians of the timed runs, and the
# ratio of the view's to the kernel's.
#
# Environment: BENCH_REPS=7, BENCH_PIN_CPU=0, VPROCFS=BINARY (instead of `cargo build
# --release`).
# Must run as root. Leaves no process or file behind (each run ends its sleepers; a run
# that fails ends with its namespace or VPS).
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

root=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-1000}
REPS=${BENCH_REPS:-7}
PIN_CPU=${BENCH_PIN_CPU:-0}
PY=/usr/bin/python3
say() { printf 'bench-cold: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
case $N in '' | *[!0-9]* | 0) die "N must be a number of processes, not '$N'" ;; esac
case $REPS in '' | *[!0-9]* | 0) die "BENCH_REPS must be a positive number" ;; esac
taskset -c "$PIN_CPU" true 2>/dev/null || die "BENCH_PIN_CPU=$PIN_CPU is not a CPU this script may run on"
[ "$(id -u)" = 0 ] || die "run as root (namespaces, FUSE mounts)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=scripts/bench/binary.sh
. "$root/scripts/bench/binary.sh"

# Prints the median milliseconds of the timed `ps -ef`s.
cat >"$tmp/cold.py" <<'EOF'
import os, signal, statistics, subprocess, sys, time
n, reps = int(sys.argv[1]), int(sys.argv[2])
times = []
for _ in range(reps):
    kids = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            signal.pause()
            os._exit(0)
        kids.append(pid)
    t = time.perf_counter()
    subprocess.run(["ps", "-ef"], stdout=subprocess.DEVNULL, check=True)
    times.append((time.perf_counter() - t) * 1000)
    for pid in kids:
        os.kill(pid, signal.SIGKILL)
    for pid in kids:
        os.waitpid(pid, 0)
print(f"{statistics.median(times):.2f}")
EOF

run() { # placement, kernel|view
    local pin=()
    [ "$1" = pinned ] && pin=(taskset -c "$PIN_CPU")
    case $2 in
        kernel) timeout -s KILL 900 "${pin[@]}" unshare --pid --fork --mount-proc -- "$PY" "$tmp/cold.py" "$N" "$REPS" ;;
        view) timeout -s KILL 900 "${pin[@]}" "$VP" run --full-view -- "$PY" "$tmp/cold.py" "$N" "$REPS" ;;
    esac
}

printf '%-7s %-8s %12s %12s %8s\n' N placement kernel view ratio
for placement in free pinned; do
    k=$(run "$placement" kernel)
    v=$(run "$placement" view)
    printf '%-7s %-8s %9.1f ms %9.1f ms %7.2fx\n' "$N" "$placement" "$k" "$v" "$(awk -v a="$v" -v b="$k" 'BEGIN {print a / b}')"
done
