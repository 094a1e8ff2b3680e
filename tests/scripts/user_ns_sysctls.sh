#!/bin/sh
# The sysctls the kernel keeps per user namespace (/proc/sys/user/*): read and written
# by readers and writers in user namespaces of their own, root and not, where each
# sees and sets its own namespace's limits; the outer ones are unchanged after.
u=/proc/sys/user
show() {
    for f in max_user_namespaces max_pid_namespaces max_inotify_watches; do
        printf '%s=%s ' "$f" "$(cat $u/$f)"
    done
    echo
}
echo "outer: $(show)"
echo "own namespace: $(unshare -U cat $u/max_user_namespaces $u/max_pid_namespaces | tr '\n' ' ')"
echo "first bytes: $(unshare -U head -c 4 $u/max_net_namespaces)"
unshare -U -r sh -c "
    echo 7 > $u/max_user_namespaces; echo \"root of its own: write rc=\$?\"
    echo \"  reads \$(cat $u/max_user_namespaces)\"
    echo \"  a namespace inside reads \$(unshare -U cat $u/max_user_namespaces)\"
    echo 3 > $u/max_mnt_namespaces 2>/dev/null; echo \"  max_mnt_namespaces rc=\$? \$(cat $u/max_mnt_namespaces)\"
"
unshare -U sh -c "echo 9 > $u/max_uts_namespaces; echo \"unmapped root: write rc=\$? reads \$(cat $u/max_uts_namespaces)\""
setpriv --reuid=65534 --regid=65534 --clear-groups unshare -U -r sh -c "
    echo 5 > $u/max_ipc_namespaces; echo \"nobody, root of its own: write rc=\$? reads \$(cat $u/max_ipc_namespaces)\"
" 2>&1
setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "
    echo 5 > $u/max_ipc_namespaces; echo \"nobody outside: write rc=\$?\"
" 2>&1 | sed 's/^.*: //'
echo "outer after: $(show)"
