# shellcheck shell=bash
# Sourced by the benchmarks: raise_limits N makes room for N processes and their threads
# beside the machine's own (ulimit -u, the host's pid_max and threads-max, each raised
# only when too low), and restore_limits (from the EXIT trap) puts back what was
# raised; largest N... prints the largest of its arguments. Needs say and die.
OLD_PID_MAX=
OLD_THREADS_MAX=

largest() {
    local m=0 n
    for n in "$@"; do [ "$n" -gt "$m" ] && m=$n; done
    echo "$m"
}

raise_limits() {
    local need pid_max threads_max
    need=$(($1 * 3 / 2 + $(ps -eL --no-headers | wc -l) + 1000))
    ulimit -u unlimited 2>/dev/null || ulimit -u "$need" 2>/dev/null ||
        say "note: cannot raise ulimit -u ($(ulimit -u)); root is not bound by it anyway"
    pid_max=$(cat /proc/sys/kernel/pid_max)
    if [ "$pid_max" -lt "$need" ]; then
        OLD_PID_MAX=$pid_max
        echo "$need" >/proc/sys/kernel/pid_max || die "pid_max $pid_max < $need, cannot raise"
        say "host pid_max raised from $pid_max to $need for the run (restored at exit)"
    fi
    threads_max=$(cat /proc/sys/kernel/threads-max)
    if [ "$threads_max" -lt "$need" ]; then
        OLD_THREADS_MAX=$threads_max
        echo "$need" >/proc/sys/kernel/threads-max || die "threads-max $threads_max < $need, cannot raise"
        say "threads-max raised from $threads_max to $need for the run (restored at exit)"
    fi
}

restore_limits() {
    [ -n "$OLD_PID_MAX" ] && echo "$OLD_PID_MAX" >/proc/sys/kernel/pid_max
    [ -n "$OLD_THREADS_MAX" ] && echo "$OLD_THREADS_MAX" >/proc/sys/kernel/threads-max
    return 0
}
