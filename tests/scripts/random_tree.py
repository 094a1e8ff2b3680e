#!/usr/bin/env python3
"""Builds a random process tree from a seed, prints what /proc shows of it, and ends it.

Usage: random_tree.py SEED. Run as the init of a pid namespace (`unshare --pid --fork
--mount-proc`) and as the init of a vprocfs VPS (`vprocfs run`): the two outputs must be
identical. Each step is one command to one process of the tree, answered before the
next is sent, and an exit is waited for (through a pidfd, not /proc) before the next
step, so both runs allocate the same pids and reach the same states.

The steps, drawn at random: fork, setsid, setpgid (to its own group or to another
process's, which may fail as the kernel decides), a name (comm) with spaces,
parentheses, a newline, a backslash, a tab or bytes that are not UTF-8, a thread, an
exit (leaving a zombie until its parent reaps it, or an orphan reparented to init),
and a non-blocking reap.
"""
import ctypes
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NAME = 15
NAMES = [b"a b", b"x)y", b"(", b")", b"n\nl", b"1 2 3", b"  ", b"\\\\", b"tab\tx",
         b"\xff\xfe", b"ok"]
STEPS = ["fork", "setsid", "setpgid", "name", "thread", "exit", "reap"]
WEIGHTS = [5, 1, 2, 2, 1, 1, 1]


def worker(sock):
    """Serves the commands of the probe on `sock`, one at a time, for ever."""
    fd = sock.fileno()
    while True:
        cmd = os.read(fd, 64)
        if not cmd:
            os._exit(0)
        op, _, arg = cmd.partition(b" ")
        if op == b"fork":
            # The child's end of a new channel goes to the probe with the child's pid.
            ours, its = socket.socketpair()
            pid = os.fork()
            if pid == 0:
                ours.close()
                sock.close()
                worker(its)
            its.close()
            socket.send_fds(sock, [b"%d" % pid], [ours.fileno()])
            ours.close()
            continue
        reply = b"ok"
        try:
            if op == b"setsid":
                os.setsid()
            elif op == b"setpgid":
                os.setpgid(0, int(arg))
            elif op == b"name":
                libc.prctl(PR_SET_NAME, ctypes.c_char_p(NAMES[int(arg)]), 0, 0, 0)
            elif op == b"thread":
                threading.Thread(target=threading.Event().wait, daemon=True).start()
            elif op == b"exit":
                os.write(fd, reply)
                os._exit(int(arg))
            elif op == b"reap":
                reply = b"reaped %d" % os.waitpid(-1, os.WNOHANG)[0]
        except ChildProcessError:
            reply = b"reaped none"
        except OSError as e:
            reply = b"error %d" % e.errno
        os.write(fd, reply)


def start_root():
    ours, its = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        ours.close()
        worker(its)
    its.close()
    return dict(pid=pid, sock=ours, alive=True)


def call(node, msg):
    node["sock"].send(msg)
    return node["sock"].recv(64).decode()


def build(rnd):
    nodes = [start_root()]
    for _ in range(40):
        node = rnd.choice([n for n in nodes if n["alive"]])
        step = rnd.choices(STEPS, WEIGHTS)[0]
        if step == "fork":
            node["sock"].send(b"fork")
            pid, fds, _, _ = socket.recv_fds(node["sock"], 64, 1)
            nodes.append(dict(pid=int(pid), sock=socket.socket(fileno=fds[0]), alive=True))
        elif step == "setpgid":
            group = rnd.choice([0, rnd.choice(nodes)["pid"]])
            print("setpgid", node["pid"], group, call(node, b"setpgid %d" % group))
        elif step == "name":
            call(node, b"name %d" % rnd.randrange(len(NAMES)))
        elif step == "exit":
            if node is nodes[0]:
                continue
            pidfd = os.pidfd_open(node["pid"])
            call(node, b"exit %d" % rnd.randrange(3))
            node["alive"] = False
            # Readable once the process has exited: a zombie now, in both runs.
            select.select([pidfd], [], [], 10)
            os.close(pidfd)
        else:
            print(step, node["pid"], call(node, step.encode()))
    return nodes


def numbered(names):
    return sorted((n for n in names if n.isdigit()), key=int)


def show():
    """What /proc shows of every process: ps's columns, then each process's status
    lines that carry ids, its stat fields up to tpgid, its children and threads."""
    ps = subprocess.run(["ps", "-eo", "pid,ppid,pgid,sid,tpgid,stat,nlwp,comm"],
                        stdout=subprocess.PIPE, check=True).stdout
    sys.stdout.write(ps.decode("utf-8", "replace"))
    keys = ("Name", "State", "Tgid", "Pid", "PPid", "TracerPid", "NStgid", "NSpid",
            "NSpgid", "NSsid", "Threads")
    for pid in numbered(os.listdir("/proc")):
        try:
            with open("/proc/%s/status" % pid, "rb") as f:
                status = f.read().decode("utf-8", "replace").splitlines()
            with open("/proc/%s/stat" % pid, "rb") as f:
                stat = f.read()
            with open("/proc/%s/task/%s/children" % (pid, pid)) as f:
                children = f.read()
            tasks = numbered(os.listdir("/proc/%s/task" % pid))
        except OSError as e:
            print(pid, "error", e.errno)
            continue
        lines = [l for l in status if l.split(":")[0] in keys]
        fields = stat[stat.rindex(b")") + 2:].split()[:6]
        print(pid, lines, fields, repr(children), len(tasks))


def main():
    if os.readlink("/proc/self") != "1":
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    nodes = build(random.Random(int(sys.argv[1])))
    time.sleep(0.2)
    show()
    for node in nodes:
        if node["alive"]:
            os.kill(node["pid"], signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
