#!/usr/bin/env python3
"""A mapping of a /proc file must never show what its reader could not read.

procfs refuses mmap (ENODEV). Through FUSE passthrough the kernel maps the daemon's
memfd instead, and a mapping outlives the open it came from. Run as the init of a VPS
(root): a child turned `nobody` maps /proc/1/stat (its code and stack addresses masked,
since nobody may not ptrace root), closes it, and then root reads the same file
(unmasked). The child's mapping must still show its own snapshot.

Prints "refused <errno name>" where mmap fails (the kernel's procfs), "unchanged" when
the mapping kept its snapshot, "changed" (with both texts) when it did not.
"""
import ctypes
import errno
import os

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
PROT_READ, MAP_SHARED, MAP_FAILED = 1, 1, ctypes.c_void_p(-1).value
PAGE = 4096


def child(ready_w, go_r):
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    fd = os.open("/proc/1/stat", os.O_RDONLY)
    text = os.read(fd, PAGE)
    addr = libc.mmap(None, PAGE, PROT_READ, MAP_SHARED, fd, 0)
    err = ctypes.get_errno()
    os.close(fd)
    if addr == MAP_FAILED:
        print("refused", errno.errorcode.get(err, err), flush=True)
        os.write(ready_w, b"x")
        return
    before = ctypes.string_at(addr, len(text))
    os.write(ready_w, b"1")
    os.read(go_r, 1)
    after = ctypes.string_at(addr, len(text))
    if after == before:
        print("unchanged", flush=True)
    else:
        print("changed\n", before, "\n", after, flush=True)


def main():
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            child(ready_w, go_r)
        finally:
            os._exit(0)
    os.read(ready_r, 1)
    # Root opens and reads the file the child mapped, a few times (each open renders it
    # anew, unmasked).
    for _ in range(3):
        with open("/proc/1/stat", "rb") as f:
            f.read()
    os.write(go_w, b"2")
    os.waitpid(pid, 0)


main()
