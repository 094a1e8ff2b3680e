#!/usr/bin/env python3
"""Listings of `task/` and of a process's directory while threads come and go, each
listed twice in a row (the second listing may be one the kernel kept, in the view), and a
non-leader thread's exec, with the process's `stat` and `status` read before and after it
(the view keeps those files open), printed one per line: run in a kernel pid namespace
and in a vprocfs VPS, the two outputs must be identical (tests/view_run.rs)."""
import os, threading, time

DEADLINE = 10.0


def ls(p):
    try:
        return sorted(os.listdir(p), key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n))
    except OSError as e:
        return os.strerror(e.errno)


def ids(pid):
    """What a process's stat and status say it is: pid and comm; Name, Pid, PPid,
    Threads (not the state: a process that has just exec'd `sleep` may not sleep yet).
    Read twice, as a reader that comes back to it does."""
    out = []
    for _ in range(2):
        try:
            stat = open(f"/proc/{pid}/stat", "rb").read()
            status = open(f"/proc/{pid}/status").read().splitlines()
        except OSError as e:
            return os.strerror(e.errno)
        head = stat.rsplit(b")", 1)[0]
        keep = ("Name:", "Pid:", "PPid:", "Threads:")
        out.append((head.decode(), [l for l in status if l.startswith(keep)]))
    return out


def settle(path, want):
    """Lists `path` until it shows `want`: so many entries, or these names. A thread's
    task goes a moment after the Python thread's join returns, and procfs's own listing
    of `task/` taken while a thread exits may end at that thread and leave out the live
    ones after it (`next_tid` stops at a task already unhashed), so a listing of the
    right length may still be the wrong one. Gives up (and prints what it saw) after a
    while."""
    end = time.monotonic() + DEADLINE
    while True:
        names = ls(path)
        done = names == want if isinstance(want, list) else len(names) == want
        if isinstance(names, list) and done or time.monotonic() > end:
            return names
        time.sleep(0.01)


def tasks(*threads):
    """The names `task/` shows for this process's leader and `threads`."""
    return ls_names([os.getpid()] + [t.native_id for t in threads])


def ls_names(tids):
    return sorted((str(t) for t in tids), key=int)


out = []
me = os.getpid()
task = f"/proc/{me}/task"
for label in ("start", "start again"):
    out.append((label, ls(task), ls("/proc/self/task")))
own = ls(f"/proc/{me}")
out.append(("own dir twice alike", own == ls(f"/proc/{me}"), len(own) > 20))

stops = [threading.Event() for _ in range(3)]
threads = [threading.Thread(target=e.wait) for e in stops]
for i, t in enumerate(threads):
    t.start()
    out.append(("started", i, settle(task, tasks(*threads[:i + 1])), ls(task)))
# A thread's directory held open and listed (twice: the second listing may be one the
# kernel kept) while the thread lives, then listed again, through the same descriptor,
# once it is gone: procfs lists nothing of a dead task.
held = os.open(f"{task}/{threads[2].native_id}", os.O_RDONLY | os.O_DIRECTORY)
held_ls = lambda: len(os.listdir(held))
out.append(("held thread dir, alive", held_ls() > 20, held_ls() > 20))
for i in (1, 0, 2):
    stops[i].set()
    threads[i].join()
    left = tasks(*(t for t, stop in zip(threads, stops) if not stop.is_set()))
    out.append(("ended", i, settle(task, left), ls(task)))
try:
    out.append(("held thread dir, gone", len(os.listdir(held))))
except OSError as e:
    out.append(("held thread dir, gone", os.strerror(e.errno)))
os.close(held)

# task/ held open and listed again from its start (os.listdir of a descriptor rewinds
# it) just after a thread started, and after the thread ended: procfs lists the threads
# there are at each read, whatever a listing before showed.
held = os.open(task, os.O_RDONLY | os.O_DIRECTORY)
held_ls = lambda: ls(held)
before = held_ls()
stop = threading.Event()
thread = threading.Thread(target=stop.wait)
thread.start()
during = held_ls()
stop.set()
thread.join()
settle(task, before)
out.append(("held task/ again", before, during, held_ls()))
os.close(held)

# A child with two threads, listed by its parent; then its second thread execs, which
# leaves the group one task under the leader's number (de_thread).
r, w = os.pipe()
ready_r, ready_w = os.pipe()
child = os.fork()
if child == 0:
    os.close(ready_r)

    def exec_later():
        os.read(r, 1)
        os.execvp("sleep", ["sleep", "100"])

    t = threading.Thread(target=exec_later)
    t.start()
    os.write(ready_w, b".")
    t.join()
    os._exit(1)
os.close(ready_w)
os.read(ready_r, 1)
ctask = f"/proc/{child}/task"
out.append(("child", settle(ctask, 2), ls(ctask), len(ls(f"/proc/{child}/task/{child}")) > 20))
out.append(("child before exec", ids(child)))
os.write(w, b"x")
end = time.monotonic() + DEADLINE
while time.monotonic() < end:
    try:
        if open(f"/proc/{child}/comm").read() == "sleep\n":
            break
    except OSError:
        pass
    time.sleep(0.01)
out.append(("child after exec", settle(ctask, 1), ls(ctask)))
out.append(("child after exec", ids(child)))
os.kill(child, 9)
os.waitpid(child, 0)
out.append(("child reaped", ls(ctask), ids(child)))
for line in out:
    print(line)
