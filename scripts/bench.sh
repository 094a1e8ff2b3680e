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
# Every timed measure is taken in two placements (BENCH_PLACEMENTS), one after the other
# in the same VPS: "free", where the scheduler places the readers and the daemon, and
# "pinned", where both workers (hence every command they time), all threads of the
# vprocfs daemon and those of LXCFS run on one CPU (BENCH_PIN_CPU): a FUSE round trip
# costs ~3 µs when reader and daemon share a CPU and 55–60 µs when the reply must wake a
# halted vCPU (this VM), so "pinned" shows the daemon's own work. The driver asks this
# script to pin the daemon and LXCFS (`taskset -a -p`, every thread) and to give them
# back their own affinity after the pinned measures; each worker pins itself.
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
#                         for A/B runs of the daemon's settings (pinned, a polling FUSE
#                         thread competes with the reader for the one CPU)
#   BENCH_VIEWS="full kernel"  which views to measure
#   BENCH_IDLE_S=30       seconds of idle daemon CPU measured (kernel pid view)
#   BENCH_PLACEMENTS="free pinned"  which placements, in this order (free and/or pinned)
#   BENCH_PIN_CPU=0       the CPU of the pinned placement
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
read -r -a PLACEMENTS <<<"${BENCH_PLACEMENTS:-free pinned}"
PIN_CPU=${BENCH_PIN_CPU:-0}
if [ $# -gt 0 ]; then NS=("$@"); else NS=(1000 10000); fi
for v in "${VIEWS[@]}"; do
    case $v in full | kernel) ;; *) echo "bench: BENCH_VIEWS: '$v' is not full or kernel" >&2; exit 1 ;; esac
done
PINNED=0
[ ${#PLACEMENTS[@]} -gt 0 ] || { echo "bench: BENCH_PLACEMENTS is empty (free, pinned or both)" >&2; exit 1; }
for p in "${PLACEMENTS[@]}"; do
    case $p in
        free) ;;
        pinned) PINNED=1 ;;
        *) echo "bench: BENCH_PLACEMENTS: '$p' is not free or pinned" >&2; exit 1 ;;
    esac
done
if [ "${#PLACEMENTS[@]}" -gt 2 ] || { [ "${#PLACEMENTS[@]}" = 2 ] && [ "${PLACEMENTS[0]}" = "${PLACEMENTS[1]}" ]; }; then
    echo "bench: BENCH_PLACEMENTS: '${PLACEMENTS[*]}' names a placement twice" >&2
    exit 1
fi

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (namespaces, FUSE mounts)"
for n in "${NS[@]}"; do
    if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 10 ]; then die "N must be an integer >= 10, got '$n'"; fi
done
for tool in ps top unshare python3 mount; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/setup.sh installs it)"
done
# The real interpreter, not a version manager's shim (a shell script per start).
PY=$(python3 -c 'import sys; print(sys.executable)')
if [ "$PINNED" = 1 ]; then
    command -v taskset >/dev/null || die "taskset is missing (util-linux), needed for BENCH_PLACEMENTS=pinned"
    [[ $PIN_CPU =~ ^(0|[1-9][0-9]*)$ ]] || die "BENCH_PIN_CPU must be a CPU number, got '$PIN_CPU'"
    "$PY" -c 'import os, sys; sys.exit(int(sys.argv[1]) not in os.sched_getaffinity(0))' "$PIN_CPU" ||
        die "BENCH_PIN_CPU=$PIN_CPU is not one of the CPUs this script may run on" \
            "($(awk '/^Cpus_allowed_list:/ {print $2}' /proc/$$/status))"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vprocfs-bench.XXXXXX")
DAEMONS=()
INITS=()
LXCFS_PID=
LXCFS_MNT=
# shellcheck source=scripts/bench/limits.sh
. "$root/scripts/bench/limits.sh"

# shellcheck source=scripts/bench/vps.sh
. "$root/scripts/bench/vps.sh"

# Drops an ended daemon from the cleanup list (its pid may be reused by then).
forget_daemon() {
    local keep=() x
    for x in "${DAEMONS[@]}"; do [ "$x" = "$1" ] || keep+=("$x"); done
    DAEMONS=("${keep[@]}")
}

