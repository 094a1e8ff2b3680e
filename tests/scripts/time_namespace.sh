#!/bin/sh
# A reader in a time namespace of its own (`unshare -T --boottime 100000`, as a
# checkpoint restore makes one) is shown its own clock by procfs: `uptime`, `btime` in
# `stat` and every process's start time move together, so `ps` shows true elapsed times.
# Prints what must hold; run in a pid namespace (the kernel's oracle) and in a VPS: the
# outputs must be identical.
unshare -T --boottime 100000 sh -c '
read line < /proc/self/stat; set -- $line; start=${22}
read up idle < /proc/uptime; up=${up%.*}
btime=$(grep "^btime " /proc/stat | cut -d" " -f2)
now=$(date +%s)
age=$((up - start / 100))
echo "uptime moved by the offset: $([ "$up" -ge 100000 ] && echo yes || echo "no ($up)")"
echo "own start on that clock: $([ "$age" -ge 0 ] && [ "$age" -le 5 ] && echo yes || echo "no (age $age)")"
drift=$((btime + up - now))
echo "btime + uptime is now: $([ "$drift" -ge -2 ] && [ "$drift" -le 2 ] && echo yes || echo "no ($drift)")"
e=$(ps -o etimes= -p $$ | tr -d " ")
echo "ps elapsed time: $([ "$e" -ge 0 ] && [ "$e" -le 5 ] && echo yes || echo "no ($e)")"
'
