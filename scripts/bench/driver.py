"""Inside half of the paired benchmark (scripts/bench.sh): runs as pid 1 of the VPS.

Usage: driver.py --dir D --n N --reps R [--lat-reads K] [--lxcfs PATH]
                 [--placements free pinned] [--pin-cpu 0]

Builds the process farm (farm.py), starts two timing workers (worker.py) — (a) in a
private mount namespace with the kernel's procfs of this very pid namespace mounted on
/proc, (b) on the VPS's /proc, which is the vprocfs view — and times each measure paired
and interleaved: warm-up a, b (untimed), then a, b, a, b … R times each. Same processes,
same run. For the request counts it asks the outside half for a statistics line of the
daemon (files in D: it creates req.TAG, the outside answers snap.TAG) around one ps -ef.

Every timed measure is taken in each placement of --placements, in that order: "free"
(the scheduler places the reader and the daemon) and "pinned" (the daemon's threads,
LXCFS's, and both workers with the commands they start, all on CPU --pin-cpu). A FUSE
round trip costs ~3 µs when reader and daemon share a CPU and 55–60 µs when the reply
must wake a halted vCPU (docs/performance.md), so the two tell the daemon's own work
from the machine's wake-ups. For "pinned" the driver asks the outside half (tag "pin",
then "unpin" to restore the daemon's affinity) and each worker (op "pin"). The request
counts, the daemon's idle CPU and the check do not depend on the placement: taken once.

Writes D/results.tsv (N, placement, key, kernel, vprocfs, unit), D/requests.tsv (one
ps -ef), D/requests-eLf.tsv (one ps -eLf) and D/info.tsv; progress goes to stdout.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable


def log(msg):
    print("[N=%s %s] %s" % (ARGS.n, ARGS.view, msg), flush=True)


def place(placement, a, b):
    """Puts the daemon, LXCFS and both workers in `placement`: "pinned" pins them all to
    CPU ARGS.pin_cpu, "free" gives them back their own affinity. Raises if any of it
    fails: a measure in a half-made placement would be a wrong figure."""
    cpu = ARGS.pin_cpu if placement == "pinned" else None
    tag = "pin" if placement == "pinned" else "unpin"
    line = ask_outside(ARGS.dir, tag, 30.0, 0.02, consume=True)
    if line is None:
        raise RuntimeError("placement %s: the outside half did not answer %r in 30 s" % (
            placement, tag))
    if not line.startswith("ok"):
        raise RuntimeError("placement %s: the outside half: %s" % (placement, line))
    wa, wb = a.ask(op="pin", cpu=cpu), b.ask(op="pin", cpu=cpu)
    log("placement %s: %s; workers on CPUs (a) %s, (b) %s" % (
        placement, line[2:].strip(), cpus(wa["cpus"]), cpus(wb["cpus"])))


def cpus(xs):
    return ",".join(str(x) for x in xs)


class Worker:
    def __init__(self, name, argv):
        self.name = name
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, bufsize=1)

    def ask(self, **req):
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("worker %s died" % self.name)
        ans = json.loads(line)
        if "error" in ans:
            raise RuntimeError("worker %s: %s (%r)" % (self.name, ans["error"], req))
        return ans


def ask_outside(d, tag, timeout, poll, consume=False):
    """Asks the outside half (the script that started this VPS) for `tag` through files
    in `d` (req.TAG, answered by snap.TAG); its answer line, or None on timeout. With
    `consume`, the answer file is removed, so that the same tag can be asked again."""
    tmp = os.path.join(d, ".req." + tag)
    with open(tmp, "w") as f:
        f.write(tag + "\n")
    os.rename(tmp, os.path.join(d, "req." + tag))
    path = os.path.join(d, "snap." + tag)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(path):
            with open(path) as f:
                line = f.read().strip()
            if consume:
                os.unlink(path)
            return line
        time.sleep(poll)
    return None


def snapshot(tag, timeout=20.0):
    """Asks the outside half for one statistics line of the daemon (SIGUSR1)."""
    line = ask_outside(ARGS.dir, tag, timeout, 0.02)
    return None if line is None else parse_stats(line)


def parse_stats(line):
    if "requests" not in line:
        return None
    out = {}
    for tok in line.split("requests", 1)[1].split():
        k, _, v = tok.partition("=")
        if v.isdigit():
            out[k] = int(v)
    return out


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # pid 1: no default action
    d, n, reps = ARGS.dir, ARGS.n, ARGS.reps
    results = []  # (placement, key, kernel, view, unit)
    info = []

    t0 = time.monotonic()
    farm = subprocess.Popen([PY, os.path.join(HERE, "farm.py"), str(n)],
                            stdout=subprocess.PIPE, text=True)
    line = farm.stdout.readline().split()
    if not line or line[0] != "ready":
        raise RuntimeError("the farm did not start (status %s)" % farm.poll())
    procs, tasks = int(line[1]), int(line[2])
    log("farm up: %d processes, %d tasks, in %.1f s" % (procs, tasks, time.monotonic() - t0))
    info += [("farm_processes", procs), ("farm_tasks", tasks),
             ("farm_build_s", "%.1f" % (time.monotonic() - t0))]

    worker = os.path.join(HERE, "worker.py")
    a = Worker("a", ["unshare", "--mount", "sh", "-c",
                     'mount -t proc proc /proc && exec "$0" "$@"', PY, worker])
    b = Worker("b", [PY, worker])
    wa, wb = a.ask(op="whoami"), b.ask(op="whoami")
    log("(a) /proc is %s, pid_max %d; (b) /proc is %s" % (wa["fstype"], wa["pid_max"],
                                                         wb["fstype"]))
    if wa["fstype"] != "proc":
        raise RuntimeError("(a)'s /proc is not the kernel's procfs")
    if ARGS.view == "full" and not wb["fstype"].startswith("fuse"):
        raise RuntimeError("(b)'s /proc is not the FUSE view (--full-view)")
    if ARGS.view == "kernel" and (wb["fstype"] != "proc" or
                                  not wb["meminfo"].startswith("fuse")):
        raise RuntimeError("(b) is not the kernel pid view: /proc %s, /proc/meminfo %s" % (
            wb["fstype"], wb["meminfo"]))
    info += [("ns_pid_max", wa["pid_max"])]

    # Check: both /proc's show the same processes with the same numbers (ps itself and
    # the workers' own rows aside, which differ between the two).
    cols = ["ps", "-e", "-o", "pid=,ppid=,pgid=,sid=,nlwp=,comm="]
    rows_a = a.ask(op="lines", argv=cols)["lines"]
    rows_b = b.ask(op="lines", argv=cols)["lines"]
    sa = {r for r in rows_a if not r.split()[-1] == "ps"}
    sb = {r for r in rows_b if not r.split()[-1] == "ps"}
    diff = len(sa ^ sb)
    log("check ps -e -o pid,ppid,pgid,sid,nlwp,comm: kernel %d rows, view %d rows, "
        "%d differ" % (len(rows_a), len(rows_b), diff))
    info += [("ps_rows_kernel", len(rows_a)), ("ps_rows_view", len(rows_b)),
             ("ps_rows_differ", diff)]
    if diff:
        with open(os.path.join(d, "check-diff.txt"), "w") as f:
            f.write("# ps -e -o pid=,ppid=,pgid=,sid=,nlwp=,comm= rows only in one of the"
                    " two /proc's\n")
            for r in sorted(sa - sb, key=lambda r: int(r.split()[0])):
                f.write("kernel only: %s\n" % r)
            for r in sorted(sb - sa, key=lambda r: int(r.split()[0])):
                f.write("view only:   %s\n" % r)
        snapshot("hostps")  # the outside half saves the host's numbers beside it
        log("WARNING: the view differs from the kernel in %d rows; see check-diff.txt and"
            " host-ps.txt (BENCH_OUT keeps them)" % diff)

    for i, placement in enumerate(ARGS.placements):
        if placement == "pinned" or i > 0:
            place(placement, a, b)
        # The request counts once, in the first placement: processes in the VPS while
        # ps runs, ps included, are the rows of the check.
        timed(results, a, b, farm, placement, counts=len(rows_b) if i == 0 else None)
    if ARGS.placements[-1] == "pinned":
        place("free", a, b)  # the rest, and the idle CPU, as the daemon runs by itself
    info += [("requests_placement", ARGS.placements[0]), ("pin_cpu", ARGS.pin_cpu)]

    if ARGS.view == "kernel":
        # The daemon's CPU while nothing reads: the load sampler's cost (every 5 s it
        # counts the VPS's runnable tasks) plus the daemon's idle housekeeping.
        idle = ARGS.idle_s
        s0 = snapshot("idle0")
        time.sleep(idle)
        s1 = snapshot("idle1")
        if s0 and s1 and "cpu_ms" in s0:
            ms = s1["cpu_ms"] - s0["cpu_ms"]
            pct = 100.0 * ms / (idle * 1000.0)
            log("daemon CPU while idle for %d s: %d ms (%.2f %% of one CPU)" % (idle, ms, pct))
            info.append(("idle_cpu_pct", "%.3f" % pct))

    after_all = snapshot("end")
    if after_all:
        info.append(("rss_kb_end", after_all["rss_kb"]))
    with open(os.path.join(d, "results.tsv"), "w") as f:
        for placement, key, ma, mb, unit in results:
            f.write("%d\t%s\t%s\t%s\t%s\t%s\n" % (n, placement, key, num(ma), num(mb),
                                                 unit))
    with open(os.path.join(d, "info.tsv"), "w") as f:
        for key, v in info:
            f.write("%s\t%s\n" % (key, v))
    log("done in %.0f s" % (time.monotonic() - t0))


def timed(results, a, b, farm, placement, counts):
    """Every timed measure in `placement` (already in place); unless `counts` is None,
    also the FUSE requests of one ps -ef, per process of the `counts` shown (the same in
    any placement: taken once)."""
    d = ARGS.dir
    measures = [
        ("ps -ef", dict(op="cmd", argv=["ps", "-ef"])),
        ("ps -eLf", dict(op="cmd", argv=["ps", "-eLf"])),
        ("top -b -n1", dict(op="cmd", argv=["top", "-b", "-n1"])),
        ("read every /proc/<pid>/stat", dict(op="statloop")),
    ]
    for key, req in measures:
        paired(results, a, b, placement, key, "ms", req, req, warmup=True)
    if counts is not None:
        request_counts(b, d, counts, ["ps", "-ef"], "")
        request_counts(b, d, counts, ["ps", "-eLf"], "-eLf")

    # Per-read latency of open+read+close.
    farm_stat = "/proc/%d/stat" % farm.pid
    k = ARGS.lat_reads
    if ARGS.view == "full":
        lat = [("/proc/uptime", "/proc/uptime"), ("/proc/loadavg", "/proc/loadavg"),
               ("/proc/<pid>/stat", farm_stat)]
    else:
        # Every virtual global file the kernel has here, and its LXCFS twin.
        lat = [(p, p) for p in VIRTUAL_FILES if os.path.exists(p)]
    for key, path in lat:
        req = dict(op="lat", path=path, n=k)
        paired(results, a, b, placement, "o+r+c " + key, "us", req, req)
    if ARGS.lxcfs:
        # LXCFS's file, read by worker b, against the kernel's file (worker a).
        for key, path in lat:
            twin = lxcfs_twin(path)
            if twin and key != "/proc/<pid>/stat":
                paired(results, a, b, placement, "o+r+c LXCFS " + key, "us",
                       dict(op="lat", path=path, n=k), dict(op="lat", path=twin, n=k),
                       label_b="LXCFS")


def request_counts(b, d, shown, argv, suffix):
    """FUSE requests for one run of `argv` in the view, per process of the `shown`, and
    the daemon's RSS and CPU time, written to D/requests`suffix`.tsv: statistics lines
    before and after (0.3 s after, for the asynchronous releases). The command ran
    untimed before (the warm-up), so the names it walks are cached, as for every timed
    run."""
    cmd = " ".join(argv)
    before = snapshot("before" + suffix)
    try:
        b.ask(op="cmd", argv=argv)
    except (RuntimeError, OSError) as e:
        log("%s for the request counts: FAILED: %s" % (cmd, e))
        before = None
    time.sleep(0.3)  # let asynchronous releases arrive
    after = snapshot("after" + suffix)
    with open(os.path.join(d, "requests%s.tsv" % suffix), "w") as f:
        if before and after:
            for k in after:
                if k not in ABSOLUTE:
                    f.write("%s\t%d\t%d\n" % (k, after[k] - before[k], shown))
            for k in ABSOLUTE:
                f.write("%s\t%d\t%d\n" % (k, after.get(k, 0), shown))
            log("one %s: %d requests (%.2f per process); daemon RSS %d kB + memfds %d kB,"
                " CPU %s ms" % (
                    cmd, after["total"] - before["total"],
                    (after["total"] - before["total"]) / shown, after["rss_kb"],
                    after.get("memfd_kb", 0), after.get("cpu_ms", 0) - before.get("cpu_ms", 0)))
        else:
            f.write("unavailable\t0\t0\n")
            log("daemon statistics unavailable (no answer to SIGUSR1)")


#: The statistics that are amounts held (memory), not counts since the start.
ABSOLUTE = ("rss_kb", "memfd_kb")


#: The virtual global files of the kernel pid view (SPEC section 5).
VIRTUAL_FILES = ["/proc/meminfo", "/proc/cpuinfo", "/proc/stat", "/proc/uptime",
                 "/proc/loadavg", "/proc/swaps", "/proc/diskstats", "/proc/pressure/cpu",
                 "/sys/devices/system/cpu/online"]


def lxcfs_twin(path):
    """LXCFS's file for `path` (ARGS.lxcfs is its mount point), if it serves one."""
    if not ARGS.lxcfs:
        return None
    twin = os.path.join(ARGS.lxcfs, path.lstrip("/"))
    return twin if os.path.exists(twin) else None


