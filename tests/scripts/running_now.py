#!/usr/bin/env python3
"""The running threads of a small VPS as the kernel counts them, at the read: the init
reads /proc/stat (a first read, which a view may take its counts at), starts two
children that spin, and reads `procs_running` and `loadavg`'s running again: the two
spinners and the reader itself, 3 (the kernel counts the reader of its own /proc/stat,
running). Prints both.
"""
import os
import signal
import time


def procs_running():
    with open("/proc/stat") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("procs_running "))


def loadavg_running():
    with open("/proc/loadavg") as f:
        return int(f.read().split()[3].split("/")[0])


procs_running()
spinners = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        while True:
            pass
    spinners.append(pid)
time.sleep(0.3)
print("procs_running:", procs_running(), "loadavg running:", loadavg_running())
for pid in spinners:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
