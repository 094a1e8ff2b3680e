#!/usr/bin/env python3
"""The owner the kernel judges some opens by itself (`O_NOATIME` asks the file's owner
or CAP_FOWNER), after a process changed its credentials: a child looks at its own
directory as root (so a kernel cache may hold its name with root as owner), drops to
uid 65534 (undumpable: its entries stay root's), then execs (dumpable again: its
entries are its own). The view learns of a credential change from the kernel's
process events, a moment after it (docs/limits.md): each look waits a little first.
Printed one per line; run in a kernel pid namespace and in a vprocfs VPS, the outputs
must be identical (tests/view_run.rs)."""
import os, sys, time


def tries(label):
    time.sleep(0.2)
    out = []
    for p in ("/proc/self", "/proc/self/stat", "/proc/self/status"):
        try:
            os.close(os.open(p, os.O_RDONLY | os.O_NOATIME))
            out.append("ok")
        except OSError as e:
            out.append(os.strerror(e.errno))
    print(label, out, flush=True)


if len(sys.argv) > 1:
    tries("after exec")
    sys.exit(0)
pid = os.fork()
if pid == 0:
    for p in (f"/proc/{os.getpid()}", "/proc/self/stat", "/proc/self/status"):
        os.stat(p)
    tries("as root")
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    tries("after setuid")
    os.execv(sys.executable, [sys.executable, __file__, "exec"])
os.waitpid(pid, 0)
