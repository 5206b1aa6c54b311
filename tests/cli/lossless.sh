#!/usr/bin/env bash
# A full export carries everything a store holds (events of every tenant,
# checkpoints, snapshots, multi-line JSON kept byte for byte), and
# importing it into an empty store gives a store whose own export is the
# same bytes: whole, piped with small batches, resumed after a cut, and
# re-run. Into a store holding other events the import appends as before
# and says what it left out; a file with a gap in its positions is
# imported with a warning. Snapshot lines that are wrong are refused with
# their line number. Progress is shown on a terminal.
# Usage: lossless.sh PATH/TO/evs
set -euo pipefail
NAME=cli_lossless
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
A="$T/a"

# --- a source store ------------------------------------------------------------
"$EVS" --db "$A" generate --events 2000 --tenants 3 --snapshot-every 5 --quiet >/dev/null
a() { "$EVS" --db "$A" "$@" >/dev/null; }
a append acct-1 Opened '{
  "owner": "ann"
}'
a append acct-1 Deposited '  {"amount":5}  ' --metadata '{ "by" :
"bob" }'
a checkpoint set proj 3
a append acct-1 Deposited '{"amount":6}' --tenant acme
a checkpoint set feed 2000 --tenant tenant-01
a checkpoint set proj 2002
printf '\000\001snap\377' >"$T/blob"
a snapshot save acct-1 1 --schema Acct/v1 --file "$T/blob"
a snapshot save acct-1 0 --schema Acct/v1 --data '{"balance": 0}'
n=$(events "$A")

run 0 "export" "$EVS" --db "$A" export "$T/a.jsonl"
same "every event and snapshot is a line" "$(grep -c '"position":' "$T/a.jsonl")" "$n"
has "checkpoint events are exported" "$T/a.jsonl" '"stream":"$checkpoint-proj","version":1,"type":"$checkpoint"'
has "snapshots are exported" "$T/a.jsonl" '{"kind":"snapshot","tenant":"","stream":"acct-1","version":0,"schema":"Acct/v1","data":{"balance": 0},"saved_at":"'
has "binary snapshot data as base64" "$T/a.jsonl" '"version":1,"schema":"Acct/v1","data_base64":"AAFzbmFw/w==","saved_at":"'
has "multi-line JSON data kept as bytes" "$T/a.jsonl" '"content_type":"json","data_base64":"ewogICJvd25lciI6ICJhbm4iCn0="'
nsnap=$(grep -c '"kind":"snapshot"' "$T/a.jsonl")
if [ "$nsnap" -gt 10 ]; then ok; else bad "only $nsnap snapshots exported"; fi
# export's order: every event line, then every snapshot line
last_event=$(grep -n '"position":' "$T/a.jsonl" | tail -n 1 | cut -d: -f1)
first_snap=$(grep -n -m 1 '"kind":"snapshot"' "$T/a.jsonl" | cut -d: -f1)
if [ "$last_event" -lt "$first_snap" ]; then ok; else bad "snapshots before events"; fi

# --- into an empty store: the same bytes -------------------------------------------
run 0 "import into an empty store" "$EVS" --db "$T/b" import "$T/a.jsonl"
has "import summary counts snapshots" "$T/err" "imported $n events and $nsnap snapshots"
"$EVS" --db "$T/b" export >"$T/b.jsonl"
if cmp -s "$T/a.jsonl" "$T/b.jsonl"; then ok; else
    bad "export of the copy differs: $(diff "$T/a.jsonl" "$T/b.jsonl" | head -n 4)"
fi
run 0 "checkpoint of the copy" "$EVS" --db "$T/b" checkpoint get proj
same "checkpoint token kept" "$(cat "$T/out")" "2002"
run 0 "tenant checkpoint of the copy" "$EVS" --db "$T/b" checkpoint get feed --tenant tenant-01
same "tenant checkpoint token kept" "$(cat "$T/out")" "2000"
run 0 "snapshot of the copy" "$EVS" --db "$T/b" snapshot load acct-1 --raw
if cmp -s "$T/out" "$T/blob"; then ok; else bad "binary snapshot differs"; fi
run 0 "verify the copy" "$EVS" --db "$T/b" verify

