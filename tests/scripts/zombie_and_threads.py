#!/usr/bin/env python3
"""Probes of a zombie, a reaped process, a thread that exits while its directory is held
open, and the self links, printed one per line: run in a kernel pid namespace and in a
vprocfs VPS, the two outputs must be identical (tests/view_run.rs)."""
import os, errno, threading, time, signal, ctypes
import settle
def tryf(f):
    try: return f()
    except OSError as e: return errno.errorcode[e.errno]
def rd(p): return tryf(lambda: open(p,'rb').read())
def rl(p): return tryf(lambda: os.readlink(p))
def ls(p): return tryf(lambda: sorted(os.listdir(p)))
out=[]
# zombie
z = os.fork()
if z == 0: os._exit(3)
# A zombie now, not reaped (a fixed sleep is not enough on a loaded machine).
os.waitid(os.P_PID, z, os.WEXITED | os.WNOWAIT)
for f in ("cmdline","environ","comm","wchan","syscall","stack","personality","io","statm","limits","oom_score","loginuid","sessionid","cgroup","mountinfo","maps","smaps_rollup","auxv"):
    r = rd(f"/proc/{z}/{f}")
    # A VPS has a cgroup of its own (vprocfs run makes one), the oracle the caller's:
    # the file's text differs by the path, what counts is that a zombie's reads.
    n = len(r) if f != "cgroup" or isinstance(r, str) else bool(r)
    out.append(("zombie", f, r if isinstance(r,str) else n))
for l in ("exe","cwd","root"):
    out.append(("zombie link", l, rl(f"/proc/{z}/{l}")))
out.append(("zombie fd", ls(f"/proc/{z}/fd")))
out.append(("zombie task", ls(f"/proc/{z}/task")))
st = rd(f"/proc/{z}/stat"); out.append(("zombie stat", st.split(b")")[-1].split()[:6]))
os.waitpid(z,0)
out.append(("reaped", tryf(lambda: os.stat(f"/proc/{z}").st_mode), rd(f"/proc/{z}/stat")))
# open before the death, used after it: procfs makes a file's text at the first read
# (ESRCH once the process is gone), keeps what it made for the later reads, and still
# answers fstat on what a reader holds, after the view's attribute cache has expired.
execd, child_end = os.pipe()  # closed in the child by its exec (O_CLOEXEC)
p = os.fork()
if p == 0:
    os.execvp("sleep", ["sleep", "100"])
os.close(child_end)
os.read(execd, 1)
os.close(execd)
settle.wait_settled([p])  # `sleep` asleep, as the partial read below shows it
dirfd = os.open(f"/proc/{p}", os.O_RDONLY | os.O_DIRECTORY)
unread = os.open(f"/proc/{p}/status", os.O_RDONLY)
# Files procfs answers otherwise once their process is gone: `children` with no text,
# `fdinfo/<n>` with ENOENT; and `cgroup`, which the view reads as its reader (its paths
# are seen from the reader's cgroup namespace), ESRCH as `status`.
unread_too = [(name, os.open(f"/proc/{p}/{name}", os.O_RDONLY))
              for name in (f"task/{p}/children", "fdinfo/0", "cgroup")]
partly = os.open(f"/proc/{p}/stat", os.O_RDONLY)
head = os.read(partly, 4)
os.kill(p, signal.SIGKILL)
os.waitpid(p, 0)
time.sleep(1.5)
out.append(("first read after death", tryf(lambda: os.read(unread, 4096))))
for name, fd in unread_too:
    out.append(("first read after death of", name, tryf(lambda: os.read(fd, 4096))))
    os.close(fd)
rest = tryf(lambda: os.read(partly, 4096))
if isinstance(rest, bytes):
    text = head + rest
    # The same text as one read would give: pid, name, state, and all 52 fields.
    rest = (text[: text.rindex(b")") + 3], len(text.rsplit(b")", 1)[1].split()) + 2)
out.append(("rest after death", rest))
for name, fd in (("dir", dirfd), ("status", unread)):
    st = tryf(lambda: os.fstat(fd))
    out.append(("fstat after death", name, st if isinstance(st, str) else (oct(st.st_mode), st.st_uid)))
