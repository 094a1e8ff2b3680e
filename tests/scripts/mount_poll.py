#!/usr/bin/env python3
"""A reader waiting for a change of its mount table, as systemd and container runtimes
wait: it opens its `mountinfo`, reads it, polls it, mounts a tmpfs, polls again (procfs
wakes it with POLLPRI and POLLERR), reads it again from offset 0 (the new mount is
there), polls once more (nothing new), and reads the `mountinfo` of a child it has
reaped (procfs's open file holds the mount namespace, from offset 0 again too). Then
the same from a cgroup namespace of its own (`unshare -C`, a runtime's), whose
`mountinfo` shows cgroup roots from there.

Run as root, as the init of a pid namespace (the kernel's oracle) and of a VPS: the two
outputs must be identical. Each round runs in a mount namespace of its own, so that
nothing it mounts is seen elsewhere.
"""
import ctypes
import os
import select
import sys
import tempfile

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
MS_REC, MS_PRIVATE = 0x4000, 0x40000
NAMES = [(select.POLLIN, "IN"), (select.POLLPRI, "PRI"), (select.POLLERR, "ERR"),
         (select.POLLRDNORM, "RDNORM"), (select.POLLHUP, "HUP")]


def events(fd, timeout_ms):
    p = select.poll()
    p.register(fd, select.POLLIN | select.POLLPRI | select.POLLERR)
    got = p.poll(timeout_ms)
    bits = got[0][1] if got else 0
    return " ".join(name for bit, name in NAMES if bits & bit) or "none"


def read_all(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    out = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            return out
        out += chunk


def round_(label, flags):
    if libc.unshare(CLONE_NEWNS | flags) != 0:
        print(label, "unshare failed", os.strerror(ctypes.get_errno()))
        return
    libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    where = tempfile.mkdtemp(prefix="mount-poll-")
    fd = os.open("/proc/self/mountinfo", os.O_RDONLY)
    before = read_all(fd)
    print(label, "mounted before:", where.encode() in before)
    print(label, "poll before a change:", events(fd, 0))
    if libc.mount(b"vprocfs-test", where.encode(), b"tmpfs", 0, None) != 0:
        print(label, "mount failed", os.strerror(ctypes.get_errno()))
        return
    print(label, "poll after a mount:", events(fd, 2000))
    after = read_all(fd)
    print(label, "mounted after a read from 0:", where.encode() in after)
    print(label, "poll once read:", events(fd, 0))
    print(label, "the same from 0 again:", read_all(fd) == after)
    os.close(fd)
    # A process's mountinfo stays readable, from 0 again too, once the process is gone:
    # the open file holds its mount namespace.
    child = os.fork()
    if child == 0:
        os.read(os.pipe()[0], 1)  # blocks until killed
        os._exit(0)
    fd = os.open(f"/proc/{child}/mountinfo", os.O_RDONLY)
    os.kill(child, 9)
    os.waitpid(child, 0)
    try:
        print(label, "a reaped process's, read:", where.encode() in read_all(fd),
              "and again from 0:", where.encode() in read_all(fd))
    except OSError as e:
        print(label, "a reaped process's:", os.strerror(e.errno))
    os.close(fd)
    libc.umount2(where.encode(), 0)
    os.rmdir(where)


def main():
    if os.getpid() != 1:
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    for label, flags in (("[own cgroup namespace: no]", 0),
                         ("[own cgroup namespace: yes]", CLONE_NEWCGROUP)):
        child = os.fork()
        if child == 0:
            round_(label, flags)
            sys.stdout.flush()
            os._exit(0)
        os.waitpid(child, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
