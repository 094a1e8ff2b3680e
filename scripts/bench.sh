#!/usr/bin/env bash
# Paired benchmark of the vprocfs view against the kernel's own procfs of the same pid
# namespace (docs/performance.md, "The view: paired benchmark").
#
#   scripts/bench.sh [N…]        default: 1000 10000; `scripts/bench.sh 200` is a quick run
#
# For each N and each view (BENCH_VIEWS): a VPS is started with `vprocfs run` — the full
# view (`--full-view`: /proc = the daemon's view) or the kernel pid view (the default:
# the kernel's procfs of the VPS's pid namespace with vprocfs's virtual global files
# bound over it) — whose init is scripts/bench/driver.py. It builds a farm of N processes
# (scripts/bench/farm.py: sessions, process groups, ~10% multi-threaded) and times, paired
# and interleaved (a, b, a, b …), on (a) the kernel's procfs of that very pid namespace
# (`unshare --mount sh -c 'mount -t proc proc /proc && …'`) and (b) the view: `ps -ef`,
# `ps -eLf`, `top -b -n1`, a python3 loop reading every /proc/<pid>/stat, and the
# per-read latency of open+read+close of /proc/uptime, /proc/loadavg, /proc/<pid>/stat
# (full view) or of every virtual global file (kernel pid view), each against LXCFS's same
# file when LXCFS can be installed and run; for the kernel pid view, the daemon's CPU
# while idle (the load sampler). The FUSE requests of
# one `ps -ef` come from the daemon's statistics line (SIGUSR1 before and after).
#
# Environment:
#   BENCH_REPS=5          timed pairs per measure (medians are over these)
#   BENCH_LAT_READS=2000  reads per latency repetition
#   BENCH_TIMEOUT=1800    seconds allowed per N before the VPS is stopped
#   BENCH_LXCFS=1         0: skip the LXCFS comparison
#   BENCH_INSTALL=1       0: never apt-get install lxcfs
#   BENCH_OUT=DIR         keep the raw per-N results (logs, tsv) in DIR
#   VPROCFS=BINARY        use this binary instead of `cargo build --release`
#   BENCH_RUN_ARGS=""     extra options of `vprocfs run` for the VPS (e.g. "--spin 0"),
#                         for A/B runs of the daemon's settings
#   BENCH_VIEWS="full kernel"  which views to measure
#   BENCH_IDLE_S=30       seconds of idle daemon CPU measured (kernel pid view)
#
# Must run as root. Leaves no process, mount or file behind (EXIT trap).
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bench=$here/bench

REPS=${BENCH_REPS:-5}
LAT_READS=${BENCH_LAT_READS:-2000}
TIMEOUT=${BENCH_TIMEOUT:-1800}
WANT_LXCFS=${BENCH_LXCFS:-1}
INSTALL=${BENCH_INSTALL:-1}
read -r -a VIEWS <<<"${BENCH_VIEWS:-full kernel}"
IDLE_S=${BENCH_IDLE_S:-30}
if [ $# -gt 0 ]; then NS=("$@"); else NS=(1000 10000); fi
for v in "${VIEWS[@]}"; do
    case $v in full | kernel) ;; *) echo "bench: BENCH_VIEWS: '$v' is not full or kernel" >&2; exit 1 ;; esac
done

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (namespaces, FUSE mounts)"
for n in "${NS[@]}"; do
    [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 10 ] || die "N must be an integer >= 10, got '$n'"
done
for tool in ps top unshare python3 mount; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/setup.sh installs it)"
done
# The real interpreter, not a version manager's shim (a shell script per start).
PY=$(python3 -c 'import sys; print(sys.executable)')

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vprocfs-bench.XXXXXX")
DAEMONS=()
INITS=()
LXCFS_PID=
LXCFS_MNT=
OLD_PID_MAX=
OLD_THREADS_MAX=

