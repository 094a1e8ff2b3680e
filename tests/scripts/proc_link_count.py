#!/usr/bin/env python3
"""The link count of /proc less the processes listed, at each step of a VPS's init
forking five sleepers, making two of them zombies, reaping them, then the rest: procfs
counts `nr_processes()`, so the difference stays the same (a fork counts at once, a
zombie until it is reaped). Prints the difference and the processes at each step.
"""
import os
import signal
import time


def step(what):
    links = os.stat("/proc").st_nlink
    listed = len([n for n in os.listdir("/proc") if n.isdigit()])
    print(what, links - listed, listed)


step("start")
kids = []
for _ in range(5):
    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    kids.append(pid)
step("forked 5")
for pid in kids[:2]:
    os.kill(pid, signal.SIGKILL)
for pid in kids[:2]:
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
        time.sleep(0.01)
step("2 zombies")
for pid in kids[:2]:
    os.waitpid(pid, 0)
step("2 reaped")
for pid in kids[2:]:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
step("all reaped")
