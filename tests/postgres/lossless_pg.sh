#!/usr/bin/env bash
# Export and import across backends, losslessly: an embedded store (three
# tenants, checkpoints, snapshots, binary and multi-line data) exported,
# imported into a fresh PostgreSQL database, exported from there: the
# same bytes; that export imported into a new embedded store and exported
# again: the same bytes once more. PostgreSQL's checkpoints and snapshots
# read as the source's, and its verify is clean.
# Usage: lossless_pg.sh PATH/TO/evs   (EVS_TEST_PG: an admin libpq URI)
set -euo pipefail
NAME=cli_lossless_pg
. "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.bash"
. "$(dirname "${BASH_SOURCE[0]}")/pg.bash"
trap 'pg_drop_db; rm -rf "$T"' EXIT
pg_fresh_db evs_lossless_pg_$$
URI=$PG_URI

A="$T/a"
"$EVS" --db "$A" generate --events 3000 --tenants 3 --snapshot-every 5 --quiet >/dev/null
a() { "$EVS" --db "$A" "$@" >/dev/null; }
a append acct-1 Opened '{
  "owner": "ann"
}'
a append acct-1 Deposited '{"amount":5}' --metadata ' {"by":"bob"} '
a checkpoint set proj 3
a checkpoint set feed 3000 --tenant tenant-02
a checkpoint set proj 3002
printf '\000\001snap\377' >"$T/blob"
a snapshot save acct-1 1 --schema Acct/v1 --file "$T/blob"
"$EVS" --db "$A" export >"$T/a.jsonl"
n=$(grep -c '"position":' "$T/a.jsonl")

run 0 "import into PostgreSQL" "$EVS" --db "$URI" import --batch 500 "$T/a.jsonl"
has "PostgreSQL import summary" "$T/err" "imported $n events and"
"$EVS" --db "$URI" export >"$T/pg.jsonl"
if cmp -s "$T/a.jsonl" "$T/pg.jsonl"; then ok; else
    bad "PostgreSQL's export differs: $(diff "$T/a.jsonl" "$T/pg.jsonl" | head -n 4)"
fi
run 0 "PostgreSQL checkpoint" "$EVS" --db "$URI" checkpoint get proj
same "PostgreSQL checkpoint token" "$(cat "$T/out")" "3002"
run 0 "PostgreSQL tenant checkpoint" "$EVS" --db "$URI" checkpoint get feed --tenant tenant-02
same "PostgreSQL tenant checkpoint token" "$(cat "$T/out")" "3000"
run 0 "PostgreSQL snapshot" "$EVS" --db "$URI" snapshot load acct-1 --raw
if cmp -s "$T/out" "$T/blob"; then ok; else bad "PostgreSQL's binary snapshot differs"; fi
run 0 "PostgreSQL verify" "$EVS" --db "$URI" verify

run 0 "back into an embedded store" "$EVS" --db "$T/b" import "$T/pg.jsonl"
"$EVS" --db "$T/b" export >"$T/b.jsonl"
if cmp -s "$T/a.jsonl" "$T/b.jsonl"; then ok; else
    bad "the embedded copy of PostgreSQL's export differs: $(diff "$T/a.jsonl" "$T/b.jsonl" | head -n 4)"
fi
# a re-run into PostgreSQL writes nothing
run 0 "re-import into PostgreSQL" "$EVS" --db "$URI" import "$T/a.jsonl"
has "PostgreSQL re-import summary" "$T/err" "imported 0 events ($n were already in the store)"

summary
