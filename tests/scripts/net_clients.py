#!/usr/bin/env python3
"""What network tools make of a small tree's sockets: iproute2's `ss -p`, net-tools'
`netstat -p`, `lsof -i`/`-U` and psutil each find a socket's process by reading every
`/proc/<pid>/fd/N` link (`socket:[INODE]`) and matching it to `/proc/net/{tcp,udp,unix}`
(psutil and `lsof` also `stat` the link, for the inode).

Run as the init of a pid namespace (`unshare --pid --fork --mount-proc`) and of a VPS
(`vprocfs run`): the outputs must be identical. The tree: a server holding a TCP
listener, the accepted end of a connection, a bound UDP socket and an abstract unix
listener; a client holding the other end of the connection. Both are asleep (as the
kernel tells it, tests/scripts/settle.py) before the first tool runs.

Both runs share the host's network namespace, so each tool's lines are kept only for
this run's sockets, and what differs between runs by construction is masked: the ports
(`PORT`, `UDP`, `CPORT`), the unix socket's name (`NAME`) and socket inode numbers
(`INO`). psmisc's `fuser -n tcp` is left out: it matches sockets by sockfs's device,
which no FUSE file can have (docs/limits.md).
"""
import os
import re
import subprocess
import sys

import psutil

import settle

SERVER = r"""
import socket, sys, time
t = socket.socket(); t.bind(("127.0.0.1", 0)); t.listen()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
x = socket.socket(socket.AF_UNIX); x.bind("\0" + sys.argv[1]); x.listen()
print(t.getsockname()[1], u.getsockname()[1], flush=True)
c, _ = t.accept()
print("accepted", flush=True)
time.sleep(1000)
"""

CLIENT = r"""
import socket, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print(c.getsockname()[1], flush=True)
time.sleep(1000)
"""


def main():
    if os.readlink("/proc/self") != "1":
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    settle.kernel_proc()
    name = "vprocfs-net-%d-%s" % (os.getppid(), os.urandom(4).hex())
    py = sys.executable
    server = subprocess.Popen([py, "-c", SERVER, name], stdout=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True)
    port, udp = server.stdout.readline().split()
    client = subprocess.Popen([py, "-c", CLIENT, port], stdout=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True)
    cport = client.stdout.readline().strip()
    if server.stdout.readline().strip() != "accepted" or not cport:
        print("the connection was not made", file=sys.stderr)
        return 1
    started = [server, client]
    if not settle.wait_settled([p.pid for p in started]):
        print("the tree did not settle", file=sys.stderr)
        return 1

    def mask(text):
        for value, label in ((cport, "CPORT"), (port, "PORT"), (udp, "UDP"),
                             (name, "NAME")):
            text = re.sub(r"\b%s\b" % re.escape(value), label, text)
        return re.sub(r"\b\d{5,}\b", "INO", text)

    def ours(line):
        # A connection of an earlier run that lingers in TIME-WAIT (no process holds
        # it) may have had one of these ports: not ours.
        return "TIME" not in line and any(re.search(r"[:@]%s\b" % re.escape(v), line)
                                          for v in (port, udp, cport, name))

    tools = [
        ["ss", "-tnp"], ["ss", "-tlnp"], ["ss", "-ulnp"], ["ss", "-xlp"],
        ["netstat", "-tnp"], ["netstat", "-tlnp"], ["netstat", "-ulnp"],
        ["netstat", "-xlp"],
        ["lsof", "-nP", "-i", "TCP:" + port, "-F", "pcPnT"],
        ["lsof", "-nP", "-i", "UDP:" + udp, "-F", "pcPn"],
        ["lsof", "-nP", "-U", "-a", "-p", str(server.pid), "-F", "pcn"],
    ]
    for tool in tools:
        run = subprocess.run(tool, capture_output=True, text=True, errors="replace")
        lines = run.stdout.splitlines()
        if tool[0] != "lsof":
            # Sorted: the kernel's tables list sockets in the order of their hash buckets,
            # which the ports decide.
            lines = sorted(mask(" ".join(line.split())) for line in lines if ours(line))
        show([mask(a) for a in tool], "\n".join(mask(line) for line in lines) + "\nexit %d\n" % (
            run.returncode if run.returncode != 1 or tool[0] != "lsof" else 0))

    # psutil: the system-wide table (pids found through every process's fd links) and
    # each process's own sockets.
    rows = [(c.pid, c.fd, c.family.name, c.type.name, c.laddr, c.raddr, c.status)
            for c in psutil.net_connections("all")
            if c.pid is not None and (ours(":%s" % getattr(c.laddr, "port", "")) or
                                      (isinstance(c.laddr, str) and ours(c.laddr)))]
    show(["psutil.net_connections"], mask("\n".join(str(r) for r in sorted(rows))) + "\n")
    for p in started:
        proc = psutil.Process(p.pid)
        # psutil 5.x's name; net_connections since 6.0.
        listed = getattr(proc, "net_connections", None) or proc.connections
        conns = sorted((c.fd, c.family.name, c.type.name, str(c.laddr), str(c.raddr),
                        c.status) for c in listed("all"))
        show(["psutil.Process.net_connections", str(p.pid)],
             mask("\n".join(str(c) for c in conns)) + "\n")
    # The links themselves, read and followed (`stat` of a socket gives its inode).
    for fd in sorted(int(n) for n in os.listdir("/proc/%d/fd" % server.pid)):
        path = "/proc/%d/fd/%d" % (server.pid, fd)
        link = os.readlink(path)
        if link.startswith("socket:"):
            same = os.stat(path).st_ino == int(link[8:-1])
            show(["link", str(fd)], mask(link) + " inode matches: %s\n" % same)

    for p in started:
        p.kill()
        p.wait()
    return 0


def show(tool, text):
    print("$", " ".join(tool))
    sys.stdout.write(text)


if __name__ == "__main__":
    sys.exit(main())