cleanup() {
    local d
    set +e
    for d in "${DAEMONS[@]}"; do stop_vps "$d"; done
    for d in "${INITS[@]}"; do kill -KILL "$d" 2>/dev/null; done
    if [ -n "$LXCFS_PID" ]; then
        kill -TERM "$LXCFS_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$LXCFS_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$LXCFS_PID" 2>/dev/null
        wait "$LXCFS_PID" 2>/dev/null
    fi
    if [ -n "$LXCFS_MNT" ] && grep -qF " $LXCFS_MNT " /proc/self/mounts; then
        umount -l "$LXCFS_MNT" 2>/dev/null
    fi
    restore_limits
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
max_n=$(largest "${NS[@]}")
raise_limits "$max_n"
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
    local p init
    "$VP" run -- sleep 60 >/dev/null 2>"$tmp/probe.err" &
    p=$!
    DAEMONS+=("$p")
    init=
    for _ in $(seq 100); do   # wait until init has exec'd: the daemon's signals are set
        init=$(vps_inits "$p" | head -1)
        [ -n "$init" ] && [ "$(cat "/proc/$init/comm" 2>/dev/null)" = sleep ] && break
        init=
        sleep 0.05
    done
    if [ -n "$init" ]; then
        INITS+=("$init")
        kill -USR1 "$p" 2>/dev/null || true
        for _ in $(seq 40); do
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

# ---- placements: pinning the daemon and LXCFS -------------------------------------------
# "pid:cpulist" of each process pinned by place_pinned, with the affinity to restore.
PIN_SAVED=()
PLACE_ANSWER=

# The CPUs task directory $1 (/proc/PID or /proc/PID/task/TID) may run on, in the
# kernel's format ("0-1").
cpus_of() { awk '/^Cpus_allowed_list:/ {print $2}' "$1/status" 2>/dev/null || true; }

# Sets the affinity of every thread of process $1 to CPU list $2 (given in the kernel's
# format: that is how each thread is checked), again if a thread started or ended
# meanwhile. Prints the number of threads, or why it failed (status 1).
set_affinity() {
    local pid=$1 list=$2 t n bad err=
    for _ in 1 2 3 4 5; do
        err=$(taskset -a -p -c "$list" "$pid" 2>&1 >/dev/null) || true
        n=0 bad=0
        for t in /proc/"$pid"/task/*; do
            [ -d "$t" ] || continue
            n=$((n + 1))
            [ "$(cpus_of "$t")" = "$list" ] || bad=$((bad + 1))
        done
        if [ "$n" -gt 0 ] && [ "$bad" = 0 ]; then echo "$n"; return 0; fi
        [ "$n" = 0 ] && { echo "process $pid is gone"; return 1; }
        sleep 0.01
    done
    echo "$bad of $n threads are not on CPUs $list${err:+ (taskset: ${err//$'\n'/ })}"
    return 1
}

# The "pinned" placement: every thread of the daemon $1 and of LXCFS on CPU $PIN_CPU,
# their affinity saved in PIN_SAVED. Sets PLACE_ANSWER ("ok …" or "error: …").
place_pinned() {
    local d=$1 p what list got out='' lx='' err=''
    place_free  # nothing should be pinned still; if it is, start afresh
    [ -n "$LXCFS_FILE" ] && lx=$LXCFS_PID
    for p in "$d" $lx; do
        what=daemon
        [ "$p" = "$lx" ] && what=LXCFS
        list=$(cpus_of "/proc/$p")
        if [ -z "$list" ]; then
            err="the $what (pid $p) is gone"
        else
            PIN_SAVED+=("$p:$list")
            got=$(set_affinity "$p" "$PIN_CPU") ||
                err="cannot pin the $what (pid $p) to CPU $PIN_CPU: $got"
        fi
        if [ -n "$err" ]; then
            place_free
            PLACE_ANSWER="error: $err (undone: $PLACE_ANSWER)"
            return
        fi
        out+="${out:+, }$what pid $p: $got threads, CPUs $list -> $PIN_CPU"
    done
    PLACE_ANSWER="ok $out"
}

# Back to "free": every process in PIN_SAVED gets its saved affinity again (with
# `lxcfs-only`, only LXCFS: the daemon has ended and its pid may be reused). Sets
# PLACE_ANSWER.
place_free() {
    local e p list got out='' failed=''
    for e in "${PIN_SAVED[@]}"; do
        p=${e%%:*} list=${e#*:}
        [ "${1:-}" = lxcfs-only ] && [ "$p" != "$LXCFS_PID" ] && continue
        if got=$(set_affinity "$p" "$list"); then
            out+="${out:+, }pid $p: $got threads on CPUs $list"
        else
            failed+="${failed:+; }pid $p: $got"
        fi
    done
    PIN_SAVED=()
    if [ -n "$failed" ]; then
        PLACE_ANSWER="error: cannot restore the affinity: $failed"
    else
        PLACE_ANSWER="ok ${out:-nothing was pinned}"
    fi
}

# Answers the driver's requests (req.TAG -> snap.TAG): a statistics line of the daemon,
# the host's numbers (hostps), or a placement (pin, unpin).
serve_snaps() {
    local dir=$1 d=$2 err=$3 req tag before line
    for req in "$dir"/req.*; do
        [ -e "$req" ] || continue
        tag=${req##*/req.}
        line=unavailable
        if [ "$tag" = hostps ]; then
            # For a failed check: the host's numbers of every task, with their NSpid.
            ps -e -o pid=,ppid=,pgid=,sid=,nlwp=,comm= >"$dir/host-ps.txt" 2>&1
            grep -H '^NSpid:' /proc/[0-9]*/status >"$dir/host-nspid.txt" 2>/dev/null
            line="done"
        elif [ "$tag" = pin ]; then
            place_pinned "$d"   # the driver logs the answer
            line=$PLACE_ANSWER
        elif [ "$tag" = unpin ]; then
            place_free
            line=$PLACE_ANSWER
        elif [ "$USR1_OK" = 1 ]; then
            before=$(grep -c 'vprocfs: requests' "$err" || true)
            kill -USR1 "$d" 2>/dev/null || true
            for _ in $(seq 250); do
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
    local n=$1 view=$2 dir=$tmp/n-$1-$2 d pending='' line rc deadline viewarg=''
    mkdir -p "$dir"
    : >"$dir/driver.log"
    [ "$view" = full ] && viewarg=--full-view
    say "N=$n, $view view: starting the VPS (host load average $(cut -d' ' -f1-3 /proc/loadavg))"
    # shellcheck disable=SC2086  # BENCH_RUN_ARGS is a list of options
    "$VP" run $viewarg ${BENCH_RUN_ARGS:-} -- "$PY" "$bench/driver.py" --dir "$dir" --n "$n" \
        --reps "$REPS" --lat-reads "$LAT_READS" --lxcfs "$LXCFS_FILE" --view "$view" \
        --idle-s "$IDLE_S" --placements "${PLACEMENTS[@]}" --pin-cpu "$PIN_CPU" \
        >"$dir/driver.log" 2>"$dir/daemon.err" &
    d=$!
    DAEMONS+=("$d")
    deadline=$((SECONDS + TIMEOUT))
    exec 3<"$dir/driver.log"
    while kill -0 "$d" 2>/dev/null; do
        # The driver's lines first: they come before its request in the log.
        while IFS= read -r -u 3 line; do printf '%s\n' "$pending$line" >&2; pending=; done
        pending+=$line
        serve_snaps "$dir" "$d" "$dir/daemon.err"
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
    # A run that ended in the pinned placement leaves LXCFS pinned: its CPUs back.
    if [ ${#PIN_SAVED[@]} -gt 0 ]; then
        place_free lxcfs-only
        [ "$PLACE_ANSWER" = "ok nothing was pinned" ] ||
            say "N=$n: the run ended in the pinned placement; LXCFS: $PLACE_ANSWER"
    fi
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
echo "Placements (BENCH_PLACEMENTS=\"${PLACEMENTS[*]}\"): free = the scheduler places readers," \
    "daemon and LXCFS; pinned = both workers (so every timed command), every thread of the" \
    "daemon and of LXCFS on CPU $PIN_CPU."
echo
if [ ${#dirs[@]} -gt 0 ]; then "$PY" "$bench/report.py" "${dirs[@]}"; fi
if [ ${#failed[@]} -gt 0 ]; then
    echo
    echo "FAILED for N = ${failed[*]} (see the log above)"
    exit 1
fi
