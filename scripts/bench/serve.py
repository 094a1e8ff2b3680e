"""Driver of scripts/bench-serve.sh: `serve`'s shared mount against each VPS's own.

Usage: serve.py run --dir D --n N --reps R --vprocfs BIN --master PID
                    --own SOCK SUPERVISOR --shared SOCK SUPERVISOR
                    [--placements free pinned] [--pin-cpu 0]
       serve.py report D…

`run` is started by the script once the farm (farm.py N, in a kernel pid namespace
whose init is the farm's master, real pid PID) and both daemons are up: the "own"
daemon (`vprocfs serve`, default: the VPS farm also has a mount of its own) and the
"shared" one (`vprocfs serve --no-vps-mounts`), each serving the VPS farm:tree=PID. It
starts three timing workers (worker.py), all seeing the same processes:

  (a) kernel: `nsenter -t PID -p -m`: in the farm's pid and mount namespaces, whose
      /proc is the kernel's procfs of that pid namespace (unshare --mount-proc);
  (b) own:    `vprocfs exec --socket OWN farm`: a member of the VPS, with the VPS's own
      mount over /proc (the kernel caches its entries);
  (c) shared: `vprocfs exec --socket SHARED farm`: a member, with the shared mount over
      /proc (answers depend on the reader: the kernel caches nothing).

The workers time each command from its fork to its exit (a blocking waitpid), so the
start of `vprocfs exec` or `nsenter` is not counted. For each measure: one untimed
a, b, c, then a, b, c … R times; medians. In each placement of --placements, in order:
"free" (the scheduler places everything) and "pinned" (every thread of both daemons,
supervisors and workers, via `taskset -a -p`, and the three workers with the commands
they start, on CPU --pin-cpu; the daemons are re-pinned before every measure, since a
VPS's own mount is served by threads of its own, and checked after it).

Between the placements, the FUSE requests of one `ps -ef` in (b) and in (c): the
daemon's counters (`vprocfs ctl stats`) before it and 0.3 s after it (the releases are
not waited for), divided by N; with the daemon's CPU time for it.

Writes D/results.tsv (N, placement, key, kernel, own, shared, unit), D/requests.tsv
(N, mount, counter, per-process or total value) and D/info.tsv; logs to stdout.
`report` prints the tables of the per-N directories.
"""

import argparse
import collections
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable
sys.path.insert(0, HERE)
from driver import Worker  # noqa: E402  (the paired benchmark's worker client)

MEASURES = [
    ("ps -ef", ["ps", "-ef"]),
    ("ps -eLf", ["ps", "-eLf"]),
    ("top -b -n1", ["top", "-b", "-n1"]),
]
#: The FUSE counters of `vprocfs ctl stats` that are requests; release and forget are
#: sent without waiting for the answer.
KINDS = ["lookup", "forget", "getattr", "readlink", "open", "read", "release", "flush",
         "opendir", "readdir", "releasedir", "xattr", "ioctl", "lseek", "poll", "write", "setattr",
         "access", "names", "statfs", "fsync"]
NOT_WAITED = {"release", "forget"}
SIDES = ("kernel", "own", "shared")


def log(msg):
    print("[N=%s] %s" % (ARGS.n, msg), flush=True)


# ---- the daemons -------------------------------------------------------------------

def stats(sock):
    """The daemon's counters, from `vprocfs ctl --socket SOCK stats`."""
    out = subprocess.run([ARGS.vprocfs, "ctl", "--socket", sock, "stats"], check=True,
                         stdout=subprocess.PIPE, text=True, timeout=60).stdout
    counts = {}
    for tok in out.split():
        k, _, v = tok.partition("=")
        if v.isdigit():
            counts[k] = int(v)
    if "total" not in counts:
        raise RuntimeError("ctl stats gave no counters: %r" % out[:200])
    return counts


