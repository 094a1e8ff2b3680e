#!/usr/bin/env python3
"""The inode number each entry of a listing shows (`d_ino`, what `ls -i`, `find -inum`
and os.scandir's inode() read) against the one `lstat` of the entry gives (`st_ino`):
procfs makes the entry's inode to list it, so the two are the same. Per directory, how
many of its entries differ, out of how many; run in a kernel pid namespace and in a
vprocfs VPS, the outputs must be identical (tests/view_run.rs)."""
import os, threading


def differing(d):
    bad = total = 0
    for e in os.scandir(d):
        try:
            st = os.stat(e.path, follow_symlinks=False)
        except OSError:
            continue
        total += 1
        bad += e.inode() != st.st_ino
    return bad, total


stop = threading.Event()
thread = threading.Thread(target=stop.wait)
thread.start()
dirs = {"/proc": "/proc", "/proc/self": "/proc/self", "/proc/self/task": "/proc/self/task",
        "a thread's": f"/proc/self/task/{thread.native_id}", "/proc/self/fd": "/proc/self/fd",
        "/proc/self/ns": "/proc/self/ns", "/proc/sys/kernel": "/proc/sys/kernel",
        "/proc/self/net": "/proc/self/net", "/proc/1": "/proc/1"}
for label, d in dirs.items():
    print(label, differing(d))
stop.set()
thread.join()
