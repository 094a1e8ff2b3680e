#!/usr/bin/env python3
"""What each reader may do with each entry of each kind of process, as procfs decides it.

Run as pid 1 of a pid namespace and of a VPS: the two outputs must be identical. Targets:
a root process, an undumpable one, a process of uid 1000 (dumpable or not) and a zombie
of each owner (of uid 1000, dumpable or not when it exited). Readers: root, uid 1000 (the owner of some) and uid 2000 (a stranger).
For each entry: whether it opens, lists or reads, and the error if not, and where it
comes (procfs refuses some at open, `maps` of a stranger's process; some at the read,
`stack` without CAP_SYS_ADMIN, `io` without ptrace access, another's `timerslack_ns`
without CAP_SYS_NICE). Then writes: the same readers write a few files of each target
and their own; and the first lines of the global files that show kernel addresses to
root only (`kallsyms`, `iomem`, `ioports`; `mtrr` opens for root only), the size of a
PCI device's configuration space as each reads it, and whether each reader's own
`pagemap` shows page frame numbers (root's only). Contents are not printed otherwise
(they differ from run to run); which call fails, with which error, is.
"""
import ctypes
import errno
import mmap
import os
import sys
import time

import settle

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_DUMPABLE = 4

READS = ["timers", "timerslack_ns", "ksm_stat", "ksm_merging_pages", "maps", "numa_maps",
         "smaps", "smaps_rollup", "environ", "auxv", "io", "stack", "syscall", "wchan",
         "personality", "sched", "schedstat", "statm", "limits", "oom_score", "cgroup",
         "mountinfo", "mountstats", "attr/current", "ns", "net", "net/dev", "fd", "fdinfo",
         "map_files", "task", "cwd", "root", "exe", "sessionid", "loginuid",
         "coredump_filter", "timens_offsets", "cpuset", "comm", "mem", "pagemap",
         "clear_refs", "oom_adj", "setgroups", "uid_map", "mounts", "stat", "status",
         "cmdline"]
WRITES = [("comm", b"newname"), ("timerslack_ns", b"50000"), ("oom_score_adj", b"100"),
          ("coredump_filter", b"0x33"), ("loginuid", b"1000"), ("clear_refs", b"1"),
          ("sched", b"0"), ("setgroups", b"deny"), ("mem", b"x"), ("environ", b"x"),
          ("stat", b"x")]


def code(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def try_read(path):
    try:
        os.readlink(path)
        return "link"
    except OSError as e:
        if e.errno != errno.EINVAL:
            return "readlink:" + code(e)
    try:
        if os.path.isdir(path):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as e:
                return "opendir:" + code(e)
            os.close(fd)
            try:
                os.listdir(path)
                return "listed"
            except OSError as e:
                return "list:" + code(e)
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return "open:" + code(e)
    try:
        return "read" if os.read(fd, 65536) else "empty"
    except OSError as e:
        return "read:" + code(e)
    finally:
        os.close(fd)


def try_write(path, data):
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as e:
        return "open:" + code(e)
    try:
        return "wrote %d" % os.write(fd, data)
    except OSError as e:
        return "write:" + code(e)
    finally:
        os.close(fd)


def become(uid):
    if uid:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)


def target(uid, dumpable, zombie=False):
    pid = os.fork()
    if pid == 0:
        become(uid)
        # A change of uid makes a process undumpable (suid_dumpable); the kernel keeps
        # the flag past the exit, for its zombie.
        libc.prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0)
        if zombie:
            os._exit(7)
        time.sleep(100)
        os._exit(0)
    return pid


