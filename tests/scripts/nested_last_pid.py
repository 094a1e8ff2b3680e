#!/usr/bin/env python3
"""The last pid a reader in a pid namespace nested in the VPS's is told (an `unshare
--pid --fork` inside the VPS, with no /proc of its own): procfs answers `ns_last_pid`
and the last field of `loadavg` for the reader's own namespace, not for the namespace
the /proc instance belongs to. Inside the nested namespace a shell forks commands that
exit at once (reaped before a daemon could look at them), one in the background, and
reads both after each, then writes `ns_last_pid` (a restore tool's way to choose the
next number) and forks again, then makes a namespace inside its own, whose forks take
numbers in both (a reader in the middle one is told its last too) and which writes its
own `ns_last_pid` (leaving the middle one's as it was); then the VPS's init reads them
too. Run as the init of a pid
namespace and of a VPS: the outputs must be identical.
"""
import os
import shlex
import subprocess
import sys

# `last` forks (cat, cut); `seen` reads with the shell's builtin `read`, forking
# nothing, so it shows the forks of others.
LAST = r"""last() { n=$(cat /proc/sys/kernel/ns_last_pid); l=$(cut -d' ' -f5 /proc/loadavg); echo "$1: ns_last_pid $n loadavg $l"; }
seen() { read n < /proc/sys/kernel/ns_last_pid; read a b c d l < /proc/loadavg; echo "$1: ns_last_pid $n loadavg $l"; }
"""

# A namespace inside the nested one: its forks take numbers there and in the one above.
TWO_DEEP = LAST + r"""
true; true; sleep 30 & s=$!
last "two deep"
kill $s; wait $s 2>/dev/null
last "two deep, the sleeper gone"
echo 20 > /proc/sys/kernel/ns_last_pid; last "two deep, after writing 20"
"""

INNER = LAST + r"""
last start
true; last "after true"
true; true; true; last "after three"
(true); last "after a subshell"
sleep 30 & s=$!
last "after a sleeper"
for i in 1 2 3 4 5 6 7 8 9 10; do /bin/true; done; last "after ten"
kill $s; wait $s 2>/dev/null
last "after the sleeper"
echo 40 > /proc/sys/kernel/ns_last_pid; last "after writing 40"
/bin/true; last "after a command"
seen "before a namespace inside this one"
unshare --pid --fork sh -c """ + shlex.quote(TWO_DEEP) + r"""
seen "after a namespace inside this one"
/bin/true; last "then a command here"
"""


def main():
    if os.readlink("/proc/self") != "1":
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    out = subprocess.run(["unshare", "--pid", "--fork", "sh", "-c", INNER],
                         capture_output=True, text=True)
    sys.stdout.write(out.stdout + out.stderr)
    for name in ("sys/kernel/ns_last_pid", "loadavg"):
        with open(f"/proc/{name}") as f:
            print("outside:", name, f.read().split()[-1])
    return out.returncode


if __name__ == "__main__":
    sys.exit(main())
