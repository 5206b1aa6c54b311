#!/usr/bin/env bash
# evs generate: bad input refused (exit 2, nothing written), a small
# generation with its summary, determinism across stores, and --force.
# Usage: generate.sh PATH/TO/evs
set -euo pipefail
NAME=cli_generate
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
export EVS_DB="$T/db"

# --- usage errors: exit 2, one "evs: " line naming the flag, no store ---------
for bad in "--events 0" "--events -5" "--events abc" "--events 1x" \
           "--tenants 0" "--tenants 1001" "--tenants -1" "--months 0" \
           "--batch 0" "--batch 65537" "--seed -1" "--snapshot-every x"; do
    # shellcheck disable=SC2086
    run 2 "generate $bad" "$EVS" generate $bad
    flag=${bad%% *}
    has "generate $bad: names the flag" "$T/err" "$flag"
done
run 2 "unknown flag" "$EVS" generate --frobnicate
has "unknown flag named" "$T/err" "--frobnicate"
run 2 "positional argument" "$EVS" generate extra
run 2 "missing value" "$EVS" generate --events
if [ -e "$T/db" ]; then bad "a refused generate created the store"; else ok; fi

# --- a --db that cannot be opened: an error, nothing written ---------------------
echo "not a store" >"$T/file"
run 2 "--db is a file" "$EVS" --db "$T/file" generate --events 10 --quiet
has "file store named" "$T/err" "$T/file"
same "the file is untouched" "$(cat "$T/file")" "not a store"

# --- a small generation ---------------------------------------------------------
run 0 "generate 3000" "$EVS" generate --events 3000 --tenants 5 --seed 42 \
    --snapshot-every 10 --batch 300
same "summary: events" "$(field events "$T/out")" 3000
same "summary: tenants" "$(field tenants "$T/out")" 5
has "summary: events_per_s" "$T/out" '"events_per_s":'
has "summary: seconds" "$T/out" '"seconds":'
streams=$(field streams "$T/out")
snapshots=$(field snapshots "$T/out")
[ "$snapshots" -gt 0 ] && ok || bad "no snapshots: $(cat "$T/out")"
# Not a terminal: plain progress lines and a closing line.
has "progress lines" "$T/err" "generate: 100%"
has "closing line" "$T/err" "generated 3000 events"
same "stats: events" "$(events)" 3000
"$EVS" stats >"$T/stats"
same "stats: streams" "$(field streams "$T/stats")" "$streams"
same "stats: tenants" "$(field tenants "$T/stats")" 5
run 0 "verify" "$EVS" verify

# The payloads are JSON objects with the generated shape.
"$EVS" all --all-tenants --limit 50 >"$T/events"
has "an event of tenant-00" "$T/events" '"tenant":"tenant-00"'
has "metadata with correlationId" "$T/events" '"correlationId":'
has "tags" "$T/events" '"tags":["customer:CUS-'

# --- a non-empty store: refused without --force, nothing written ---------------
run 2 "non-empty store" "$EVS" generate --events 100 --quiet
has "non-empty store: says so" "$T/err" "--force"
same "refusal wrote nothing" "$(events)" 3000
run 0 "--force adds" "$EVS" generate --events 100 --quiet --seed 42 --force
same "--force added 100" "$(events)" 3100
if [ -s "$T/err" ]; then bad "--quiet printed: $(head -c 200 "$T/err")"; else ok; fi

# --- determinism: the same seed gives the same log in another store ------------
run 0 "generate a" "$EVS" --db "$T/a" generate --events 500 --seed 9 --quiet
run 0 "generate b" "$EVS" --db "$T/b" generate --events 500 --seed 9 --quiet \
    --batch 7
run 0 "generate c" "$EVS" --db "$T/c" generate --events 500 --seed 10 --quiet
"$EVS" --db "$T/a" export >"$T/a.jsonl"
"$EVS" --db "$T/b" export >"$T/b.jsonl"
"$EVS" --db "$T/c" export >"$T/c.jsonl"
if cmp -s "$T/a.jsonl" "$T/b.jsonl"; then ok; else
    bad "same seed, other batch size: exports differ"
fi
if cmp -s "$T/a.jsonl" "$T/c.jsonl"; then bad "another seed: same export"; else ok; fi

summary
