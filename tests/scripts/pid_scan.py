#!/usr/bin/env python3
"""Scans the full view for real pids, of members and of non-members.

Run as init of a VPS with the full view (`vprocfs run --full-view`, or `--no-pidns` with
a VPID_BIT that keeps every vpid above pid_max). It first makes descriptors of every kind
that can show a pid in its fdinfo (pidfd, flock, POSIX and OFD locks, eventfd,
signalfd, inotify, an io_uring with a polling thread), a SysV shared memory segment and
a message queue used by members, a thread and sleeping children, then prints `ready`
and waits for PIDS_FILE (argv[1]) to name real pids: the test writes there, from the
host, the real pids and tids of every process of the VPS and of processes outside it.

Then every file of /proc that can carry a pid is read through the view: every file and
link of every member's directory and task directories (every fdinfo included), and the
global files (sysvipc/*, locks, loadavg, sys/kernel/{ns_last_pid,cad_pid,pid_max}, …).
A real pid found as a word is a leak unless the kernel's own procfs, mounted here as the
oracle, shows the same number at the same place (a counter that happens to equal it):
with a pid namespace, the procfs of the namespace, where the same file exists under the
same name; without one, the host's procfs, under the member's real pid, the number at
the same line and word. Prints `scanned N`, `file REL` for the files of note, and
`leak REL: PID` for each leak.
"""
import ctypes
import fcntl
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

# Not scanned: cgroup paths (`cgroup`, `cpuset`) carry names with random hex digits
# (`vprocfs run`'s run-<hex>, a runtime's container ids), whose digit runs look like
# pids to this scan. They carry no pid: `vprocfs run`'s name is random, not the
# daemon's pid (tests/resources.rs checks that).
KNOWN = {"cgroup", "cpuset"}
SKIP = KNOWN | {"mem", "pagemap", "kcore", "kmsg", "clear_refs", "kpagecount", "kpageflags",
        "kpagecgroup", "page_idle", "sysrq-trigger", "trace_pipe", "uprobe_events",
        "smaps", "smaps_rollup", "numa_maps", "net"}
GLOBAL_DIRS = {"sysvipc", "pressure"}
# The files the view rewrites (src/view/files.rs, src/view/resource_files.rs); every
# other file is the kernel's text passed through.
RENDERED = {"stat", "status", "children", "comm", "sched", "timers", "loadavg", "locks",
            "ns_last_pid", "pid_max", "cad_pid", "shm", "msg", "meminfo", "cpuinfo",
            "uptime", "swaps", "diskstats", "vmstat"}


STATUS_PIDS = (b"Tgid:", b"Ngid:", b"Pid:", b"PPid:", b"TracerPid:", b"NStgid:", b"NSpid:",
               b"NSpgid:", b"NSsid:")


# The virtual global files the view makes from the VPS's cgroup (src/resources): counters
# and sizes only, no pid (`loadavg`'s last pid is scanned). A counter in them that happens
# to equal a small real pid (CPU ticks in `stat`, kB in `meminfo`) would read as a leak:
# the oracle (the namespace's procfs, or the host's) shows the host's figures, not the
# VPS's, so it never excuses one. Read, not scanned.
NO_PID_GLOBALS = {"meminfo", "cpuinfo", "stat", "uptime", "swaps", "diskstats", "vmstat"}


# A process's files that carry counters, addresses and symbols but never a pid, passed
# through as the kernel writes them: the scanner's own change as it reads them (`io`'s
# rchar grows with every read), so a counter there may equal a real pid in the view's
# read and not in the oracle's.
NO_PID = {"io", "statm", "schedstat", "stack", "syscall", "wchan", "timerslack_ns",
          "oom_score", "oom_adj", "oom_score_adj", "coredump_filter", "personality",
          "ksm_stat", "ksm_merging_pages", "arch_status", "auxv", "limits"}


def pid_fields(rel, text):
    """The pid-bearing part of a stat or status (pid, ppid, pgrp, session, tpgid; the
    id lines) or sched (its first line, `comm (pid, #threads: n)`: the rest are
    counters), nothing of a file that carries no pid ([`NO_PID`]), the whole text of
    any other file."""
    name = rel.rsplit("/", 1)[-1]
    if name in NO_PID:
        return b""
    if name == "sched":
        return text.split(b"\n", 1)[0]
    if name == "stat" and b")" in text:
        head, _, tail = text.rpartition(b")")
        f = tail.split()
        pid = head.split(b" ", 1)[0]
        return b" ".join([pid] + [f[i] for i in (1, 2, 3, 5) if i < len(f)])
    if name == "status":
        return b"\n".join(l for l in text.split(b"\n") if l.startswith(STATUS_PIDS))
    return text


