#!/usr/bin/env python3
"""What a VPS shows of its own tasks as its init changes them: it forks ten sleepers,
makes two of them zombies, reaps them, starts a thread, then reaps the rest, and after
each step reads the total of /proc/loadavg's "running/total" and the link count of
/proc. The kernel counts a fork at once and a zombie until it is reaped, every thread
in `nr_threads` (loadavg) and every process in `nr_processes` (the link count, less a
fixed base). Prints a line a step: the step, loadavg's total, the link count less the
processes /proc lists, and that number of processes.
"""
import os
import signal
import threading
import time


def step(what):
    with open("/proc/loadavg") as f:
        total = int(f.read().split()[3].split("/")[1])
    links = os.stat("/proc").st_nlink
    listed = len([n for n in os.listdir("/proc") if n.isdigit()])
    print(f"{what}: {total} {links - listed} {listed}")


step("start")
kids = []
for _ in range(10):
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
step("forked 10")
for pid in kids[:2]:
    os.kill(pid, signal.SIGKILL)
# Zombies until reaped: wait until both are (their state Z), without reaping them.
for pid in kids[:2]:
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
        time.sleep(0.01)
step("2 zombies")
for pid in kids[:2]:
    os.waitpid(pid, 0)
step("2 reaped")
stop = threading.Event()
t = threading.Thread(target=stop.wait)
t.start()
step("a thread more")
stop.set()
t.join()
for pid in kids[2:]:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
step("all reaped")
