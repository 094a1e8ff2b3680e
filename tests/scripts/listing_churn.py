#!/usr/bin/env python3
"""`/proc` listed in several `getdents64` calls while processes come and go between them.

procfs places each process in `/proc`'s listing by its number, not by an index into a
list taken at the first call: a call goes on from the number where the last one ended,
with the processes there are then. So a process reaped between two calls is not listed
by the later one, and one forked meanwhile is (its number is higher). Run as the init of
a pid namespace and of a VPS: the outputs must be identical.

With a directory argument (`listing_churn.py ROOT`), run by a host process: ROOT is read
instead of `/proc`, either the host's `/proc` itself (the oracle) or a `vprocfs serve`
shared mount, which shows a reader outside every VPS the host's processes; others come
and go on the host meanwhile, so only the script's own children are counted, and the
descriptors are not looked at.

`fd/` and `fdinfo/` likewise place each descriptor at its number: a later call lists
the descriptors open then, past the number where the last call ended.
"""
import ctypes
import os
import signal
import sys

libc = ctypes.CDLL(None, use_errno=True)
SYS_GETDENTS64 = 217  # x86_64


def records(fd, size=1024):
    """One getdents64 call of `size` bytes: the (inode number, name) of each entry it
    returned."""
    buf = ctypes.create_string_buffer(size)
    n = libc.syscall(SYS_GETDENTS64, fd, buf, size)
    if n < 0:
        raise OSError(ctypes.get_errno(), "getdents64")
    out, at = [], 0
    while at < n:
        ino = int.from_bytes(buf.raw[at : at + 8], "little")
        reclen = int.from_bytes(buf.raw[at + 16 : at + 18], "little")
        name = buf.raw[at + 19 : at + reclen].split(b"\0", 1)[0].decode()
        out.append((ino, name))
        at += reclen
    return out


def getdents(fd, size=1024):
    """One getdents64 call of `size` bytes: the names it returned."""
    return [name for _, name in records(fd, size)]


def rest(fd):
    """The names of the calls that follow, to the end of the listing."""
    names = []
    while True:
        more = getdents(fd)
        if not more:
            return names
        names += more


def sleeper():
    pid = os.fork()
    if pid == 0:
        signal.pause()
        os._exit(0)
    return pid


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else None
    if root is None and os.readlink("/proc/self") != "1":
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    kids = [sleeper() for _ in range(150)]
    fd = os.open(root or "/proc", os.O_RDONLY | os.O_DIRECTORY)
    seen = []
    # Read until the listing is among the processes, then change them.
    while not any(n.isdigit() for n in seen):
        seen += getdents(fd)
    victims, kids = kids[-40:], kids[:-40]
    for p in victims:
        os.kill(p, signal.SIGKILL)
    for p in victims:
        os.waitpid(p, 0)
    born = [sleeper() for _ in range(5)]
    seen += rest(fd)
    os.close(fd)
    pids = [int(n) for n in seen if n.isdigit()]
    if root is None:
        print("processes listed", len(pids), "in order", pids == sorted(set(pids)))
        print("reaped before the later calls, listed", sorted(set(pids) & set(victims)))
        print("forked before the later calls, listed", sorted(set(pids) & set(born)))
    else:
        print("in order", pids == sorted(set(pids)))
        print("own children listed", len(set(pids) & set(kids)), "of", len(kids))
        print("reaped before the later calls, listed", len(set(pids) & set(victims)))
        print("forked before the later calls, listed", len(set(pids) & set(born)), "of 5")
    print("self and thread-self", [n for n in seen if n in ("self", "thread-self")])
    for p in kids + born:
        os.kill(p, signal.SIGKILL)
        os.waitpid(p, 0)
    if root is None:
        descriptors()
    return 0


def descriptors():
    fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(200)]
    for d in ("fd", "fdinfo"):
        dfd = os.open(f"/proc/self/{d}", os.O_RDONLY | os.O_DIRECTORY)
        seen = getdents(dfd)
        closed, fds = fds[-50:], fds[:-50]
        for f in closed:
            os.close(f)
        opened = [os.dup2(0, 900 + i) for i in range(3)]
        seen += rest(dfd)
        os.close(dfd)
        n = [int(x) for x in seen if x.isdigit()]
        print(d, "listed", len(n), "in order", n == sorted(set(n)),
              "closed between the calls, listed", len(set(n) & set(closed)),
              "opened past them, listed", len(set(n) & set(opened)))
        for f in opened:
            os.close(f)
        fds += [os.open("/dev/null", os.O_RDONLY) for _ in range(50)]
    for f in fds:
        os.close(f)


if __name__ == "__main__":
    sys.exit(main())
