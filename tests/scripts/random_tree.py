#!/usr/bin/env python3
"""Builds a random process tree from a seed, prints what /proc shows of it, and ends it.

Usage: random_tree.py SEED [--canonical]. Run as the init of a pid namespace (`unshare
--pid --fork --mount-proc`) and as the init of a vprocfs VPS (`vprocfs run`): the two
outputs must be identical. With `--canonical` every process id /proc shows is replaced
by its rank among them (0 and -1 kept), so that a view numbered otherwise than the
kernel (`--no-pidns`: linear vpids, `pid + 2^N`) can be compared too: its numbering
keeps the order of the kernel's, and everything else must be the same. Each step is one command to one process of the tree, answered before the
next is sent, and an exit is waited for (through a pidfd, not /proc) before the next
step, so both runs allocate the same pids and reach the same states.

The steps, drawn at random: fork, setsid, setpgid (to its own group or to another
process's, which may fail as the kernel decides), a name (comm) with spaces,
parentheses, a newline, a backslash, a tab or bytes that are not UTF-8, a thread, an
exit (leaving a zombie until its parent reaps it, or an orphan reparented to init), a
non-blocking reap, and a change of user (which leaves the process not dumpable). Then
root, and two unprivileged readers (one of them a user some processes may have
become), look at every process.
"""
import ctypes
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading

import settle

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NAME = 15
NAMES = [b"a b", b"x)y", b"(", b")", b"n\nl", b"1 2 3", b"  ", b"\\\\", b"tab\tx",
         b"\xff\xfe", b"ok"]
STEPS = ["fork", "setsid", "setpgid", "name", "thread", "exit", "reap", "setuid"]
WEIGHTS = [5, 1, 2, 2, 1, 1, 1, 1]
# The users a process may become (its files then belong to root while it is not
# dumpable), and the readers that look at the tree besides root.
USERS = [1000, 1001]
READERS = [1000, 65534]
# The numbers fork() gave, in the order the processes were made (see main).
BORN = []


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
            elif op == b"setuid":
                os.setresgid(int(arg), int(arg), int(arg))
                os.setresuid(int(arg), int(arg), int(arg))
            elif op == b"thread":
                threading.Thread(target=threading.Event().wait, daemon=True).start()
            elif op == b"exit":
                os.write(fd, reply)
                os._exit(int(arg))
            elif op == b"reap":
                # Whether one was: its number is the kernel's, which a view without a
                # pid namespace does not show.
                reply = b"reaped %d" % (os.waitpid(-1, os.WNOHANG)[0] != 0)
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
    BORN.append(pid)
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
            BORN.append(int(pid))
            nodes.append(dict(pid=int(pid), sock=socket.socket(fileno=fds[0]), alive=True))
        elif step == "setpgid":
            group = rnd.choice([0, rnd.choice(nodes)["pid"]])
            say(step, node, call(node, b"setpgid %d" % group), group)
        elif step == "name":
            call(node, b"name %d" % rnd.randrange(len(NAMES)))
        elif step == "setuid":
            say(step, node, call(node, b"setuid %d" % rnd.choice(USERS)))
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
            say(step, node, call(node, step.encode()))
    return nodes


CANONICAL = "--canonical" in sys.argv


def say(step, node, reply, *numbers):
    """A step's outcome; the numbers the probe got from fork() are the kernel's, which
    a view without a pid namespace does not show, so they are left out of a canonical
    run."""
    shown = [] if CANONICAL else [node["pid"], *numbers]
    print(step, *shown, reply)


def numbered(names):
    return sorted((n for n in names if n.isdigit()), key=int)


def ids(*numbers):
    """Process ids, marked so that a canonical run can rank them."""
    return " ".join("#%d#" % int(n) for n in numbers)