for fd in (dirfd, unread, partly):
    os.close(fd)
# a process that changes its credentials after its entries were looked up: procfs owns
# them by the task's effective ids, or by root while it is not dumpable, recomputed on
# every walk
libc = ctypes.CDLL(None, use_errno=True)
for dumpable in (0, 1):
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    p = os.fork()
    if p == 0:
        os.read(go_r, 1)
        os.setgid(65534)
        os.setuid(65534)
        if dumpable:
            libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
        os.write(done_w, b".")
        signal.pause()
        os._exit(0)
    def owners():
        return [tryf(lambda e=e: (lambda st: (st.st_uid, st.st_gid, oct(st.st_mode)))(os.stat(f"/proc/{p}{e}")))
                for e in ("", "/status", "/environ", "/fd")]
    before = owners()
    os.write(go_w, b".")
    os.read(done_r, 1)
    out.append(("owners after setuid", dumpable, before, owners()))
    os.kill(p, signal.SIGKILL)
    os.waitpid(p, 0)
    for fd in (go_r, go_w, done_r, done_w):
        os.close(fd)
# threads
ev = threading.Event(); done = threading.Event()
tids = []
def worker():
    tids.append(threading.get_native_id()); ev.set(); done.wait()
t = threading.Thread(target=worker); t.start(); ev.wait()
tid = tids[0]; me = os.getpid()
out.append(("thread in listing", str(tid) in os.listdir("/proc")))
out.append(("thread lookup", tryf(lambda: os.stat(f"/proc/{tid}").st_mode)))
out.append(("thread stat pid", rd(f"/proc/{tid}/stat").split()[0] == str(tid).encode()))
out.append(("thread status tgid", [l for l in rd(f"/proc/{tid}/status").split(b"\n") if l.startswith((b"Tgid",b"Pid"))]))
out.append(("task list", ls(f"/proc/{me}/task") == sorted([str(me), str(tid)])))
held = os.open(f"/proc/{me}/task/{tid}", os.O_RDONLY|os.O_DIRECTORY)
done.set(); t.join(); settle.wait_threads_gone(me, [me])
out.append(("held dead thread stat", tryf(lambda: os.open("stat", os.O_RDONLY, dir_fd=held))))
out.append(("held dead thread ls", tryf(lambda: len(os.listdir(held)))))
out.append(("held dead thread other", [tryf(lambda: os.open(n, os.O_RDONLY, dir_fd=held)) for n in ("status","nonexistent","cmdline")], tryf(lambda: os.readlink("exe", dir_fd=held))))
out.append(("dead thread lookup", tryf(lambda: os.stat(f"/proc/{tid}").st_mode)))
out.append(("dead thread task entry", tryf(lambda: os.stat(f"/proc/{me}/task/{tid}").st_mode)))
out.append(("task list after", ls(f"/proc/{me}/task") == [str(me)]))
# self / thread-self
out.append(("self", rl("/proc/self") == str(me)))
out.append(("thread-self", rl("/proc/thread-self") == f"{me}/task/{me}"))
r = []
th = threading.Thread(target=lambda: r.append((rl("/proc/thread-self"), threading.get_native_id()))); th.start(); th.join()
out.append(("thread-self in thread", r[0][0] == f"{me}/task/{r[0][1]}"))
out.append(("nonexistent pid", tryf(lambda: os.stat("/proc/99999"))))
out.append(("leading zero", tryf(lambda: os.stat(f"/proc/0{me}"))))
out.append(("plus sign", tryf(lambda: os.stat(f"/proc/+{me}"))))
out.append(("0", tryf(lambda: os.stat("/proc/0"))))
# nlink of /proc/self dir, task dir
# 2 + the number of threads: the joined threads' kernel tasks may take a moment to go.
settle.wait_threads_gone(me, [me])
out.append(("nlink task", os.stat(f"/proc/{me}/task").st_nlink))
out.append(("mode self dir", oct(os.stat(f"/proc/{me}").st_mode)))
out.append(("fd dir mode", oct(os.stat(f"/proc/{me}/fd").st_mode)))
for o in out: print(o)
