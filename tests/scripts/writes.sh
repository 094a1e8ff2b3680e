# Writes through /proc, as root and as an unprivileged user; each line says what the
# kernel (or the view) answered. Run as pid 1 of a kernel pid namespace or of a VPS.
try() { if out=$(sh -c "$1" 2>&1); then echo "ok: $1 -> $out"; else echo "refused: $1 -> $(echo "$out" | sed 's/^.*: //' | tail -1)"; fi; }
nobody() { try "setpriv --reuid 65534 --regid 65534 --clear-groups sh -c '$1'"; }
try 'echo 500 > /proc/self/oom_score_adj; cat /proc/self/oom_score_adj'
try 'echo 0x33 > /proc/self/coredump_filter; cat /proc/self/coredump_filter'
try 'echo 100000 > /proc/self/timerslack_ns; cat /proc/self/timerslack_ns'
try 'echo 1 > /proc/self/clear_refs'
try 'echo > /proc/uptime'
try 'rm -f /proc/uptime'
try 'touch /proc/newfile'
try 'mkdir /proc/newdir'
try 'chmod 600 /proc/self/status'
try 'touch /proc/self/status'
try 'truncate -s 0 /proc/self/oom_score_adj'
try 'unshare --ipc sh -c "sysctl -w kernel.shmmax=123456789 >/dev/null; sysctl -n kernel.shmmax"'
try 'echo $(sysctl -n kernel.shmmax) | grep -vx 123456789 >/dev/null'
try 'unshare -U -r id -u'
try 'setpriv --bounding-set=-setfcap unshare -U -r id -u'
try '/usr/bin/python3 -c "
import ctypes, os
buf = ctypes.create_string_buffer(b\"before\")
with open(\"/proc/self/mem\", \"r+b\", buffering=0) as m:
    m.seek(ctypes.addressof(buf)); m.write(b\"after!\")
print(buf.value.decode())"'
nobody 'echo 900 > /proc/self/oom_score_adj; cat /proc/self/oom_score_adj'
nobody 'echo -500 > /proc/self/oom_score_adj'
nobody 'echo 1 > /proc/sys/vm/drop_caches'
nobody 'echo 0x33 > /proc/1/coredump_filter'
nobody 'echo 1 > /proc/1/clear_refs'
nobody 'unshare -U -r id -u'
nobody 'sysctl -w kernel.shmmax=1'
