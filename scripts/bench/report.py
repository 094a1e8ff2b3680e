"""Prints the final tables of the paired benchmark, one per placement (free, pinned), and
the targets per placement, from the per-N result directories that driver.py filled
(results.tsv, requests.tsv, requests-eLf.tsv, info.tsv).

Usage: report.py DIR…
"""

import os
import sys

KINDS = ["lookup", "forget", "getattr", "readlink", "open", "read", "release", "flush",
         "opendir", "readdir", "releasedir", "xattr", "ioctl", "lseek", "poll", "write", "setattr", "access",
         "names", "statfs", "fsync", "total"]


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


#: What each placement means (scripts/bench.sh, BENCH_PLACEMENTS); %s: the CPU.
PLACEMENTS = {
    "free": "the scheduler places the readers, the daemon and LXCFS",
    "pinned": "the timed commands, both workers, every thread of the daemon and of LXCFS"
              " on CPU %s",
}

#: Target of the pinned placement, full view: µs per open+read+close of a process's stat.
PINNED_STAT_US = 15.0


def main():
    dirs = sys.argv[1:]
    rows, reqs, reqs_elf, infos, runs = [], {}, {}, {}, []
    for d in dirs:
        # n-N-VIEW
        _, n, view = os.path.basename(d.rstrip("/")).split("-", 2)
        runs.append((n, view))
        for r in read_tsv(os.path.join(d, "results.tsv")):
            if len(r) == 5:  # N, key, kernel, vprocfs, unit: a run from before placements
                r.insert(1, "free")
            rows.append([n, view] + r[1:])
        reqs[(n, view)] = read_tsv(os.path.join(d, "requests.tsv"))
        reqs_elf[(n, view)] = read_tsv(os.path.join(d, "requests-eLf.tsv"))
        infos[(n, view)] = dict(read_tsv(os.path.join(d, "info.tsv")))
    runs.sort(key=lambda r: (int(r[0]), r[1]))
    pin_cpu = {i.get("pin_cpu") for i in infos.values()} - {None}
    pin_cpu = ", ".join(sorted(pin_cpu)) or "?"
    placements = []
    for r in rows:
        if r[2] not in placements:
            placements.append(r[2])

    by = {}  # (n, view, placement, key) -> (kernel, vprocfs)
    w = max([40] + [len("%s (%s) *" % (r[3], r[6])) for r in rows])  # the measure column
    for placement in placements:
        print("Final table, %s placement (%s; medians; ratio = vprocfs / kernel):" % (
            placement, PLACEMENTS.get(placement, "?").replace("%s", pin_cpu)))
        print()
        hdr = "%-7s %-7s %-*s %12s %12s %7s" % ("N", "view", w, "measure", "kernel",
                                                 "vprocfs", "ratio")
        print(hdr)
        print("-" * len(hdr))
        lxcfs = False
        for n, view, pl, key, ka, kb, unit in rows:
            if pl != placement:
                continue
            label = "%s (%s)" % (key, unit)
            if key.startswith("o+r+c LXCFS"):
                label += " *"
                lxcfs = True
            if "failed" in (ka, kb):
                print("%-7s %-7s %-*s %12s %12s %7s" % (n, view, w, label, "failed",
                                                        "failed", "-"))
                continue
            ka, kb = float(ka), float(kb)
            by[(n, view, placement, key)] = (ka, kb)
            print("%-7s %-7s %-*s %9.2f %-2s %9.2f %-2s %6.2fx" % (
                n, view, w, label, ka, unit, kb, unit, kb / ka))
        if lxcfs:
            print("* this row's 4th column is LXCFS's same file, not vprocfs")
        print()

    for n, view in runs:
        lines = reqs.get((n, view)) or []
        info = infos.get((n, view), {})
        where = info.get("requests_placement")
        where = " (%s placement; they do not depend on it)" % where if where else ""
        if not lines or lines[0][0] == "unavailable":
            print("N=%s %s view: FUSE requests for one ps -ef: unavailable (the daemon gave"
                  " no statistics on SIGUSR1)" % (n, view))
        else:
            shown = int(lines[0][2])
            got = {k: int(v) for k, v, _ in lines}
            print("N=%s %s view: FUSE requests served for ONE ps -ef, per process shown (%d "
                  "processes)%s:" % (n, view, shown, where))
            print("  " + "  ".join("%s=%.2f" % (k, got.get(k, 0) / shown)
                                   for k in KINDS if got.get(k, 0) or k == "total"))
            print("  absolute: " + " ".join("%s=%d" % (k, got[k]) for k in KINDS
                                            if got.get(k, 0)))
            rss = got.get("rss_kb", 0)
            memfd = got.get("memfd_kb", 0)
            end = info.get("rss_kb_end")
            print("  daemon RSS after ps -ef: %d kB + memfds %d kB (%.1f MiB)%s" % (
                rss, memfd, (rss + memfd) / 1024.0,
                "; at the end of the run: %s kB" % end if end else ""))
            if "memfds_made" in got:
                print("  memfds for that ps -ef, per process: %.2f made, %.2f spares rewritten"
                      % (got["memfds_made"] / shown, got.get("memfds_rewritten", 0) / shown))
            if "follow_starts" in got:
                print("  following the reader's CPU for that ps -ef: %d bursts followed, %d moves,"
                      " %d ended starved" % (got["follow_starts"], got.get("follow_moves", 0),
                                             got.get("follow_starved", 0)))
            if "cpu_ms" in got:
                # Between the two statistics lines: the ps -ef, the 0.3 s after it, and
                # any polling of /dev/fuse (vprocfs run --spin) that followed the last
                # request.
                print("  daemon CPU time for that ps -ef: %d ms (%.1f us per request)" % (
                    got["cpu_ms"], 1000.0 * got["cpu_ms"] / max(got.get("total", 0), 1)))
        elf = reqs_elf.get((n, view)) or []
        if elf and elf[0][0] != "unavailable":
            shown = int(elf[0][2])
            got = {k: int(v) for k, v, _ in elf}
            print("  ONE ps -eLf, per process shown: " + "  ".join(
                "%s=%.2f" % (k, got.get(k, 0) / shown)
                for k in KINDS if got.get(k, 0) or k == "total")
                + "  (waited for: %.2f)" % (waited_for(got) / shown))
        if info:
            print("  farm: %s processes, %s tasks (built in %s s); ps -e check: "
                  "kernel %s rows, view %s rows, %s differ" % (
                      info.get("farm_processes"), info.get("farm_tasks"),
                      info.get("farm_build_s"), info.get("ps_rows_kernel"),
                      info.get("ps_rows_view"), info.get("ps_rows_differ")))
            if "idle_cpu_pct" in info:
                print("  daemon CPU while idle (load sampler included): %s %% of one CPU"
                      % info["idle_cpu_pct"])
        print()

    for placement in placements:
        print("Targets, %s placement:" % placement)
        for n, view in runs:
            placed_targets(by, n, view, placement)
    if "pinned" not in placements and any(v == "full" for _, v in runs):
        print("  (o+r+c /proc/<pid>/stat <= %.0f us is a target of the pinned placement,"
              " which was not measured)" % PINNED_STAT_US)
    print("Targets that do not depend on the placement:")
    for n, view in runs:
        other_targets(reqs, infos, n, view)


