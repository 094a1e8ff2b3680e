#!/usr/bin/env python3
"""Processes of every scheduling class, as `ps` and /proc show them: `SCHED_FIFO` and
`SCHED_RR` (real-time, which the kernel refuses to tasks of a cpu cgroup without
real-time runtime), `SCHED_BATCH`, `SCHED_IDLE`, nice values either way, and a thread
whose class is not its process's.

Run as the init of a pid namespace (`unshare --pid --fork --mount-proc`) and of a VPS
(`vprocfs run`): the outputs must be identical. Each process is set up by `chrt` or
`nice` before it execs `sleep`; one whose class is refused prints the refusal.
"""
import os
import subprocess
import sys
import threading
import time

import settle


def main():
    if os.readlink("/proc/self") != "1":
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    settle.kernel_proc()
    setups = [
        ["chrt", "-f", "5"],
        ["chrt", "-r", "3"],
        ["chrt", "-f", "99"],
        ["chrt", "-b", "0"],
        ["chrt", "-i", "0"],
        ["nice", "-n", "7"],
        ["nice", "-n", "-5"],
        ["chrt", "-b", "0", "nice", "-n", "19"],
    ]
    started = []
    for i, setup in enumerate(setups):
        run = subprocess.run(setup + ["true"], capture_output=True, text=True)
        print("$", " ".join(setup), "true: exit", run.returncode, run.stderr.strip())
        p = subprocess.Popen(setup + ["sleep", str(1000 + i)], stdin=subprocess.DEVNULL)
        started.append(p)
    # This process's second thread: round-robin at 2 while the process stays normal.
    ready = threading.Event()

    def rr_thread():
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(2))
            print("thread: SCHED_RR 2")
        except OSError as e:
            print("thread:", e.strerror)
        ready.set()
        time.sleep(1000)

    threading.Thread(target=rr_thread, daemon=True).start()
    ready.wait()
    if not settle.wait_settled(settle.descendants(os.getpid())):
        print("the tree did not settle", file=sys.stderr)
        return 1
    sys.stdout.flush()
    for argv in [
        ["ps", "-eo", "pid,cls,policy,rtprio,pri,opri,pri_api,ni,stat,comm,args"],
        ["ps", "-eLo", "pid,lwp,cls,rtprio,pri,ni,comm"],
    ]:
        run = subprocess.run(argv, capture_output=True, text=True)
        print("$", " ".join(argv))
        sys.stdout.write(run.stdout + run.stderr)
    # priority, nice, rt_priority and policy of each task's stat, and its sched's
    # policy and prio lines.
    for p in [os.getpid()] + [p.pid for p in started]:
        for tid in sorted(int(t) for t in os.listdir(f"/proc/{p}/task")):
            with open(f"/proc/{p}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{p}/task/{tid}/sched") as f:
                sched = [l.split()[-1] for l in f if l.split()[:1] in (["policy"], ["prio"])]
            print(p, tid, "stat", fields[15], fields[16], fields[37], fields[38],
                  "sched", *sched)
    for p in started:
        p.kill()
        p.wait()
    return 0


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    sys.exit(main())
