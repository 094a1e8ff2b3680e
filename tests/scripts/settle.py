"""Waiting, without looking through /proc, until the processes a probe made are where
it means them to be: asleep (a worker blocked on its next command, a thread in its
wait) or exited.

A probe that compares what /proc shows in a kernel pid namespace and in a VPS must look
at both when every process it made has reached the same state; a fixed sleep does not
promise that on a loaded machine (a process that has just answered may still be
running, `R`, for a while). Looking through /proc itself would be a look through the
view being tested, which may keep what it saw; so the states are read from a procfs
instance of the probe's own (mounted in its private mount namespace, which both `unshare
--mount-proc` and `vprocfs run` give it), which is the kernel's and shows the same
numbers that fork returned.
"""
import atexit
import os
import subprocess
import sys
import tempfile
import time

_proc = None


def kernel_proc():
    """A procfs instance of the probe's pid namespace, mounted once, unmounted at exit."""
    global _proc
    if _proc is None:
        d = tempfile.mkdtemp(prefix="settle-proc-")
        subprocess.run(["mount", "-t", "proc", "proc", d], check=True)

        def unmount():
            subprocess.run(["umount", "-l", d], check=False)
            os.rmdir(d)

        atexit.register(unmount)
        _proc = d
    return _proc


def state(pid, tid=None):
    """The state letter of task `tid` of process `pid` (its leader if None), or None
    once it is gone."""
    path = f"{kernel_proc()}/{pid}/task/{tid or pid}/stat"
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(b")") + 2 : text.rindex(b")") + 3].decode()


def tasks(pid):
    try:
        return [int(t) for t in os.listdir(f"{kernel_proc()}/{pid}/task")]
    except OSError:
        return []


def wait_settled(pids, timeout=20.0):
    """Waits until no task of processes `pids` is running or waking (`R`, `D`, `W`):
    each is asleep, stopped, a zombie or gone. Returns whether they settled in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [
            (pid, tid)
            for pid in pids
            for tid in tasks(pid)
            if state(pid, tid) in ("R", "D", "W")
        ]
        if not busy:
            return True
        time.sleep(0.01)
    return False


def wait_threads_gone(pid, keep, timeout=20.0):
    """Waits until process `pid` has no task but those in `keep` (a joined thread's
    kernel task ends a moment after the join returns). Returns whether it came to that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(tasks(pid)) <= set(keep):
            return True
        time.sleep(0.01)
    return False


def descendants(pid):
    """The processes below process `pid` (the numbers fork gave), from the parents the
    kernel's procfs shows."""
    children = {}
    for name in os.listdir(kernel_proc()):
        if not name.isdigit():
            continue
        try:
            with open(f"{kernel_proc()}/{name}/stat", "rb") as f:
                text = f.read()
        except OSError:
            continue
        ppid = int(text[text.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(name))
    found, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


# The wrapper `when_parent_sleeps` starts: argv[1] is the kernel procfs to look in,
# argv[2:] the command to become once the parent (blocked reading our output) is `S`.
_AFTER_PARENT_SLEEPS = """
import os, sys, time
proc, ppid = sys.argv[1], os.getppid()
for _ in range(2000):
    try:
        with open(f"{proc}/{ppid}/stat", "rb") as f:
            s = f.read()
    except OSError:
        break
    if s[s.rindex(b")") + 2 : s.rindex(b")") + 3] == b"S":
        break
    time.sleep(0.005)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def when_parent_sleeps(argv):
    """`argv`, wrapped so that it starts only once its parent (the caller, about to
    wait for its output) is asleep as the kernel tells it. A tool that shows every
    process's state, `ps` among them, then sees the caller as an idle machine shows it
    (`S`) in both runs, rather than `R` when the caller was still on its way to the
    wait: which of the two a tool sees is a race in the kernel itself."""
    return [sys.executable, "-c", _AFTER_PARENT_SLEEPS, kernel_proc(), *argv]
