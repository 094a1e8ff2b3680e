#!/usr/bin/env python3
"""A session with a controlling terminal whose foreground process group ends.

procfs goes on naming the emptied group as the terminal's foreground group (`tpgid` in
`stat`): the terminal holds the group's `struct pid` until the foreground moves or the
session leader exits, while the number itself is free again for a new process.

Run as the init of a pid namespace and of a VPS: the outputs must be identical. A
session leader (`leader`) takes a pseudo-terminal of its own as controlling terminal and
makes `fg` (a group of its own) the foreground group; `bg` has another group, `member`
stays in the leader's. Then, each step answered before the next, `ps` and the
`stat` fields 5 to 8 (pgrp, session, whether tty_nr names a terminal, tpgid) of every
process are printed:

1. as made;
2. after `fg` exits and the leader reaps it: every member still shows its number;
3. after a new process (`newcomer`, forked by init once `ns_last_pid` is set for it)
   takes `fg`'s number: itself under it, and the terminal's `tpgid` still the same;
4. after the leader moves the foreground to `bg`'s group;
5. after `bg` exits: its number stays the terminal's foreground group;
6. after the leader exits: the terminal is let go (`member`: no tty, `tpgid` -1).
"""
import ctypes
import fcntl
import os
import re
import signal
import subprocess
import sys
import termios

import settle

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NAME = 15


def name(comm):
    libc.prctl(PR_SET_NAME, comm.encode() if isinstance(comm, str) else comm, 0, 0, 0)


def child(comm, body):
    """Forks a process named `comm` that runs `body` and exits."""
    pid = os.fork()
    if pid == 0:
        try:
            name(comm)
            body()
        finally:
            os._exit(0)
    return pid


def waiter(fd):
    """A body that sleeps in `read(fd)` until a byte or EOF comes."""
    return lambda: os.read(fd, 1)


def leader(commands, replies):
    """The session leader: answers each command line from `commands` on `replies`."""
    os.setsid()
    _, tty = os.openpty()
    fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # tcsetpgrp from the background
    gates = {}
    kids = {}
    for comm in ("fg", "bg", "member"):
        r, w = os.pipe()
        gates[comm] = w
        kids[comm] = child(comm, waiter(r))
        os.close(r)
        if comm != "member":
            os.setpgid(kids[comm], kids[comm])
    os.tcsetpgrp(tty, kids["fg"])
    reply = lambda text: os.write(replies, (text + "\n").encode())
    reply(" ".join(str(kids[c]) for c in ("fg", "bg", "member")))
    cmds = os.fdopen(commands)
    for line in cmds:
        what, comm = line.split()
        if what == "end":
            os.write(gates[comm], b"x")
            os.waitpid(kids[comm], 0)
        elif what == "foreground":
            os.tcsetpgrp(tty, kids[comm])
        elif what == "exit":
            os._exit(0)
        reply("done")


def main():
    if os.readlink("/proc/self") != "1":
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    settle.kernel_proc()
    to_leader, from_init = os.pipe()
    to_init, from_leader = os.pipe()
    lead = os.fork()
    if lead == 0:
        os.close(from_init)
        os.close(to_init)
        name(b"leader")
        try:
            leader(to_leader, from_leader)
        finally:
            os._exit(0)
    os.close(to_leader)
    os.close(from_leader)
    answers = os.fdopen(to_init)
    fg, bg, member = (int(n) for n in answers.readline().split())
    everyone = [lead, fg, bg, member]

    def ask(line):
        os.write(from_init, (line + "\n").encode())
        assert answers.readline().strip() == "done", line

    def show(step):
        settle.wait_settled([p for p in everyone if settle.state(p)])
        print("##", step)
        out = subprocess.run(["ps", "-eo", "pid,ppid,pgid,sid,tpgid,tty,stat,comm"],
                             capture_output=True, text=True).stdout
        sys.stdout.write(re.sub(r"pts/\d+", "pts/N", out))
        for pid in sorted(set(everyone)):
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    raw = f.read()
            except OSError as e:
                print(pid, "stat:", os.strerror(e.errno))
                continue
            # The terminal's number (tty_nr) depends on the ptys open on the host.
            pgrp, session, tty_nr, tpgid = (int(x) for x in raw[raw.rindex(b")") + 2:]
                                            .split()[2:6])
            print(pid, "pgrp", pgrp, "session", session, "tty" if tty_nr else "no tty",
                  "tpgid", tpgid)
        sys.stdout.flush()

    show("1 as made")
    ask("end fg")
    show("2 the foreground group's last member is gone")
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(fg - 1))
    newcomer = child(b"newcomer", lambda: signal.pause())
    everyone.append(newcomer)
    print("newcomer took the old group's number:", newcomer == fg)
    show("3 a new process has the number")
    ask("foreground bg")
    show("4 the foreground moved to bg")
    ask("end bg")
    show("5 bg's group emptied in the foreground")
    os.write(from_init, b"exit leader\n")
    os.waitpid(lead, 0)
    show("6 the session leader is gone")
    for pid in (newcomer, member):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
