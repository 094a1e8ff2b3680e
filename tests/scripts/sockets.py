#!/usr/bin/env python3
"""A process's socket, as seen through its fd/ link: what `stat -L`, `lsof -i` and an
open of the link find. Run as the init of a pid namespace and of a VPS (full view): the
two outputs must be identical.

procfs follows `fd/N` to the socket itself: `stat` shows a socket whose inode number is
the one in the link's text (`socket:[N]`), which is how `lsof -i` and `ss` tie a process
to the sockets in /proc/net/tcp, and an open fails with ENXIO.
"""
import errno
import os
import socket
import stat
import subprocess
import sys
import time


def main():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        os.write(w, str(s.fileno()).encode())
        time.sleep(60)
        os._exit(0)
    os.close(w)
    fd = int(os.read(r, 16))
    link = f"/proc/{pid}/fd/{fd}"
    try:
        text = os.readlink(link)
        st = os.stat(link)
        print("link", text.split("[")[0])
        print("is socket", stat.S_ISSOCK(st.st_mode), "mode", oct(stat.S_IMODE(st.st_mode)))
        print("inode is the link's", f"socket:[{st.st_ino}]" == text)
        print("blksize", st.st_blksize, "blocks", st.st_blocks)
        try:
            os.close(os.open(link, os.O_RDONLY))
            print("open ok")
        except OSError as e:
            print("open", errno.errorcode[e.errno])
        out = subprocess.run(["lsof", "-n", "-P", "-a", "-i", "-p", str(pid)],
                             capture_output=True, text=True).stdout.splitlines()
        for line in out[1:]:
            cols = line.split()
            print("lsof", cols[0], cols[1], cols[4], cols[7])
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
