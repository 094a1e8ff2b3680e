#!/usr/bin/env python3
"""Pages spliced from a /proc file into a pipe keep the text they had.

With FUSE passthrough the kernel splices a process file's backing memfd into a pipe by
reference (shmem's splice is zero-copy), and the daemon rewrites a backing file no reader
holds for later opens (src/backing/: spares). Run as init of a VPS (procfs itself
refuses to splice a process's files, so there is no oracle): the script splices its own
/proc/1/stat into a pipe, closes the file, then opens and reads the file again and
again, its text changing as it runs (state and CPU time), so that the daemon lets the
first backing file go and rewrites it for a later open. The pipe must still hold the
first text.

Prints "unchanged" or "changed" with both texts.
"""
import os
import sys


def main():
    r, w = os.pipe()
    fd = os.open("/proc/1/stat", os.O_RDONLY)
    first = os.pread(fd, 4096, 0)
    n = os.splice(fd, w, 4096, offset_src=0)
    os.close(fd)
    # Other opens of the same file, each of another text: each lets the previous
    # backing file go, and later ones rewrite the oldest let go.
    x = 0
    for i in range(200):
        for _ in range(20000):
            x += 1
        with open("/proc/1/stat", "rb") as f:
            f.read()
    spliced = os.read(r, 4096)
    if n == len(first) and spliced == first:
        print("unchanged")
    else:
        print("changed", n, len(first))
        print(first)
        print(spliced)
    return 0


if __name__ == "__main__":
    sys.exit(main())