def rendered(rel):
    return "fdinfo/" in rel or rel.rsplit("/", 1)[-1] in RENDERED
GLOBAL_EXTRA = ["sys/kernel/ns_last_pid", "sys/kernel/pid_max", "sys/kernel/cad_pid"]
LIMIT = 1 << 20
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p


def read(path):
    try:
        if os.path.islink(path):
            return os.readlink(path).encode()
        with open(path, "rb") as f:
            return f.read(LIMIT)
    except OSError:
        return None


def walk(root, rel, out, depth):
    try:
        names = os.listdir(os.path.join(root, rel) if rel else root)
    except OSError:
        return
    for name in names:
        if name in SKIP:
            continue
        r = os.path.join(rel, name) if rel else name
        full = os.path.join(root, r)
        if os.path.islink(full):
            out.append(r)
        elif os.path.isdir(full):
            if depth > 0:
                walk(root, r, out, depth - 1)
        else:
            out.append(r)


def counted(rel, orc_rel, oracle, word, tries=3):
    """Whether a number the view showed and the oracle did not was a counter that
    moved between the two reads (this scanner's own `statm` grows as it reads): it is
    if, read again, the view shows the oracle's very text, without the number, or the
    oracle shows the number too. A real pid the view leaks stays where it is."""
    for _ in range(tries):
        view = read(os.path.join("/proc", rel)) or b""
        kernel = read(os.path.join(oracle, orc_rel)) or b""
        if word.search(kernel) or (view == kernel and not word.search(view)):
            return True
    return False


class Msg(ctypes.Structure):
    _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 8)]


def make_things(tmp):
    """Descriptors of every kind, IPC objects used by members, children, a thread."""
    keep = []
    kids = [subprocess.Popen(["sleep", "120"]) for _ in range(2)]
    kids.append(subprocess.Popen(["setsid", "sleep", "120"]))
    keep.append(os.pidfd_open(kids[0].pid))
    files = [open(os.path.join(tmp, n), "w+") for n in "abc"]
    fcntl.flock(files[0], fcntl.LOCK_EX)
    fcntl.lockf(files[1], fcntl.LOCK_EX, 10, 0)
    fcntl.fcntl(files[2], 37, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0))  # F_OFD_SETLK
    keep += files
    keep.append(os.eventfd(0))
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    mask = (ctypes.c_uint64 * 1)(1 << (signal.SIGUSR1 - 1))
    keep.append(libc.signalfd(-1, mask, 8))
    ino = libc.inotify_init1(0)
    libc.inotify_add_watch(ino, tmp.encode(), 0x100)  # IN_CREATE
    keep.append(ino)
    # io_uring with a polling thread: its fdinfo names the thread (SqThread).
    params = (ctypes.c_char * 120)()
    struct.pack_into("IIIII", params, 0, 0, 0, 2, 0, 1000)  # IORING_SETUP_SQPOLL
    ring = libc.syscall(425, 4, params)
    keep.append(ring)
    # SysV IPC: made here, attached and received from by a child (other pids).
    shmid = libc.shmget(0, 4096, 0o1000 | 0o600)
    msqid = libc.msgget(0, 0o1000 | 0o600)
    libc.shmat(shmid, None, 0)
    # Removed when the last user detaches (listed until then): nothing is left behind
    # even if the VPS is killed.
    libc.shmctl(shmid, 0, None)  # IPC_RMID
    for text in (b"one", b"two"):
        libc.msgsnd(msqid, ctypes.byref(Msg(1, text)), 8, 0)
    r, w = os.pipe()
    user = os.fork()
    if user == 0:
        libc.shmat(shmid, None, 0)
        libc.msgrcv(msqid, ctypes.byref(Msg()), 8, 0, 0)
        os.write(w, b"x")
        time.sleep(120)
        os._exit(0)
    os.read(r, 1)
    threading.Thread(target=time.sleep, args=(120,), daemon=True).start()
    return keep, kids, [user], (shmid, msqid, ring)