# shellcheck source=scripts/bench/vps.sh
. "$root/scripts/bench/vps.sh"

# Drops an ended daemon from the cleanup list (its pid may be reused by then).
forget_daemon() {
    local keep=() x
    for x in "${DAEMONS[@]}"; do [ "$x" = "$1" ] || keep+=("$x"); done
    DAEMONS=("${keep[@]}")
}

cleanup() {
    local d i
    set +e
    for d in "${DAEMONS[@]}"; do stop_vps "$d"; done
    for d in "${INITS[@]}"; do kill -KILL "$d" 2>/dev/null; done
    if [ -n "$LXCFS_PID" ]; then
        kill -TERM "$LXCFS_PID" 2>/dev/null
        for i in $(seq 50); do kill -0 "$LXCFS_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$LXCFS_PID" 2>/dev/null
        wait "$LXCFS_PID" 2>/dev/null
    fi
    if [ -n "$LXCFS_MNT" ] && grep -qF " $LXCFS_MNT " /proc/self/mounts; then
        umount -l "$LXCFS_MNT" 2>/dev/null
    fi
    [ -n "$OLD_PID_MAX" ] && echo "$OLD_PID_MAX" >/proc/sys/kernel/pid_max
    [ -n "$OLD_THREADS_MAX" ] && echo "$OLD_THREADS_MAX" >/proc/sys/kernel/threads-max
    if [ -n "${BENCH_OUT:-}" ]; then
        mkdir -p "$BENCH_OUT" && cp -r "$tmp"/n-* "$BENCH_OUT"/ 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the binary ----------------------------------------------------------------------
# shellcheck source=scripts/bench/binary.sh
. "$root/scripts/bench/binary.sh"

# ---- limits: 10,000 processes and their threads ----------------------------------------
max_n=0
for n in "${NS[@]}"; do [ "$n" -gt "$max_n" ] && max_n=$n; done
need=$((max_n * 3 / 2 + $(ps -eL --no-headers | wc -l) + 1000))
ulimit -u unlimited 2>/dev/null || ulimit -u "$need" 2>/dev/null ||
    say "note: cannot raise ulimit -u ($(ulimit -u)); root is not bound by it anyway"
pid_max=$(cat /proc/sys/kernel/pid_max)
if [ "$pid_max" -lt "$need" ]; then
    OLD_PID_MAX=$pid_max
    echo "$need" >/proc/sys/kernel/pid_max || die "pid_max $pid_max < $need, cannot raise"
    say "host pid_max raised from $pid_max to $need for the run (restored at exit)"
fi
threads_max=$(cat /proc/sys/kernel/threads-max)
if [ "$threads_max" -lt "$need" ]; then
    OLD_THREADS_MAX=$threads_max
    echo "$need" >/proc/sys/kernel/threads-max ||
        die "threads-max $threads_max < $need, cannot raise"
    say "threads-max raised from $threads_max to $need for the run (restored at exit)"
fi
avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
if [ "$avail_kb" -lt $((max_n * 400 + 512 * 1024)) ]; then
    say "warning: $((avail_kb / 1024)) MiB available; a farm of $max_n python sleepers" \
        "needs about $((max_n * 400 / 1024)) MiB"
fi

# ---- the machine ---------------------------------------------------------------------
say "machine: nproc=$(nproc), CPU '$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)'," \
    "kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)," \
    "$(ps -e --no-headers | wc -l) host processes"
# A FUSE round trip wakes the daemon and the reader; on a VM, how long an idle vCPU polls
# before it halts decides much of that cost (docs/performance.md).
say "cpuidle: driver $(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo none)," \
    "guest_halt_poll_ns=$(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns 2>/dev/null || echo n/a)," \
    "daemon options: ${BENCH_RUN_ARGS:-(defaults)}"
say "busiest host processes over 1 s: $(top -b -n2 -d1 -w 200 2>/dev/null |
    awk '/^top -/ {f++} f == 2 && $1 ~ /^[0-9]+$/ && n++ < 5 {printf "%s %s%%, ", $12, $9}')"

