"""Prints the final table of the paired benchmark from the per-N result directories
that driver.py filled (results.tsv, requests.tsv, info.tsv).

Usage: report.py DIR…
"""

import os
import sys

KINDS = ["lookup", "forget", "getattr", "readlink", "open", "read", "release", "flush",
         "opendir", "readdir", "releasedir", "xattr", "ioctl", "total"]


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def main():
    dirs = sys.argv[1:]
    rows, reqs, infos = [], {}, {}
    for d in dirs:
        n = os.path.basename(d.rstrip("/")).split("-")[-1]
        rows += read_tsv(os.path.join(d, "results.tsv"))
        reqs[n] = read_tsv(os.path.join(d, "requests.tsv"))
        infos[n] = dict(read_tsv(os.path.join(d, "info.tsv")))

    print("Final table (medians; ratio = vprocfs / kernel):")
    print()
    hdr = "%-7s %-36s %14s %14s %7s" % ("N", "measure", "kernel", "vprocfs", "ratio")
    print(hdr)
    print("-" * len(hdr))
    by = {}
    for n, key, ka, kb, unit in rows:
        label = "%s (%s)" % (key, unit)
        if key.startswith("o+r+c LXCFS"):
            label += " *"
        if "failed" in (ka, kb):
            print("%-7s %-36s %14s %14s %7s" % (n, label, "failed", "failed", "-"))
            continue
        ka, kb = float(ka), float(kb)
        by[(n, key)] = (ka, kb)
        print("%-7s %-36s %11.2f %-2s %11.2f %-2s %6.2fx" % (n, label, ka, unit, kb, unit,
                                                             kb / ka))
    if any(k.startswith("o+r+c LXCFS") for _, k in by):
        print("* this row's 4th column is LXCFS's /proc/uptime, not vprocfs")

    for n, lines in reqs.items():
        print()
        if not lines or lines[0][0] == "unavailable":
            print("N=%s: FUSE requests for one ps -ef: unavailable (the daemon gave no "
                  "statistics on SIGUSR1)" % n)
            continue
        shown = int(lines[0][2])
        got = {k: int(v) for k, v, _ in lines}
        print("N=%s: FUSE requests served for ONE ps -ef, per process shown (%d "
              "processes):" % (n, shown))
        print("  " + "  ".join("%s=%.2f" % (k, got.get(k, 0) / shown)
                               for k in KINDS if got.get(k, 0) or k == "total"))
        print("  absolute: " + " ".join("%s=%d" % (k, got[k]) for k in KINDS
                                        if got.get(k, 0)))
        rss = got.get("rss_kb", 0)
        end = infos[n].get("rss_kb_end")
        print("  daemon RSS after ps -ef: %d kB (%.1f MiB)%s" % (
            rss, rss / 1024.0,
            "; at the end of the run: %s kB" % end if end else ""))
        if "cpu_ms" in got:
            # Between the two statistics lines: the ps -ef, the 0.3 s after it, and any
            # polling of /dev/fuse (vprocfs run --spin) that followed the last request.
            print("  daemon CPU time for that ps -ef: %d ms (%.1f us per request)" % (
                got["cpu_ms"], 1000.0 * got["cpu_ms"] / max(got.get("total", 0), 1)))
        info = infos[n]
        if info:
            print("  farm: %s processes, %s tasks (built in %s s); ps -e check: "
                  "kernel %s rows, view %s rows, %s differ" % (
                      info.get("farm_processes"), info.get("farm_tasks"),
                      info.get("farm_build_s"), info.get("ps_rows_kernel"),
                      info.get("ps_rows_view"), info.get("ps_rows_differ")))

    print()
    print("Targets:")
    for n in sorted({n for n, _ in by}, key=int):
        for key in ("ps -ef", "top -b -n1"):
            if (n, key) in by:
                ka, kb = by[(n, key)]
                print("  N=%-6s %-34s %5.2fx  (<= 3.0x)  %s" % (
                    n, key + " vs kernel", kb / ka, met(kb / ka <= 3.0)))
        lines = reqs.get(n) or []
        if lines and lines[0][0] != "unavailable":
            got = {k: int(v) for k, v, _ in lines}
            per = got["total"] / int(lines[0][2])
            print("  N=%-6s %-34s %5.2f   (<= 6)    %s" % (
                n, "FUSE requests per process, ps -ef", per, met(per <= 6)))
            if int(n) >= 10000:
                mib = got["rss_kb"] / 1024.0
                print("  N=%-6s %-34s %5.1f   (<= 64)   %s" % (
                    n, "daemon RSS, MiB", mib, met(mib <= 64)))
        lx = by.get((n, "o+r+c LXCFS /proc/uptime"))
        if lx:
            for key in ("o+r+c /proc/uptime", "o+r+c /proc/<pid>/stat"):
                if (n, key) in by:
                    r = by[(n, key)][1] / lx[1]
                    print("  N=%-6s %-34s %5.2f   (<= 0.5)  %s" % (
                        n, key[6:] + " / LXCFS uptime", r, met(r <= 0.5)))
        else:
            print("  N=%-6s LXCFS comparison: not measured (no LXCFS)" % n)
        differ = infos.get(n, {}).get("ps_rows_differ")
        if differ is not None:
            print("  N=%-6s %-34s %5s   (= 0)     %s" % (
                n, "check: ps -e rows view != kernel", differ,
                "ok" if differ == "0" else "FAILED (the view is wrong)"))


def met(ok):
    return "met" if ok else "NOT met"


if __name__ == "__main__":
    main()
