#!/usr/bin/env python3
"""Numbers in creation order: the init starts three threads, then forks a child. A pid
namespace numbers the threads 2, 3 and 4 and the child 5, and names 5 as its last pid.
A VPS that numbers densely without a kernel namespace (`--no-pidns --numbering ns`)
must do the same: a thread's fork event names its process's parent, which for the
init's threads is outside the VPS, so a view that judged threads by that parent
numbered them only when a reader met them, after the child. Prints what /proc shows
(the view's numbers: without a pid namespace `fork` returns the real pid).
"""
import os
import threading
import time

ev = threading.Event()
threads = [threading.Thread(target=ev.wait) for _ in range(3)]
for t in threads:
    t.start()
child = os.fork()
if child == 0:
    time.sleep(30)
    os._exit(0)
time.sleep(0.2)
print("processes:", sorted(int(n) for n in os.listdir("/proc") if n.isdigit()))
print("threads of init:", sorted(int(n) for n in os.listdir("/proc/self/task")))
with open("/proc/loadavg") as f:
    print("last pid:", f.read().split()[-1])
ev.set()
for t in threads:
    t.join()
os.kill(child, 9)
os.waitpid(child, 0)
