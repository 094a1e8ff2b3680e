#!/bin/sh
# The paths procfs writes are its reader's: `d_path` from the root of the task that
# reads, in the targets of `exe`, `cwd`, `root` and `fd/N` and in the file names of
# `maps`, `smaps` and `numa_maps`. A reader in a chroot sees the files below its root
# without the root's path in front, and the others (a process outside the chroot) from
# the top. Run as the init of a pid namespace and of a VPS: the outputs must be
# identical. The chroot is a bind mount of / on a fresh directory, in a mount namespace
# of its own, gone with it; the directory's name is printed as JAIL.
set -e
jail=$(mktemp -d /tmp/chroot-paths.XXXXXX)
trap 'rmdir "$jail"' EXIT
unshare -m sh -c '
mount --make-rprivate /
mount --rbind / "$1"
cd "$1/tmp"
exec chroot "$1" /bin/sh -c "
cd /
for l in cwd root exe; do echo self \$l: \$(readlink /proc/self/\$l); done
for l in cwd root exe; do echo init \$l: \$(readlink /proc/1/\$l); done
exec 3</etc/hostname
echo fd 3: \$(readlink /proc/self/fd/3)
for f in maps smaps; do echo \$f:; grep -o \" /.*\" /proc/self/\$f | sort -u | grep -e bin/ -e libc; done
echo numa_maps:; grep -o \"file=[^ ]*\" /proc/self/numa_maps | sort -u | grep -e bin/ -e libc
echo init maps:; grep -o \" /.*\" /proc/1/maps | sort -u | grep -e bin/ -e libc
"
' sh "$jail" | sed "s|$jail|JAIL|g"