def paired(results, a, b, placement, key, unit, req_a, req_b, warmup=False,
           label_b="view"):
    """Times req_a on worker a and req_b on worker b: an untimed pair first, then
    a, b, a, b … ARGS.reps times each; records the medians. A failing measure is logged
    and recorded as failed, and the run goes on."""
    field, scale = ("s", 1e3) if unit == "ms" else ("us", 1.0)
    try:
        wa, wb = a.ask(**req_a), b.ask(**req_b)
        if warmup:
            log("%s, %s: warm-up kernel %.1f %s, view %.1f %s" % (
                placement, key, wa[field] * scale, unit, wb[field] * scale, unit))
        ka, kb = [], []
        for _ in range(ARGS.reps):
            ka.append(a.ask(**req_a)[field] * scale)
            kb.append(b.ask(**req_b)[field] * scale)
    except (RuntimeError, OSError) as e:
        log("%s, %s: FAILED: %s" % (placement, key, e))
        results.append((placement, key, None, None, unit))
        return
    ma, mb = statistics.median(ka), statistics.median(kb)
    log("%s, %s: kernel %s %s, %s %s %s -> medians %.2f / %.2f %s, ratio %.2f" % (
        placement, key, fmt(ka), unit, label_b, fmt(kb), unit, ma, mb, unit, mb / ma))
    results.append((placement, key, ma, mb, unit))


def num(x):
    return "failed" if x is None else "%.4f" % x


def fmt(xs):
    return "[" + " ".join("%.1f" % x for x in xs) + "]"


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--lat-reads", type=int, default=2000)
    ap.add_argument("--lxcfs", default="", help="LXCFS's mount point")
    ap.add_argument("--view", choices=["full", "kernel"], default="full")
    ap.add_argument("--idle-s", type=int, default=30)
    ap.add_argument("--placements", nargs="+", choices=["free", "pinned"],
                    default=["free", "pinned"])
    ap.add_argument("--pin-cpu", type=int, default=0)
    ARGS = ap.parse_args()
    os.dup2(1, 2)  # the children's errors too go to the log, not to the daemon's
    try:
        main()
    except Exception as e:
        print("[N=%s] error: %s" % (ARGS.n, e), flush=True)
        sys.exit(1)