# ---- LXCFS (optional) ----------------------------------------------------------------
LXCFS_FILE=
if [ "$WANT_LXCFS" = 1 ]; then
    if ! command -v lxcfs >/dev/null && [ "$INSTALL" = 1 ] && command -v apt-get >/dev/null; then
        say "installing lxcfs (apt-get) for the comparison"
        DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq \
            --no-install-recommends lxcfs >"$tmp/apt.log" 2>&1 ||
            say "note: apt-get install lxcfs failed (tail: $(tail -1 "$tmp/apt.log"))"
    fi
    if command -v lxcfs >/dev/null; then
        LXCFS_MNT=$tmp/lxcfs
        mkdir -p "$LXCFS_MNT"
        lxcfs -f -p "$tmp/lxcfs.pid" "$LXCFS_MNT" >"$tmp/lxcfs.log" 2>&1 &
        LXCFS_PID=$!
        for _ in $(seq 100); do
            [ -r "$LXCFS_MNT/proc/uptime" ] && grep -qF " $LXCFS_MNT " /proc/self/mounts && break
            kill -0 "$LXCFS_PID" 2>/dev/null || break
            sleep 0.1
        done
        if head -c 64 "$LXCFS_MNT/proc/uptime" >/dev/null 2>&1; then
            LXCFS_FILE=$LXCFS_MNT
            say "LXCFS $(lxcfs --version 2>&1 | head -1) serves $LXCFS_MNT (pid $LXCFS_PID)"
        else
            say "note: lxcfs did not come up (log: $(tail -1 "$tmp/lxcfs.log")); no LXCFS comparison"
        fi
    else
        say "note: lxcfs not installed and not installable; no LXCFS comparison"
    fi
fi

# ---- does the daemon answer SIGUSR1 with its statistics? ---------------------------------
# Probed on a throw-away VPS: a daemon that does not handle SIGUSR1 would die of it.
USR1_OK=0
probe_usr1() {
    local p init i
    "$VP" run -- sleep 60 >/dev/null 2>"$tmp/probe.err" &
    p=$!
    DAEMONS+=("$p")
    init=
    for i in $(seq 100); do   # wait until init has exec'd: the daemon's signals are set
        init=$(vps_inits "$p" | head -1)
        [ -n "$init" ] && [ "$(cat "/proc/$init/comm" 2>/dev/null)" = sleep ] && break
        init=
        sleep 0.05
    done
    if [ -n "$init" ]; then
        INITS+=("$init")
        kill -USR1 "$p" 2>/dev/null || true
        for i in $(seq 40); do
            grep -q 'vprocfs: requests' "$tmp/probe.err" && { USR1_OK=1; break; }
            sleep 0.05
        done
        kill -KILL "$init" 2>/dev/null || true   # ends the VPS even if the daemon died
    fi
    stop_vps "$p"
    forget_daemon "$p"
    INITS=()
}
probe_usr1
if [ "$USR1_OK" = 1 ]; then
    say "the daemon prints statistics on SIGUSR1: request counts will be measured"
else
    say "note: the daemon gave no statistics line on SIGUSR1 (a build without the" \
        "statistics dies of it, as the probe VPS did); request counts unavailable"
fi

