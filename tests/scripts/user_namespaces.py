#!/usr/bin/env python3
"""What readers in and around a user namespace may open of a process's entries.

Run as root, as the init of a pid namespace (the kernel's oracle) and of a VPS: the two
outputs must be identical. A capability is held in a user namespace (the kernel's
`cap_capable`): root in a namespace of its own is root there and nothing above it, the
owner of a namespace has every capability in it, and a process that is not dumpable is
open only to a reader with CAP_SYS_PTRACE in the namespace of its memory.

The tree: a user namespace mapping 0..65535 to 100000..165535, owned by uid 1000, whose
root runs `sleep` as uid 1000 inside ("dumpable") and a fork that became uid 1000 inside
without exec ("undumpable": its memory is the initial namespace's); outside it, the
script itself (pid 1). Readers: root inside, uid 1000 and 1001 inside, root inside
without the capabilities; then outside: root, the namespace's owner (uid 1000), uid
1001, uid 100000, and root of a namespace of its own (`unshare -Ur`).

Then the ids each reader sees: procfs prints the ids of `status`, the lower ids of the
id maps, `loginuid`, the uid column of the socket tables and the ids of SysV IPC
objects in the reader's namespace (an id it does not map as the overflow id, or
4294967295), and `ps` names users by them. The dumpable process holds a listening TCP
socket and a shared memory segment; the script runs in network and IPC namespaces of
its own, so that nothing else shows in those tables.
"""
import ctypes
import os
import socket
import subprocess
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER = 0x10000000
ENTRIES = ("environ", "maps", "fd", "cwd", "exe", "timerslack_ns", "io", "syscall", "stack", "mem")

# Prints, for each pid of argv, what each entry answers (the first byte read).
PROBE = """
import os, sys
for label, pid in zip(sys.argv[1::2], sys.argv[2::2]):
    seen = []
    for n in %r:
        p = "/proc/" + pid + "/" + n
        try:
            if n in ("cwd", "exe"):
                os.readlink(p)
            elif n == "fd":
                os.listdir(p)
            else:
                with open(p, "rb") as f:
                    f.read(1)
            seen.append(n + " ok")
        except OSError as e:
            seen.append(n + " " + (os.strerror(e.errno) if e.errno else "?"))
    print("  ", label, ", ".join(seen), flush=True)
""" % (ENTRIES,)

AS = {
    "root": [],
    "uid 1000": ["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups"],
    "uid 1001": ["setpriv", "--reuid", "1001", "--regid", "1001", "--clear-groups"],
    "uid 100000": ["setpriv", "--reuid", "100000", "--regid", "100000", "--clear-groups"],
    "root without capabilities": [
        "setpriv", "--inh-caps=-all",
        "--bounding-set=-sys_ptrace,-dac_override,-dac_read_search,-sys_admin,-sys_nice",
    ],
    "root of its own namespace": ["unshare", "-Ur"],
    "unmapped in its own namespace": ["unshare", "-U"],
}


def probe(who, targets):
    print("as", who, flush=True)
    args = [a for label, pid in targets for a in (label, str(pid))]
    subprocess.run([*AS[who], "/usr/bin/python3", "-c", PROBE, *args], check=False)


# The ids of every target and of the reader itself, as procfs prints them for it.
IDS = """
for p in "$@" self; do
    grep -E '^(Uid|Gid|Groups):' /proc/$p/status | tr '\\n\\t' '  '; echo
    cat /proc/$p/uid_map /proc/$p/gid_map /proc/$p/projid_map | tr -s ' ' | tr '\\n' '|'; echo
    echo "loginuid $(cat /proc/$p/loginuid)"
done
# The fields up to the uid (tcp) or cgid (shm): the rest are inodes, addresses, times.
sed -E 's/^(( *[^ ]+){9}).*/\\1/' /proc/self/net/tcp
sed -E 's/^(( *[^ ]+){11}).*/\\1/' /proc/sysvipc/shm
ps -o user,uid,group,gid,euser,ruser,suser,fuser,supgrp,comm -p "$(echo "$@" | tr ' ' ,)"
# The keys of the users the namespace maps (none, unmapped: the count is the host's else).
[ -n "$KEYS" ] && echo "keys $(wc -l < /proc/keys) key-users $(wc -l < /proc/key-users)"
"""


def ids(who, targets, keys=False):
    print("ids as", who, flush=True)
    env = dict(os.environ, KEYS="1" if keys else "")
    subprocess.run([*AS[who], "sh", "-c", IDS, "sh", *(str(p) for _, p in targets)], env=env, check=False)


def inside(report):
    """The namespace's root: starts its two processes, reads as its readers, tells
    the parent their pids (`report`), waits for the parent's reads, and ends them."""
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    dumpable = os.fork()
    if dumpable == 0:
        os.setgroups([5, 100])
        os.setresgid(1000, 1000, 1000)
        os.setresuid(1000, 1000, 1000)
        listener = socket.socket()
        listener.bind(("0.0.0.0", 4242))
        listener.listen()
        listener.set_inheritable(True)
        if libc.shmget(0, 4096, 0o600 | 0o1000) < 0:  # IPC_PRIVATE, IPC_CREAT
            os._exit(1)
        os.execv("/bin/sleep", ["sleep", "60"])
    undumpable = os.fork()
    if undumpable == 0:
        os.setresgid(1000, 1000, 1000)
        os.setresuid(1000, 1000, 1000)
        time.sleep(60)
        os._exit(0)
    time.sleep(0.3)  # the exec of sleep done
    targets = [("dumpable", dumpable), ("undumpable", undumpable), ("outside", 1)]
    print("inside the namespace", flush=True)
    for who in ("root", "uid 1000", "uid 1001", "root without capabilities"):
        probe(who, targets)
    ids("root", targets)
    report(dumpable, undumpable)
    return dumpable, undumpable


