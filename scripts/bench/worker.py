"""Timing worker of the paired benchmark (scripts/bench.sh).

One worker runs in each of the two /proc's of the same VPS: (a) the kernel's procfs of
the VPS's pid namespace (started under `unshare --mount sh -c 'mount -t proc proc /proc
&& exec …'`), (b) the vprocfs view (the VPS's own /proc). The driver sends one JSON
request per line on stdin; the worker does the measurement and answers one JSON line on
stdout. Nothing else is written to stdout.

Requests:
  {"op": "whoami"}                   -> {"fstype": "proc"|"fuse…", "pid_max": N,
                                         "dev": st_dev of /proc, "pidns": "pid:[…]"|null}
  {"op": "cmd", "argv": [...]}       -> {"s": wall seconds}   (output to /dev/null)
  {"op": "lines", "argv": [...]}     -> {"lines": [...]}      (untimed, for checks)
  {"op": "statloop"}                 -> {"s": seconds, "files": n}
  {"op": "lat", "path": P, "n": K}   -> {"us": µs per open+read+close}
  {"op": "pin", "cpu": C|null}       -> {"cpus": [...]}       (the worker's affinity now)

"pin" sets the worker's own CPU affinity, which the commands it starts inherit: CPU C,
or with null the affinity it started with (the "pinned" and "free" placements of the
benchmark; the outside half pins the daemon to the same CPU).
"""

import json
import os
import subprocess
import threading
import sys
import time

ENV = dict(os.environ, LC_ALL="C")
ENV.pop("COLUMNS", None)
ENV.pop("LINES", None)

#: The CPUs this worker may run on as started: what "pin" with no CPU gives back.
FREE_CPUS = os.sched_getaffinity(0)


def proc_fstype(point="/proc"):
    """File system type of the last mount on `point`, as this process sees it."""
    fstype = "?"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if left.split()[4] == point:
                fstype = right.split()[0]
    return fstype


def run_cmd(argv):
    """Seconds from the start of `argv` to its exit.

    Not subprocess.run(timeout=…): with a timeout, Popen.wait polls waitpid with sleeps
    that double up to 50 ms, which rounds every run longer than ~64 ms up to the next
    poll (measured: a 66 ms `ps -ef` came out as 64 or 114 ms). A blocking waitpid ends
    the measure at the exit itself; a timer kills a run that hangs."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         env=ENV, close_fds=False)
    guard = threading.Timer(600, p.kill)
    guard.start()
    try:
        code = p.wait()
    finally:
        guard.cancel()
    elapsed = time.perf_counter() - t
    if code != 0:
        raise subprocess.CalledProcessError(code, argv)
    return elapsed


def statloop():
    """os.listdir('/proc'), then open+read+close of /proc/<pid>/stat for every pid."""
    t = time.perf_counter()
    n = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fd = os.open("/proc/" + name + "/stat", os.O_RDONLY)
                try:
                    os.read(fd, 4096)
                finally:
                    os.close(fd)
                n += 1
            except OSError:
                pass  # exited meanwhile
    return time.perf_counter() - t, n


def latency(path, n):
    """µs per open+read+close of `path`, over n reads (after 50 untimed ones)."""
    o, r, c = os.open, os.read, os.close
    flags = os.O_RDONLY
    for _ in range(50):
        fd = o(path, flags)
        r(fd, 4096)
        c(fd)
    t = time.perf_counter()
    for _ in range(n):
        fd = o(path, flags)
        r(fd, 4096)
        c(fd)
    return (time.perf_counter() - t) / n * 1e6


def pin(cpu):
    """Sets the affinity of this worker's main thread, which does every measure and
    starts every command, to CPU `cpu`, or back to FREE_CPUS for None."""
    want = FREE_CPUS if cpu is None else {int(cpu)}
    try:
        os.sched_setaffinity(0, want)
    except OSError as e:
        raise RuntimeError("cannot set the affinity to CPUs %s (allowed at start: %s): %s"
                           % (sorted(want), sorted(FREE_CPUS), e.strerror)) from e
    got = os.sched_getaffinity(0)
    if got != want:
        raise RuntimeError("affinity is %s after setting %s" % (sorted(got), sorted(want)))
    return sorted(got)


def handle(req):
    op = req["op"]
    if op == "whoami":
        with open("/proc/sys/kernel/pid_max") as f:
            pid_max = int(f.read())
        try:
            pidns = os.readlink("/proc/self/ns/pid")
        except OSError:
            pidns = None
        return {"fstype": proc_fstype(), "meminfo": proc_fstype("/proc/meminfo"),
                "pid_max": pid_max, "pid": os.getpid(), "dev": os.stat("/proc").st_dev,
                "pidns": pidns}
    if op == "cmd":
        return {"s": run_cmd(req["argv"])}
    if op == "lines":
        out = subprocess.run(req["argv"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, env=ENV, close_fds=False,
                             check=True, timeout=600, text=True).stdout
        return {"lines": out.splitlines()}
    if op == "statloop":
        s, n = statloop()
        return {"s": s, "files": n}
    if op == "lat":
        return {"us": latency(req["path"], int(req["n"]))}
    if op == "pin":
        return {"cpus": pin(req.get("cpu"))}
    raise ValueError("unknown op " + op)


def main():
    out = sys.stdout
    for line in sys.stdin:
        try:
            ans = handle(json.loads(line))
        except Exception as e:  # reported to the driver, which stops the run
            ans = {"error": "%s: %s" % (type(e).__name__, e)}
        out.write(json.dumps(ans) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
