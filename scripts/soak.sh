#!/usr/bin/env bash
# The soak's long form: a VPS forks and reaps ITERATIONS x 3 short-lived processes
# (default 20000 x 3) while readers loop over `ps -eLf` and `top` through the view; the
# daemon's RSS is sampled every second. Prints the figures (docs/hardening.md, "Soak").
# Run as root, after scripts/setup.sh.   Usage: scripts/soak.sh [ITERATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
iterations=${1:-20000}
case $iterations in '' | *[!0-9]*) echo "soak: ITERATIONS must be a number" >&2; exit 2 ;; esac
log=$(mktemp "${TMPDIR:-/tmp}/vprocfs-soak.XXXXXX")
trap 'rm -f "$log"' EXIT
cargo build --release --bins
start=$(date +%s)
status=0
VPROCFS_SOAK_ITERATIONS=$iterations cargo test --release --test soak -- --nocapture 2>&1 | tee "$log" || status=$?
echo
echo "== soak: $iterations iterations, $(( $(date +%s) - start )) s in all (build excluded)"
echo "   machine: $(nproc) CPUs, kernel $(uname -r)"
grep '^soak: ' "$log" | sed 's/^soak: /   /' || true
if [ "$status" -eq 0 ]; then echo "== soak: passed"; else echo "== soak: FAILED (exit $status)"; fi
exit "$status"
