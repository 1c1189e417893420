#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages pulse-pipe builds and runs with. The README, .ci/run and the Dockerfile
# all call this one script, so they cannot drift apart. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ca-certificates
  liblua5.4-dev libzstd-dev libgit2-dev libarchive-dev libssl-dev libopenblas-dev
  libpng-dev libjpeg-dev zstd python3 python3-venv
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
# Installed for this machine's architecture (or for all): a -dev package installed for another one
# (scripts/cross-arm64.sh's arm64 libraries) does not count.
native=$(dpkg --print-architecture)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status} ${Architecture}\n' "$p" 2>/dev/null | grep -qE "^install ok installed ($native|all)$" ||
    missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
