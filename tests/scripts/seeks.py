#!/usr/bin/env python3
"""`lseek` on /proc files, every kind of it, one line per file.

procfs's seq files (`stat`, `status`, `maps`, `meminfo`…) refuse `SEEK_END`,
`SEEK_DATA` and `SEEK_HOLE` (EINVAL); its other files (`cmdline`, `environ`, `auxv`)
seek as a file of size 0. Run as the init of a pid namespace and of a VPS: the outputs
must be identical.

A file whose attributes the kernel keeps (the global files, `fdinfo/<n>`) is seeked to
its end by FUSE from its kept size of 0, without asking the daemon (docs/limits.md):
those are asked `SEEK_DATA` and `SEEK_HOLE` only.
"""
import errno
import os

PROCESS_FILES = ["stat", "status", "cmdline", "environ", "maps", "comm", "mountinfo",
                 "auxv", "limits", "io", "oom_score_adj", "task/1/stat"]
KEPT_ATTRIBUTES = ["/proc/uptime", "/proc/meminfo", "/proc/loadavg", "/proc/self/fdinfo/0"]


def call(f):
    try:
        return f()
    except OSError as e:
        return errno.errorcode[e.errno]


def seeks(path, to_end):
    fd = os.open(path, os.O_RDONLY)
    try:
        out = [call(lambda: os.lseek(fd, 0, os.SEEK_END))] if to_end else []
        return out + [
            call(lambda: os.lseek(fd, 5, os.SEEK_SET)),
            call(lambda: len(os.read(fd, 3))),
            call(lambda: os.lseek(fd, 0, os.SEEK_CUR)),
            call(lambda: os.lseek(fd, -2, os.SEEK_CUR)),
            call(lambda: os.lseek(fd, 0, os.SEEK_DATA)),
            call(lambda: os.lseek(fd, 0, os.SEEK_HOLE)),
            call(lambda: os.lseek(fd, 3, os.SEEK_DATA)),
            call(lambda: os.lseek(fd, -1, os.SEEK_SET)),
            call(lambda: os.fstat(fd).st_size),
        ]
    finally:
        os.close(fd)


for name in PROCESS_FILES:
    print(name, seeks(f"/proc/1/{name}", True))
for path in KEPT_ATTRIBUTES:
    print(path, seeks(path, False))