def as_reader(uid, fn):
    pid = os.fork()
    if pid == 0:
        try:
            become(uid)
            fn()
            sys.stdout.flush()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def main():
    if os.readlink("/proc/self") != "1":
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    targets = [("root", target(0, 1)), ("root-undumpable", target(0, 0)),
               ("u1000", target(1000, 1)), ("u1000-undumpable", target(1000, 0)),
               ("root-zombie", target(0, 1, True)), ("u1000-zombie", target(1000, 1, True)),
               ("u1000-undumpable-zombie", target(1000, 0, True))]
    # Each target where it is meant to be: a zombie (not reaped), or asleep once its
    # credentials and dumpable flag are set (a fixed sleep is not enough on a loaded
    # machine), as the kernel tells it.
    for name, pid in targets:
        if name.endswith("zombie"):
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    if not settle.wait_settled([pid for _, pid in targets]):
        print("the targets did not settle", file=sys.stderr)
        return 1
    for reader in (0, 1000, 2000):
        def reads():
            for name, pid in targets:
                for f in READS:
                    print("read reader=%d target=%s %s %s" % (
                        reader, name, f, try_read("/proc/%d/%s" % (pid, f))))
                with open("/proc/%d/stat" % pid) as f:
                    text = f.read()
                if "zombie" in name:
                    # Its exit code, shown only to a reader that may ptrace it.
                    print("read reader=%d target=%s stat exit_code %s" % (
                        reader, name, text.split()[-1]))
                # The addresses, wchan and exit code (fields 26 to 52), shown only to a
                # reader that may ptrace it: 0, 1 or another number (an address); not
                # field 39, the CPU it last ran on.
                tail = text[text.rindex(")") + 2:].split()[23:]
                tail[39 - 26] = "-"
                print("read reader=%d target=%s stat fields 26- %s" % (
                    reader, name, " ".join(v if v in ("0", "1", "-") else "N" for v in tail)))
        as_reader(reader, reads)
    for reader in (0, 1000, 2000):
        def kernel_addresses():
            # Shown to root, zeroed for the others (CAP_SYSLOG, CAP_SYS_ADMIN).
            for f, n in (("kallsyms", 1), ("iomem", 3), ("ioports", 3), ("mtrr", 1)):
                try:
                    with open("/proc/" + f) as fh:
                        head = [fh.readline().rstrip("\n") for _ in range(n)]
                except OSError as e:
                    head = [code(e)]
                print("global reader=%d %s %s" % (reader, f, head))
            # A PCI device's configuration space: its first 64 bytes only, without
            # CAP_SYS_ADMIN (where the machine has a PCI bus at all).
            bus = "/proc/bus/pci/00"
            devices = sorted(os.listdir(bus)) if os.path.isdir(bus) else []
            for d in devices[:1]:
                with open(os.path.join(bus, d), "rb") as fh:
                    print("global reader=%d pci config %d bytes" % (reader, len(fh.read())))
        as_reader(reader, kernel_addresses)
    for reader in (0, 1000, 2000):
        def own_pagemap():
            # Page frame numbers only for CAP_SYS_ADMIN: the flags, and whether a
            # number is shown, of a page of its own it has just written.
            # (Dumpable again after the change of uid, so that its files are its own.)
            libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
            page = mmap.mmap(-1, mmap.PAGESIZE)
            page[0:1] = b"x"
            at = ctypes.addressof(ctypes.c_char.from_buffer(page))
            try:
                with open("/proc/self/pagemap", "rb") as f:
                    f.seek(at // mmap.PAGESIZE * 8)
                    entry = int.from_bytes(f.read(8), "little")
            except OSError as e:
                print("pagemap reader=%d %s" % (reader, code(e)))
                return
            print("pagemap reader=%d flags %#x frame %s" % (
                reader, entry >> 55, "shown" if entry & ((1 << 55) - 1) else "zero"))
        as_reader(reader, own_pagemap)
    for reader in (0, 1000, 2000):
        def writes():
            for name, pid in targets[:4] + [("self", os.getpid())]:
                for f, data in WRITES:
                    print("write reader=%d target=%s %s %s" % (
                        reader, name, f, try_write("/proc/%d/%s" % (pid, f), data)))
            with open("/proc/self/timerslack_ns") as f:
                print("own timerslack_ns after the write", f.read().strip())
        as_reader(reader, writes)
    for name, pid in targets:
        if "zombie" not in name:
            os.kill(pid, 9)
    for name, pid in targets:
        os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
