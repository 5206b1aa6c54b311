#!/usr/bin/env bash
# Install the Debian packages evstore needs, only those that are missing.
# Called by `make test` and `make bench`; safe to run any number of times.
set -euo pipefail

PKGS=(
  cmake make gcc pkg-config
  liblmdb-dev lmdb-utils     # the derived index
  libisal-dev                # CRC32C (crc32_iscsi)
  libxxhash-dev              # hashing in the writer's group overlay
  g++                        # the one C++ file: simdjson's wrapper
  libsimdjson-dev            # JSON validation in the library
  libjansson-dev             # JSON building in the CLI
  uuid-dev                   # UUID text form
  libssl-dev                 # base64 in the CLI (binary event data)
  libcmocka-dev              # unit tests
  gnuplot-nox                # the plots of `evs bench` (optional there)
  libpq-dev postgresql-15     # the PostgreSQL backend (issue 7) and its tests
)

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

echo "install-deps: installing ${missing[*]}" >&2
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
