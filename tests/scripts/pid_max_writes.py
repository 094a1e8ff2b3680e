#!/usr/bin/env python3
"""Writes to /proc/sys/kernel/pid_max from the init of a pid namespace or VPS.

Since Linux 6.14 each pid namespace has its own pid_max, and the kernel answers the
sysctl for its writer's namespace: a write changes that namespace's, never the host's.
procfs takes one number in C's bases from 301 to PID_MAX_LIMIT, and only the bytes up
to the white space after it. Prints, for each write, what it returned, the value
then shown, and the number the next process gets: the write takes none, and a
`pid_max` lowered to the last pid or below has the next one come round to the bottom
(300, `RESERVED_PIDS`). Run as the init of a pid namespace and of a VPS with one: the outputs must
be identical (and the host's pid_max must not move: the caller checks).
"""
import errno
import os
import sys

P = "/proc/sys/kernel/pid_max"


def write(data):
    fd = os.open(P, os.O_WRONLY)
    try:
        return os.write(fd, data)
    except OSError as e:
        return errno.errorcode[e.errno]
    finally:
        os.close(fd)


def next_pid():
    """The number a new process gets (as it reads it, the same with or without a pid
    namespace)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, os.readlink("/proc/self").encode())
        os._exit(0)
    os.close(w)
    number = os.read(r, 32).decode()
    os.close(r)
    os.waitpid(pid, 0)
    return number


def main():
    if os.readlink("/proc/self") != "1":
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    for data in [b"301", b"300", b"40000", b"4194304", b"4194305", b"0x1000",
                 b"5000 6000", b"-1", b"7x", b"12345\n"]:
        with open(P) as f:
            print(repr(data), write(data), f.read().strip(), "next", next_pid())
    # Lowered to the last pid or below: the next process comes round to the bottom.
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write("600")
    for data in [b"550", b"301"]:
        with open(P) as f:
            print(repr(data), write(data), f.read().strip(), "next", next_pid())
    return 0


if __name__ == "__main__":
    sys.exit(main())
