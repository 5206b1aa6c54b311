#!/usr/bin/env bash
# no_postgres.sh -- an embedded-only build needs no libpq: configures and
# builds the library with -DEVS_WITH_POSTGRES=OFF -DEVS_BUILD_TESTS=OFF in
# a temporary directory while pkg-config cannot find libpq (its search
# path is a directory of links to every other .pc file; libpq-fe.h is not
# on the compiler's default path, so a source that still included it would
# not compile). Then checks that nothing refers to libpq: no PQ* symbol in
# libevstore.a, no libpq in libevstore.so's NEEDED, no -lpq in evstore.pc;
# and that the quickstart linked against the library runs.
#
# Usage: no_postgres.sh CMAKE CC SOURCE_DIR   (a ctest test)
set -euo pipefail

cmake=$1 cc=$2 src=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/evs-nopg.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failed=0
fail() {
    echo "no_postgres.sh: FAIL: $*" >&2
    failed=1
}
show() { sed 's/^/    /' "$1" >&2; }

# pkg-config's search path without libpq.pc.
mkdir "$tmp/pc"
IFS=: read -r -a pc_path <<<"$(pkg-config --variable pc_path pkg-config)"
for d in ${PKG_CONFIG_PATH:+${PKG_CONFIG_PATH//:/ }} "${pc_path[@]}"; do
    for f in "$d"/*.pc; do
        [ -e "$f" ] && [ ! -e "$tmp/pc/${f##*/}" ] && ln -s "$f" "$tmp/pc/"
    done
done
rm -f "$tmp/pc/libpq.pc"
export PKG_CONFIG_LIBDIR=$tmp/pc PKG_CONFIG_PATH=
if pkg-config --exists libpq; then
    fail "libpq is still visible to pkg-config"; exit 1
fi

b=$tmp/build
start=$SECONDS
if ! "$cmake" -S "$src" -B "$b" -DEVS_WITH_POSTGRES=OFF -DEVS_BUILD_TESTS=OFF \
        -DCMAKE_C_COMPILER="$cc" >"$tmp/log" 2>&1 ||
   ! "$cmake" --build "$b" -j 2 --target evstore evstore_static example-quickstart \
        >>"$tmp/log" 2>&1; then
    fail "the build with -DEVS_WITH_POSTGRES=OFF and no libpq"; show "$tmp/log"
    exit 1
fi
echo "ok: configured and built without libpq in $((SECONDS - start)) s"

nm -u "$b/libevstore.a" >"$tmp/undef"
if grep -E ' (PQ|pg_|lo_)[A-Za-z_]*$' "$tmp/undef" >"$tmp/pq"; then
    fail "libevstore.a calls libpq:"; show "$tmp/pq"
fi
if [[ $(readelf -d "$b/libevstore.so") == *"[libpq"* ]]; then
    fail "libevstore.so needs libpq"
fi
if grep -q -- '-lpq\|libpq' "$b/evstore.pc"; then
    fail "evstore.pc names libpq"; show "$b/evstore.pc"
fi
mkdir "$tmp/run"
if (cd "$tmp/run" && "$b/example-quickstart") >"$tmp/out" 2>&1 &&
   grep -qx '1 Deposited v0 {"amount":10}' "$tmp/out"; then
    echo "ok: the quickstart runs on the embedded-only library"
else
    fail "the quickstart on the embedded-only library"; show "$tmp/out"
fi
exit $failed
