#!/usr/bin/env python3
"""The pids a System V IPC object names after their processes are gone.

A shared memory segment keeps its creator's and last user's `struct pid` (`cpid`,
`lpid`), a message queue its last sender's and receiver's (`lspid`, `lrpid`), so
`/proc/sysvipc/*` and `ipcs -p` go on showing a number whose process has exited and been
reaped, also once a new process has taken that number.

Run as the init of a pid namespace and of a VPS: the outputs must be identical. Steps:
a creator makes a segment and a queue, attaches the one, sends to the other and exits;
init reaps it and waits a moment (long enough for a view to forget the process); then a
new process takes the creator's number (`ns_last_pid`) and attaches the segment; then
init receives the message. After each, the pid columns of the two objects are printed
(the objects' ids, which differ from run to run, are not).
"""
import ctypes
import os
import signal
import subprocess
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
IPC_PRIVATE, IPC_CREAT, IPC_RMID = 0, 0o1000, 0


class Message(ctypes.Structure):
    _fields_ = [("mtype", ctypes.c_long), ("text", ctypes.c_char * 8)]


def show(step, shmid, msqid):
    print("##", step)
    for name, ident in (("shm", shmid), ("msg", msqid)):
        with open(f"/proc/sysvipc/{name}") as f:
            header, *rows = f.read().splitlines()
        cols = header.split()
        for row in rows:
            values = dict(zip(cols, row.split()))
            if int(values.get("shmid", values.get("msqid"))) == ident:
                print(name, *(f"{c}={values[c]}" for c in cols
                              if c in ("cpid", "lpid", "lspid", "lrpid", "nattch", "qnum")))
    out = subprocess.run(["ipcs", "-p"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] in (str(shmid), str(msqid)):
            print("ipcs -p:", *fields[1:])
    sys.stdout.flush()


def main():
    if os.readlink("/proc/self") != "1":
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    r, w = os.pipe()
    creator = os.fork()
    if creator == 0:
        shmid = libc.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600)
        msqid = libc.msgget(IPC_PRIVATE, IPC_CREAT | 0o600)
        libc.shmat(shmid, None, 0)
        libc.msgsnd(msqid, ctypes.byref(Message(1, b"hi")), 8, 0)
        os.write(w, b"%d %d" % (shmid, msqid))
        os._exit(0)
    shmid, msqid = (int(x) for x in os.read(r, 64).split())
    os.waitpid(creator, 0)
    time.sleep(1)  # a view releases a reaped member within a few hundred ms
    try:
        show("1 the creator is gone", shmid, msqid)
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(creator - 1))
        go_r, go_w = os.pipe()
        done_r, done_w = os.pipe()
        newcomer = os.fork()
        if newcomer == 0:
            libc.shmat(shmid, None, 0)
            os.write(done_w, b"x")
            os.read(go_r, 1)
            os._exit(0)
        os.read(done_r, 1)
        print("newcomer took the creator's number:", newcomer == creator)
        show("2 a new process has the number and attached", shmid, msqid)
        libc.msgrcv(msqid, ctypes.byref(Message()), 8, 0, 0)
        os.write(go_w, b"x")
        os.waitpid(newcomer, 0)
        time.sleep(1)
        show("3 init received; the newcomer is gone too", shmid, msqid)
    finally:
        libc.shmctl(shmid, IPC_RMID, None)
        libc.msgctl(msqid, IPC_RMID, None)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
