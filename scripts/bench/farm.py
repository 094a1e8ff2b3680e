"""Process farm of the paired benchmark (scripts/bench.sh): N processes in all.

Usage: farm.py N        (prints "ready PROCS THREADS" on stdout once every process is up,
                         then sleeps until killed; the VPS's end kills the whole farm)

The farm is this master plus N-1 forked sleepers, in a mix a container would hold:
  - every 25th unit is a session: a setsid leader and 2 children in its session, one of
    them the leader of its own process group inside that session;
  - every 20th process leads a new process group that the next 4 sleepers join (set by
    the master with setpgid(pid, leader) right after each fork);
  - about 10% of the processes are multi-threaded, 2 to 4 threads each;
  - the rest are plain sleepers.
Each process renames itself (prctl PR_SET_NAME: farm-sleep, farm-thr, farm-sess, …), tells
the master it is ready through a pipe, and sleeps in pause(). Nothing reads /proc.
"""

import ctypes
import os
import random
import signal
import sys
import threading

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NAME = 15


def set_comm(name):
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()), 0, 0, 0)


def sleep_forever(extra_threads=0):
    if extra_threads:
        threading.stack_size(128 * 1024)
        for _ in range(extra_threads):
            threading.Thread(target=threading.Event().wait, daemon=True).start()
    while True:
        signal.pause()


def child(ready_w, name, setup=None, extra_threads=0, kids=()):
    """Runs in a forked child: set up, fork `kids` (callables run in grandchildren),
    report ready (one byte per process) and sleep."""
    try:
        if setup:
            setup()
        set_comm(name)
        for kid in kids:
            if os.fork() == 0:
                kid()
                os.write(ready_w, b".")
                sleep_forever()
        os.write(ready_w, b".")
        sleep_forever(extra_threads)
    except BaseException as e:  # never return into the master's loop
        os.write(2, ("farm: child %s: %s\n" % (name, e)).encode())
        os._exit(1)


def main():
    n = int(sys.argv[1])
    rnd = random.Random(n)
    set_comm("farm-master")
    ready_r, ready_w = os.pipe()
    made = 1  # the master
    threads = 0
    group_leader = None
    group_left = 0
    i = 0
    while made < n:
        i += 1
        extra = 0
        setup = None
        kids = ()
        name = "farm-sleep"
        if i % 25 == 0 and n - made >= 3:
            name = "farm-sess"
            setup = os.setsid

            def k_plain():
                set_comm("farm-sesskid")

            def k_group():
                os.setpgid(0, 0)
                set_comm("farm-sessgrp")

            kids = (k_plain, k_group)
        elif i % 20 == 1:
            name = "farm-grp"
        elif group_left > 0 and group_leader is not None:
            name = "farm-grpmem"
            group_left -= 1
        if not kids and i % 10 == 7:
            extra = rnd.randint(1, 3)
            name = "farm-thr" if name == "farm-sleep" else name
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            child(ready_w, name, setup, extra, kids)
            os._exit(0)
        # The group is set from the parent side, before the next fork: a member can only
        # join a group that already exists.
        if name == "farm-grp":
            os.setpgid(pid, pid)
            group_leader, group_left = pid, 4
        elif name == "farm-grpmem":
            os.setpgid(pid, group_leader)
        made += 1 + len(kids)
        threads += extra
    want = made - 1
    got = 0
    while got < want:
        b = os.read(ready_r, 65536)
        if not b:
            break
        got += len(b)
    print("ready %d %d" % (got + 1, made + threads), flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
