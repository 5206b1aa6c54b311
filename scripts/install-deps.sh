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
  libsodium-dev              # crypto-shredding: XChaCha20-Poly1305 (docs/ERASURE.md)
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

# The npm packages of the project (each folder's committed
# package-lock.json, with the machine's node and npm): `npm ci` in DIR when
# its node_modules is missing or older than the lock file.
npm_ci() { # npm_ci DIR (relative to the repository)
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/$1"
  if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
     [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "install-deps ($level): npm ci in $1" >&2
    npm ci --prefix "$dir" --no-audit --no-fund >/dev/null
  fi
}
npm_deps() {
  # test: the Node client stack of serve_grpc_node (@grpc/grpc-js, proto-loader)
  if [ "$level" = test ]; then npm_ci tests/serve; fi
  # test: the official KurrentDB Node client of serve_kurrent_node
  # (@kurrent/kurrentdb-client, with its bundled native bridge), Emmett and
  # the older @eventstore/db-client of serve_kurrent_emmett
  if [ "$level" = test ]; then npm_ci tests/kurrent; fi
  # test and bench: Message DB for the messagedb peer of `evs bench`
  # (@eventide/message-db: its SQL and install.sh)
  if [ "$level" = test ] || [ "$level" = bench ]; then npm_ci tools/bench/messagedb; fi
}

missing=()
for p in "${PKGS[@]}"; do
  # dpkg-query prints "install ok installed" for a package that is present.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  npm_deps
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
npm_deps
