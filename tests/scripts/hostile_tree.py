#!/usr/bin/env python3
"""Builds a hostile process tree, prints what /proc shows of it, and tears it down.

Run as the init of a pid namespace (`unshare --pid --fork --mount-proc`) and as the
init of a vprocfs VPS (`vprocfs run`): the two outputs must be identical, since the
kernel's own /proc is the oracle. Every step is sequential and synchronised, so that
both runs allocate the same pids in the same order.

Cases: comm names with spaces, parentheses and a newline, and names of io_uring's
threads (which carry a pid) on tasks that are none; a zombie; a multi-threaded
process; an orphaned process group (its leader has exited); a new session; a thread
that execs (taking over its process's pid); a thread group whose leader has exited
(Zl); pid reuse inside the namespace.
"""
import atexit
import ctypes
import errno
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import settle

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NAME = 15
SYS_EXIT = 60  # x86_64: exit of the calling thread only


# What psutil (Debian's python3-psutil, as monitoring agents use it) makes of every
# process: its numbers, names (a 15-character comm is completed from cmdline), states,
# threads, terminal, ids and children, each from the /proc files it parses.
PSUTIL = """
import psutil
for p in sorted(psutil.process_iter(), key=lambda p: p.pid):
    try:
        with p.oneshot():
            row = [p.pid, p.ppid(), p.name(), p.status(), p.num_threads(),
                   sorted(t.id for t in p.threads()), p.terminal(), tuple(p.uids()),
                   tuple(p.gids()), sorted(c.pid for c in p.children()),
                   [q.pid for q in p.parents()]]
        try:
            row.append(p.cmdline())
        except psutil.Error as e:
            row.append(type(e).__name__)
    except psutil.Error as e:
        row = [p.pid, type(e).__name__]
    print(row)
print("pids", psutil.pids())
"""


def set_comm(name: bytes):
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)


