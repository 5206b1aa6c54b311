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
  libgrpc-dev                # `evs serve`: gRPC's C core (HTTP/2, TLS, gRPC framing)
  libprotobuf-c-dev          # `evs serve`: protobuf messages
  protobuf-c-compiler        # `evs serve`: protoc-c generates them at build time
  libmicrohttpd-dev          # `evs serve`: the HTTP/1.1 listener
)
TEST_PKGS=(
  libcmocka-dev              # unit tests
  postgresql-15              # the suite's PostgreSQL runs (a throwaway cluster)
  python3-prometheus-client  # serve_http: /metrics parsed by a Prometheus text parser
  python3-grpcio             # serve_grpc_py: gRPC's C core client (Debian's /usr/bin/python3)
  python3-protobuf           # serve_grpc_py: its messages
  protobuf-compiler          # serve_grpc_py: protoc --python_out at test time
)
BENCH_PKGS=(
  gnuplot-nox                # the plots of `evs bench` (the report is written without)
  postgresql-15              # the PostgreSQL peers of `evs bench` (pgbench, --pg-throwaway's initdb)
)

case $level in
  build) PKGS=("${BUILD_PKGS[@]}") ;;
  test)  PKGS=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}") ;;
  bench) PKGS=("${BUILD_PKGS[@]}" "${BENCH_PKGS[@]}") ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

# The test level also installs the Node client stack of serve_grpc_node
# (tests/serve/package-lock.json, with the machine's node and npm): `npm ci`
# when node_modules is missing or older than the lock file.
npm_test_deps() {
  [ "$level" = test ] || return 0
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/serve"
  if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
     [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "install-deps (test): npm ci in tests/serve" >&2
    npm ci --prefix "$dir" --no-audit --no-fund >/dev/null
  fi
}

# The bench and test levels also install Message DB for the messagedb peer
# of `evs bench` (tools/bench/messagedb/package-lock.json: the npm package
# @eventide/message-db, its SQL and install.sh), the same way.
npm_messagedb() {
  [ "$level" = test ] || [ "$level" = bench ] || return 0
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tools/bench/messagedb"
  if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
     [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "install-deps ($level): npm ci in tools/bench/messagedb" >&2
    npm ci --prefix "$dir" --no-audit --no-fund >/dev/null
  fi
}

missing=()
for p in "${PKGS[@]}"; do
  # dpkg-query prints "install ok installed" for a package that is present.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  npm_test_deps
  npm_messagedb
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
npm_test_deps
npm_messagedb
