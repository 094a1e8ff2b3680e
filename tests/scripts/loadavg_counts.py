#!/usr/bin/env python3
"""The total of /proc/loadavg's "running/total" as a VPS's init changes its threads: it
forks ten sleepers, makes two of them zombies, reaps them, starts a thread, and reads
the total after each step. The kernel's `nr_threads` counts a fork at once, a zombie
until it is reaped, and every thread; the VPS's total must do the same for its own
tasks (the kernel's own file, in a pid namespace, counts the host's). Prints one line a
step: the step and the total read.
"""
import os
import signal
import threading
import time


def total():
    with open("/proc/loadavg") as f:
        return int(f.read().split()[3].split("/")[1])


kids = []
for _ in range(10):
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
print("forked 10:", total())
for pid in kids[:2]:
    os.kill(pid, signal.SIGKILL)
# Zombies until reaped: wait until both are (their state Z), without reaping them.
for pid in kids[:2]:
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
        time.sleep(0.01)
print("2 zombies:", total())
for pid in kids[:2]:
    os.waitpid(pid, 0)
print("2 reaped:", total())
stop = threading.Event()
t = threading.Thread(target=stop.wait)
t.start()
print("a thread more:", total())
stop.set()
t.join()
for pid in kids[2:]:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
print("all reaped:", total())
