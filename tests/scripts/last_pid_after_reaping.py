#!/usr/bin/env python3
"""Forks children that exit at once and reaps each before reading the last pid, 300
times: the last field of /proc/loadavg must name the child just reaped, which the
daemon of a view never saw alive (the kernel gave it its number all the same). Prints
how many reads named another number. Run as the init of a pid namespace and of a VPS:
the outputs must be identical.
"""
import os

apart = 0
for _ in range(300):
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
    with open("/proc/loadavg") as f:
        apart += int(f.read().split()[-1]) != child
print("reads of loadavg not naming the child just reaped:", apart, "of 300")
