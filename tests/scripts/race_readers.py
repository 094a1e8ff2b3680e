#!/usr/bin/env python3
"""Readers race dying processes and reused pids: no read may show another process's data
under a number (issue 15). Run by tests/race.rs as the init of a kernel pid namespace
(the oracle) and of a vprocfs VPS; usage: race_readers.py [SECONDS] (default 3: the
churn goes on after that until the readers have raced enough, at most twice as long).

A churner forks short-lived children, each of which writes a token naming itself into
its comm (prctl), its argv (cmdline) and its environment (environ), then exits after a
random few milliseconds and is reaped; after a reap the churner usually sets the
namespace's last pid so that the next child takes the number just freed. Meanwhile
reader processes list /proc and read stat, status, cmdline and environ of every listed
number by path, and hold directory fds of /proc/N across the child's death and the
reuse of N, reading through them with openat, and through files opened with them and
first read once N is someone else's.

The token is `r<V>.<S>`: V the child's own number as /proc names it, S the child's serial
(the churner's fork counter, so that two processes that had the same number differ).
V is taken from readlink("/proc/self"), not from os.getpid(): in a pid namespace (the
kernel's, or a VPS's with the full view) the two agree, and the child checks that they
do; without a pid namespace (`vprocfs run --no-pidns`) getpid() is the host's pid while
/proc shows vpids, and /proc/self is the one number the reader will look the child up
by. The readers check, for every successful read:
- by path /proc/N: stat's pid and status's Pid are N, status's Tgid, NSpid, NStgid are N;
  where the child's token shows (stat's comm, status's Name, the cmdline argument, the
  environment variable) its V is N, and stat's ppid and status's PPid are the
  churner's (1). A task being released has lost its links: the kernel then shows 0 for
  its ppid, Tgid, NSpid and NStgid (not its pid, which is the directory's), and 0 is
  let pass there: it is nobody else's number;
- through a directory fd held on /proc/N, and through its stat, status and cmdline
  opened with it: the same, and the token's S is the S of the process the fd was
  opened on, and stat, status (always) and a non-empty cmdline or environ (the child's
  memory still there) carry a token at all.
Errors allowed are ENOENT and ESRCH, and an empty cmdline or environ (procfs's answer
for a process whose memory is gone); anything else is an unexpected error.

Prints, compared by the test between the kernel and the view:
    setup ok
    mismatches 0
    unexpected errors 0
    reused True
then one `counts …` line (the amounts vary from run to run: not compared) and the first
few mismatches and unexpected errors, one a line.
"""
import ctypes
import errno
import json
import mmap
import os
import random
import re
import struct
import sys
import tempfile
import time
import traceback

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NAME = 15
MNT_DETACH = 2

VAR = "VPROCFS_RACE"
PLACEHOLDER = "@" * 20  # room for the padded token, in argv and in the environment
TOKEN = re.compile(rb"r(\d+)\.(\d+)")
ALLOWED = {errno.ENOENT: "ENOENT", errno.ESRCH: "ESRCH"}

READERS = 3
LIVE = 10  # children alive at once
MAX_HELD = 24  # directory fds a reader holds at once
STEER = 0.75  # share of reaps after which the freed number is handed out again
KEEP = 8  # rounds a held directory is kept after its reads start failing
HELD_FILES = ("stat", "status", "cmdline")  # opened with a held directory, read later
FIRST = 10  # mismatches and unexpected errors listed
# What the readers must have done (summed) before the churn may stop, after SECONDS and
# before twice that: reads of a child's that were checked, of them through a held
# directory or file, and reads through a held directory once its number was reused. On
# a loaded machine the readers are slow, and a fixed time would leave little checked.
PROGRESS_KEYS = ("checked", "held_checked", "after_reuse")
PROGRESS = "qqq"
ENOUGH = (1000, 100, 100)


def token_of(b):
    """(V, S) of a token, or None."""
    m = TOKEN.fullmatch(b.rstrip(b"_"))
    return (int(m.group(1)), int(m.group(2))) if m else None


# ----- the children -------------------------------------------------------------------


