#!/usr/bin/env bash
# Runs every test: unit, property and integration tests (the integration tests mount
# FUSE views and make namespaces, so run this as root).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bins
cargo test --quiet "$@"
