"""A process tree whose process group and session leaders have exited before anyone
looked: run as a VPS's init (or a pid namespace's), it makes

- a process group whose leader exits, leaving a member (its pgid names the dead leader);
- a session whose leader exits, leaving a member in it (sid and pgid name the dead
  leader);
- a process that stays in init's own groups (inherited from outside: shown as 0);

then prints "ready" and sleeps. With --report it waits a moment and prints
`ps -e -o pid=,ppid=,pgid=,sid=,comm=` itself (the kernel's view, in a pid namespace).
"""
import os
import subprocess
import sys
import time


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
    child(lambda: time.sleep(300))
    os._exit(0)  # the leader goes; its member stays in the group


def session():
    os.setsid()
    child(lambda: time.sleep(300))
    os._exit(0)


# Orphans come back to init, as they do to a pid namespace's init.
if os.getpid() != 1:
    import ctypes
    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
os.waitpid(child(group), 0)
os.waitpid(child(session), 0)
child(lambda: time.sleep(300))
time.sleep(0.2)
if "--report" in sys.argv:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,pgid=,sid=,comm="],
                         capture_output=True, text=True).stdout
    sys.stdout.write(out)
    sys.stdout.flush()
    sys.exit(0)
print("ready", flush=True)
time.sleep(300)
