#!/usr/bin/env bash
# Install the Debian packages evstore needs for a job, only those that are
# missing (one `apt-get update` first, and only then).
#
#   scripts/install-deps.sh [build]   the library and `evs` (make build, make install)
#   scripts/install-deps.sh test      build + the test suite's (make test, make asan)
#   scripts/install-deps.sh bench     build + the bench report's plots (make bench)
#
# Safe to run any number of times.
set -euo pipefail

level=${1:-build}

BUILD_PKGS=(
  cmake make gcc pkg-config
  liblmdb-dev                # the derived index
  libisal-dev                # CRC32C (crc32_iscsi)
  libxxhash-dev              # hashing in the writer's group overlay
  g++                        # the one C++ file: simdjson's wrapper
  libsimdjson-dev            # JSON validation in the library
  uuid-dev                   # UUID text form
  libpq-dev                  # the PostgreSQL backend (issue 7; not with -DEVS_WITH_POSTGRES=OFF)
  libjansson-dev             # JSON building in the CLI
  libssl-dev                 # base64 in the CLI (binary event data)
  libsqlite3-dev             # the SQLite peer of `evs bench` (evs links the bench)
)
TEST_PKGS=(
  libcmocka-dev              # unit tests
  postgresql-15              # the suite's PostgreSQL runs (a throwaway cluster)
)
BENCH_PKGS=(
  gnuplot-nox                # the plots of `evs bench` (the report is written without)
)

case $level in
  build) PKGS=("${BUILD_PKGS[@]}") ;;
  test)  PKGS=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}") ;;
  bench) PKGS=("${BUILD_PKGS[@]}" "${BENCH_PKGS[@]}") ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${PKGS[@]}"; do
  # dpkg-query prints "install ok installed" for a package that is present.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps ($level): installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: missing packages (${missing[*]}) and not root; install them with apt-get" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done" >&2
