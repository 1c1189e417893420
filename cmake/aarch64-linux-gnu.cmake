# Cross-compiling for 64-bit ARM Linux (Graviton, Ampere, Apple silicon under Docker) with Debian's
# gcc-aarch64-linux-gnu and the arm64 -dev packages (multiarch): scripts/cross-arm64.sh.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
# A library under one of these roots is used where it is; PULSE_ARM64_LIBS adds one (scripts/cross-arm64.sh).
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu ${PULSE_ARM64_LIBS})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
if(NOT DEFINED ENV{PKG_CONFIG_LIBDIR}) # scripts/cross-arm64.sh sets it, with its libgit2 shim first
  set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
endif()
