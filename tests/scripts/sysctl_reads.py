#!/usr/bin/env python3
"""Reads every file of /proc/sys in small pieces, as `read` in dash reads a file (one
byte at a time), and prints what each read gave.

Run as the init of a pid namespace and of a VPS, as root and as nobody: the outputs
must be identical. procfs's integer sysctls (`proc_dointvec` and its kin) make their
text at a read from offset 0 and give nothing to a read past it, so a byte-by-byte
reader gets the first digit only (dash's `read x < /proc/sys/kernel/pid_max` sets x
to the first digit); string sysctls go on in their text; a few open and fail their
reads (`stable_secret` never set: EIO). For each file: the lengths of read(1),
read(4096) after it, and pread(4096) at offset 1, or the error. Then an integer
sysctl held open and read again from offset 0 after a fork shows the new last pid.
"""
import errno
import os
import subprocess
import sys

# Values that change between two runs, in length too.
SKIP = {"/proc/sys/kernel/random/uuid", "/proc/sys/kernel/random/entropy_avail",
        "/proc/sys/fs/dentry-state", "/proc/sys/fs/inode-nr", "/proc/sys/fs/inode-state",
        "/proc/sys/fs/file-nr", "/proc/sys/kernel/tainted"}


def pieces(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return "open " + errno.errorcode[e.errno]
    try:
        return "%d %d %d" % (len(os.read(fd, 1)), len(os.read(fd, 4096)),
                             len(os.pread(fd, 4096, 1)))
    except OSError as e:
        return errno.errorcode[e.errno]
    finally:
        os.close(fd)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--walk":
        for root, dirs, files in os.walk("/proc/sys"):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                if path not in SKIP:
                    print(path, pieces(path))
        return 0
    if os.readlink("/proc/self") != "1":
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    walk = [sys.executable, os.path.abspath(__file__), "--walk"]
    root = subprocess.run(walk, capture_output=True, text=True, check=True).stdout
    nobody = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534",
                             "--clear-groups"] + walk,
                            capture_output=True, text=True, check=True).stdout
    sys.stdout.write(root)
    sys.stdout.write("as nobody:\n" + nobody)
    dash = subprocess.run(["dash", "-c", "read x < /proc/sys/kernel/pid_max; echo $x"],
                          capture_output=True, text=True)
    print("dash read of pid_max:", dash.stdout.strip(), dash.stderr.strip())
    fd = os.open("/proc/sys/kernel/ns_last_pid", os.O_RDONLY)
    before = os.pread(fd, 100, 0)
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
    print("held ns_last_pid:", before, os.pread(fd, 100, 0), os.pread(fd, 100, 1))
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