def placed_targets(by, n, view, placement):
    """The time targets of one run in one placement."""
    limit = 3.0 if view == "full" else 1.1
    for key in ("ps -ef", "ps -eLf", "top -b -n1"):
        if (n, view, placement, key) in by:
            ka, kb = by[(n, view, placement, key)]
            print("  N=%-6s %-7s %-38s %5.2fx (<= %.1fx) %s" % (
                n, view, key + " vs kernel", kb / ka, limit, met(kb / ka <= limit)))
    if view == "full" and placement == "pinned":
        key = "o+r+c /proc/<pid>/stat"
        if (n, view, placement, key) in by:
            us = by[(n, view, placement, key)][1]
            print("  N=%-6s %-7s %-38s %5.1f  (<= %.0f)   %s" % (
                n, view, key + ", us", us, PINNED_STAT_US, met(us <= PINNED_STAT_US)))
    lxcfs = False
    for (n2, v2, p2, key), (_, lx) in sorted(by.items()):
        if (n2, v2, p2) != (n, view, placement) or not key.startswith("o+r+c LXCFS "):
            continue
        lxcfs = True
        ours = by.get((n, view, placement, "o+r+c " + key[len("o+r+c LXCFS "):]))
        if ours:
            r = ours[1] / lx
            print("  N=%-6s %-7s %-38s %5.2f  (<= 0.33) %s" % (
                n, view, key[len("o+r+c LXCFS "):] + " / LXCFS", r, met(r <= 0.34)))
    if not lxcfs:
        print("  N=%-6s %-7s LXCFS comparison: not measured (no LXCFS)" % (n, view))


def waited_for(got):
    """The requests a reader waited for: all but releases and forgets, which the kernel
    sends without waiting."""
    return (got["total"] - got.get("release", 0) - got.get("releasedir", 0)
            - got.get("forget", 0))


def other_targets(reqs, infos, n, view):
    """The targets of one run that no placement changes: requests, RSS, idle CPU, check."""
    lines = reqs.get((n, view)) or []
    if view == "full" and lines and lines[0][0] != "unavailable":
        got = {k: int(v) for k, v, _ in lines}
        shown = int(lines[0][2])
        waited = waited_for(got)
        print("  N=%-6s %-7s %-38s %5.2f  (<= 4)    %s" % (
            n, view, "requests waited for per process", waited / shown,
            met(waited / shown <= 4)))
        print("  N=%-6s %-7s %-38s %5.2f  (<= 9)    %s" % (
            n, view, "requests per process, all", got["total"] / shown,
            met(got["total"] / shown <= 9)))
        if int(n) >= 10000:
            mib = (got["rss_kb"] + got.get("memfd_kb", 0)) / 1024.0
            print("  N=%-6s %-7s %-38s %5.1f  (<= 64)   %s" % (
                n, view, "daemon RSS with memfds, MiB", mib, met(mib <= 64)))
    info = infos.get((n, view), {})
    if "idle_cpu_pct" in info:
        pct = float(info["idle_cpu_pct"])
        print("  N=%-6s %-7s %-38s %5.2f%% (<= 1%%)   %s" % (
            n, view, "daemon CPU idle (load sampler)", pct, met(pct <= 1.0)))
    differ = info.get("ps_rows_differ")
    if differ is not None:
        print("  N=%-6s %-7s %-38s %5s  (= 0)     %s" % (
            n, view, "check: ps -e rows view != kernel", differ,
            "ok" if differ == "0" else "FAILED (the view is wrong)"))


def met(ok):
    return "met" if ok else "NOT met"


if __name__ == "__main__":
    main()
