#!/usr/bin/env bash
# A/B of two `evs` binaries on the same machine, alternating, so that the
# comparison is a ratio measured in one run (docs/PERFORMANCE.md).
#
#   tools/bench/ab.sh EVS_A EVS_B [OUT] [ROUNDS]
#
# Each round runs `evs bench` with A, then B, on the append scenarios at 1
# and 64 threads (each run generates its own 100,000-event store), and
# prints one line per level: binary, round, scenario, threads, ops/s,
# items/s, p50 and p99 in ms. EVS_AB_ARGS replaces the bench arguments.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 EVS_A EVS_B [OUT] [ROUNDS]" >&2; exit 2; }
A=$1 B=$2 OUT=${3:-ab-results} ROUNDS=${4:-3}
ARGS=${EVS_AB_ARGS:---no-plots --scenarios append-1,append-5,batch --threads 1,64 --events 100000 --seconds 5 --warmup 1}
mkdir -p "$OUT"
for round in $(seq "$ROUNDS"); do
  for v in A B; do
    bin=$A; [ "$v" = B ] && bin=$B
    rm -rf "$OUT/$v-$round"
    # shellcheck disable=SC2086
    "$bin" bench $ARGS --out "$OUT/$v-$round" > "$OUT/$v-$round.log" 2>&1
    python3 - "$OUT/$v-$round/report.json" "$v" "$round" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
def f(fmt, v):  # a level without a figure (e.g. a scenario that measures no latency)
    return fmt % v if isinstance(v, (int, float)) else 'n/a'
for s in r['scenarios']:
    for l in s['levels']:
        lat = l.get('latency_ms') or {}
        print(sys.argv[2], sys.argv[3], s['name'], l['threads'],
              'ops/s=' + f('%.0f', l.get('ops_per_s')), 'items/s=' + f('%.0f', l.get('items_per_s')),
              'p50_ms=' + f('%.3f', lat.get('p50')), 'p99_ms=' + f('%.3f', lat.get('p99')))
PY
  done
done
