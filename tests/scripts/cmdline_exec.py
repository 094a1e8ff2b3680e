#!/usr/bin/env python3
"""A process's `cmdline` read, then read again after the process execs: the new
command's, as procfs makes it at every read from the memory the process has then.
Also for a command line longer than a page, read in one go and in small reads, and for
a zombie (empty). Run as the init of a pid namespace and of a VPS: identical outputs.
"""
import hashlib
import os
import signal
import sys


def cmdline(pid, chunk=None):
    with open(f"/proc/{pid}/cmdline", "rb", buffering=0) as f:
        if chunk is None:
            return f.read()
        out = b""
        while True:
            part = f.read(chunk)
            if not part:
                return out
            out += part


def show(text):
    return f"{len(text)} {hashlib.sha256(text).hexdigest()[:16]} {text[:40]!r}"


def exec_child(argv):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os.execvp(argv[0], argv)
    os.close(r)
    return pid, w


def main():
    if os.readlink("/proc/self") != "1":
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    for name, argv in [
        ("short", ["sleep", "3600"]),
        ("long", ["sh", "-c", "sleep 3600; : " + "x" * 6000]),
    ]:
        pid, w = exec_child(argv)
        print(name, "before exec", show(cmdline(pid)))
        os.write(w, b"go")
        os.close(w)
        # Until the exec is done: the command line shows it.
        for _ in range(2000):
            if cmdline(pid).startswith(argv[0].encode()):
                break
            os.sched_yield()
        print(name, "after exec", show(cmdline(pid)))
        print(name, "after exec, read by 100", show(cmdline(pid, 100)))
        os.kill(pid, signal.SIGKILL)
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        print(name, "zombie", show(cmdline(pid)))
        os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