# piped, tiny batches
"$EVS" --db "$A" export | "$EVS" --db "$T/c" import --batch 7 - 2>"$T/err"
"$EVS" --db "$T/c" export >"$T/c.jsonl"
if cmp -s "$T/a.jsonl" "$T/c.jsonl"; then ok; else bad "piped --batch 7 copy differs"; fi

# re-run: nothing new, still the same bytes
run 0 "re-import" "$EVS" --db "$T/b" import "$T/a.jsonl"
has "re-import writes no event" "$T/err" "imported 0 events ($n were already in the store)"
"$EVS" --db "$T/b" export >"$T/b2.jsonl"
if cmp -s "$T/a.jsonl" "$T/b2.jsonl"; then ok; else bad "re-import changed the store"; fi

# a cut import resumed: the first 700 lines, then the whole file
head -n 700 "$T/a.jsonl" >"$T/cut.jsonl"
run 0 "import of a cut file" "$EVS" --db "$T/d" import "$T/cut.jsonl"
run 0 "resume with the whole file" "$EVS" --db "$T/d" import --batch 50 "$T/a.jsonl"
has "resume summary" "$T/err" "imported $((n - 700)) events (700 were already in the store)"
"$EVS" --db "$T/d" export >"$T/d.jsonl"
if cmp -s "$T/a.jsonl" "$T/d.jsonl"; then ok; else bad "resumed copy differs"; fi

# --- into a store that holds other events: appended, and said so ---------------------
"$EVS" --db "$T/e" append other-1 E '{}' >/dev/null
run 0 "import into a non-empty store" "$EVS" --db "$T/e" import "$T/a.jsonl"
ncp=$(grep -c '"stream":"\$checkpoint-' "$T/a.jsonl")
has "non-empty: appended" "$T/err" "the store held 1 event before"
has "non-empty: what was left out" "$T/err" "left out: $ncp checkpoint events and $nsnap snapshots"
same "non-empty: events appended" "$(events "$T/e")" "$((1 + n - ncp))"

# --- a file with a gap (an export of an older evs had no checkpoints) -----------------
grep -v '"stream":"\$checkpoint-proj","version":0' "$T/a.jsonl" >"$T/gap.jsonl"
run 0 "import of a file with a gap" "$EVS" --db "$T/g" import "$T/gap.jsonl"
has "gap: warned" "$T/err" "would be stored at"
has "gap: from there on appended" "$T/err" "from there on the events are appended with new positions"
run 0 "verify after the gap import" "$EVS" --db "$T/g" verify

# --- a re-run into a store that got another event meanwhile: the checkpoint
# of the file must not be written at another position (it would point at
# the other event) -------------------------------------------------------------
for first_tenant in '' acme; do
    rm -rf "$T/r" && mkdir -p "$T/r"
    id1=11111111-1111-4111-8111-111111111111
    id2=22222222-2222-4222-8222-222222222222
    id3=33333333-3333-4333-8333-333333333333
    printf '%s\n' \
        "{\"position\":1,\"tenant\":\"$first_tenant\",\"stream\":\"x-1\",\"type\":\"X\",\"id\":\"$id1\",\"data\":{}}" \
        "{\"position\":2,\"tenant\":\"\",\"stream\":\"a-1\",\"type\":\"A\",\"id\":\"$id2\",\"data\":{}}" \
        "{\"position\":3,\"tenant\":\"\",\"stream\":\"\$checkpoint-c\",\"type\":\"\$checkpoint\",\"id\":\"$id3\",\"content_type\":\"binary\",\"data_base64\":\"AgAAAAAAAAA=\"}" \
        >"$T/r/f.jsonl"
    head -n 1 "$T/r/f.jsonl" >"$T/r/f1.jsonl"
    "$EVS" --db "$T/r/s" import "$T/r/f1.jsonl" 2>/dev/null
    "$EVS" --db "$T/r/s" append other-1 O '{}' >/dev/null
    run 0 "re-run after another append (tenant '$first_tenant')" "$EVS" --db "$T/r/s" import "$T/r/f.jsonl"
    has "re-run: exactness ends (tenant '$first_tenant')" "$T/err" "line 2 of $T/r/f.jsonl has position 2 but the store holds another event there"
    has "re-run: checkpoint left out (tenant '$first_tenant')" "$T/err" "left out: 1 checkpoint event"
    run 1 "re-run: no checkpoint written (tenant '$first_tenant')" "$EVS" --db "$T/r/s" checkpoint get c
    same "re-run: events (tenant '$first_tenant')" "$(events "$T/r/s")" 3