def main():
    pids_file = sys.argv[1]
    pidns = os.environ.get("SCAN_PIDNS") == "1"
    tmp = tempfile.mkdtemp(prefix="pid-scan-")
    keep, kids, forks, (shmid, msqid, ring) = make_things(tmp)
    time.sleep(0.3)
    print("ready", flush=True)
    while not os.path.exists(pids_file):
        time.sleep(0.05)
    with open(pids_file) as f:
        real = sorted({int(p) for p in f.read().split()})
    # A pid is a decimal word: not digits inside a hex number (`stack`'s offsets,
    # `+0x1320/0x150`, differ between the view's read and the oracle's, since the
    # reader is blocked in a FUSE request during the first: seen as a leak of 1320).
    words = {p: re.compile(rb"(?<![0-9A-Fa-fx])" + str(p).encode() + rb"(?![0-9A-Fa-f])") for p in real}
    oracle = tempfile.mkdtemp(prefix="pid-scan-proc-")
    subprocess.run(["mount", "-t", "proc", "proc", oracle], check=True)
    leaks, scanned, noted = [], 0, set()
    try:
        files = []
        walk("/proc", "", files, 0)
        for d in GLOBAL_DIRS:
            walk("/proc", d, files, 0)
        files += GLOBAL_EXTRA
        for name in os.listdir("/proc"):
            if name.isdigit():
                walk("/proc", name, files, 3)
        # Where the oracle has each view file: the same name with a pid namespace; the
        # member's real pid without one.
        to_real = {}
        if not pidns:
            # Linear numbering: init is 1, every other vpid is pid + 2^VPID_BIT.
            div = 1 << int(os.environ["SCAN_VPID_BIT"])
            for name in os.listdir("/proc"):
                if name.isdigit():
                    v = int(name)
                    to_real[name] = str(os.getpid() if v == 1 else v - div)
        for rel in sorted(set(files)):
            view = read(os.path.join("/proc", rel))
            if view is None:
                continue
            scanned += 1
            if rel in NO_PID_GLOBALS:
                continue
            parts = rel.split("/")
            if parts[0].isdigit() and not pidns:
                if parts[0] not in to_real:
                    continue  # a short-lived member (this scan's own children)
                parts[0] = to_real[parts[0]]
                if len(parts) > 2 and parts[1] == "task" and parts[2].isdigit():
                    v = int(parts[2])
                    parts[2] = str(os.getpid() if v == 1 else v - div)
            orc_rel = "/".join(parts)
            for key in ("fdinfo/", "sysvipc/", "locks", "cad_pid", "ns_last_pid", "loadavg"):
                if key in rel and (rel.startswith(str(os.getpid()) + "/") or not parts[0].isdigit() or not pidns):
                    noted.add(rel)
            if not pidns and not rendered(rel):
                # Passed through: the host's own text at the moment of the read, which
                # a second read of the host's file (timer_list, vmallocinfo, syscall)
                # may not reproduce; only what the view rewrites is checked here.
                continue
            if not pidns or parts[0] == str(os.getpid()):
                # A counter of stat, status or sched that changed since may equal a
                # small real pid: only their pid fields are scanned. With a pid
                # namespace that is this scanner's own (its memory grows as it reads:
                # `VmRSS: 6400 kB` matched a member's real pid 6400 on a fresh machine,
                # and changed again before every re-read of the oracle).
                view = pid_fields(rel, view)
            for p, w in words.items():
                if not w.search(view):
                    continue
                k = read(os.path.join(oracle, orc_rel)) or b""
                if pidns:
                    if not w.search(k) and not counted(rel, orc_rel, oracle, w):
                        leaks.append(f"{rel}: {p}")
                    continue
                # Without a pid namespace the oracle is the host's file, with real pids
                # in it: a line the view left exactly as the host's is excused (a
                # counter that equals the number); a line the view rewrote and that
                # still holds a real pid, or a real pid the host's line lacks, is not.
                vl, kl = view.split(b"\n"), k.split(b"\n")
                for i, line in enumerate(vl):
                    if w.search(line) and not (i < len(kl) and kl[i] == line):
                        leaks.append(f"{rel}: {p} (line {i + 1})")
        print("scanned", scanned)
        for rel in sorted(noted):
            print("file", rel)
        for l in leaks:
            print("leak", l)
    finally:
        for k in kids:
            k.kill()
            k.wait()
        for p in forks:
            os.kill(p, signal.SIGKILL)
            os.waitpid(p, 0)
        libc.msgctl(msqid, 0, None)  # IPC_RMID
        subprocess.run(["umount", oracle], check=True)
        os.rmdir(oracle)
        for n in "abc":
            os.unlink(os.path.join(tmp, n))
        os.rmdir(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
