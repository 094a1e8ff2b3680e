"""A process tree whose process group and session leaders have exited before anyone
looked: run as a VPS's init (or a pid namespace's), it makes

- a process group whose leader exits, leaving a member (its pgid names the dead leader);
- a session whose leader exits, leaving a member in it (sid and pgid name the dead
  leader);
- a process that stays in init's own groups (inherited from outside: shown as 0);

then prints "ready" and sleeps. With --report it waits a moment and prints
`ps -e -o pid=,ppid=,pgid=,sid=,comm=` itself (the kernel's view, in a pid namespace).
Each process that stays has a name of its own, so that rows can be matched by name:
numbered by the host (a tree VPS) their order may differ from the kernel's, since the
host's pids wrap at `pid_max`.
"""
import ctypes
import os
import subprocess
import sys
import time


PR_SET_NAME = 15


def sleeper(name):
    def body():
        ctypes.CDLL(None).prctl(PR_SET_NAME, name, 0, 0, 0)
        time.sleep(300)
    return body


def child(fn):
    pid = os.fork()
    if pid == 0:
        try:
            fn()
        finally:
            os._exit(0)
    return pid


def group():
    os.setpgid(0, 0)
    child(sleeper(b"grp-member"))
    os._exit(0)  # the leader goes; its member stays in the group


def session():
    os.setsid()
    child(sleeper(b"sess-member"))
    os._exit(0)


# Orphans come back to init, as they do to a pid namespace's init.
if os.getpid() != 1:
    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
os.waitpid(child(group), 0)
os.waitpid(child(session), 0)
child(sleeper(b"init-member"))
time.sleep(0.2)
if "--report" in sys.argv:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,pgid=,sid=,comm="],
                         capture_output=True, text=True).stdout
    sys.stdout.write(out)
    sys.stdout.flush()
    sys.exit(0)
print("ready", flush=True)
time.sleep(300)