done

# --- metadata that is the JSON text null is kept (not taken for none) ------------------
"$EVS" --db "$T/n" append m-1 M '{}' --metadata null >/dev/null
"$EVS" --db "$T/n" export >"$T/n.jsonl"
"$EVS" --db "$T/n2" import "$T/n.jsonl" 2>/dev/null
"$EVS" --db "$T/n2" export >"$T/n2.jsonl"
if cmp -s "$T/n.jsonl" "$T/n2.jsonl"; then ok; else bad "metadata null lost: $(cat "$T/n2.jsonl")"; fi

# --- bad snapshot lines -----------------------------------------------------------
good='{"kind":"snapshot","tenant":"","stream":"acct-1","version":0,"schema":"S","data":{},"saved_at":"2026-01-01T00:00:00Z"}'
for line in \
    '{"kind":"checkpoint","stream":"x"}' \
    '{"kind":"snapshot","tenant":"","stream":"acct-1","version":0,"schema":"S","data":{}}' \
    '{"kind":"snapshot","stream":"acct-1","version":-1,"schema":"S","data":{},"saved_at":"2026-01-01T00:00:00Z"}' \
    '{"kind":"snapshot","stream":"acct-1","version":0,"schema":"S","data":{},"saved_at":"2026-01-01T00:00:00Z","type":"E"}' \
    '{"kind":"snapshot","stream":"acct-1","version":0,"schema":"S","data_base64":"###","saved_at":"2026-01-01T00:00:00Z"}' \
    '{"stream":"s-1","type":"E","data":{},"schema":"S"}' \
    '{"kind":"snapshot","stream":"acct-1","version":99,"schema":"S","data":{},"saved_at":"2026-01-01T00:00:00Z"}'; do
    rm -rf "$T/h"
    printf '%s\n' '{"position":1,"stream":"acct-1","type":"E","data":{}}' "$line" >"$T/h.jsonl"
    run 1 "bad snapshot line: $line" "$EVS" --db "$T/h" import "$T/h.jsonl"
    has "bad snapshot line named: $line" "$T/err" "line 2 of"
done
printf '%s\n' '{"position":1,"stream":"acct-1","type":"E","data":{}}' "$good" >"$T/h.jsonl"
rm -rf "$T/h"
run 0 "a good snapshot line" "$EVS" --db "$T/h" import "$T/h.jsonl"
has "a good snapshot line restored" "$T/err" "imported 1 event and 1 snapshot"

# --- progress on a terminal (script(1) gives the command one) -------------------------
if command -v script >/dev/null 2>&1; then
    script -qec "'$EVS' --db '$A' export /dev/null" /dev/null >"$T/tty" 2>&1 || true
    has "export progress line" "$T/tty" "export: "
    has "export progress percentage" "$T/tty" " %)"
    has "export summary on a terminal" "$T/tty" "exported $n events and $nsnap snapshots"
    script -qec "'$EVS' --db '$T/p' import '$T/a.jsonl'" /dev/null >"$T/tty" 2>&1 || true
    has "import progress line" "$T/tty" "import: "
    has "import progress percentage" "$T/tty" " %)"
    script -qec "'$EVS' --db '$A' verify" /dev/null >"$T/tty" 2>&1 || true
    has "verify progress line" "$T/tty" "verify: "
    has "verify summary after progress" "$T/tty" "verify: $n records checked, 0 problems"
else
    bad "script(1) is missing: progress on a terminal not checked"
fi

summary