def placeholder_addresses():
    """Addresses of the placeholder in this process's argv and environment strings: the
    bytes procfs shows as cmdline and environ. The environment variable is the first
    one (see main) and the placeholder the last argument, and the kernel lays argv's
    strings out just before the environment's."""
    environ = ctypes.POINTER(ctypes.c_void_p).in_dll(libc, "environ")
    i = 0
    while environ[i]:
        p = environ[i]
        if ctypes.string_at(p).startswith(VAR.encode() + b"="):
            env = p + len(VAR) + 1
            arg = p - len(PLACEHOLDER) - 1
            for a in (env, arg):
                if ctypes.string_at(a) != PLACEHOLDER.encode():
                    return None
            return arg, env
        i += 1
    return None


def child(w, serial, life, addrs):
    """A churn child: names itself with its token, tells the churner its number, lives
    `life` seconds."""
    try:
        v = int(os.readlink("/proc/self"))
    except OSError as e:
        os.write(w, b"E %d" % e.errno)
        os._exit(0)
    tok = b"r%d.%d" % (v, serial)
    padded = tok.ljust(len(PLACEHOLDER), b"_")
    if len(tok) <= 15 and len(padded) == len(PLACEHOLDER):
        # argv and environ first, comm last: a reader that sees the name in stat
        # knows that cmdline and environ carry the token too.
        for a in addrs:
            ctypes.memmove(a, padded, len(padded))
        libc.prctl(PR_SET_NAME, ctypes.c_char_p(tok), 0, 0, 0)
    os.write(w, b"%d" % v)
    os.close(w)
    time.sleep(life)
    os._exit(0)


def enough(progress):
    """Whether the readers have raced enough (see ENOUGH)."""
    got = [0] * len(ENOUGH)
    for i in range(READERS):
        for k, v in enumerate(struct.unpack_from(PROGRESS, progress, i * struct.calcsize(PROGRESS))):
            got[k] += v
    return all(g >= e for g, e in zip(got, ENOUGH))


def churn(secs, addrs, last_pid_path, pidns, rng, progress):
    """Forks children for `secs`, and on until the readers have raced enough or twice
    `secs` have passed; reaps them all; returns the counts."""
    out = {"forks": 0, "reuses": 0, "steers": 0, "steer_failed": 0, "vsteers": 0, "bad": [], "unexpected": []}
    live = {}  # pid as fork and waitpid give it -> (number /proc shows, serial)
    owner = {}  # number /proc shows -> serial of its latest process
    start = time.monotonic()
    serial = 0

    def write(path, n):
        try:
            with open(path, "w") as f:
                f.write(str(n))
            return True
        except OSError:
            return False

    def reap(pid):
        v, _ = live.pop(pid)
        if rng.random() >= STEER:
            return
        # The next fork takes this number again: the namespace's own procfs is written
        # (see main), so that the kernel itself hands the pid out again. Without a pid
        # namespace the daemon may number by itself (`--numbering ns`): its vpid is
        # steered too, by a write of the view's ns_last_pid (which other numberings
        # refuse or only show).
        if not pidns and v is not None and out["vsteers"] >= 0:
            if write("/proc/sys/kernel/ns_last_pid", v - 1):
                out["vsteers"] += 1
            else:
                out["vsteers"] = -1  # refused: not tried again
        # Last, just before the fork, so that another process of the host is unlikely
        # to take the number first.
        out["steers" if write(last_pid_path, pid - 1) else "steer_failed"] += 1

    while True:
        spent = time.monotonic() - start
        if spent >= 2 * secs or (spent >= secs and enough(progress)):
            break
        while len(live) >= LIVE:
            pid, _ = os.waitpid(-1, 0)
            if pid in live:
                reap(pid)
            else:
                out["unexpected"].append(f"churner reaped {pid}, not a churn child")
        serial += 1
        r, w = os.pipe()
        # Some die at once, so that a number comes round again within the clock tick
        # of its previous process's start (start times are in ticks).
        life = rng.uniform(0, 0.005) if rng.random() < 0.3 else rng.uniform(0, 0.06)
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                child(w, serial, life, addrs)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(1)  # never back into the churner's code
        os.close(w)
        said = os.read(r, 64)
        os.close(r)
        out["forks"] += 1
        if not said or said.startswith(b"E"):
            out["unexpected"].append(f"child {pid} could not name itself: {said!r}")
            live[pid] = (None, serial)
            continue
        v = int(said)
        if pidns and v != pid:
            out["bad"].append(f"child {pid}: /proc/self says {v}")
        if v in owner:
            out["reuses"] += 1
        owner[v] = serial
        live[pid] = (v, serial)
    for pid in list(live):
        os.waitpid(pid, 0)
        del live[pid]
    return out