# Answers the driver's requests for a statistics line (req.TAG -> snap.TAG).
serve_snaps() {
    local dir=$1 d=$2 err=$3 req tag before i line
    for req in "$dir"/req.*; do
        [ -e "$req" ] || continue
        tag=${req##*/req.}
        line=unavailable
        if [ "$tag" = hostps ]; then
            # For a failed check: the host's numbers of every task, with their NSpid.
            ps -e -o pid=,ppid=,pgid=,sid=,nlwp=,comm= >"$dir/host-ps.txt" 2>&1
            grep -H '^NSpid:' /proc/[0-9]*/status >"$dir/host-nspid.txt" 2>/dev/null
            line=done
        elif [ "$USR1_OK" = 1 ]; then
            before=$(grep -c 'vprocfs: requests' "$err" || true)
            kill -USR1 "$d" 2>/dev/null || true
            for i in $(seq 250); do
                [ "$(grep -c 'vprocfs: requests' "$err" || true)" -gt "$before" ] && {
                    line=$(grep 'vprocfs: requests' "$err" | tail -1)
                    break
                }
                sleep 0.02
            done
        fi
        printf '%s\n' "$line" >"$dir/.snap.$tag"
        mv "$dir/.snap.$tag" "$dir/snap.$tag"
        rm -f "$req"
    done
}

# ---- one N ---------------------------------------------------------------------------
run_one() {
    local n=$1 view=$2 dir=$tmp/n-$1-$2 d pending= line rc deadline viewarg=
    mkdir -p "$dir"
    : >"$dir/driver.log"
    [ "$view" = full ] && viewarg=--full-view
    say "N=$n, $view view: starting the VPS (host load average $(cut -d' ' -f1-3 /proc/loadavg))"
    # shellcheck disable=SC2086  # BENCH_RUN_ARGS is a list of options
    "$VP" run $viewarg ${BENCH_RUN_ARGS:-} -- "$PY" "$bench/driver.py" --dir "$dir" --n "$n" \
        --reps "$REPS" --lat-reads "$LAT_READS" --lxcfs "$LXCFS_FILE" --view "$view" \
        --idle-s "$IDLE_S" >"$dir/driver.log" 2>"$dir/daemon.err" &
    d=$!
    DAEMONS+=("$d")
    deadline=$((SECONDS + TIMEOUT))
    exec 3<"$dir/driver.log"
    while kill -0 "$d" 2>/dev/null; do
        serve_snaps "$dir" "$d" "$dir/daemon.err"
        while IFS= read -r -u 3 line; do printf '%s\n' "$pending$line" >&2; pending=; done
        pending+=$line
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "N=$n: timed out after ${TIMEOUT}s; stopping the VPS"
            stop_vps "$d"
            break
        fi
        sleep 0.05
    done
    rc=0
    wait "$d" || rc=$?
    forget_daemon "$d"
    while IFS= read -r -u 3 line; do printf '%s\n' "$pending$line" >&2; pending=; done
    [ -n "$pending$line" ] && printf '%s\n' "$pending$line" >&2
    exec 3<&-
    if [ "$rc" != 0 ] || [ ! -s "$dir/results.tsv" ]; then
        say "N=$n: the run failed (status $rc); daemon's stderr:"
        tail -n 20 "$dir/daemon.err" >&2 || true
        return 1
    fi
}

start=$SECONDS
dirs=()
failed=()
for n in "${NS[@]}"; do
    for v in "${VIEWS[@]}"; do
        if run_one "$n" "$v"; then dirs+=("$tmp/n-$n-$v"); else failed+=("$n/$v"); fi
    done
done

echo
echo "vprocfs paired benchmark ($rev): N = ${NS[*]}, BENCH_REPS=$REPS, $LAT_READS reads" \
    "per latency repetition; $(nproc) vCPU, kernel $(uname -r); $((SECONDS - start)) s"
echo "(a) kernel = procfs of the VPS's own pid namespace, (b) vprocfs = the view (full:" \
    "the daemon serves /proc; kernel: the kernel's procfs + vprocfs's virtual global files);" \
    "same processes, same run. read loop = python3: listdir /proc + open/read/close each stat."
echo
if [ ${#dirs[@]} -gt 0 ]; then "$PY" "$bench/report.py" "${dirs[@]}"; fi
if [ ${#failed[@]} -gt 0 ]; then
    echo
    echo "FAILED for N = ${failed[*]} (see the log above)"
    exit 1
fi
