#!/usr/bin/env python3
"""Whether a task is marked as having used a superuser privilege (`PF_SUPERPRIV` in
its `stat` flags, ps's `F` 4) after each of a series of reads of /proc that procfs
grants by a capability, or without one: each in a fresh child (a fork clears the
flag), printed one per line, then `ps -o pid,f,comm` of this tree. Run in a kernel pid
namespace and in a vprocfs VPS, the outputs must be identical (tests/view_run.rs)."""
import ctypes, os, subprocess, sys, time

libc = ctypes.CDLL(None)


def flag(pid="self"):
    stat = open(f"/proc/{pid}/stat").read()
    return int(stat.rsplit(")", 1)[1].split()[6]) & 0x100 != 0


def child(label, action):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            action()
            done = "ok"
        except OSError as e:
            done = os.strerror(e.errno)
        os.write(w, f"{label}: {done}, marked {flag()}".encode())
        os._exit(0)
    os.close(w)
    line = os.read(r, 4096).decode()
    os.close(r)
    os.waitpid(pid, 0)
    print(line)


def read(path):
    return lambda: open(path, "rb").read()


def another_user(dumpable):
    """A process of uid 1000, dumpable (its files its own) or not (root's)."""
    pid = os.fork()
    if pid == 0:
        os.setgid(1000)
        os.setuid(1000)
        if dumpable:
            libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
        time.sleep(100)
        os._exit(0)
    return pid


# Processes of another user, to read the files of. Reading an undumpable one's
# `environ` is granted by CAP_SYS_PTRACE, which the view does not mark (docs/limits.md).
other = another_user(dumpable=True)
undumpable = another_user(dumpable=False)
time.sleep(0.2)

child("nothing", lambda: None)
child("ns_last_pid", read("/proc/sys/kernel/ns_last_pid"))
child("pid_max", read("/proc/sys/kernel/pid_max"))
child("pid_max access", lambda: os.access("/proc/sys/kernel/pid_max", os.R_OK))
child("shm_next_id", read("/proc/sys/kernel/shm_next_id"))
child("somaxconn", read("/proc/sys/net/core/somaxconn"))
child("net/core listed", lambda: os.listdir("/proc/sys/net/core"))
child("vm/swappiness", read("/proc/sys/vm/swappiness"))
child("own timerslack_ns", read("/proc/self/timerslack_ns"))
child("init's timerslack_ns", read("/proc/1/timerslack_ns"))
child("init's clear_refs", read("/proc/1/clear_refs"))
child("init's environ", read("/proc/1/environ"))
child("other user's environ", read(f"/proc/{other}/environ"))
child("other user's cmdline", read(f"/proc/{other}/cmdline"))
child("other user's fd/", lambda: os.listdir(f"/proc/{other}/fd"))
child("other user's undumpable cmdline", read(f"/proc/{undumpable}/cmdline"))
child("other user's undumpable fd/", lambda: os.listdir(f"/proc/{undumpable}/fd"))
out = subprocess.run(["ps", "-o", "pid,f,comm"], capture_output=True, text=True)
print(out.stdout, end="")
for pid in (other, undumpable):
    os.kill(pid, 9)
    os.waitpid(pid, 0)