def descendants(pid):
    """pid and every process below it (the supervisor, its worker, anything they ran)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            tasks = os.listdir("/proc/%d/task" % p)
        except OSError:
            continue
        for t in tasks:
            try:
                with open("/proc/%d/task/%s/children" % (p, t)) as f:
                    todo += [int(c) for c in f.read().split()]
            except OSError:
                pass
    return out


def cpus_of(path):
    """Cpus_allowed_list of /proc/PID or /proc/PID/task/TID, in the kernel's format."""
    try:
        with open(path + "/status") as f:
            for line in f:
                if line.startswith("Cpus_allowed_list:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def off_list(pid, want):
    """Threads of process pid whose affinity is not the CPU list `want`; total threads."""
    bad, n = 0, 0
    for t in os.listdir("/proc/%d/task" % pid):
        got = cpus_of("/proc/%d/task/%s" % (pid, t))
        if got is None:
            continue  # ended meanwhile
        n += 1
        bad += got != want
    return bad, n


def set_affinity(pid, want):
    """`taskset -a -p -c want pid` until every thread of pid is on `want` (a thread
    started meanwhile misses one call); the number of threads."""
    for _ in range(5):
        subprocess.run(["taskset", "-a", "-p", "-c", want, str(pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        bad, n = off_list(pid, want)
        if bad == 0:
            return n
        time.sleep(0.01)
    raise RuntimeError("%d of %d threads of pid %d are not on CPUs %s" % (bad, n, pid, want))


class Placement:
    """The daemons' side of a placement: pinned = every thread of every process of both
    daemons on one CPU, free = each process's own affinity again."""

    def __init__(self, supervisors):
        self.supervisors = supervisors
        self.saved = {}  # pid -> its CPU list before pinning

    def pin(self, cpu):
        done = []
        for sup in self.supervisors:
            for p in descendants(sup):
                if p not in self.saved:
                    self.saved[p] = cpus_of("/proc/%d" % p)
                done.append("%d: %d threads" % (p, set_affinity(p, str(cpu))))
        return ", ".join(done)

    def check(self, cpu):
        """Threads of the daemons not on `cpu` now (0 in a sound pinned measure)."""
        bad = 0
        for sup in self.supervisors:
            for p in descendants(sup):
                try:
                    bad += off_list(p, str(cpu))[0]
                except OSError:
                    pass
        return bad

    def free(self):
        for p, cpus in self.saved.items():
            if cpus and os.path.exists("/proc/%d" % p):
                set_affinity(p, cpus)
        self.saved = {}


# ---- the run -----------------------------------------------------------------------

def start_workers():
    worker = os.path.join(HERE, "worker.py")
    w = {
        "kernel": Worker("a", ["nsenter", "-t", str(ARGS.master), "-p", "-m", PY, worker]),
        "own": Worker("b", [ARGS.vprocfs, "exec", "--socket", ARGS.own[0], "farm", "--",
                            PY, worker]),
        "shared": Worker("c", [ARGS.vprocfs, "exec", "--socket", ARGS.shared[0], "farm",
                               "--", PY, worker]),
    }
    who = {k: v.ask(op="whoami") for k, v in w.items()}
    # Each worker must be where it is meant to be: (a) on the kernel's procfs of the
    # farm's pid namespace, (b) on the VPS's own mount, (c) on the shared one.
    farm_ns = os.readlink("/proc/%d/ns/pid" % ARGS.master)
    if who["kernel"]["fstype"] != "proc" or who["kernel"]["pidns"] != farm_ns:
        raise RuntimeError("(a) is not on the farm's procfs: /proc %s, pid ns %s (farm: %s)"
                           % (who["kernel"]["fstype"], who["kernel"]["pidns"], farm_ns))
    own_mount = own_mount_path()
    for side, path in (("own", own_mount), ("shared", ARGS.shared_mount)):
        if who[side]["dev"] != os.stat(path).st_dev:
            raise RuntimeError("(%s)'s /proc (%s, dev %d) is not %s (dev %d)" % (
                side, who[side]["fstype"], who[side]["dev"], path, os.stat(path).st_dev))
    log("(a) kernel procfs of pid ns %s; (b) /proc = %s; (c) /proc = %s" % (
        farm_ns, own_mount, ARGS.shared_mount))
    return w


def own_mount_path():
    """The VPS's own mount, as `vprocfs ctl list` of the own daemon says."""
    out = subprocess.run([ARGS.vprocfs, "ctl", "--socket", ARGS.own[0], "list"],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines()[1:]:
        f = line.split()
        if len(f) >= 7 and f[1] == "farm" and f[6] != "-":
            return f[6]
    raise RuntimeError("the own daemon lists no mount of VPS farm:\n" + out)


def check(w):
    """All three see the same processes: compared by name (the numbers differ: the
    kernel's are the pid namespace's, vprocfs's the engine's), ps itself aside."""
    names = {}
    for side in SIDES:
        lines = w[side].ask(op="lines", argv=["ps", "-e", "-o", "comm="])["lines"]
        names[side] = collections.Counter(x.strip() for x in lines if x.strip() != "ps")
    farm = sum(v for k, v in names["kernel"].items() if k.startswith("farm-"))
    rows = {s: sum(names[s].values()) for s in SIDES}
    differ = {s: sum(((names[s] - names["kernel"]) + (names["kernel"] - names[s])).values())
              for s in ("own", "shared")}
    log("check ps -e: %d farm processes; rows (ps aside) kernel %d, own %d, shared %d; "
        "differ from kernel: own %d, shared %d" % (
            farm, rows["kernel"], rows["own"], rows["shared"], differ["own"],
            differ["shared"]))
    if differ["own"] or differ["shared"]:
        log("WARNING: a view does not show the farm's processes as the kernel does")
    return [("farm_processes", farm), ("ps_rows_kernel", rows["kernel"]),
            ("ps_rows_own", rows["own"]), ("ps_rows_shared", rows["shared"]),
            ("ps_differ_own", differ["own"]), ("ps_differ_shared", differ["shared"])]


def requests(w):
    """FUSE requests of one `ps -ef` per farm process, in (b) and (c)."""
    out = []
    for side, sock in (("own", ARGS.own[0]), ("shared", ARGS.shared[0])):
        w[side].ask(op="cmd", argv=["ps", "-ef"])  # as every timed run: after one
        time.sleep(0.3)
        before = stats(sock)
        w[side].ask(op="cmd", argv=["ps", "-ef"])
        time.sleep(0.3)  # the releases are not waited for
        after = stats(sock)
        d = {k: after.get(k, 0) - before.get(k, 0) for k in KINDS + ["cpu_ms"]}
        total = sum(d[k] for k in KINDS)
        waited = total - sum(d[k] for k in NOT_WAITED)
        per = {k: d[k] / ARGS.n for k in KINDS if d[k]}
        log("requests of one ps -ef, %s mount, per process: %s — %.2f in all, %.2f waited "
            "for; daemon CPU %d ms, RSS %.1f MiB" % (
                side, ", ".join("%s %.2f" % kv for kv in per.items()), total / ARGS.n,
                waited / ARGS.n, d["cpu_ms"], after.get("rss_kb", 0) / 1024))
        out += [(side, k, "%.4f" % v) for k, v in per.items()]
        out += [(side, "all", "%.4f" % (total / ARGS.n)),
                (side, "waited", "%.4f" % (waited / ARGS.n)),
                (side, "cpu_ms", d["cpu_ms"]),
                (side, "rss_kb", after.get("rss_kb", 0))]
    return out


def measure(w, placement, key, argv, daemons):
    if placement == "pinned":
        daemons.pin(ARGS.pin_cpu)  # again: threads made since are not pinned otherwise
    for side in SIDES:  # warm-up, untimed
        w[side].ask(op="cmd", argv=argv)
    times = {s: [] for s in SIDES}
    for _ in range(ARGS.reps):
        for side in SIDES:
            times[side].append(w[side].ask(op="cmd", argv=argv)["s"] * 1000)
    if placement == "pinned":
        bad = daemons.check(ARGS.pin_cpu)
        if bad:
            raise RuntimeError("%d daemon threads left CPU %d during %s" % (
                bad, ARGS.pin_cpu, key))
    med = {s: statistics.median(times[s]) for s in SIDES}
    log("%s, %s: kernel %s, own %s, shared %s ms -> medians %.1f / %.1f / %.1f ms, "
        "own %.2fx, shared %.2fx" % (
            placement, key, fmt(times["kernel"]), fmt(times["own"]), fmt(times["shared"]),
            med["kernel"], med["own"], med["shared"], med["own"] / med["kernel"],
            med["shared"] / med["kernel"]))
    return (placement, key, "%.3f" % med["kernel"], "%.3f" % med["own"],
            "%.3f" % med["shared"], "ms")


def fmt(xs):
    return "[" + " ".join("%.1f" % x for x in xs) + "]"


def place(w, placement, daemons):
    cpu = ARGS.pin_cpu if placement == "pinned" else None
    if placement == "pinned":
        what = "on CPU %d (pid: threads) %s" % (cpu, daemons.pin(cpu))
    else:
        daemons.free()
        what = "on their own CPUs"
    got = {s: w[s].ask(op="pin", cpu=cpu)["cpus"] for s in SIDES}
    log("placement %s: the daemons' processes %s; workers on CPUs %s" % (
        placement, what, ", ".join("%s %s" % (s, ",".join(map(str, got[s]))) for s in SIDES)))


def run():
    d = ARGS.dir
    w = start_workers()
    info = check(w) + [("pin_cpu", ARGS.pin_cpu), ("reps", ARGS.reps)]
    daemons = Placement([ARGS.own[1], ARGS.shared[1]])
    results, reqs = [], []
    try:
        for i, placement in enumerate(ARGS.placements):
            place(w, placement, daemons)
            for key, argv in MEASURES:
                results.append(measure(w, placement, key, argv, daemons))
            if i == 0:
                if placement == "pinned":
                    place(w, "free", daemons)  # counted as everything else: free
                reqs = requests(w)
        if not ARGS.placements:
            reqs = requests(w)
    finally:
        daemons.free()
        for x in w.values():
            x.p.stdin.close()
        for x in w.values():
            try:
                x.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                x.p.kill()
                x.p.wait()
    with open(os.path.join(d, "results.tsv"), "w") as f:
        for r in results:
            f.write("\t".join(map(str, (ARGS.n,) + r)) + "\n")
    with open(os.path.join(d, "requests.tsv"), "w") as f:
        for r in reqs:
            f.write("\t".join(map(str, (ARGS.n,) + r)) + "\n")
    with open(os.path.join(d, "info.tsv"), "w") as f:
        for k, v in info:
            f.write("%s\t%s\n" % (k, v))


# ---- the report --------------------------------------------------------------------

def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def ms(x):
    return "{:,.1f} ms".format(x)


def report(dirs):
    rows, reqs, infos = [], {}, {}
    for d in dirs:
        rows += read_tsv(os.path.join(d, "results.tsv"))
        for r in read_tsv(os.path.join(d, "requests.tsv")):
            reqs.setdefault(r[0], {})[(r[1], r[2])] = r[3]
        infos.update({k: v for k, v in read_tsv(os.path.join(d, "info.tsv"))})
    print("Medians (ms); ratios against (a) the kernel's procfs of the same pid namespace;"
          " own/shared < 1: the VPS's own mount is faster.")
    print()
    print("| N | placement | measure | (a) kernel | (b) own mount | (b)/(a) |"
          " (c) shared mount | (c)/(a) | (b)/(c) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, placement, key, k, o, s, _unit in rows:
        k, o, s = float(k), float(o), float(s)
        print("| {:,} | {} | `{}` | {} | {} | {:.2f}× | {} | {:.2f}× | {:.2f} |".format(
            int(n), placement, key, ms(k), ms(o), o / k, ms(s), s / k, o / s))
    if reqs:
        print()
        print("FUSE requests of one `ps -ef` per farm process (counter difference / N,"
              " cached names as in every timed run); daemon CPU for that `ps -ef`:")
        print()
        show = ["lookup", "getattr", "open", "read", "release", "forget"]
        print("| N | mount | " + " | ".join(show) + " | all | waited for | daemon CPU |")
        print("|---|---|" + "---|" * (len(show) + 3))
        for n in sorted(reqs, key=int):
            for side in ("own", "shared"):
                r = reqs[n]
                if (side, "all") not in r:
                    continue
                vals = ["%.2f" % float(r.get((side, k), 0)) for k in show]
                print("| {:,} | {} | {} | {} | {} | {} ms |".format(
                    int(n), side, " | ".join(vals), "%.2f" % float(r[(side, "all")]),
                    "%.2f" % float(r[(side, "waited")]), r[(side, "cpu_ms")]))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "report":
        report(sys.argv[2:])
        sys.exit(0)
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["run"])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--vprocfs", required=True)
    ap.add_argument("--master", type=int, required=True)
    ap.add_argument("--own", nargs=2, metavar=("SOCK", "SUPERVISOR"), required=True)
    ap.add_argument("--shared", nargs=2, metavar=("SOCK", "SUPERVISOR"), required=True)
    ap.add_argument("--shared-mount", required=True)
    ap.add_argument("--placements", nargs="*", choices=["free", "pinned"],
                    default=["free", "pinned"])
    ap.add_argument("--pin-cpu", type=int, default=0)
    ARGS = ap.parse_args()
    ARGS.own[1], ARGS.shared[1] = int(ARGS.own[1]), int(ARGS.shared[1])
    try:
        run()
    except Exception as e:
        print("[N=%s] error: %s" % (ARGS.n, e), flush=True)
        sys.exit(1)
