#!/bin/sh
# The clock a VPS started inside another one shows: its own age in `uptime`, `btime`
# such that btime + uptime is now, and `ps` elapsed times counted from there. Run in a
# pid and time namespace made inside another (the kernel's oracle) and in a `vprocfs
# run` inside a `vprocfs run`: the outputs must be identical.
read up idle < /proc/uptime; up=${up%.*}
btime=$(grep "^btime " /proc/stat | cut -d" " -f2)
now=$(date +%s)
echo "uptime is the age: $([ "$up" -ge 0 ] && [ "$up" -le 30 ] && echo yes || echo "no ($up)")"
drift=$((btime + up - now))
echo "btime + uptime is now: $([ "$drift" -ge -2 ] && [ "$drift" -le 2 ] && echo yes || echo "no ($drift)")"
e=$(ps -o etimes= -p $$ | tr -d " ")
echo "ps elapsed time: $([ "$e" -ge 0 ] && [ "$e" -le 30 ] && echo yes || echo "no ($e)")"