def show(more):
    """What /proc shows of every process: ps's columns, then each process's status
    lines that carry ids, its stat fields up to tpgid, its children and threads; then
    the lines `more` (with their ids marked)."""
    run = subprocess.Popen(
        settle.when_parent_sleeps(["ps", "-eo", "pid,ppid,pgid,sid,tpgid,stat,nlwp,comm"]),
        stdout=subprocess.PIPE)
    BORN.append(run.pid)
    ps = run.communicate()[0]
    assert run.returncode == 0, "ps failed"
    out = []
    for row in ps.decode("utf-8", "replace").splitlines()[1:]:
        cols = row.split(None, 5)
        out.append("ps %s %s" % (ids(*cols[:5]), cols[5]))
    numeric = ("Tgid", "Pid", "PPid", "TracerPid", "NStgid", "NSpid", "NSpgid", "NSsid")
    for pid in numbered(os.listdir("/proc")):
        try:
            with open("/proc/%s/status" % pid, "rb") as f:
                status = f.read().decode("utf-8", "replace").splitlines()
            with open("/proc/%s/stat" % pid, "rb") as f:
                stat = f.read()
            with open("/proc/%s/task/%s/children" % (pid, pid)) as f:
                children = f.read().split()
            tasks = numbered(os.listdir("/proc/%s/task" % pid))
        except OSError as e:
            out.append("%s error %d" % (ids(pid), e.errno))
            continue
        lines = []
        for line in status:
            key, _, value = line.partition(":")
            if key in numeric:
                lines.append("%s: %s" % (key, ids(*value.split())))
            elif key in ("Name", "State", "Threads"):
                lines.append(line)
        # state, ppid, pgrp, session, tty_nr, tpgid
        f = stat[stat.rindex(b")") + 2:].split()[:6]
        fields = "%s %s %s %s" % (f[0].decode(), ids(*f[1:4]), f[4].decode(), ids(f[5]))
        out.append("%s %r %s children %s threads %d" % (
            ids(pid), lines, fields, ids(*children), len(tasks)))
    text = "\n".join(out + more) + "\n"
    marked = [int(n) for n in re.findall(r"#(-?\d+)#", text)]
    rank = {n: i + 1 for i, n in enumerate(sorted({n for n in marked if n > 0}))}
    shown = lambda m: str(rank.get(int(m.group(1)), int(m.group(1))) if CANONICAL
                          else m.group(1))
    sys.stdout.write(re.sub(r"#(-?\d+)#", shown, text))


def code(f):
    """What a read gives: its length class, or the error procfs answers."""
    try:
        return "read" if f() else "empty"
    except OSError as e:
        return errno_name(e.errno)


def errno_name(n):
    import errno
    return errno.errorcode.get(n, str(n))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def look_as(uid):
    """What reader `uid` gets of every process, one line each: the shape of `stat`'s
    fields 26 to 52 (0, 1 or another number; not 39, the CPU), and whether `environ`,
    `maps`, `status`, `fd/` and `cwd` let it in. Read by a child that becomes `uid`."""
    r, w = os.pipe()
    pid = os.fork()
    BORN.append(pid)
    if pid == 0:
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        lines = []
        for p in numbered(os.listdir("/proc")):
            try:
                stat = read("/proc/%s/stat" % p)
                tail = [v.decode() for v in stat[stat.rindex(b")") + 2:].split()[23:]]
                tail[39 - 26] = "-"
                shape = "".join(v if v in ("0", "1", "-") else "N" for v in tail)
            except OSError as e:
                shape = errno_name(e.errno)
            got = [code(lambda: read("/proc/%s/%s" % (p, f))) for f in ("environ", "maps", "status")]
            got.append(code(lambda: os.listdir("/proc/%s/fd" % p)))
            got.append(code(lambda: os.readlink("/proc/%s/cwd" % p)))
            lines.append("as %d %s %s %s" % (uid, ids(p), shape, " ".join(got)))
        os.close(r)
        with os.fdopen(w, "w") as f:
            f.write("\n".join(lines))
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    os.waitpid(pid, 0)
    return text.splitlines()


def main():
    if os.readlink("/proc/self") != "1":
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    nodes = build(random.Random(int(sys.argv[1])))
    # Every worker blocked on its next command and every thread in its wait, as the
    # kernel tells it (not the view under test): a worker that has just answered may
    # still be running for a while on a loaded machine.
    if not settle.wait_settled([n["pid"] for n in nodes]):
        print("the tree's processes did not settle", file=sys.stderr)
        return 1
    show([line for uid in READERS for line in look_as(uid)])
    for node in nodes:
        if node["alive"]:
            os.kill(node["pid"], signal.SIGKILL)
    # Ranks stand for numbers only while the numbers fork() gave rise: a VPS without a
    # pid namespace numbers after the host's pids, which come round at pid_max when the
    # host forks fast, and then a later process has a lower vpid. Such a run cannot be
    # compared, and says so (EX_TEMPFAIL) for the caller to run it again.
    if CANONICAL and BORN != sorted(BORN):
        print("the host's pids came round during the run", file=sys.stderr)
        return 75
    return 0


if __name__ == "__main__":
    sys.exit(main())
