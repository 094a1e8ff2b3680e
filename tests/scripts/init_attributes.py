#!/usr/bin/env python3
"""What a VPS's init and its child inherit and hold: the `prctl` states (child
subreaper, dumpable, no_new_privs, seccomp, securebits, timer slack), umask, resource
limits, signal mask and ignored signals, the capability, seccomp and signal lines of
`status`, `oom_score_adj`, nice, scheduling policy, CPU affinity, login uid and session,
personality, open descriptors and the process's group and session.

Run as the init of a pid namespace (`unshare --pid --fork --mount-proc`) and of a VPS
(`vprocfs run`): the outputs must be identical. The init's parent-death signal is left
out (docs/limits.md: the VPS's init dies with vprocfs); its child's is printed.
"""
import ctypes
import os
import resource
import signal
import sys

libc = ctypes.CDLL(None, use_errno=True)
PR_GET_PDEATHSIG = 2
PR_GET_DUMPABLE = 3
PR_GET_KEEPCAPS = 7
PR_GET_SECCOMP = 21
PR_GET_SECUREBITS = 27
PR_GET_TIMERSLACK = 30
PR_GET_CHILD_SUBREAPER = 37
PR_GET_NO_NEW_PRIVS = 39


def by_ref(op):
    v = ctypes.c_int(0)
    return v.value if libc.prctl(op, ctypes.byref(v), 0, 0, 0) == 0 else "error"


def show(who):
    print(f"## {who}")
    print("child_subreaper", by_ref(PR_GET_CHILD_SUBREAPER))
    if who == "child":
        print("pdeathsig", by_ref(PR_GET_PDEATHSIG))
    for name, op in [("dumpable", PR_GET_DUMPABLE), ("keepcaps", PR_GET_KEEPCAPS),
                     ("seccomp", PR_GET_SECCOMP), ("securebits", PR_GET_SECUREBITS),
                     ("timerslack", PR_GET_TIMERSLACK), ("no_new_privs", PR_GET_NO_NEW_PRIVS)]:
        print(name, libc.prctl(op, 0, 0, 0, 0))
    mask = os.umask(0o22)
    os.umask(mask)
    print("umask", oct(mask))
    for name in sorted(n for n in dir(resource) if n.startswith("RLIMIT_")):
        print(name, resource.getrlimit(getattr(resource, name)))
    print("blocked", sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
    print("ignored", [s for s in range(1, 65) if s not in (9, 19, 32, 33)
                      and signal.getsignal(s) == signal.SIG_IGN])
    keep = ("Cap", "Seccomp", "NoNewPrivs", "Cpus_allowed", "Mems_allowed", "SigBlk",
            "SigIgn", "SigCgt", "Umask", "Uid", "Gid", "Groups", "CoreDumping", "THP")
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(keep):
                print(line, end="")
    with open("/proc/self/oom_score_adj") as f:
        print("oom_score_adj", f.read().strip())
    print("nice", os.nice(0), "policy", os.sched_getscheduler(0),
          "affinity", sorted(os.sched_getaffinity(0)))
    for name in ["loginuid", "sessionid", "personality"]:
        with open(f"/proc/self/{name}") as f:
            print(name, f.read().strip())
    print("fds", sorted(int(n) for n in os.listdir("/proc/self/fd")))
    print("ppid", os.getppid(), "pgid", os.getpgid(0), "sid", os.getsid(0))


def main():
    if os.getpid() != 1:
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    sys.stdout.flush()
    show("init")
    sys.stdout.flush()
    child = os.fork()
    if child == 0:
        show("child")
        sys.stdout.flush()
        os._exit(0)
    os.waitpid(child, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
