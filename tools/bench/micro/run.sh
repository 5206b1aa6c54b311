#!/usr/bin/env bash
# Run the benchmarks: engine_bench, dcb_bench, tracking_bench, then
# command_bench. `make microbench` builds,
# then calls `bash tools/bench/micro/run.sh BUILD_DIR`; this script builds nothing
# itself.
#
#   EVS_BENCH_OUT       where the results go (default: bench-results/ in the
#                       repo)
#   EVS_BENCH_DIR       where the temporary stores go (default:
#                       EVS_BENCH_OUT, so on the repository's filesystem);
#                       they are deleted after
#   EVS_BENCH_ARGS      extra engine_bench arguments, e.g. "--quick"
#   EVS_DCB_BENCH_ARGS  extra dcb_bench, tracking_bench and command_bench
#                       arguments
#                       (default: "--quick" when EVS_BENCH_ARGS has --quick,
#                       else none)
#
# Each Markdown report is printed and written to engine.md / dcb.md /
# tracking.md / command.md, every figure to the matching .json.
# Exits with the first non-zero status of the four (3: some operation
# failed, a query answered wrongly or a count did not match the store; the
# report says which).
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: bash tools/bench/micro/run.sh BUILD_DIR" >&2
  exit 2
fi
repo=$(cd "$(dirname "$0")/../../.." && pwd)
build=$1
case $build in /*) ;; *) build=$repo/$build ;; esac
for b in engine_bench dcb_bench tracking_bench command_bench; do
  if [ ! -x "$build/$b" ]; then
    echo "run.sh: $build/$b not found: build first (make microbench does)" >&2
    exit 2
  fi
done

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
for d in src/core src/command src/embedded src/postgres src/util include; do
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

dcb_args=${EVS_DCB_BENCH_ARGS-}
if [ -z "${EVS_DCB_BENCH_ARGS+set}" ]; then
  case " ${EVS_BENCH_ARGS:-} " in *" --quick "*) dcb_args=--quick ;; esac
fi

# Results of an earlier run must not pass for this one's.
rm -f "$out/engine.json" "$out/engine.md" "$out/dcb.json" "$out/dcb.md" \
  "$out/tracking.json" "$out/tracking.md" "$out/command.json" "$out/command.md"
rc=0
# run NAME ARGS: one benchmark, its report to NAME.md and NAME.json; the
# first failure's status is kept.
run() {
  local name=$1 bench=$build/$2 status=0
  shift 2
  "$bench" --dir "$dir" --label "$label" \
    --json "$out/$name.json" --md "$out/$name.md" "$@" || status=$?
  echo
  if [ -s "$out/$name.md" ]; then
    echo "Results: $out/$name.md (report) and $out/$name.json (every figure)"
  fi
  if [ $status -ne 0 ]; then
    echo "run.sh: $(basename "$bench") exited with status $status" >&2
    [ $rc -ne 0 ] || rc=$status
  fi
  echo
}
# Word splitting of the *_ARGS variables is intended: they hold several
# flags.
# shellcheck disable=SC2086
run engine engine_bench ${EVS_BENCH_ARGS:-}
# shellcheck disable=SC2086
run dcb dcb_bench $dcb_args
# shellcheck disable=SC2086
run tracking tracking_bench $dcb_args
# shellcheck disable=SC2086
run command command_bench $dcb_args
exit $rc