def child(fn):
    """Forks a child that runs fn() then sleeps until killed; returns after fn ran."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        fn(w)
        os.write(w, b"x")
        os.close(w)
        while True:
            time.sleep(60)
    os.close(w)
    os.read(r, 1)
    os.close(r)
    return pid


def named(name):
    return lambda w: set_comm(name)


def zombie_parent(w):
    set_comm(b"zparent")
    z = os.fork()
    if z == 0:
        os._exit(3)
    # A zombie now, never reaped (a fixed sleep is not enough on a loaded machine).
    os.waitid(os.P_PID, z, os.WEXITED | os.WNOWAIT)


def threaded(w):
    set_comm(b"threads")
    for _ in range(3):
        threading.Thread(target=lambda: time.sleep(3600), daemon=True).start()


def orphan_group(w):
    # The leader makes a group, forks a member into it, and exits; the group lives on.
    set_comm(b"orphans")
    leader = os.fork()
    if leader == 0:
        os.setpgid(0, 0)
        named, named_w = os.pipe()
        if os.fork() == 0:
            set_comm(b"orphan member")
            os.write(named_w, b"x")
            while True:
                time.sleep(60)
        os.read(named, 1)  # the member has its name: the leader may go
        os._exit(0)
    os.waitpid(leader, 0)


def session(w):
    os.setsid()
    set_comm(b"session")


def thread_exec(w):
    set_comm(b"execer")
    ready = threading.Event()

    def run():
        ready.set()
        os.execv("/bin/sleep", ["sleep", "3600"])

    threading.Thread(target=run, daemon=True).start()
    ready.wait()
    # The exec ends this thread (and closes `w`, which child() waits on): the process
    # is now `sleep`.
    while True:
        time.sleep(60)


def leader_exits(w):
    set_comm(b"zl")
    threading.Thread(target=lambda: time.sleep(3600), daemon=True).start()
    os.write(w, b"x")
    os.close(w)
    libc.syscall(SYS_EXIT, 0)  # only the leader thread ends: the group shows Zl


def reuse(w):
    # Fork and reap short-lived children so that numbers come round again.
    set_comm(b"reuser")
    for _ in range(5):
        p = os.fork()
        if p == 0:
            os._exit(0)
        os.waitpid(p, 0)


def reuse_a_pid():
    """A process exits and is reaped; the next process gets its number again.

    The namespace's last pid is set through a private procfs instance of the namespace
    (we are root in it; a vprocfs view is read-only), mounted the same way in both runs
    so that both allocate the same pids."""
    d = tempfile.mkdtemp(prefix="hostile-tree-proc-")
    subprocess.run(["mount", "-t", "proc", "proc", d], check=True)
    try:
        victim = child(named(b"victim one"))
        # A directory held open across the death: the old process's, never the new one's.
        held = os.open(f"/proc/{victim}", os.O_RDONLY | os.O_DIRECTORY)
        before = [read_at(held, name) for name in ("stat", "status")]
        os.kill(victim, signal.SIGKILL)
        os.waitpid(victim, 0)
        with open(d + "/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(victim - 1))
        again = child(named(b"victim two"))
        after = [read_at(held, name) for name in ("stat", "status", "no-such-entry")]
        after.append(listed(held))
        try:
            after.append(os.readlink("exe", dir_fd=held))
        except OSError as e:
            after.append(errno.errorcode[e.errno])
        os.close(held)
    finally:
        subprocess.run(["umount", d], check=True)
        os.rmdir(d)
    print("reused", again == victim)
    print("held directory before", before, "after reuse", after)
    return again


def listed(dirfd):
    try:
        return len(os.listdir(dirfd))
    except OSError as e:
        return errno.errorcode[e.errno]


def read_at(dirfd, name):
    """Which process `name` in the held directory shows (its name), or the error."""
    try:
        fd = os.open(name, os.O_RDONLY, dir_fd=dirfd)
    except OSError as e:
        return errno.errorcode[e.errno]
    try:
        text = os.read(fd, 4096)
    except OSError as e:
        return errno.errorcode[e.errno]
    finally:
        os.close(fd)
    if name == "stat":
        return text[text.index(b"(") + 1 : text.rindex(b")")].decode()
    return text.split(b"\n", 1)[0].decode()


def main():
    # Without a pid namespace getpid() is the real pid; the view still calls us 1.
    if os.readlink("/proc/self") != "1":
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    # Optionally start numbering high, so that pids never look like the small counts
    # (threads, ttys) beside them when two outputs are compared up to renaming.
    first = os.environ.get("FIRST_PID")
    if first:
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(int(first) - 1))
    kids = [
        child(named(b"a) 1 2 (b")),
        child(named(b"sp ace")),
        child(named(b"new\nline")),
        child(named(b")")),
        child(named(b"fifteen chars!!")),
        # Named as io_uring names its threads after a pid, but no such thread: shown
        # as named.
        child(named(b"iou-wrk-1")),
        child(named(b"iou-sqp-2")),
        child(zombie_parent),
        child(threaded),
        child(orphan_group),
        child(session),
        child(thread_exec),
        child(leader_exits),
        child(reuse),
    ]
    if os.environ.get("REUSE"):
        kids.append(reuse_a_pid())
    # A pidfd, a lock and a thread list to read back through /proc.
    pidfd = os.pidfd_open(kids[0])
    lockfile = tempfile.NamedTemporaryFile("w", prefix="hostile-tree-lock-", delete=False)
    # Removed however the probe ends (a failed read raises before the end).
    atexit.register(os.unlink, lockfile.name)
    import fcntl
    fcntl.flock(lockfile, fcntl.LOCK_EX)
    # Every process of the tree asleep (or a zombie), as the kernel tells it.
    if not settle.wait_settled(settle.descendants(os.getpid())):
        print("the tree did not settle", file=sys.stderr)
        return 1
    probes = [
        ["ps", "-eo", "pid,ppid,pgid,sid,tpgid,stat,nlwp,comm"],
        ["ps", "-eLo", "pid,lwp,stat,comm"],
        ["pstree", "-p"],
        ["/usr/bin/python3", "-c", PSUTIL],
    ]
    for p in probes:
        out = subprocess.run(settle.when_parent_sleeps(p), capture_output=True, text=True)
        print("$", " ".join(p))
        print(out.stdout, end="")
        if out.stderr:
            print("stderr:", out.stderr, end="")
    keys = ("Name:", "State:", "Tgid:", "Pid:", "PPid:", "TracerPid:", "NStgid:", "NSpid:", "NSpgid:", "NSsid:", "Threads:")
    pids = sorted(int(n) for n in os.listdir("/proc") if n.isdigit())
    for pid in pids:
        for tid in sorted(int(t) for t in os.listdir(f"/proc/{pid}/task")):
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    lines = [l.rstrip("\n") for l in f if l.startswith(keys)]
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError as e:
                lines, stat = [f"error {e.errno}"], ""
            print(f"# {pid}/{tid}", " | ".join(lines))
            # Fields after comm: state ppid pgrp session tty_nr tpgid.
            print(f"  stat {stat[:stat.index(' ')]} {stat[stat.rindex(')') + 2:].split()[:6]}")
    print("self", os.readlink("/proc/self"), os.readlink("/proc/thread-self"))
    with open(f"/proc/self/fdinfo/{pidfd}") as f:
        print("pidfd", " | ".join(l.strip() for l in f if l.startswith(("Pid:", "NSpid:"))))
    ino = os.fstat(lockfile.fileno()).st_ino
    with open("/proc/locks") as f:
        for l in f:
            words = l.split()
            if any(w.count(":") == 2 and w.endswith(f":{ino}") for w in words):
                print("lock", words[1:5])
    print("children", open("/proc/1/task/1/children").read().split())
    # By name: without a pid namespace fork() returns real pids, which the view hides.
    multi = [p for p in pids if open(f"/proc/{p}/comm").read() == "threads\n"]
    print("sched", open(f"/proc/{multi[0]}/sched").readline().strip())
    lockfile.close()
    print("ns_last_pid", open("/proc/sys/kernel/ns_last_pid").read().strip())
    print("pid_max", open("/proc/sys/kernel/pid_max").read().strip())
    for k in kids:
        try:
            os.kill(k, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
