#!/usr/bin/env python3
"""A process looked at alive and as a zombie, then reaped, is gone at once.

Run as the init of a pid namespace and of a VPS: the outputs must be identical. Each
round a child is `stat`ed alive by path, killed, `stat`ed again as a zombie (waited for
without reaping, so as not to look through /proc), reaped, and its directory asked for
once more: procfs's walk fails (`ENOENT`). In the view the zombie's `stat` may come
through the name kept while the child lived, a moment before the exit event's
invalidation of it, and attributes the kernel kept from that answer made the last
`stat` succeed (a few rounds in a thousand). Prints how many rounds saw the reaped
child.
"""
import os
import signal
import sys
import time

ROUNDS = 1000


def main():
    if os.readlink("/proc/self") != "1":
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    seen = 0
    for _ in range(ROUNDS):
        pid = os.fork()
        if pid == 0:
            time.sleep(3600)
            os._exit(0)
        os.stat(f"/proc/{pid}")
        os.kill(pid, signal.SIGKILL)
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        os.stat(f"/proc/{pid}")
        os.waitpid(pid, 0)
        seen += os.path.exists(f"/proc/{pid}")
    print("reaped and still there:", seen, "of", ROUNDS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
