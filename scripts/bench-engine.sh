#!/bin/sh
# Runs the VPID engine micro-benchmark (release build; benches/engine.rs).
# BENCH_RUNS=N sets the number of runs each median is taken over (default 11).
set -eu
cd "$(dirname "$0")/.."
exec cargo bench --bench engine "$@"
