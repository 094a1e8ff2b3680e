#!/usr/bin/env python3
"""The inode number each entry of a listing shows (`d_ino`, what `ls -i`, `find -inum`
and os.scandir's inode() read) against the one `lstat` of the entry gives (`st_ino`):
procfs makes the entry's inode to list it, so the two are the same. Per directory, how
many of its entries differ, out of how many; run in a kernel pid namespace and in a
vprocfs VPS, the outputs must be identical (tests/view_run.rs)."""
import os, threading

from listing_churn import records


def dots(d):
    """Whether the `d_ino` of `.` and of `..` in the first getdents64 call on `d` are
    the `st_ino` of `d` and of its parent (procfs's `/proc` lists itself as `..`)."""
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    inos = {name: ino for ino, name in records(fd, 4096)}
    os.close(fd)
    up = os.stat(os.path.dirname(d.rstrip("/")) or "/").st_ino
    return inos.get(".") == os.stat(d).st_ino, inos.get("..") == up


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
    print(label, differing(d), "dots", dots(d))
stop.set()
thread.join()
