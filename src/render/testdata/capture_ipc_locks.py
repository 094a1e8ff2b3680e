#!/usr/bin/env python3
"""Capture /proc/sysvipc/{shm,msg} and fdinfo `lock:` lines into src/render/testdata/,
each twice: as the host's procfs shows them, and as the procfs of a child pid namespace
shows the same objects at the same moment (the kernel's answer a renderer must give).

Run as root: python3 capture_ipc_locks.py. Every object made here is removed, every
process started here is ended by pid. The fixtures are what the kernel printed.
"""
import ctypes
import fcntl
import os
import struct
import subprocess
import sys
import tempfile

OUT = os.path.dirname(os.path.abspath(__file__))
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
IPC_PRIVATE, IPC_CREAT, IPC_RMID = 0, 0o1000, 0
F_OFD_SETLK = 37


class Msg(ctypes.Structure):
    _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 8)]


# Runs as init (pid 1) of a child pid namespace with its own procfs: attaches the
# segment, takes a message, locks the files it inherited and its own, prints what its
# procfs shows, and waits until the host has read the same objects.
INSIDE = r'''
import ctypes, fcntl, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
shmid, msqid, flock_fd, posix_fd, ofd_fd = map(int, sys.argv[1:6])
libc.shmat(shmid, None, 0)
class Msg(ctypes.Structure):
    _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 8)]
m = Msg()
assert libc.msgrcv(msqid, ctypes.byref(m), 8, 0, 0) == 8
fcntl.lockf(posix_fd, fcntl.LOCK_EX, 10, 0)
fcntl.lockf(posix_fd, fcntl.LOCK_SH, 5, 20)
fcntl.fcntl(ofd_fd, 37, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0))
out = {}
for name in ("shm", "msg"):
    out[name] = open("/proc/sysvipc/" + name).read()
for fd in (flock_fd, posix_fd, ofd_fd):
    out["fd%d" % fd] = open("/proc/self/fdinfo/%d" % fd).read()
out["cad_pid"] = open("/proc/sys/kernel/cad_pid").read()
sys.stdout.write(repr(out) + "\n")
sys.stdout.flush()
sys.stdin.read(1)
'''


def save(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    print("saved", name, len(data))


def main():
    tmp = tempfile.mkdtemp(prefix="capture-locks-")
    shmid = libc.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600)
    msqid = libc.msgget(IPC_PRIVATE, IPC_CREAT | 0o600)
    assert shmid >= 0 and msqid >= 0
    for text in (b"one", b"two"):
        m = Msg(1, text)
        assert libc.msgsnd(msqid, ctypes.byref(m), 8, 0) == 0
    # A flock taken by this (host) process, on a descriptor the child inherits: its
    # owner is invisible in the child's namespace.
    files = [open(os.path.join(tmp, n), "w+") for n in "abc"]
    fcntl.flock(files[0], fcntl.LOCK_EX)
    fds = [f.fileno() for f in files]
    for fd in fds:
        os.set_inheritable(fd, True)
    child = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", INSIDE,
         str(shmid), str(msqid)] + [str(fd) for fd in fds],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=fds, text=True)
    try:
        inside = eval(child.stdout.readline())
        kids = open(f"/proc/{child.pid}/task/{child.pid}/children").read().split()
        init = int(kids[0])
        host = {name: open("/proc/sysvipc/" + name).read() for name in ("shm", "msg")}
        for fd in fds:
            host["fd%d" % fd] = open(f"/proc/{init}/fdinfo/{fd}").read()
        host["cad_pid"] = open("/proc/sys/kernel/cad_pid").read()
        print("init of the child namespace:", init, "shmid", shmid, "msqid", msqid)
        for key, name in [("shm", "sysvipc_shm"), ("msg", "sysvipc_msg"),
                          ("fd%d" % fds[0], "fdinfo_flock"), ("fd%d" % fds[1], "fdinfo_posix"),
                          ("fd%d" % fds[2], "fdinfo_ofd")]:
            save(name + "_host", host[key])
            save(name + "_child_ns", inside[key])
        save("init_pid", f"{init}\n")
        assert inside["cad_pid"] == "0\n" and host["cad_pid"] == "1\n", (inside, host)
    finally:
        child.stdin.write("x")
        child.stdin.close()
        child.wait()
        libc.shmctl(shmid, IPC_RMID, None)
        libc.msgctl(msqid, IPC_RMID, None)
        for f in files:
            f.close()
        for n in "abc":
            os.unlink(os.path.join(tmp, n))
        os.rmdir(tmp)


if __name__ == "__main__":
    main()
