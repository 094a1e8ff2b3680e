#!/usr/bin/env python3
"""What everyday tools make of a small tree: procps (`ps` in several formats, `pgrep`,
`pidof`, `pwdx`), psmisc (`pstree`, `fuser`, `prtstat`), util-linux (`lsns`) and
`lsof`, each of which reads /proc its own way (links followed by `stat`, namespace
inodes, fd links, the parents of every process).

Run as the init of a pid namespace (`unshare --pid --fork --mount-proc`) and of a VPS
(`vprocfs run`): the outputs must be identical. The tree: a sleeper; a sleeper named
otherwise by its argv[0], holding a file open and working in a directory of its own; a
process with two threads; a pipeline. Every process is asleep (as the kernel tells it,
tests/scripts/settle.py) before the first tool runs, and each tool runs alone, so that
both runs number everything alike.

What differs between the two runs by construction is masked: the directory's name
(`TMP`), and the inode numbers of namespaces, which are another pid and mount
namespace's in each run and are named by their order of first appearance (`NS1`, …),
and with them the order of `lsns`'s lines, which it sorts by those inodes.
"""
import os
import re
import subprocess
import sys
import tempfile
import time

import settle


def main():
    if os.readlink("/proc/self") != "1":
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    settle.kernel_proc()  # mounted now: its `mount` must not race the tree's forks
    tmp = tempfile.mkdtemp(prefix="clients-")
    held_path = os.path.join(tmp, "held.txt")
    with open(held_path, "w") as f:
        f.write("x\n")
    quiet = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
    held = open(held_path)
    # Popen returns once the exec has succeeded.
    plain = subprocess.Popen(["sleep", "1000"], **quiet)
    named = subprocess.Popen(["my sleeper", "1001"], executable="/bin/sleep", cwd=tmp,
                             pass_fds=[held.fileno()], **quiet)
    threads = subprocess.Popen(
        ["/usr/bin/python3", "-c",
         "import threading, time\n"
         "for _ in range(2):\n"
         "    threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()\n"
         "time.sleep(1000)\n"], **quiet)
    pipe = subprocess.Popen(["sh", "-c", "sleep 1002 | cat"], **quiet)
    started = [plain, named, threads, pipe]
    # Two threads and the pipeline's two commands, then all asleep.
    deadline = time.monotonic() + 20
    while (len(settle.tasks(threads.pid)) < 3
           or len(settle.descendants(pipe.pid)) < 2) and time.monotonic() < deadline:
        time.sleep(0.01)
    if not settle.wait_settled(settle.descendants(os.getpid())):
        print("the tree did not settle", file=sys.stderr)
        return 1
    s1, s2, t = str(plain.pid), str(named.pid), str(threads.pid)
    tools = [
        ["ps", "-eo", "pid,ppid,pgid,sid,tpgid,stat,nlwp,uid,euid,ruid,suid,fuid,gid,"
         "supgid,tty,comm,args"],
        ["ps", "-eo", "pid,pidns,mntns,netns,ipcns,utsns,userns,comm"],
        ["ps", "axjf"],
        ["ps", "-ejH"],
        ["ps", "-eLo", "pid,lwp,nlwp,stat,comm"],
        ["ps", "--ppid", "1", "-o", "pid,comm"],
        ["ps", "-p", f"{s1},{s2}", "-o", "pid,wchan:30,comm"],
        ["pstree", "-apnlg"],
        ["pstree", "-p", "-s", s2],
        ["pgrep", "-a", "sleep"],
        ["pgrep", "-l", "-P", "1"],
        ["pgrep", "-c", "-s", "0"],
        ["pgrep", "--ns", "1", "-l", "sleep"],
        ["pgrep", "-w", "-l", "python3"],
        ["pgrep", "-f", "my sleeper"],
        ["pgrep", "-o", "-l", "sleep"],
        ["pgrep", "-n", "-l", "sleep"],
        ["pidof", "sleep"],
        ["pidof", "-o", s1, "sleep"],
        ["pwdx", s1, s2, "1"],
        ["lsns", "-o", "NS,TYPE,NPROCS,PID,PPID,COMMAND"],
        ["lsns", "-t", "pid", "-o", "NS,TYPE,NPROCS,PID"],
        ["fuser", "-v", held_path],
        ["fuser", "-v", tmp],
        ["lsof", "-n", "-P", "-a", "-p", s2, "-d", "cwd,txt,0-20", "-F", "pcftn"],
        ["lsof", "-n", "-P", "+d", tmp, "-F", "pcftn"],
    ]
    for tool in tools:
        run = subprocess.run(tool, capture_output=True, text=True, errors="replace")
        out = run.stdout
        if tool[0] == "lsns":
            out = by_type(out)
        show(tool, out + run.stderr + f"exit {run.returncode}\n", tmp)
    # prtstat's first fields (the rest are times and addresses).
    run = subprocess.run(["prtstat", "-r", s2], capture_output=True, text=True)
    show(["prtstat", "-r", s2], "\n".join(run.stdout.splitlines()[:4]) + "\n", tmp)
    # The links of a process, read and followed as `ls -l` and `stat -L` do.
    for rel in ["cwd", "exe", "root"] + [f"fd/{n}" for n in sorted(
            int(n) for n in os.listdir(f"/proc/{s2}/fd"))]:
        path = f"/proc/{s2}/{rel}"
        mode = os.stat(path).st_mode
        kind = "dir" if os.path.isdir(path) else "chr" if (mode & 0o170000) == 0o020000 \
            else "reg" if (mode & 0o170000) == 0o100000 else oct(mode & 0o170000)
        show(["link", rel], f"{os.readlink(path)} {kind}\n", tmp)
    for p in started:
        for pid in [p.pid] + settle.descendants(p.pid):
            os.kill(pid, 9)
        p.wait()
    held.close()
    os.unlink(held_path)
    os.rmdir(tmp)
    return 0


NS_NAMES = {}


def by_type(text):
    """`lsns`'s lines in the order of their columns after the inode. `lsns` sorts by
    inode, and the kernel hands inode numbers out lowest-free-first from one table for
    every namespace of the machine: whether a VPS's time namespace numbers below its
    pid namespace depends on which numbers other namespaces freed meanwhile, in either
    run, and says nothing about either /proc."""
    lines = text.splitlines(keepends=True)
    return "".join(lines[:1] + sorted(lines[1:], key=lambda l: l.split(None, 1)[1:]))


def show(tool, text, tmp):
    text = text.replace(tmp, "TMP")
    # Namespace inodes (`4026531836`), named by order of first appearance.
    text = re.sub(r"\b40265\d{5}\b",
                  lambda m: NS_NAMES.setdefault(m.group(0), f"NS{len(NS_NAMES) + 1}"),
                  text)
    print("$", " ".join(tool).replace(tmp, "TMP"))
    sys.stdout.write(text)


if __name__ == "__main__":
    sys.exit(main())