# ----- the readers --------------------------------------------------------------------


class Reader:
    def __init__(self):
        self.c = {
            "rounds": 0,
            "reads": 0,  # successful reads
            "checked": 0,  # successful reads that showed a churn child's token
            "held_reads": 0,  # read attempts through held directories and files
            "held_checked": 0,
            "after_reuse": 0,  # held read attempts once the number was someone else's
            "after_reuse_data": 0,  # ... that returned the old process's data
        }
        self.errors = {"ENOENT": 0, "ESRCH": 0, "empty": 0}
        self.bad = []
        self.unexpected = []
        self.newest = {}  # number -> newest serial seen under it by path

    def mismatch(self, what):
        self.bad.append(what)

    def read(self, where, name, dir_fd=None):
        """Contents of file `name` of directory `where` (through `dir_fd` when given),
        or None after an error."""
        try:
            fd = os.open(name if dir_fd is not None else f"{where}/{name}", os.O_RDONLY, dir_fd=dir_fd)
        except OSError as e:
            return self.error(where, name, e)
        try:
            return self.read_fd(where, name, fd)
        finally:
            os.close(fd)

    def read_fd(self, where, name, fd):
        chunks = []
        try:
            while True:
                b = os.read(fd, 65536)
                if not b:
                    break
                chunks.append(b)
        except OSError as e:
            return self.error(where, name, e)
        text = b"".join(chunks)
        if not text:
            if name in ("cmdline", "environ"):
                self.errors["empty"] += 1
                return None
            self.unexpected.append(f"{where}/{name}: empty read")
            return None
        self.c["reads"] += 1
        return text

    def error(self, where, name, e):
        kind = ALLOWED.get(e.errno)
        if kind:
            self.errors[kind] += 1
        else:
            self.unexpected.append(f"{where}/{name}: {errno.errorcode.get(e.errno, e.errno)}")
        return None

    def check(self, n, name, text, where):
        """Checks `text` of /proc/n/`name`; returns the token it shows, or None."""
        tok = None
        if name == "stat":
            pid = text.split(b" ", 1)[0]
            if pid != str(n).encode():
                self.mismatch(f"{where}/stat: pid {pid!r}")
            comm = text[text.find(b"(") + 1 : text.rfind(b")")]
            tok = token_of(comm)
            rest = text[text.rfind(b")") + 2 :].split()
            if tok and rest[1:2] not in ([b"1"], [b"0"]):
                self.mismatch(f"{where}/stat: comm {comm!r} with ppid {rest[1:2]}")
        elif name == "status":
            f = {}
            for line in text.split(b"\n"):
                k, _, v = line.partition(b":")
                f.setdefault(k, v.strip())
            for k in (b"Pid", b"Tgid", b"NSpid", b"NStgid"):
                if f.get(k) != str(n).encode() and (k == b"Pid" or f.get(k) != b"0"):
                    self.mismatch(f"{where}/status: {k.decode()} {f.get(k)!r}")
            tok = token_of(f.get(b"Name", b""))
            if tok and f.get(b"PPid") not in (b"1", b"0"):
                self.mismatch(f"{where}/status: Name {f.get(b'Name')!r} with PPid {f.get(b'PPid')!r}")
        elif name == "cmdline":
            toks = [t for t in map(token_of, text.split(b"\0")) if t]
            tok = toks[0] if toks else None
        elif name == "environ":
            prefix = VAR.encode() + b"="
            toks = [token_of(e[len(prefix) :]) for e in text.split(b"\0") if e.startswith(prefix)]
            tok = toks[0] if toks else None
        if tok:
            self.c["checked"] += 1
            if tok[0] != n:
                self.mismatch(f"{where}/{name}: token r{tok[0]}.{tok[1]}")
        return tok

    def by_path(self, n):
        """Reads /proc/n's files by path; returns the serial its stat showed, or None."""
        serial = None
        for name in ("stat", "status", "cmdline", "environ"):
            text = self.read(f"/proc/{n}", name)
            if text is None:
                continue
            tok = self.check(n, name, text, f"/proc/{n}")
            if tok:
                self.newest[n] = max(self.newest.get(n, 0), tok[1])
                if name == "stat":
                    serial = tok[1]
        return serial

    def hold(self, n, seen):
        """Opens /proc/n as a directory after its stat showed serial `seen`; returns the
        holding, or None when the number is no longer that child's."""
        try:
            dfd = os.open(f"/proc/{n}", os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            self.error(f"/proc/{n}", "", e)
            return None
        text = self.read(f"held /proc/{n}", "stat", dfd)
        tok = self.check(n, "stat", text, f"held /proc/{n}") if text else None
        if tok is None or tok[1] < seen:
            if tok:
                # The directory shows an older process than the path did just before.
                self.mismatch(f"held /proc/{n}: opened after r{n}.{seen} was seen, shows r{tok[0]}.{tok[1]}")
            os.close(dfd)
            return None
        files = {}
        for name in HELD_FILES:
            try:
                files[name] = os.open(name, os.O_RDONLY, dir_fd=dfd)
            except OSError as e:
                self.error(f"held /proc/{n}", name, e)
        return {"dfd": dfd, "serial": tok[1], "files": files, "failing": 0}

    def through(self, n, h, last=False):
        """One round of reads through a held directory; the files held open with it are
        read (first read) once the number is someone else's, or when it is let go.
        Returns whether anything could be read through the directory."""
        where = f"held /proc/{n} of r{n}.{h['serial']}"
        reused = self.newest.get(n, 0) > h["serial"]
        got = False
        reads = [(name, None) for name in ("stat", "status", "cmdline", "environ")]
        if reused or last:
            reads += list(h["files"].items())
            h["files"] = {}
        for name, fd in reads:
            self.c["held_reads"] += 1
            if reused:
                self.c["after_reuse"] += 1
            if fd is None:
                at = where
                text = self.read(at, name, h["dfd"])
            else:
                at = f"{where}, opened then"
                text = self.read_fd(at, name, fd)
                os.close(fd)
            if text is None:
                continue
            got = got or fd is None
            if reused:
                self.c["after_reuse_data"] += 1
            tok = self.check(n, name, text, at)
            if tok:
                self.c["held_checked"] += 1
                if tok[1] != h["serial"]:
                    self.mismatch(f"{at}/{name}: token r{tok[0]}.{tok[1]}")
            else:
                self.mismatch(f"{at}/{name}: no token in {text[:60]!r}")
        try:
            os.fstat(h["dfd"])
        except OSError as e:
            self.error(where, "(fstat)", e)
        return got

    def run(self, stop, progress, slot):
        held = {}
        while True:
            try:
                if os.read(stop, 1) == b"":
                    break  # the churner is done
            except BlockingIOError:
                pass
            self.c["rounds"] += 1
            struct.pack_into(PROGRESS, progress, slot, *(self.c[k] for k in PROGRESS_KEYS))
            try:
                names = os.listdir("/proc")
            except OSError as e:
                self.error("/proc", "", e)
                continue
            for name in names:
                if not name.isdigit():
                    continue
                n = int(name)
                serial = self.by_path(n)
                if serial is not None and n not in held and len(held) < MAX_HELD:
                    h = self.hold(n, serial)
                    if h:
                        held[n] = h
            for n, h in list(held.items()):
                if self.through(n, h):
                    h["failing"] = 0
                else:
                    h["failing"] += 1
                if h["failing"] >= KEEP:
                    self.through(n, h, last=True)
                    os.close(h["dfd"])
                    del held[n]
        for n, h in held.items():
            self.through(n, h, last=True)
            os.close(h["dfd"])
        return {
            "c": self.c,
            "errors": self.errors,
            "bad": self.bad[:FIRST],
            "nbad": len(self.bad),
            "unexpected": self.unexpected[:FIRST],
            "nunexpected": len(self.unexpected),
        }


# ----- the probe ----------------------------------------------------------------------


def main():
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    if os.environ.get(VAR) != PLACEHOLDER or sys.argv[-1] != PLACEHOLDER:
        # Again with the placeholders in place: the environment variable first, the
        # placeholder as the last argument.
        env = {VAR: PLACEHOLDER}
        env.update((k, v) for k, v in os.environ.items() if k != VAR)
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), str(secs), PLACEHOLDER], env)
    # Without a pid namespace getpid() is the real pid; the view still calls us 1.
    if os.readlink("/proc/self") != "1":
        print("setup failed: not pid 1 of a namespace or VPS")
        return 2
    pidns = os.getpid() == 1
    addrs = placeholder_addresses()
    if addrs is None:
        print("setup failed: placeholders not found in argv and environ")
        return 2
    # Pids are steered through a procfs instance of our own pid namespace (the
    # kernel's, in a VPS without one the host's), mounted privately: it works the same
    # in every mode, and makes the kernel hand out the same number again, also the
    # real one behind a vpid (a write of the view's ns_last_pid steers only vpids
    # without a pid namespace).
    proc = tempfile.mkdtemp(prefix="vprocfs-race-proc-")
    if libc.mount(b"proc", proc.encode(), b"proc", 0, None) != 0:
        os.rmdir(proc)
        print("setup failed: mount proc:", os.strerror(ctypes.get_errno()))
        return 2
    try:
        rng = random.Random(15)
        stop_r, stop_w = os.pipe()
        readers = []
        progress = mmap.mmap(-1, READERS * struct.calcsize(PROGRESS))  # shared
        for i in range(READERS):
            res_r, res_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(res_r)
                    os.close(stop_w)
                    os.set_blocking(stop_r, False)
                    res = Reader().run(stop_r, progress, i * struct.calcsize(PROGRESS))
                    data = json.dumps(res).encode()
                    while data:
                        data = data[os.write(res_w, data) :]
                except BaseException:
                    traceback.print_exc()
                finally:
                    # Never back into main's code (nor its unmount): a reader that
                    # failed gives no result, which counts as an unexpected error.
                    os._exit(0)
            os.close(res_w)
            readers.append((pid, res_r))
        os.close(stop_r)
        ch = churn(secs, addrs, proc + "/sys/kernel/ns_last_pid", pidns, rng, progress)
        os.close(stop_w)
        results = []
        for pid, res_r in readers:
            chunks = []
            while True:
                b = os.read(res_r, 65536)
                if not b:
                    break
                chunks.append(b)
            os.close(res_r)
            os.waitpid(pid, 0)
            try:
                results.append(json.loads(b"".join(chunks)))
            except ValueError:
                ch["unexpected"].append(f"reader {pid} gave no result")
    finally:
        libc.umount2(proc.encode(), MNT_DETACH)
        os.rmdir(proc)

    counts = {k: sum(r["c"][k] for r in results) for k in results[0]["c"]} if results else {}
    errors = {k: sum(r["errors"][k] for r in results) for k in ("ENOENT", "ESRCH", "empty")}
    bad = ch["bad"] + [b for r in results for b in r["bad"]]
    nbad = len(ch["bad"]) + sum(r["nbad"] for r in results)
    unexpected = ch["unexpected"] + [u for r in results for u in r["unexpected"]]
    nunexpected = len(ch["unexpected"]) + sum(r["nunexpected"] for r in results)
    print("setup ok")
    print("mismatches", nbad)
    print("unexpected errors", nunexpected)
    print("reused", ch["reuses"] > 0)
    print(
        "counts",
        " ".join(f"{k}={v}" for k, v in counts.items()),
        " ".join(f"{k}={ch[k]}" for k in ("forks", "reuses", "steers", "steer_failed", "vsteers")),
        " ".join(f"{k}={v}" for k, v in errors.items()),
    )
    for b in bad[:FIRST]:
        print("mismatch:", b)
    for u in unexpected[:FIRST]:
        print("unexpected:", u)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
