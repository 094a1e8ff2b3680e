#!/bin/sh
# A shell's everyday work (short commands, pipelines, subshells, command substitution,
# background jobs, a session) and, at five points, the last pid (`loadavg`) and every
# process with its parent, group and session. Run as the init of a pid namespace and of
# a VPS: the outputs must be identical, numbers included, also in a VPS without a pid
# namespace numbered densely (`--numbering ns`), where most of these processes are gone
# before the daemon can look at them and must still take their numbers.
# ps runs alone (a command substitution, which the shell execs): grep and sed in a pipe
# with it would be listed half made, `sh` before their exec or not yet forked, as a
# loaded machine's scheduling decides, in the kernel's run as in the view's.
show() {
  read -r l < /proc/loadavg; echo "== $1: last ${l##* }"
  p=$(ps -o pid=,ppid=,pgid=,sid=,comm= -e); echo "$p" | grep -v " ps$" | sed 's/  */ /g'
}
for i in 1 2 3 4 5 6 7 8; do /bin/true; done
show a
echo x | cat | tr x y > /dev/null
( ( /bin/true ) ) ; ( exit 3 ) || true
show b
sleep 30 & s1=$!; sleep 30 & s2=$!
sh -c '/bin/true; /bin/true; exit 0'
x=$(echo hi; /bin/true); y=`/bin/echo there`
show c
for i in $(seq 1 20); do (/bin/true &) ; done
sleep 0.2
show d
# The session's sh forks its two sleeps while this shell goes on: a fork of this shell
# meanwhile (a `sleep 0.2`) would take a number before or between theirs as the
# scheduler decides. So this shell waits without forking (builtins only) until the two,
# the numbers after the session's sh, run sleep.
read -r l < /proc/loadavg; before=${l##* }
setsid sh -c 'sleep 30 & sleep 30 & wait' & s3=$!
i=0
until { read -r a < /proc/$((before + 2))/comm && read -r b < /proc/$((before + 3))/comm \
        && [ "$a $b" = "sleep sleep" ]; } 2>/dev/null || [ $i -ge 200000 ]; do
  i=$((i + 1))
done
show e
# Ended by pid: the jobs, and the session's group.
kill $s1 $s2; kill -TERM -$s3
wait
exit 0
