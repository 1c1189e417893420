#!/usr/bin/env bash
# Builds pulse-pipe for 64-bit ARM Linux on an x86-64 Debian machine (compile and link, warnings as errors),
# so that nothing x86-only enters the CPU path unguarded; CI runs it as it builds the CUDA backend. Installs
# gcc-aarch64-linux-gnu and the arm64 libraries through Debian multiarch (needs root or sudo; on Ubuntu the
# arm64 packages live on ports.ubuntu.com, which the apt sources must name first).
# Running the result needs an ARM machine: under qemu-user, OpenBLAS 0.3.21 hangs in its start-up and the
# store's lock tests take minutes each, so this checks the build only.
#   usage: scripts/cross-arm64.sh [BUILD_DIR]      (default build-arm64)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build-arm64}
mkdir -p "$B" && B=$(cd "$B" && pwd)
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
# libgit2-dev cannot be installed for two architectures at once (its libhttp-parser-dev is not multiarch:
# apt would remove the native one), so the arm64 side takes the library alone, libgit2-1.5, and the native
# package's headers through a pkg-config file written below.
pkg-config --exists libgit2 || { echo "cross-arm64: run scripts/install-deps.sh first (libgit2-dev)" >&2; exit 1; }
# the library package the native headers belong to (libgit2-1.5 on Debian 12), for arm64
git2=$(dpkg-query -W -f='${Depends}' libgit2-dev | grep -o 'libgit2-[0-9][0-9.]*' | head -1)
packages=(gcc-aarch64-linux-gnu liblua5.4-dev:arm64 libzstd-dev:arm64 "$git2:arm64" libarchive-dev:arm64
  libssl-dev:arm64 libopenblas-dev:arm64 libpng-dev:arm64 libjpeg-dev:arm64)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "cross-arm64: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  dpkg --print-foreign-architectures | grep -qx arm64 || $sudo dpkg --add-architecture arm64
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
mkdir -p "$B/pkgconfig" "$B/lib"
ln -sf "$(ls /usr/lib/aarch64-linux-gnu/libgit2.so.1.* | head -1)" "$B/lib/libgit2.so"
cat >"$B/pkgconfig/libgit2.pc" <<EOF
Name: libgit2
Description: the arm64 libgit2-1.5 with the native libgit2-dev's headers (scripts/cross-arm64.sh)
Version: $(pkg-config --modversion libgit2)
Libs: -L$B/lib -lgit2
Cflags: $(pkg-config --cflags libgit2)
EOF
PKG_CONFIG_LIBDIR="$B/pkgconfig:/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig" \
  cmake -S . -B "$B" -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" -DPULSE_CUDA=OFF \
  -DPULSE_ARM64_LIBS="$B/lib" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS=-Werror >/dev/null
cmake --build "$B" -j "$(nproc)"
readelf -h "$B/pulse-pipe" | grep -q 'AArch64' || { echo "cross-arm64: $B/pulse-pipe is not an aarch64 binary" >&2; exit 1; }
echo "cross-arm64: ok ($B/pulse-pipe, every test and benchmark linked for aarch64)"
