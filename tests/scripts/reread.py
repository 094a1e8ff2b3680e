#!/usr/bin/env python3
"""Reads global /proc files again through a descriptor held open, as `top`, `vmstat` and
`free -s` do (libproc2 keeps `/proc/stat`, `/proc/meminfo` and `/proc/vmstat` open and
reads them again after `lseek(fd, 0)`), and prints whether the second read shows the new
text. procfs makes a seq file's text anew at every read from offset 0, so on the kernel's
/proc every line says "new"; a view that serves the text of the open says "old".

For each file the probe waits (burning CPU, touching memory, at most 10 s) until a fresh
open shows a text other than the first, so that there is something new to see, then reads
the held descriptor again: with lseek + read, and with pread at 0. A read where the last
one ended goes on in the same text (seq_file): the probe reads a file in small pieces and
checks that they form one text of the kernel's format.
"""
import os
import sys
import time


def whole(fd, pread=False):
    if pread:
        return os.pread(fd, 1 << 20, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    out = b""
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return out
        out += chunk


def fresh(name):
    with open(name, "rb") as f:
        return f.read()


def main():
    hog = []
    for name in ("/proc/stat", "/proc/meminfo", "/proc/uptime"):
        fd = os.open(name, os.O_RDONLY)
        first = whole(fd)
        deadline = time.monotonic() + 10
        while fresh(name) == first and time.monotonic() < deadline:
            end = time.monotonic() + 0.01
            while time.monotonic() < end:
                pass
            block = bytearray(1 << 20)
            block[::4096] = b"x" * len(block[::4096])
            hog.append(block)
        if fresh(name) == first:
            print(name, "never changed")
            continue
        # A fresh text may differ in a count that comes and goes (procs_running, memory
        # freed and taken again); 30 ms of CPU more moves the ones that only grow (CPU
        # time, uptime, idle), so that a text made now cannot equal the first one.
        end = time.monotonic() + 0.03
        while time.monotonic() < end:
            pass
        again = whole(fd)
        by_pread = os.pread(fd, 1 << 20, 0)
        os.close(fd)
        print(name, "lseek+read:", "new" if again != first else "old",
              "pread:", "new" if by_pread != first else "old")
    # uptime in 3-byte reads, 20 ms apart: one text "%.2f %.2f\n", not pieces of several.
    fd = os.open("/proc/uptime", os.O_RDONLY)
    pieces = []
    while True:
        chunk = os.read(fd, 3)
        if not chunk:
            break
        pieces.append(chunk)
        time.sleep(0.02)
    os.close(fd)
    text = b"".join(pieces).decode()
    up, idle = text.split()
    ok = text.endswith("\n") and all(len(v.split(".")[1]) == 2 for v in (up, idle))
    print("uptime in pieces:", "one text" if ok else f"torn {text!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
