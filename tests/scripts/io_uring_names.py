#!/usr/bin/env python3
"""Names of io_uring's threads, which carry a pid: an SQ-poll thread of a ring made
here (named `iou-sqp-<pid of its owner>`), and a task that gives itself such a name
(`iou-wrk-1`) without being one. Prints, for each thread of each, its name in `comm`,
`stat` and `status` (one line a thread). The kernel shows the owner's global pid even
inside a pid namespace; the view shows its vpid, and the other name as it is."""
import ctypes
import os
import struct
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)


def names(pid):
    for t in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        d = f"/proc/{pid}/task/{t}"
        comm = open(f"{d}/comm").read().rstrip("\n")
        stat = open(f"{d}/stat").read()
        status = [l for l in open(f"{d}/status").read().splitlines() if l.startswith("Name:")]
        print(t, comm, stat[stat.index("(") + 1 : stat.rindex(")")], status[0])


def main():
    params = (ctypes.c_char * 120)()
    struct.pack_into("IIIII", params, 0, 0, 0, 2, 0, 1000)  # IORING_SETUP_SQPOLL
    if libc.syscall(425, 4, params) < 0:  # io_uring_setup
        print("io_uring_setup failed:", os.strerror(ctypes.get_errno()), file=sys.stderr)
        return 1
    r, w = os.pipe()
    named = os.fork()
    if named == 0:
        libc.prctl(15, b"iou-wrk-1", 0, 0, 0)  # PR_SET_NAME
        os.write(w, b"x")
        time.sleep(60)
        os._exit(0)
    os.read(r, 1)
    time.sleep(0.2)
    names(os.getpid())
    names(named)
    os.kill(named, 9)
    os.waitpid(named, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
