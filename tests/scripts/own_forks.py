#!/usr/bin/env python3
"""Read-your-own-forks: a child this process has just forked shows at once in
/proc/sys/kernel/ns_last_pid, the last field of /proc/loadavg, the /proc listing and a
lookup of its number, as on the kernel's own procfs.

Run as init of a VPS with the full view. Each round forks a child that waits, reads
the files (ns_last_pid first in even rounds, loadavg first in odd ones, so that neither
read is helped by the other), then lets the child tell its own number (the first field
of its /proc/self/stat, a vpid whatever the numbering) and compares. Prints
`rounds N bad M` and one line per mismatch.
"""
import os
import sys


def read(path):
    with open(path, "rb") as f:
        return f.read().decode()


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    bad = []
    for i in range(rounds):
        go_r, go_w = os.pipe()
        num_r, num_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(go_w)
            os.close(num_r)
            os.read(go_r, 1)
            with open("/proc/self/stat", "rb") as f:
                os.write(num_w, f.read().split()[0])
            os._exit(0)
        os.close(go_r)
        os.close(num_w)
        if i % 2 == 0:
            last = int(read("/proc/sys/kernel/ns_last_pid"))
            load = int(read("/proc/loadavg").split()[-1])
        else:
            load = int(read("/proc/loadavg").split()[-1])
            last = int(read("/proc/sys/kernel/ns_last_pid"))
        listed = str(last) in os.listdir("/proc")
        found = os.path.exists(f"/proc/{last}/stat")
        os.write(go_w, b"x")
        vpid = int(os.read(num_r, 32))
        os.waitpid(pid, 0)
        for fd in (go_w, num_r):
            os.close(fd)
        got = (last, load, listed, found)
        if got != (vpid, vpid, True, True):
            bad.append(f"round {i}: child {vpid} (fork gave {pid}): ns_last_pid {last} loadavg {load} listed {listed} found {found}")
    print(f"rounds {rounds} bad {len(bad)}")
    for b in bad[:20]:
        print(b)


if __name__ == "__main__":
    main()
