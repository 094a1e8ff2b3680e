"""Inside half of the scale benchmark (scripts/bench-scale.sh): runs as pid 1 of a VPS.

Usage: scale.py --dir D --n N --reps R --mode busy  [--cycles C]
       scale.py --dir D --n N --reps R --mode linear
       scale.py --report DIR…          (prints the summary of finished runs)

Builds a farm of N processes (farm.py) in the VPS and starts the two timing workers of
the paired benchmark (worker.py): (a) on the kernel's procfs of this pid namespace, (b) on
the view. Every timed `ps -ef` is one a, b pair (kernel, then view).

--mode busy: blocks of R pairs on an idle host and on a host with a farm of processes
outside the VPS, in the order idle, busy, idle, busy … idle (C busy blocks). The outside
half (bench-scale.sh) starts and ends the host farm when asked through files in D
(req.TAG -> snap.TAG, as in driver.py): hostup, hostdown; `cpu` asks for the daemon's CPU
time (utime+stime of the `vprocfs run` process), read around every block.

--mode linear: R pairs on the idle host, for the time per process at this N.

Writes D/scale.tsv (mode, N, condition, rep, kernel_ms, view_ms) and D/info.tsv.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable
sys.path.insert(0, HERE)
from driver import Worker, ask_outside  # noqa: E402


def log(msg):
    print("[scale %s N=%s] %s" % (ARGS.mode, ARGS.n, msg), flush=True)


def outside(tag, timeout=900.0):
    """Asks the outside half for `tag`; returns its answer as a dict of key=value."""
    line = ask_outside(ARGS.dir, tag, timeout, 0.05, consume=True)
    if line is None:
        raise RuntimeError("no answer from the outside half to %s" % tag)
    return dict(tok.partition("=")[::2] for tok in line.split())


def ps_ef(w):
    return w.ask(op="cmd", argv=["ps", "-ef"])["s"] * 1e3


def rows(w):
    return len(w.ask(op="lines", argv=["ps", "-e", "-o", "pid="])["lines"])


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # pid 1: no default action
    d, n, reps = ARGS.dir, ARGS.n, ARGS.reps
    t0 = time.monotonic()
    farm = subprocess.Popen([PY, os.path.join(HERE, "farm.py"), str(n)],
                            stdout=subprocess.PIPE, text=True)
    line = farm.stdout.readline().split()
    if not line or line[0] != "ready":
        raise RuntimeError("the farm did not start (status %s)" % farm.poll())
    log("farm up: %s processes, %s tasks, in %.1f s" % (line[1], line[2],
                                                       time.monotonic() - t0))
    worker = os.path.join(HERE, "worker.py")
    a = Worker("a", ["unshare", "--mount", "sh", "-c",
                     'mount -t proc proc /proc && exec "$0" "$@"', PY, worker])
    b = Worker("b", [PY, worker])
    wa, wb = a.ask(op="whoami"), b.ask(op="whoami")
    if wa["fstype"] != "proc" or not wb["fstype"].startswith("fuse"):
        raise RuntimeError("the two /proc's are not kernel procfs and the FUSE view")
    info = [("farm_n", n)]
    ra, rb = rows(a), rows(b)
    log("ps -e rows: kernel %d, view %d" % (ra, rb))
    info += [("rows_kernel_idle", ra), ("rows_view_idle", rb)]
    ps_ef(a), ps_ef(b)  # warm-up
    out = []  # (condition, rep, kernel_ms, view_ms)

    def block(cond):
        c0 = float(outside("cpu")["cpu_ms"]) if ARGS.mode == "busy" else 0.0
        ka, kb = [], []
        for i in range(reps):
            ka.append(ps_ef(a))
            kb.append(ps_ef(b))
            out.append((cond, i, ka[-1], kb[-1]))
        c1 = float(outside("cpu")["cpu_ms"]) if ARGS.mode == "busy" else 0.0
        log("%s: kernel [%s] ms, view [%s] ms -> medians %.1f / %.1f ms; daemon CPU %.1f ms"
            " per view ps -ef" % (cond, " ".join("%.0f" % x for x in ka),
                                  " ".join("%.0f" % x for x in kb), statistics.median(ka),
                                  statistics.median(kb), (c1 - c0) / reps))
        info.append(("daemon_cpu_ms_per_ps_%s" % cond, "%.2f" % ((c1 - c0) / reps)))

    if ARGS.mode == "linear":
        block("idle")
    else:
        for c in range(ARGS.cycles):
            block("idle")
            up = outside("hostup")
            if up.get("ok") != "1":
                raise RuntimeError("the host farm did not start: %r" % up)
            log("host farm up: %s host processes (%s tasks), built in %s s; the daemon"
                " spent %s ms CPU on it, settled after %s s; one listing of the host's /proc"
                " %s ms" % (up["host_procs"], up["host_tasks"], up["build_s"],
                            up["daemon_cpu_ms"], up["settle_s"], up["host_listdir_ms"]))
            info += [("hostup_%d_%s" % (c, k), v) for k, v in up.items()]
            rka, rkb = rows(a), rows(b)
            log("ps -e rows on the busy host: kernel %d, view %d" % (rka, rkb))
            info += [("rows_kernel_busy_%d" % c, rka), ("rows_view_busy_%d" % c, rkb)]
            block("busy")
            down = outside("hostdown")
            if down.get("ok") != "1":
                raise RuntimeError("the host farm did not end: %r" % down)
            log("host farm ended in %s s (%s host processes left); daemon CPU %s ms; one"
                " listing of the host's /proc %s ms" % (
                    down["teardown_s"], down["host_procs"], down["daemon_cpu_ms"],
                    down["host_listdir_ms"]))
            info += [("hostdown_%d_%s" % (c, k), v) for k, v in down.items()]
        block("idle")
    with open(os.path.join(d, "scale.tsv"), "w") as f:
        for cond, i, ka, kb in out:
            f.write("%s\t%d\t%s\t%d\t%.3f\t%.3f\n" % (ARGS.mode, n, cond, i, ka, kb))
    with open(os.path.join(d, "info.tsv"), "w") as f:
        for k, v in info:
            f.write("%s\t%s\n" % (k, v))
    log("done in %.0f s" % (time.monotonic() - t0))


def report(dirs):
    med = statistics.median
    busy, linear = [], []
    for d in dirs:
        info = {}
        try:
            with open(os.path.join(d, "info.tsv")) as f:
                for line in f:
                    k, _, v = line.rstrip("\n").partition("\t")
                    info[k] = v
            with open(os.path.join(d, "scale.tsv")) as f:
                recs = [line.rstrip("\n").split("\t") for line in f]
        except OSError:
            continue
        by = {}
        for mode, n, cond, _i, ka, kb in recs:
            by.setdefault(cond, ([], []))
            by[cond][0].append(float(ka))
            by[cond][1].append(float(kb))
        (busy if recs and recs[0][0] == "busy" else linear).append((d, info, by))
    for d, info, by in busy:
        ik, iv = by["idle"]
        bk, bv = by["busy"]
        hp = [v for k, v in info.items() if k.endswith("_host_procs") and "hostup" in k]
        print("A %s-process VPS (view: %s ps -e rows idle, %s busy), host with and without"
              " a farm of %s processes outside it; ps -ef, median of %d idle / %d busy"
              " runs (blocks idle, busy, … idle)" % (
                  info.get("farm_n"), info.get("rows_view_idle"),
                  info.get("rows_view_busy_0"), "/".join(hp) or "?", len(iv), len(bv)))
        print("  %-22s %12s %12s %8s" % ("", "idle host", "busy host", "busy/idle"))
        print("  %-22s %9.1f ms %9.1f ms %7.2fx" % ("kernel procfs (in ns)", med(ik), med(bk),
                                                    med(bk) / med(ik)))
        print("  %-22s %9.1f ms %9.1f ms %7.2fx   target <= 1.20x: %s" % (
            "vprocfs view", med(iv), med(bv), med(bv) / med(iv),
            "met" if med(bv) / med(iv) <= 1.2 else "NOT met"))
        print("  view/kernel: idle %.2fx, busy %.2fx; daemon CPU per view ps -ef: idle %s ms,"
              " busy %s ms" % (med(iv) / med(ik), med(bv) / med(bk),
                               "/".join(v for k, v in info.items()
                                        if k.startswith("daemon_cpu_ms_per_ps_idle")) or "?",
                               info.get("daemon_cpu_ms_per_ps_busy", "?")))
        for k in sorted(info):
            if k.startswith(("hostup_", "hostdown_")) and k.endswith(("_build_s", "_daemon_cpu_ms", "_listdir_ms")):
                print("  %s = %s" % (k, info[k]))
    if linear:
        print("Linearity, idle host: ps -ef through the view (and the kernel's procfs)")
        print("  %-8s %6s %12s %14s %12s %14s" % ("N", "rows", "view", "view/process",
                                                 "kernel", "kernel/process"))
        for d, info, by in sorted(linear, key=lambda x: int(x[1]["farm_n"])):
            k, v = by["idle"]
            r = int(info["rows_view_idle"])
            print("  %-8s %6d %9.1f ms %11.1f us %9.1f ms %11.1f us   (%d runs)" % (
                info["farm_n"], r, med(v), med(v) / r * 1e3, med(k), med(k) / r * 1e3,
                len(v)))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--report":
        report(sys.argv[2:])
        sys.exit(0)
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--mode", choices=["busy", "linear"], required=True)
    ap.add_argument("--cycles", type=int, default=2)
    ARGS = ap.parse_args()
    os.dup2(1, 2)
    try:
        main()
    except Exception as e:
        print("[scale] error: %s" % e, flush=True)
        sys.exit(1)