def in_new_namespace(maps, then):
    """Forks a child that makes a user namespace of its own; this process writes its
    `maps` (file name, text) and prints what each write answered; the child, once
    they are written, becomes root there if it can and runs `then`. Returns when the
    child has ended."""
    made, written = os.pipe(), os.pipe()
    child = os.fork()
    if child == 0:
        if libc.unshare(CLONE_NEWUSER) != 0:
            os._exit(1)
        os.write(made[1], b"x")
        os.read(written[0], 1)
        try:
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
            libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: its files stay its own
        except OSError as e:
            print("   root there:", os.strerror(e.errno), flush=True)
        then()
        os._exit(0)
    os.read(made[0], 1)
    for name, text in maps:
        try:
            with open(f"/proc/{child}/{name}", "w") as f:
                f.write(text)
            print("   write", name, repr(text), "ok", flush=True)
        except OSError as e:
            print("   write", name, repr(text), os.strerror(e.errno), flush=True)
    os.write(written[1], b"x")
    os.waitpid(child, 0)


SHOW_OWN = "for f in uid_map gid_map; do tr -s ' ' < /proc/self/$f; done; " \
    "grep -E '^(Uid|Gid):' /proc/self/status | tr '\\t' ' '"


def two_deep():
    """Namespaces two deep: the outer one mapping 0..65535 to 100000..165535, and in
    it, written by its root, an inner one mapping its 0 to the outer's 1000 (procfs
    takes the lower ids of a map written from the parent namespace in the parent's
    numbering, and shows them so to a reader inside the inner one); then, as uid 1000
    of the outer namespace without capabilities there, one mapping its 0 to that
    uid itself (the owner's own id: allowed) and one mapping a range (refused)."""
    def inner():
        sys.stdout.flush()
        subprocess.run(["sh", "-c", SHOW_OWN])

    def unprivileged():
        os.setresgid(1000, 1000, 1000)
        os.setresuid(1000, 1000, 1000)
        libc.prctl(4, 1, 0, 0, 0)
        print("  as uid 1000 of the outer namespace", flush=True)
        in_new_namespace([("setgroups", "deny"), ("uid_map", "0 1000 1"),
                          ("gid_map", "0 1000 1")], inner)
        in_new_namespace([("uid_map", "0 1000 2")], lambda: None)

    def outer():
        print("  as root of the outer namespace", flush=True)
        in_new_namespace([("uid_map", "0 1000 1"), ("gid_map", "0 1000 1")], inner)
        unprivileged()

    print("two deep", flush=True)
    in_new_namespace([("uid_map", "0 100000 65536"), ("gid_map", "0 100000 65536")], outer)


def main():
    if os.getpid() != 1:
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    if libc.unshare(0x08000000 | 0x40000000) != 0:  # CLONE_NEWIPC, CLONE_NEWNET
        print("unshare of IPC and network namespaces failed", file=sys.stderr)
        return 2
    made, mapped = os.pipe(), os.pipe()
    told, done = os.pipe(), os.pipe()
    child = os.fork()
    if child == 0:
        os.setgroups([])
        os.setresgid(1000, 1000, 1000)
        os.setresuid(1000, 1000, 1000)  # the namespace's owner
        if libc.unshare(CLONE_NEWUSER) != 0:
            os._exit(1)
        os.write(made[1], b"x")
        os.read(mapped[0], 1)
        pids = inside(lambda a, b: os.write(told[1], f"{a} {b}".encode()))
        os.read(done[0], 1)
        for p in pids:
            os.kill(p, 9)
            os.waitpid(p, 0)
        os._exit(0)
    os.read(made[0], 1)
    for m in ("uid_map", "gid_map"):
        with open(f"/proc/{child}/{m}", "w") as f:
            f.write("0 100000 65536")
    os.write(mapped[1], b"x")
    dumpable, undumpable = (int(w) for w in os.read(told[0], 64).split())
    targets = [("dumpable", dumpable), ("undumpable", undumpable), ("outside", 1)]
    print("outside it", flush=True)
    for who in ("root", "uid 1000", "uid 1001", "uid 100000", "root of its own namespace"):
        probe(who, targets)
    for who in ("root", "root of its own namespace"):
        ids(who, targets)
    # nsfs frees a namespace after its last task (deferred) and gives its inode number
    # to the next one made: the unmapped namespace then has the number of the mapped
    # one just gone, whose maps must not be taken for its own.
    time.sleep(0.5)
    ids("unmapped in its own namespace", targets, keys=True)
    os.write(done[1], b"x")
    os.waitpid(child, 0)
    two_deep()
    return 0


if __name__ == "__main__":
    sys.exit(main())
