#!/usr/bin/env bash
# evs export | evs import copies a store exactly; re-importing writes
# nothing; a bad line stops the import with its number; verify is clean.
# Usage: import_export.sh PATH/TO/evs
set -euo pipefail
NAME=cli_import_export
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
A="$T/a"
B="$T/b"

# --- a source store: tenants, interleaved streams, every kind of field ------
a() { "$EVS" --db "$A" append "$@" >/dev/null; }
a order-1 Placed '{"sku":"x","qty":2,"price":1.10,"exp":1E+2}' \
    --tag order:1 --tag sku:x --metadata '{"user":"ann"}' \
    --correlation-id 11111111-2222-4333-8444-555555555555
a order-2 Placed '{"sku":"y"}' --tag order:2
a order-1 Paid '{"amount":2.2}' --causation-id 66666666-7777-4888-9999-aaaaaaaaaaaa
a order-1 Shipped '"a string \u00e9 \ud83d\ude00"' --tenant acme
a order-2 Paid '[1, 2, {"a": null}]'
printf '\000\001\002binary\377' >"$T/blob"
a blob-1 Stored --binary - <"$T/blob"
a order-3 Placed '{}' --tenant acme --tag 'odd "tag"'
a order-2 Shipped '{"t":"tab\there"}'
for i in $(seq 1 40); do a "bulk-$((i % 7))" Tick "{\"i\":$i}"; done
a order-1 Refunded '{"note":"last"}' --tenant beta
n=$(events "$A")
same "source has 49 events" "$n" 49

run 0 "export to stdout" "$EVS" --db "$A" export
cp "$T/out" "$T/a.jsonl"
same "export: one line per event" "$(wc -l <"$T/a.jsonl" | tr -d ' ')" "$n"
same "export: tenant on every line" "$(grep -c '"tenant":' "$T/a.jsonl")" "$n"
has "export keeps number text" "$T/a.jsonl" '"price":1.10,"exp":1E+2'
run 0 "export to a file" "$EVS" --db "$A" export "$T/a2.jsonl"
if cmp -s "$T/a.jsonl" "$T/a2.jsonl"; then ok; else bad "export FILE differs from stdout"; fi

# --- import into an empty store: identical export -----------------------------------
run 0 "import" "$EVS" --db "$B" import "$T/a.jsonl"
has "import summary" "$T/err" "imported $n events"
"$EVS" --db "$B" export >"$T/b.jsonl"
if cmp -s "$T/a.jsonl" "$T/b.jsonl"; then ok; else
    bad "export of the copy differs: $(diff "$T/a.jsonl" "$T/b.jsonl" | head -n 4)"
fi
# The same through a pipe, with tiny batches.
"$EVS" --db "$A" export | "$EVS" --db "$T/c" import --batch 3 - 2>"$T/err"
"$EVS" --db "$T/c" export >"$T/c.jsonl"
if cmp -s "$T/a.jsonl" "$T/c.jsonl"; then ok; else bad "piped copy with --batch 3 differs"; fi
has "piped import summary" "$T/err" "imported $n events"
for db in "$A" "$B" "$T/c"; do
    "$EVS" --db "$db" stats | sed 's/"log_bytes".*//' >"$T/stats.$(basename "$db")"
done
if cmp -s "$T/stats.a" "$T/stats.b" && cmp -s "$T/stats.a" "$T/stats.c"; then ok; else
    bad "stats differ: $(cat "$T/stats.a" "$T/stats.b" "$T/stats.c")"
fi

# --- re-import writes nothing ------------------------------------------------------
run 0 "re-import" "$EVS" --db "$B" import "$T/a.jsonl"
has "re-import summary" "$T/err" "imported 0 events"
same "re-import added nothing" "$(events "$B")" "$n"
run 0 "re-import, other batch size" "$EVS" --db "$B" import --batch 7 "$T/a.jsonl"
has "re-import --batch 7 summary" "$T/err" "imported 0 events"
same "re-import --batch 7 added nothing" "$(events "$B")" "$n"

