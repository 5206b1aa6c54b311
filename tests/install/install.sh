#!/usr/bin/env bash
# install.sh -- the install as a C user meets it (README, "Build,
# install, link"): `cmake --install` into a fresh prefix, not the one
# configured, so that only relative paths can work;
# then examples/quickstart.c built and run four ways:
#   pkg-config --cflags --libs evstore           libevstore.so
#   pkg-config --static --cflags --libs evstore  libevstore.a
#   find_package(evstore) + evstore::evstore      libevstore.so
#   find_package(evstore) + evstore::evstore_static
# and the installed archive checked for code that belongs to the tools
# (the benchmark suite, EXPLAIN for the bench report).
#
# Usage: install.sh CMAKE CC BUILD_DIR SOURCE_DIR   (a ctest test)
set -euo pipefail

cmake=$1 cc=$2 build=$3 src=$4
tmp=$(mktemp -d "${TMPDIR:-/tmp}/evs-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
failed=0

fail() {
    echo "install.sh: FAIL: $*" >&2
    failed=1
}

# show FILE: its text, for the log of a failure.
show() { sed 's/^/    /' "$1" >&2; }

# check NAME PROGRAM: runs PROGRAM in a directory of its own (the
# quickstart makes ./quickstart-data) and checks the event it read back.
check() {
    local dir=$tmp/run-$1 rc=0
    mkdir -p "$dir"
    (cd "$dir" && "$2") >"$dir/out" 2>&1 || rc=$?
    if [ $rc -ne 0 ]; then
        fail "$1: $2 exited with status $rc"; show "$dir/out"; return
    fi
    if ! grep -qx '1 Deposited v0 {"amount":10}' "$dir/out"; then
        fail "$1: unexpected output"; show "$dir/out"; return
    fi
    echo "ok: $1"
}

# needs_libevstore_so PROGRAM: whether it loads libevstore.so at run time.
needs_libevstore_so() {
    [[ $(readelf -d "$1") == *"[libevstore.so"* ]]
}

if ! "$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1; then
    fail "cmake --install $build --prefix $prefix"; show "$tmp/install.log"
    exit 1
fi
pc=$(find "$prefix" -name evstore.pc -path '*/pkgconfig/*')
[ -n "$pc" ] || { fail "no evstore.pc under $prefix"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
export PKG_CONFIG_PATH="$(dirname "$pc")"
cp "$src/examples/quickstart.c" "$tmp/"
cd "$tmp"

# 0. evstore.pc points into the prefix it was installed under.
inc=$(pkg-config --variable=includedir evstore)
if [ ! -f "$inc/evstore.h" ] ||
   [ "$(cd "$inc" && pwd -P)" != "$(cd "$prefix" && pwd -P)/include" ]; then
    fail "evstore.pc: includedir $inc is not $prefix/include"
fi

# 1. The README's command (libevstore.so; the prefix is not on the loader's
#    path, so LD_LIBRARY_PATH names it).
if $cc -o q-shared quickstart.c $(pkg-config --cflags --libs evstore) 2>cc.log; then
    needs_libevstore_so q-shared || fail "pkg-config: q-shared does not use libevstore.so"
    LD_LIBRARY_PATH="$libdir" check pkg-config "$tmp/q-shared"
else
    fail "pkg-config --cflags --libs evstore: does not build"; show cc.log
fi

# 2. --static: libevstore.a, nothing of evstore to load at run time.
if $cc -o q-static quickstart.c $(pkg-config --static --cflags --libs evstore) 2>cc.log; then
    needs_libevstore_so q-static && fail "pkg-config --static: q-static uses libevstore.so"
    check pkg-config-static "$tmp/q-static"
else
    fail "pkg-config --static --cflags --libs evstore: does not build"; show cc.log
    echo "    (pkg-config --static --cflags --libs evstore: $(pkg-config --static --cflags --libs evstore 2>&1))" >&2
fi

# 3. find_package: the README's project, and the same with the static
#    library (a C-only project: CMake adds the C++ runtime itself).
mkdir proj
cp quickstart.c proj/
cat >proj/CMakeLists.txt <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(quickstart C)
find_package(evstore REQUIRED)
add_executable(quickstart quickstart.c)
target_link_libraries(quickstart PRIVATE evstore::evstore)

add_executable(quickstart-static quickstart.c)
target_link_libraries(quickstart-static PRIVATE evstore::evstore_static)
CMAKE
if "$cmake" -S proj -B proj/build -DCMAKE_PREFIX_PATH="$prefix" \
       -DCMAKE_C_COMPILER="$cc" >cmake.log 2>&1 &&
   "$cmake" --build proj/build >>cmake.log 2>&1; then
    needs_libevstore_so proj/build/quickstart || fail "find_package: quickstart does not use libevstore.so"
    needs_libevstore_so proj/build/quickstart-static && fail "find_package: quickstart-static uses libevstore.so"
    check find_package "$tmp/proj/build/quickstart"
    check find_package-static "$tmp/proj/build/quickstart-static"
else
    fail "the find_package(evstore) project does not build"; show cmake.log
fi

# 4. The library holds the store, not the tools: no symbol of the
#    benchmark suite or of its EXPLAIN report.
# (nm -A -P: "ARCHIVE[MEMBER]: SYMBOL TYPE ...", one line per symbol.)
nm -A -P "$libdir/libevstore.a" >nm-all.log || fail "nm $libdir/libevstore.a"
if awk 'tolower($2) ~ /explain|bench/' nm-all.log | grep . >nm.log; then
    fail "libevstore.a has symbols of the tools:"; show nm.log
else
    echo "ok: libevstore.a has no explain/bench symbols"
fi

exit $failed
