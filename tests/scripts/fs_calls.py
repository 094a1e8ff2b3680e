#!/usr/bin/env python3
"""What the file system calls answer on /proc, one line each: the view must answer as
the kernel's procfs (run as the init of a pid namespace and of a VPS, outputs compared).

Extended attributes, statvfs, the calls that would make, remove or change a name or an
inode (procfs's immutable process directories, its refusal of a change of mode, its
sysctls' rules), and opens in modes procfs refuses (direct I/O among them); as root, then as `nobody` on its
own process and on root's.
"""
import errno
import os


def call(f):
    try:
        return f() or "ok"
    except OSError as e:
        return errno.errorcode[e.errno]


def attrs(p):
    st = call(lambda: os.stat(p))
    if isinstance(st, str):
        return [st]
    return [call(lambda: os.chmod(p, st.st_mode & 0o7777)),
            call(lambda: os.chown(p, st.st_uid, st.st_gid)),
            call(lambda: os.utime(p)),
            call(lambda: os.utime(p, (1, 1))),
            call(lambda: os.truncate(p, 0)) if not os.path.isdir(p) else "dir"]


def xattrs(p, who):
    # getxattr is answered by the kernel itself through the view (EOPNOTSUPP), where
    # procfs first checks that the reader may read the entry (docs/limits.md): asked as
    # root only.
    return [call(lambda: os.listxattr(p)),
            call(lambda: os.getxattr(p, "user.x")) if who == "root" else "-",
            call(lambda: os.setxattr(p, "user.x", b"1")),
            call(lambda: os.setxattr(p, "trusted.x", b"1")),
            call(lambda: os.removexattr(p, "user.x")),
            call(lambda: os.setxattr(p, "user.x", b"1", follow_symlinks=False))]


def on_fd(p, *calls):
    """Each of `calls` made on a descriptor of `p` opened for reading."""
    try:
        fd = os.open(p, os.O_RDONLY)
    except OSError as e:
        return errno.errorcode[e.errno]
    try:
        return [call(lambda: f(fd)) for f in calls]
    finally:
        os.close(fd)


def reads(p):
    # Where procfs fails a file's reads, not its open: a namespace (EINVAL, also to a
    # positional read), `attr/current` without a security module that has it.
    return on_fd(p, lambda fd: os.read(fd, 4096) and "text",
                 lambda fd: os.pread(fd, 4096, 0) and "text")


def syncs(p):
    # procfs has no fsync: EINVAL to fsync and fdatasync, for a file or a directory.
    return on_fd(p, os.fsync, os.fdatasync)


def access(p):
    # access(2) in each mode: procfs's mode bits, its immutable process directories
    # and namespaces (EPERM to a write, root's too), nsfs's modes behind ns/ links.
    return "".join("1" if os.access(p, m) else "0"
                   for m in (os.F_OK, os.R_OK, os.W_OK, os.X_OK, os.R_OK | os.W_OK))


def calls(who):
    paths = ["/proc/self/", "/proc/1/", "/proc/1/task/1", "/proc/self/stat", "/proc/1/stat",
             "/proc/self/comm", "/proc/1/comm", "/proc/self/fd", "/proc/self/ns",
             "/proc/self/ns/pid", "/proc/1/ns/pid", "/proc/sys", "/proc/sys/kernel",
             "/proc/sys/kernel/pid_max", "/proc", "/proc/uptime", "/proc/self",
             "/proc/thread-self"]
    for p in paths:
        print(who, p, "attrs", attrs(p), "xattrs", xattrs(p, who))
    # The preferred I/O size: procfs's 1 KiB, nsfs's and pipefs's a page.
    r, w = os.pipe()
    print(who, "blksize", [os.stat(p).st_blksize for p in (
        "/proc", "/proc/self/stat", "/proc/self/ns/pid", "/proc/1/ns/net", f"/proc/self/fd/{r}")])
    os.close(r)
    os.close(w)
    print(who, "reads", [reads(p) for p in ("/proc/self/ns/pid", "/proc/self/attr/current",
                                             "/proc/1/ns/net", "/proc/self/stat")])
    print(who, "syncs", [syncs(p) for p in ("/proc", "/proc/self", "/proc/self/stat",
                                             "/proc/self/fd", "/proc/uptime",
                                             "/proc/sys/kernel/pid_max")])
    print(who, "access", [access(p) for p in (
        "/proc", "/proc/1", "/proc/1/task/1", "/proc/1/task", "/proc/1/stat", "/proc/1/environ",
        "/proc/1/comm", "/proc/1/mem", "/proc/1/fd", "/proc/1/exe", "/proc/1/ns/pid",
        "/proc/self/ns/pid", "/proc/self/environ", "/proc/uptime", "/proc/sys/kernel/pid_max")])
    stat = "/proc/self/stat"
    print(who, "mkdir", call(lambda: os.mkdir("/proc/self/x")),
          "rmdir", call(lambda: os.rmdir("/proc/self/fd")),
          "unlink", call(lambda: os.unlink(stat)),
          "rename", call(lambda: os.rename(stat, "/proc/self/x")),
          "symlink", call(lambda: os.symlink("/", "/proc/self/y")),
          "link", call(lambda: os.link(stat, "/proc/self/z")),
          "mknod", call(lambda: os.mkfifo("/proc/self/f")))
    for flags, name in [(os.O_RDWR, "rdwr"), (os.O_RDONLY | os.O_DIRECTORY, "directory"),
                        (os.O_WRONLY | os.O_CREAT | os.O_EXCL, "creat excl"),
                        (os.O_RDONLY | os.O_CREAT, "creat"), (os.O_WRONLY | os.O_TRUNC, "trunc"),
                        (os.O_RDONLY | os.O_DIRECT, "direct"), (os.O_WRONLY | os.O_DIRECT, "direct write")]:
        print(who, "open", name, [call(lambda: os.close(os.open(p, flags, 0o600)))
                                  for p in [stat, "/proc/1/comm", "/proc/self/fd", "/proc/uptime",
                                            "/proc/self/new"]])


def main():
    v = os.statvfs("/proc")
    print("statvfs", v.f_bsize, v.f_frsize, v.f_namemax, v.f_blocks, v.f_bfree, v.f_files)
    calls("root")
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            calls("nobody")
        except Exception as e:
            # Said, so that a probe cut short differs from one that ran to its end.
            print("nobody stopped:", type(e).__name__, e)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


main()
