#!/bin/sh
# Run inside a VPS: what sysfs's I/O counters of the disk under the directory $1 show,
# before and after the VPS writes 4 MiB there with direct I/O, beside the VPS's
# cgroup's own count of the bytes it wrote and what `iostat` makes of it. Prints
# "disk MAJ:MIN NAME", "before <stat>", "after <stat>", "diskstats <its counters>",
# "diskstats lines N", "cgroup <bytes written>",
# "iostat <kB written>", or "disk none" where $1 is on no block device (overlayfs,
# tmpfs).
set -e
dev=$(stat -c %Hd:%Ld "$1")
if [ ! -e "/sys/dev/block/$dev" ]; then
    echo "disk none"
    exit 0
fi
# The cgroup counts I/O per whole disk.
if [ -e "/sys/dev/block/$dev/partition" ]; then
    dev=$(cat "/sys/dev/block/$dev/../dev")
fi
name=$(basename "$(readlink -f "/sys/dev/block/$dev")")
echo "disk $dev $name"
v1=$(sed -n 's/^[0-9]*:blkio://p' /proc/self/cgroup)
if [ -n "$v1" ]; then
    # v1 blkio counts a cgroup's I/O only where it has a throttle rule.
    g=/sys/fs/cgroup/blkio$v1
    echo "$dev 1099511627776" > "$g/blkio.throttle.write_bps_device"
fi
echo "before $(cat "/sys/dev/block/$dev/stat")"
dd if=/dev/zero of="$1/block_io.data" bs=1M count=4 oflag=direct status=none
rm "$1/block_io.data"
echo "after $(cat "/sys/dev/block/$dev/stat")"
echo "diskstats $(awk -v a="${dev%:*}" -v b="${dev#*:}" '$1 == a && $2 == b { $1 = $2 = $3 = ""; print }' /proc/diskstats)"
echo "diskstats lines $(wc -l < /proc/diskstats)"
if [ -n "$v1" ]; then
    written=$(grep "^$dev Write " "$g/blkio.throttle.io_service_bytes_recursive" | cut -d' ' -f3)
else
    v2=$(sed -n 's/^0:://p' /proc/self/cgroup)
    g=/sys/fs/cgroup$v2
    [ -e "$g/io.stat" ] || g=/sys/fs/cgroup/unified$v2
    written=$(grep "^$dev " "$g/io.stat" | tr ' ' '\n' | sed -n 's/^wbytes=//p')
fi
echo "cgroup ${written:-0}"
echo "iostat $(iostat -d -k "$name" | awk -v n="$name" '$1 == n { print $7 }')"
