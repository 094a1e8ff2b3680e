#!/usr/bin/env python3
"""What a fresh walk to a process's entries answers once the process is reaped.

Run as the init of a pid namespace and of a VPS: the outputs must be identical. For
each way into a process's directory (open and read a file, stat, readlink, list,
access, open a thread's file), a child is reached that way while alive, lives on for
a while (long enough for the daemon to settle between the two, as a reader that
watches a long-lived process does), is killed and waited for, and is reached the same
way again by path: procfs's walk fails at `/proc/<n>` (`ENOENT`), whatever was cached
of the name. Then the same with the child reached once more as a zombie, before the
wait, where procfs still shows it (a thread of it aside: gone with its exit).
"""
import errno
import os
import signal
import sys
import threading
import time

import hostile_tree  # beside this script


def read(path):
    with open(path, "rb") as f:
        f.read()


def thread_file(pid):
    tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
    read(f"/proc/{pid}/task/{tids[0]}/stat")


WAYS = {
    "read stat": lambda p: read(f"/proc/{p}/stat"),
    "read status": lambda p: read(f"/proc/{p}/status"),
    "read cmdline": lambda p: read(f"/proc/{p}/cmdline"),
    "read comm": lambda p: read(f"/proc/{p}/comm"),
    "read environ": lambda p: read(f"/proc/{p}/environ"),
    "stat dir": lambda p: os.stat(f"/proc/{p}"),
    "stat entry": lambda p: os.stat(f"/proc/{p}/stat"),
    "readlink exe": lambda p: os.readlink(f"/proc/{p}/exe"),
    "list dir": lambda p: os.listdir(f"/proc/{p}"),
    "list task": lambda p: os.listdir(f"/proc/{p}/task"),
    "access": lambda p: os.access(f"/proc/{p}/stat", os.R_OK) or "refused",
    "thread file": thread_file,
}


def outcome(way, pid):
    try:
        r = WAYS[way](pid)
        return r if isinstance(r, str) else "ok"
    except OSError as e:
        return errno.errorcode[e.errno]


def child():
    """A process with one more thread, asleep until killed."""
    return hostile_tree.child(
        lambda w: threading.Thread(target=lambda: time.sleep(3600), daemon=True).start()
    )


def main():
    if os.readlink("/proc/self") != "1":
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    for lived in (0.0, 0.4):
        for way in WAYS:
            pid = child()
            alive = outcome(way, pid)
            time.sleep(lived)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            reaped = outcome(way, pid)
            # Again, reached once more as a zombie (waited for without reaping it, so
            # as not to look through /proc), where procfs still shows it.
            pid = child()
            outcome(way, pid)
            time.sleep(lived)
            os.kill(pid, signal.SIGKILL)
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            zombie = outcome(way, pid) if way != "thread file" else "-"
            os.waitpid(pid, 0)
            print(f"lived {lived}: {way}: alive {alive}, reaped {reaped}; zombie {zombie},",
                  "reaped", outcome(way, pid))
    return 0


if __name__ == "__main__":
    sys.exit(main())
