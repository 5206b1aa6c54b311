#!/usr/bin/env bash
# Run the engine benchmark. `make bench` builds, then calls
# `bash bench/run.sh BUILD_DIR`; this script builds nothing itself.
#
#   EVS_BENCH_OUT   where the results go (default: bench-results/ in the repo)
#   EVS_BENCH_DIR   where the temporary stores go (default: EVS_BENCH_OUT, so
#                   on the repository's filesystem); they are deleted after
#   EVS_BENCH_ARGS  extra engine_bench arguments, e.g. "--quick"
#
# The Markdown report is printed and written to engine.md, every figure to
# engine.json. Exits with engine_bench's status (3: some operation failed or
# a count did not match the store; the report says which).
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: bash bench/run.sh BUILD_DIR" >&2
  exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$1
case $build in /*) ;; *) build=$repo/$build ;; esac
bench=$build/engine_bench
if [ ! -x "$bench" ]; then
  echo "run.sh: $bench not found: build first (make bench does)" >&2
  exit 2
fi

out=${EVS_BENCH_OUT:-$repo/bench-results}
mkdir -p "$out"
out=$(cd "$out" && pwd)
dir=${EVS_BENCH_DIR:-$out}

# Record which code was measured: the commit (read-only git queries;
# GIT_OPTIONAL_LOCKS=0 so status does not even refresh the index) and a
# digest of the library's sources (what libevstore is built from), which
# also names uncommitted code.
export GIT_OPTIONAL_LOCKS=0
libsrc=()
for d in src/core src/embedded src/util include; do
  [ -d "$repo/$d" ] && libsrc+=("$d")
done
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo "no commit")
changed=$(git -C "$repo" status --porcelain --untracked-files=no \
  -- "${libsrc[@]}" 2>/dev/null || true)
if [ -n "$changed" ]; then
  commit="$commit + uncommitted changes"
fi
digest=$(cd "$repo" && find "${libsrc[@]}" -type f \
  \( -name '*.c' -o -name '*.h' -o -name '*.cc' -o -name '*.cpp' \) -print0 \
  | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -c1-12) || true
label="evstore $commit, library sources sha256:$digest"

# Results of an earlier run must not pass for this one's.
rm -f "$out/engine.json" "$out/engine.md"
rc=0
# Word splitting of EVS_BENCH_ARGS is intended: it holds several flags.
# shellcheck disable=SC2086
"$bench" --dir "$dir" --label "$label" \
  --json "$out/engine.json" --md "$out/engine.md" ${EVS_BENCH_ARGS:-} || rc=$?

echo
if [ -s "$out/engine.md" ]; then
  echo "Results: $out/engine.md (report) and $out/engine.json (every figure)"
fi
if [ $rc -ne 0 ]; then
  echo "run.sh: engine_bench exited with status $rc" >&2
fi
exit $rc
