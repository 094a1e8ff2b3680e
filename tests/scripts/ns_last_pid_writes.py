#!/usr/bin/env python3
"""Writes to /proc/sys/kernel/ns_last_pid, as shells and restore tools write it.

Run as the init of a pid namespace and of a VPS: the outputs must be identical. For each
write: what the write returns (the bytes the kernel took, or its error), what a second
write at the position reached returns, and the value then shown. The kernel reads one
number in C's bases (`0x20`, `010`), followed by white space or the end, up to
PID_MAX_LIMIT; it takes only the bytes up to the white space after the number, and
ignores a write past offset 0 (strict sysctl writes). Then: the next process gets the
number after the one written; a writer needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE,
and the one that grants it is marked in the writer's flags (PF_SUPERPRIV, 0x100).
"""
import errno
import os
import subprocess
import sys

P = "/proc/sys/kernel/ns_last_pid"
PF_SUPERPRIV = 0x100


def now():
    with open(P) as f:
        return f.read().strip()


def write(fd, data):
    try:
        return os.write(fd, data)
    except OSError as e:
        return errno.errorcode[e.errno]


CASES = [b"50", b"50\n", b"0x20", b"0X1f", b"010", b"00012", b"08", b"+5", b" \t 33",
         b"33\n\n", b"", b"\n", b"  ", b"-0", b"-1", b"1 ", b"2\t", b"70 80\n", b"71,72",
         b"12\n34", b"7x", b"1e3", b"3\x00", b"99999999999999999999",
         b"000000000000000000012", b"4194303", b"4194304", b"4194305"]


def main():
    if os.readlink("/proc/self") != "1":
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    for data in CASES:
        fd = os.open(P, os.O_WRONLY)
        write(fd, b"100")
        os.close(fd)
        fd = os.open(P, os.O_WRONLY)
        first = write(fd, data)
        second = write(fd, b"200")
        os.close(fd)
        print(repr(data), first, "then", second, "->", now())
    fd = os.open(P, os.O_WRONLY)
    try:
        print("pwrite at 3:", os.pwrite(fd, b"250", 3), now())
    except OSError as e:
        print("pwrite at 3:", errno.errorcode[e.errno], now())
    os.close(fd)
    # The next process is numbered after the number written.
    with open(P, "w") as f:
        f.write("60")
    child = os.fork()
    if child == 0:
        with open("/proc/self/stat") as f:
            print("next process:", f.read().split()[0], "last:", now())
        sys.stdout.flush()
        os._exit(0)
    os.waitpid(child, 0)
    # Who may write, and the mark of the privilege used.
    me = "import os; fd = os.open(%r, os.O_WRONLY)\n" % P + \
         "try:\n  os.write(fd, b'90'); r = 'written'\n" + \
         "except OSError as e: r = os.strerror(e.errno)\n" + \
         "f = int(open('/proc/self/stat').read().rsplit(')', 1)[1].split()[6])\n" + \
         "print(r, 'superpriv' if f & %d else 'unmarked')" % PF_SUPERPRIV
    nobody = ["--reuid", "65534", "--regid", "65534", "--clear-groups"]
    writers = {
        "root": [],
        "nobody": nobody,
        "nobody with CAP_CHECKPOINT_RESTORE": nobody + [
            "--inh-caps", "+checkpoint_restore", "--ambient-caps", "+checkpoint_restore"],
        "root without CAP_SYS_ADMIN": ["--bounding-set", "-sys_admin", "--inh-caps", "-all"],
    }
    for who, opts in writers.items():
        with open(P, "w") as f:
            f.write("80")
        out = subprocess.run(["setpriv"] + opts + ["/usr/bin/python3", "-c", me],
                             capture_output=True, text=True)
        print(who + ":", out.stdout.strip(), out.stderr.strip(), "->", now())
    return 0


if __name__ == "__main__":
    sys.exit(main())
