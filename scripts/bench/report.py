"""Prints the final table of the paired benchmark from the per-N result directories
that driver.py filled (results.tsv, requests.tsv, info.tsv).

Usage: report.py DIR…
"""

import os
import sys

KINDS = ["lookup", "forget", "getattr", "readlink", "open", "read", "release", "flush",
         "opendir", "readdir", "releasedir", "xattr", "ioctl", "poll", "write", "setattr", "names", "total"]


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def main():
    dirs = sys.argv[1:]
    rows, reqs, infos, runs = [], {}, {}, []
    for d in dirs:
        # n-N-VIEW
        _, n, view = os.path.basename(d.rstrip("/")).split("-", 2)
        runs.append((n, view))
        rows += [[n, view] + r[1:] for r in read_tsv(os.path.join(d, "results.tsv"))]
        reqs[(n, view)] = read_tsv(os.path.join(d, "requests.tsv"))
        infos[(n, view)] = dict(read_tsv(os.path.join(d, "info.tsv")))

    print("Final table (medians; ratio = vprocfs / kernel):")
    print()
    hdr = "%-7s %-7s %-40s %12s %12s %7s" % ("N", "view", "measure", "kernel", "vprocfs",
                                              "ratio")
    print(hdr)
    print("-" * len(hdr))
    by = {}
    for n, view, key, ka, kb, unit in rows:
        label = "%s (%s)" % (key, unit)
        if key.startswith("o+r+c LXCFS"):
            label += " *"
        if "failed" in (ka, kb):
            print("%-7s %-7s %-40s %12s %12s %7s" % (n, view, label, "failed", "failed", "-"))
            continue
        ka, kb = float(ka), float(kb)
        by[(n, view, key)] = (ka, kb)
        print("%-7s %-7s %-40s %9.2f %-2s %9.2f %-2s %6.2fx" % (
            n, view, label, ka, unit, kb, unit, kb / ka))
    if any(k.startswith("o+r+c LXCFS") for _, _, k in by):
        print("* this row's 4th column is LXCFS's same file, not vprocfs")

    for (n, view), lines in reqs.items():
        print()
        if not lines or lines[0][0] == "unavailable":
            print("N=%s %s view: FUSE requests for one ps -ef: unavailable (the daemon gave"
                  " no statistics on SIGUSR1)" % (n, view))
            continue
        shown = int(lines[0][2])
        got = {k: int(v) for k, v, _ in lines}
        print("N=%s %s view: FUSE requests served for ONE ps -ef, per process shown (%d "
              "processes):" % (n, view, shown))
        print("  " + "  ".join("%s=%.2f" % (k, got.get(k, 0) / shown)
                               for k in KINDS if got.get(k, 0) or k == "total"))
        print("  absolute: " + " ".join("%s=%d" % (k, got[k]) for k in KINDS
                                        if got.get(k, 0)))
        rss = got.get("rss_kb", 0)
        end = infos[(n, view)].get("rss_kb_end")
        print("  daemon RSS after ps -ef: %d kB (%.1f MiB)%s" % (
            rss, rss / 1024.0,
            "; at the end of the run: %s kB" % end if end else ""))
        if "cpu_ms" in got:
            # Between the two statistics lines: the ps -ef, the 0.3 s after it, and any
            # polling of /dev/fuse (vprocfs run --spin) that followed the last request.
            print("  daemon CPU time for that ps -ef: %d ms (%.1f us per request)" % (
                got["cpu_ms"], 1000.0 * got["cpu_ms"] / max(got.get("total", 0), 1)))
        info = infos[(n, view)]
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
    print("Targets:")
    for n, view in sorted(runs, key=lambda r: (int(r[0]), r[1])):
        limit = 3.0 if view == "full" else 1.1
        for key in ("ps -ef", "ps -eLf", "top -b -n1"):
            if (n, view, key) in by:
                ka, kb = by[(n, view, key)]
                print("  N=%-6s %-7s %-38s %5.2fx (<= %.1fx) %s" % (
                    n, view, key + " vs kernel", kb / ka, limit, met(kb / ka <= limit)))
        lines = reqs.get((n, view)) or []
        if view == "full" and lines and lines[0][0] != "unavailable":
            got = {k: int(v) for k, v, _ in lines}
            shown = int(lines[0][2])
            waited = got["total"] - got.get("release", 0) - got.get("forget", 0)
            print("  N=%-6s %-7s %-38s %5.2f  (<= 4)    %s" % (
                n, view, "requests waited for per process", waited / shown,
                met(waited / shown <= 4)))
            print("  N=%-6s %-7s %-38s %5.2f  (<= 9)    %s" % (
                n, view, "requests per process, all", got["total"] / shown,
                met(got["total"] / shown <= 9)))
            if int(n) >= 10000:
                mib = got["rss_kb"] / 1024.0
                print("  N=%-6s %-7s %-38s %5.1f  (<= 64)   %s" % (
                    n, view, "daemon RSS, MiB", mib, met(mib <= 64)))
        for (n2, v2, key), (_, lx) in sorted(by.items()):
            if (n2, v2) != (n, view) or not key.startswith("o+r+c LXCFS "):
                continue
            ours = by.get((n, view, "o+r+c " + key[len("o+r+c LXCFS "):]))
            if ours:
                r = ours[1] / lx
                print("  N=%-6s %-7s %-38s %5.2f  (<= 0.33) %s" % (
                    n, view, key[len("o+r+c LXCFS "):] + " / LXCFS", r, met(r <= 0.34)))
        if not any(k.startswith("o+r+c LXCFS") for n2, v2, k in by if (n2, v2) == (n, view)):
            print("  N=%-6s %-7s LXCFS comparison: not measured (no LXCFS)" % (n, view))
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
