#!/usr/bin/env python3
"""How many forks `processes` in /proc/stat counts while a VPS's init forks ten children
that exit at once (reaped before the next read could see them) and starts a thread: the
kernel's `total_forks` counts every task made, threads too. Prints the difference
between the reads before and after.
"""
import os
import threading


def processes():
    with open("/proc/stat") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("processes "))


before = processes()
for _ in range(10):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
t = threading.Thread(target=lambda: None)
t.start()
t.join()
print("forks counted:", processes() - before)
