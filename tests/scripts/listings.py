"""Directory listings are taken when they are read: a rewound /proc lists a process
forked since, /proc/self/fd lists the descriptor the listing is read through, and
psutil's num_fds counts it."""
import os
import time

import psutil

fd = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
before = set(os.listdir(fd))
pid = os.fork()
if pid == 0:
    time.sleep(30)
    os._exit(0)
# os.listdir(fd) rewinds the same open directory.
after = set(os.listdir(fd))
print("new processes after a rewind:", len([n for n in after - before if n.isdigit()]))
print("fd:", sorted(os.listdir("/proc/self/fd"), key=int))
print("num_fds:", psutil.Process().num_fds())
d = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
print("own listing fd listed:", str(d) in os.listdir(d))
os.kill(pid, 9)
os.waitpid(pid, 0)
