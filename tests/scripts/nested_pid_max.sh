#!/bin/sh
# pid_max in a pid namespace nested in the VPS's (`unshare --pid --fork` inside, with no
# /proc of its own): each pid namespace has its own (Linux 6.14 on), a new one the
# kernel's limit, and a write inside sets the writer's, not the VPS's, nor the host's,
# and takes no pid in any of them (a pid_max under the last pid has the next one come
# round to the bottom).
# Run as the init of a pid namespace and of a VPS: the outputs must be identical.
P=/proc/sys/kernel/pid_max
echo "outside: $(cat $P)"
unshare --pid --fork sh -c '
P=/proc/sys/kernel/pid_max
echo "inside: $(cat $P)"
echo 6000 > $P && echo "inside after writing 6000: $(cat $P)"
/bin/true; read n < /proc/sys/kernel/ns_last_pid; echo "inside, a command then: last pid starts $n"
echo 600 > /proc/sys/kernel/ns_last_pid && echo 550 > $P
/bin/true; echo "inside, pid_max 550 under last pid 600, two commands then: $(cat /proc/sys/kernel/ns_last_pid)"
unshare --pid --fork sh -c "echo \"two deep: \$(cat $P)\""
'
echo "outside after: $(cat $P)"
echo "outside, a command then: $(readlink /proc/self)"
