#!/usr/bin/env python3
"""Forks children that exit at once and reaps each before reading the last pid, 300
times: the last field of /proc/loadavg and /proc/sys/kernel/ns_last_pid must name the
child just reaped, which the daemon of a view may never have seen alive, or seen only
while it was being reaped (the kernel gave it its number all the same). Prints how many
reads named another number. Run as the init of a pid namespace and of a VPS: the
outputs must be identical.
"""
import os


def last(path):
    with open(path) as f:
        return int(f.read().split()[-1])


loadavg = ns_last_pid = 0
for _ in range(300):
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
    loadavg += last("/proc/loadavg") != child
    ns_last_pid += last("/proc/sys/kernel/ns_last_pid") != child
print("reads not naming the child just reaped:", loadavg, "of 300 (loadavg),",
      ns_last_pid, "of 300 (ns_last_pid)")
