#!/usr/bin/env python3
"""`task/` read in several getdents calls while threads end and start between them.

procfs lists `task/` anew at each call and goes on from the thread the last call could
not return, or, if that thread is gone, by count from the leader (`first_tid`): threads
that ended are not listed, threads started since are. Run in a kernel pid namespace and
in a VPS: the outputs must be identical. Threads are named by their rank in the listing
taken before the changes, so the output does not depend on the numbers.
"""
import os
import sys
import threading
import time

# The probe beside it: one getdents64 call of a given size.
from listing_churn import getdents


def tids():
    return [int(t) for t in os.listdir("/proc/self/task")]


def wait_until(cond):
    for _ in range(500):
        if cond():
            return True
        time.sleep(0.01)
    return False


def main():
    # More threads than one 2 KiB read of the directory holds (the view lets the
    # kernel keep a listing only below that: docs/limits.md).
    # Daemon threads: a probe that fails returns at once instead of waiting for them.
    stop = [threading.Event() for _ in range(100)]
    threads = [threading.Thread(target=e.wait, daemon=True) for e in stop]
    for t in threads:
        t.start()
    first_tids = tids()
    rank = {t: i for i, t in enumerate(first_tids)}
    fd = os.open("/proc/self/task", os.O_RDONLY | os.O_DIRECTORY)
    first = getdents(fd, 320)  # a dozen entries
    print("first", [rank.get(int(n), n) if n.isdigit() else n for n in first])
    last = int(first[-1])
    # End the five threads after the last one listed, the first of them the one the
    # call could not return; start three.
    gone = [t for t in first_tids if rank[t] > rank[last]][:5]
    for t in gone:
        i = rank[t] - 1  # rank 0 is the main thread
        stop[i].set()
        threads[i].join()
    if not wait_until(lambda: not set(gone) & set(tids())):
        print("ended threads still listed:", sorted(rank[t] for t in set(gone) & set(tids())), file=sys.stderr)
        return 1
    late = threading.Event()
    started = [threading.Thread(target=late.wait, daemon=True) for _ in range(3)]
    for t in started:
        t.start()
    rest = []
    while True:
        names = getdents(fd, 320)
        if not names:
            break
        rest += names
    os.close(fd)
    print("gone", sorted(rank[t] for t in gone))
    print("rest", [rank.get(int(n), "new") for n in rest])
    for e in stop:
        e.set()
    late.set()
    for t in threads + started:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
