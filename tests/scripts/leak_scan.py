#!/usr/bin/env python3
"""Scans the view for real pids of processes outside the VPS.

Run as init of a VPS (`vprocfs run`, with a pid namespace). LEAK_PIDS names real pids of
host processes. Every readable file of the view (/proc itself, every member's directory,
its task directories) is read, and for each of those numbers that occurs in a file as a
whole word, the same file is read from a procfs instance of the same namespace (the
kernel's own answer). A number the view shows but the kernel does not is a leak. Files
the kernel itself leaks in are counted separately when the view hides them.
"""
import os
import re
import subprocess
import sys
import tempfile

SKIP = {"mem", "pagemap", "kcore", "kmsg", "clear_refs", "kpagecount", "kpageflags",
        "kpagecgroup", "page_idle", "sysrq-trigger", "trace_pipe", "uprobe_events",
        "oom_score_adj", "oom_adj", "coredump_filter", "autogroup", "timerslack_ns",
        "sched", "smaps", "smaps_rollup", "numa_maps"}
LIMIT = 1 << 20


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read(LIMIT)
    except OSError:
        return None


def walk(root, rel, depth, out):
    path = os.path.join(root, rel) if rel else root
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        r = os.path.join(rel, name) if rel else name
        full = os.path.join(root, r)
        if name in SKIP:
            continue
        try:
            st = os.lstat(full)
        except OSError:
            continue
        if os.path.islink(full):
            continue
        if os.path.isdir(full):
            if depth > 0 and name not in ("sys", "net", "bus", "fs", "irq", "tty", "driver", "sysvipc", "dynamic_debug", "pressure"):
                walk(root, r, depth - 1, out)
        elif st.st_mode & 0o444:
            out.append(r)


def main():
    pids = [p for p in os.environ["LEAK_PIDS"].split() if p]
    # A pid is a decimal word: not digits inside a hex number (`stack`'s offsets,
    # `+0x1320/0x150`, are no pids).
    words = {p: re.compile(rb"(?<![0-9A-Fa-fx])" + p.encode() + rb"(?![0-9A-Fa-f])") for p in pids}
    # Some members to look at: sleepers, one with a thread, one in its own session.
    import threading
    import time
    kids = [subprocess.Popen(["sleep", "60"]) for _ in range(3)]
    kids.append(subprocess.Popen(["setsid", "sleep", "60"]))
    threading.Thread(target=lambda: time.sleep(60), daemon=True).start()
    time.sleep(0.2)
    kernel = tempfile.mkdtemp(prefix="leak-scan-proc-")
    subprocess.run(["mount", "-t", "proc", "proc", kernel], check=True)
    try:
        files = []
        walk("/proc", "", 3, files)
        files += ["sys/kernel/ns_last_pid", "sys/kernel/pid_max"]
        leaks, scanned = [], 0
        for rel in sorted(set(files)):
            view = read(os.path.join("/proc", rel))
            if view is None:
                continue
            scanned += 1
            for p, w in words.items():
                if w.search(view):
                    k = read(os.path.join(kernel, rel)) or b""
                    if not w.search(k):
                        leaks.append(f"{rel}: {p}")
        print("scanned", scanned)
        for l in leaks:
            print("leak", l)
    finally:
        for k in kids:
            k.kill()
            k.wait()
        subprocess.run(["umount", kernel], check=True)
        os.rmdir(kernel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