# --- a bad line: its number, exit 1, what came before stays ---------------------------
head -n 10 "$T/a.jsonl" >"$T/bad.jsonl"
echo '{"stream":"x-1","type":"E","data":{}' >>"$T/bad.jsonl"
tail -n +11 "$T/a.jsonl" >>"$T/bad.jsonl"
run 1 "import with a bad line" "$EVS" --db "$T/d" import "$T/bad.jsonl"
has "bad line is named" "$T/err" "line 11"
has "bad line says what is kept" "$T/err" "10 events before it are in the store"
same "events before the bad line are in" "$(events "$T/d")" 10
# After fixing the file, the import completes and writes each event once.
run 0 "import the fixed file" "$EVS" --db "$T/d" import --batch 4 "$T/a.jsonl"
has "fixed import summary" "$T/err" "imported $((n - 10)) events (10 were already in the store)"
"$EVS" --db "$T/d" export >"$T/d.jsonl"
if cmp -s "$T/a.jsonl" "$T/d.jsonl"; then ok; else bad "resumed import differs"; fi

for line in '{"type":"E","data":{}}' '{"stream":"s-1","data":{}}' \
    '{"stream":"s-1","type":"E"}' '{"stream":"s-1","type":"E","data":{},"colour":1}' \
    '{"stream":"s-1","type":"E","data":{},"id":"nope"}' \
    '{"stream":"s-1","type":"E","data":{},"recorded_at":"yesterday"}' \
    '{"stream":"s-1","type":"E","data_base64":"###"}' \
    '{"stream":"","type":"E","data":{}}' \
    'not json' '[1,2]'; do
    printf '%s\n' "$line" >"$T/one.jsonl"
    run 1 "bad line: $line" "$EVS" --db "$T/e" import "$T/one.jsonl"
    has "bad line named: $line" "$T/err" "line 1 of"
done
same "bad lines wrote nothing" "$("$EVS" --db "$T/e" stats 2>/dev/null | sed -n 's/.*"events":\([0-9]*\).*/\1/p')" "0"

# Blank lines are skipped; hand-written lines need only stream, type, data.
printf '\n{"stream":"h-1","type":"E","data":{"k":1}}\n\n{"stream":"h-1","type":"F","data":[],"recorded_at":"2020-01-02T03:04:05.5+01:00","tags":["t:1"]}\n' >"$T/hand.jsonl"
run 0 "hand-written import" "$EVS" --db "$T/f" import "$T/hand.jsonl"
"$EVS" --db "$T/f" read h-1 >"$T/out"
has "hand-written data" "$T/out" '"type":"F","id":"'
has "recorded_at converted to UTC" "$T/out" '"recorded_at":"2020-01-02T02:04:05.500000Z"'

# --- verify ----------------------------------------------------------------------------
run 0 "verify source" "$EVS" --db "$A" verify
has "verify summary" "$T/out" "verify: $n records checked, 0 problems"
run 0 "verify copy" "$EVS" --db "$B" verify

# A flipped byte inside the first record (docs/FORMAT.md: segment header
# 64 bytes, record header 128) is damage: listed, summarised, exit 1.
cp -r "$A" "$T/damaged"
seg=$(ls "$T/damaged"/log/*.evslog | head -n 1)
printf 'Z' | dd of="$seg" bs=1 seek=$((64 + 128 + 3)) conv=notrunc status=none
run 1 "verify damaged" "$EVS" --db "$T/damaged" verify
has "verify names the damage" "$T/out" "position 1"
has "verify damaged summary" "$T/out" "1 problems"
# A damaged segment header stops the store from opening: still a report.
printf 'Z' | dd of="$seg" bs=1 seek=20 conv=notrunc status=none
run 1 "verify unopenable" "$EVS" --db "$T/damaged" verify
has "verify unopenable summary" "$T/out" "0 records checked, 1 problems"

summary
