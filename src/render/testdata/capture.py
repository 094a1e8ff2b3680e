#!/usr/bin/env python3
"""Capture real /proc output from this machine into src/render/testdata/.

Run as root: python3 capture.py. Every process started here is ended by pid.
The fixtures are what the kernel printed; nothing is edited afterwards.
"""
import ctypes
import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

OUT = os.path.dirname(os.path.abspath(__file__))
os.makedirs(OUT, exist_ok=True)
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NAME = 15


def save(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    print("saved", name, len(data))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def set_comm(name: bytes):
    buf = ctypes.create_string_buffer(name + b"\0")
    if libc.prctl(PR_SET_NAME, buf, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl")


def child_with_comm(name: bytes):
    """Fork a child that renames itself and blocks; returns (pid, ready-pipe)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        set_comm(name)
        os.write(w, b"x")
        while True:
            signal.pause()
    os.close(w)
    os.read(r, 1)
    os.close(r)
    return pid


def end(pid):
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


# ---- stat/status/sched with hostile comm names ----------------------------
COMMS = {
    "plain": b"sleeper",
    "paren_trap": b"a) 1 2 (b",
    "space": b"with space",
    "newline": b"new\nline",
    "close_paren": b")",
    "fifteen": b"fifteen_bytes_x",
    "sched_trap": b"(1, #threads: 1",
    "backslash_tab": b"b\\s\tt",
    "high_bytes": b"\xff\xfe) (",
}
for tag, name in COMMS.items():
    pid = child_with_comm(name)
    assert read(f"/proc/{pid}/comm") == name[:15] + b"\n", read(f"/proc/{pid}/comm")
    save(f"stat_{tag}", read(f"/proc/{pid}/stat"))
    save(f"status_{tag}", read(f"/proc/{pid}/status"))
    save(f"sched_{tag}", read(f"/proc/{pid}/sched"))
    end(pid)

# self view: the reader is the task (state R)
save("stat_self", read("/proc/self/stat"))
save("status_self", read("/proc/self/status"))

# ---- multi-threaded process -------------------------------------------------
ev = threading.Event()
ths = [threading.Thread(target=ev.wait) for _ in range(3)]
for t in ths:
    t.start()
save("status_threads", read("/proc/self/status"))
save("stat_threads", read("/proc/self/stat"))
tids = sorted(int(t) for t in os.listdir("/proc/self/task"))
save("sched_thread", read(f"/proc/self/task/{tids[-1]}/sched"))
ev.set()
for t in ths:
    t.join()

# ---- children ---------------------------------------------------------------
kids = [child_with_comm(b"kid") for _ in range(3)]
save("children", read(f"/proc/self/task/{os.getpid()}/children"))
for k in kids:
    end(k)
save("children_empty", read(f"/proc/self/task/{os.getpid()}/children"))

# ---- controlling tty: tty_nr and tpgid > 0 ----------------------------------
pid, fd = pty.fork()
if pid == 0:
    while True:
        signal.pause()
time.sleep(0.2)
save("stat_tty", read(f"/proc/{pid}/stat"))
save("status_tty", read(f"/proc/{pid}/status"))
end(pid)
os.close(fd)

# ---- nested pid namespace: NS* lines have two values ------------------------
# From inside: what the VPS-level kernel view looks like (own /proc).
inner = subprocess.run(
    ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c",
     "sleep 0.2 & cat /proc/self/status; cat /proc/self/stat; cat /proc/$!/status; cat /proc/loadavg; cat /proc/1/stat"],
    capture_output=True, check=True).stdout
save("nested_inside_dump", inner)
# From outside: the daemon's view of a task two levels down.
p = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "unshare", "--pid", "--fork", "--kill-child", "sleep", "30"])
time.sleep(0.3)
# find the sleep (grandchild of unshare chain)
def kids_of(pp):
    out = []
    for t in os.listdir(f"/proc/{pp}/task"):
        out += [int(x) for x in read(f"/proc/{pp}/task/{t}/children").split()]
    return out
u2 = kids_of(p.pid)[0]
u3 = kids_of(u2)[0]
save("status_nested2", read(f"/proc/{u3}/status"))
save("stat_nested2", read(f"/proc/{u3}/stat"))
save("status_nested1", read(f"/proc/{u2}/status"))
os.kill(p.pid, signal.SIGTERM)
p.wait()

# ---- timers -------------------------------------------------------------------
class SigEvent(ctypes.Structure):
    _fields_ = [("sigev_value", ctypes.c_void_p), ("sigev_signo", ctypes.c_int),
                ("sigev_notify", ctypes.c_int), ("tid", ctypes.c_int),
                ("pad", ctypes.c_int * 11)]

def mk_timer(clock, notify, signo, tid=0, value=0):
    ev = SigEvent()
    ev.sigev_value = value
    ev.sigev_signo = signo
    ev.sigev_notify = notify
    ev.tid = tid
    tmid = ctypes.c_int()
    if libc.syscall(222, clock, ctypes.byref(ev), ctypes.byref(tmid)) != 0:  # timer_create x86_64
        raise OSError(ctypes.get_errno(), "timer_create")
    return tmid.value

SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID = 0, 1, 4
mk_timer(0, SIGEV_SIGNAL, signal.SIGUSR1, value=0x1234)
mk_timer(1, SIGEV_NONE, 0)
mk_timer(1, SIGEV_SIGNAL | SIGEV_THREAD_ID, signal.SIGUSR2, tid=threading.get_native_id())
save("timers", read("/proc/self/timers"))

# ---- pidfd fdinfo ------------------------------------------------------------
pfd = os.pidfd_open(os.getpid())
save("fdinfo_pidfd_self", read(f"/proc/self/fdinfo/{pfd}"))
k = child_with_comm(b"doomed")
kfd = os.pidfd_open(k)
end(k)
save("fdinfo_pidfd_dead", read(f"/proc/self/fdinfo/{kfd}"))
os.close(kfd)
p = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "sleep", "30"])
time.sleep(0.2)
s = kids_of(p.pid)[0]
nfd = os.pidfd_open(s)
save("fdinfo_pidfd_nested", read(f"/proc/self/fdinfo/{nfd}"))
os.kill(p.pid, signal.SIGTERM)
p.wait()
os.close(nfd)
# the same pidfd (of this host process) read through a child namespace's /proc: invisible
save("fdinfo_pidfd_invisible", subprocess.run(
    ["unshare", "--pid", "--fork", "--mount-proc", "cat", f"/proc/self/fdinfo/{pfd}"],
    pass_fds=[pfd], capture_output=True, check=True).stdout)
os.close(pfd)
r, w = os.pipe()
save("fdinfo_pipe", read(f"/proc/self/fdinfo/{r}"))
os.close(r)
os.close(w)

# ---- loadavg -------------------------------------------------------------------
save("loadavg", read("/proc/loadavg"))

# ---- locks -----------------------------------------------------------------------
d = tempfile.mkdtemp(prefix="locks", dir="/tmp")
procs = []

def holder(script):
    pr = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert pr.stdout.readline().strip() == b"ok"
    procs.append(pr)
    return pr

F_OFD_SETLK, F_OFD_SETLKW = 37, 38
pre = "import fcntl,os,struct,sys,time\n"
# flock holder + flock waiter
holder(pre + f"f=open('{d}/flock','w'); fcntl.flock(f, fcntl.LOCK_EX); print('ok',flush=True); time.sleep(60)")
w1 = subprocess.Popen([sys.executable, "-c", pre + f"f=open('{d}/flock','w'); fcntl.flock(f, fcntl.LOCK_EX)"])
procs.append(w1)
# POSIX holder (write lock whole file, read lock range) + POSIX waiter
holder(pre + f"f=open('{d}/posix','w'); fcntl.lockf(f, fcntl.LOCK_EX, 0, 0); g=open('{d}/posix2','w'); fcntl.lockf(g, fcntl.LOCK_SH if False else fcntl.LOCK_EX, 100, 10); print('ok',flush=True); time.sleep(60)")
w2 = subprocess.Popen([sys.executable, "-c", pre + f"f=open('{d}/posix','w'); fcntl.lockf(f, fcntl.LOCK_EX, 0, 0)"])
procs.append(w2)
# OFD holder + OFD waiter
ofd = "struct.pack('hhqqi', fcntl.F_WRLCK, 0, 0, 0, 0)"
holder(pre + f"f=open('{d}/ofd','w'); fcntl.fcntl(f, {F_OFD_SETLK}, {ofd}); print('ok',flush=True); time.sleep(60)")
w3 = subprocess.Popen([sys.executable, "-c", pre + f"f=open('{d}/ofd','w'); fcntl.fcntl(f, {F_OFD_SETLKW}, {ofd})"])
procs.append(w3)
# read lease
open(f"{d}/lease", "w").close()
holder(pre + f"f=os.open('{d}/lease', os.O_RDONLY); fcntl.fcntl(f, fcntl.F_SETLEASE, fcntl.F_RDLCK); print('ok',flush=True); time.sleep(60)")
time.sleep(0.5)
save("locks", read("/proc/locks"))
# the same table seen from a child pid namespace with its own /proc, which
# itself holds a flock (visible there) on top of the host's locks (hidden).
save("locks_from_child_ns", subprocess.run(
    ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c",
     f"flock {d}/inner sh -c 'cat /proc/locks; echo ==; cat /proc/self/stat'"],
    capture_output=True, check=True).stdout)
# a lease being broken: a writer opening the file blocks and shows as a BREAKER waiter
holder(pre + f"import signal; signal.signal(signal.SIGIO, signal.SIG_IGN); open('{d}/lease2','w').close(); f=os.open('{d}/lease2', os.O_RDONLY); fcntl.fcntl(f, fcntl.F_SETLEASE, fcntl.F_RDLCK); print('ok',flush=True); time.sleep(60)")
w4 = subprocess.Popen([sys.executable, "-c", pre + f"os.open('{d}/lease2', os.O_WRONLY)"])
procs.append(w4)
time.sleep(0.5)
save("locks_breaking", read("/proc/locks"))
for pr in procs:
    pr.kill()
    pr.wait()
for fn in os.listdir(d):
    os.unlink(os.path.join(d, fn))
os.rmdir(d)
# ---- a lock held inside a child pid namespace, waited on from the host ----------
# Two host waiters queue behind each other (nested "->" levels); seen from the
# child namespace the holder is visible and the host waiters show pid 0.
d = tempfile.mkdtemp(prefix="locks", dir="/tmp")
inner = subprocess.Popen(
    ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "sh", "-c",
     f"flock {d}/f sh -c 'echo ok; sleep 1.5; cat /proc/locks'"],
    stdout=subprocess.PIPE)
assert inner.stdout.readline().strip() == b"ok"
hw = []
for _ in range(2):
    hw.append(subprocess.Popen(["flock", f"{d}/f", "true"]))
    time.sleep(0.2)
save("locks_nested_waiters_host", read("/proc/locks"))
save("locks_nested_waiters_child_ns", inner.stdout.read())
inner.wait()
for pr in hw:
    pr.wait()
os.unlink(f"{d}/f")
os.rmdir(d)
# ---- stat as a reader who may not ptrace-read the process sees it ---------
# procfs hides the addresses, wchan and exit code. Stopped, so that no counter moves
# between the two reads.
sp = subprocess.Popen(["sleep", "100"])
os.kill(sp.pid, signal.SIGSTOP)
os.waitid(os.P_PID, sp.pid, os.WSTOPPED | os.WNOWAIT)
save("stat_stopped_permitted", read(f"/proc/{sp.pid}/stat"))
save("stat_stopped_hidden", subprocess.run(
    ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
     "cat", f"/proc/{sp.pid}/stat"], check=True, stdout=subprocess.PIPE).stdout)
end(sp.pid)

print("done")
