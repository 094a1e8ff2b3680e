# Sourced by the benchmarks: finding and ending the `vprocfs run` VPSes they start.

children_of() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }

# The init of a `vprocfs run` VPS: the daemon's child is the relay, whose child is init.
vps_inits() {
    local relay
    for relay in $(children_of "$1"); do children_of "$relay"; done
}

# Ends a `vprocfs run` daemon: SIGKILL to its pid namespace's init (the kernel then ends
# every process of the VPS, the relay returns, the daemon exits), TERM/KILL if it lingers.
stop_vps() {
    local d=$1 init i
    kill -0 "$d" 2>/dev/null || { wait "$d" 2>/dev/null || true; return 0; }
    for init in $(vps_inits "$d"); do kill -KILL "$init" 2>/dev/null || true; done
    for i in $(seq 100); do kill -0 "$d" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$d" 2>/dev/null; then
        kill -TERM "$d" 2>/dev/null || true
        for i in $(seq 50); do kill -0 "$d" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$d" 2>/dev/null || true
    fi
    wait "$d" 2>/dev/null || true
}
