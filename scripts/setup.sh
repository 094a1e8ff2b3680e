#!/usr/bin/env bash
# Installs what vprocfs and its tests need on a fresh Debian machine (run as root).
# Idempotent: packages already present are not fetched again.
set -euo pipefail

packages=(fuse3 procps psmisc util-linux bsdutils lsof sysvinit-utils python3 python3-psutil python3-yaml sysstat iproute2 net-tools)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -e /dev/fuse ]; then
  modprobe fuse 2>/dev/null || true
fi
[ -e /dev/fuse ] || { echo "setup: /dev/fuse is missing and the fuse module cannot be loaded" >&2; exit 1; }
command -v cargo >/dev/null || { echo "setup: cargo is missing: install a Rust toolchain (rustup)" >&2; exit 1; }
echo "setup: ready"
