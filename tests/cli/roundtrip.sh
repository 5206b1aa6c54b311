#!/usr/bin/env bash
# evs append / read / all / head / stats: what goes in comes out.
# Usage: roundtrip.sh PATH/TO/evs
set -euo pipefail
NAME=cli_roundtrip
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
export EVS_DB="$T/db"

# --- append prints stream, version, position -------------------------------
run 0 "first append" "$EVS" append account-1 Opened '{"owner":"ann","n":1.10}' \
    --tag account:1 --tag region:eu --metadata '{"by":"test"}' \
    --id 0190f5a4-7c1e-7d2a-8b3c-4d5e6f708192 \
    --correlation-id 11111111-2222-4333-8444-555555555555 \
    --causation-id 66666666-7777-4888-9999-aaaaaaaaaaaa
same "first append output" "$(cat "$T/out")" '{"stream":"account-1","version":0,"position":1}'

run 0 "second append" "$EVS" append account-1 Deposited '{"amount":5}' --expect 0
same "second append output" "$(cat "$T/out")" '{"stream":"account-1","version":1,"position":2}'

# Options before the positionals, data from standard input, pretty JSON.
printf '{\n  "amount": 7,\n  "note": "line\\nbreak"\n}\n' >"$T/data.json"
run 0 "append from stdin" "$EVS" append --expect exists account-1 Deposited - <"$T/data.json"
same "stdin append output" "$(cat "$T/out")" '{"stream":"account-1","version":2,"position":3}'

run 0 "append with default data" "$EVS" append account-2 Opened --expect no-stream
same "default data output" "$(cat "$T/out")" '{"stream":"account-2","version":0,"position":4}'

printf 'raw\001\377bytes' >"$T/blob"
run 0 "append binary" "$EVS" append files-1 Uploaded --binary - <"$T/blob"

# --- read ---------------------------------------------------------------------
run 0 "read stream" "$EVS" read account-1
same "read: 3 lines" "$(wc -l <"$T/out" | tr -d ' ')" 3
line1=$(sed -n 1p "$T/out")
same "read: first event in full" "$line1" \
    "{\"position\":1,\"stream\":\"account-1\",\"version\":0,\"type\":\"Opened\",\"id\":\"0190f5a4-7c1e-7d2a-8b3c-4d5e6f708192\",\"data\":{\"owner\":\"ann\",\"n\":1.10},\"metadata\":{\"by\":\"test\"},\"tags\":[\"account:1\",\"region:eu\"],\"correlation_id\":\"11111111-2222-4333-8444-555555555555\",\"causation_id\":\"66666666-7777-4888-9999-aaaaaaaaaaaa\",\"recorded_at\":\"$(sed -n 's/.*"recorded_at":"\([^"]*\)".*/\1/p' <<<"$line1")\"}"
if grep -qE '"recorded_at":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z"' <<<"$line1"; then ok; else bad "recorded_at format: $line1"; fi
has "read: pretty JSON is put on one line" "$T/out" '"data":{"amount":7,"note":"line\nbreak"}'
has "read: no metadata key when none" "$T/out" '"version":1,"type":"Deposited"'
if sed -n 2p "$T/out" | grep -q metadata; then bad "metadata printed for an event without"; else ok; fi
if grep -q '"tenant"' "$T/out"; then bad "tenant printed for the default tenant"; else ok; fi

run 0 "read backward" "$EVS" read account-1 --backward --limit 2
same "backward versions" "$(sed -n 's/.*"version":\([0-9]*\).*/\1/p' "$T/out" | tr '\n' ' ')" "2 1 "
run 0 "read from" "$EVS" read account-1 --from 1 --limit 1
same "from 1 limit 1" "$(field version "$T/out")" 1
run 0 "read backward from" "$EVS" read account-1 --backward --from 1
same "backward from 1" "$(sed -n 's/.*"version":\([0-9]*\).*/\1/p' "$T/out" | tr '\n' ' ')" "1 0 "
run 0 "read missing stream" "$EVS" read nobody-1
same "missing stream prints nothing" "$(wc -c <"$T/out" | tr -d ' ')" 0

run 0 "read binary" "$EVS" read files-1
has "binary content type" "$T/out" '"content_type":"binary"'
has "binary as base64" "$T/out" "\"data_base64\":\"$(base64 -w0 <"$T/blob")\""

# --- tenants --------------------------------------------------------------------
run 0 "append to tenant" "$EVS" append account-1 Opened '{"t":"acme"}' --tenant acme
same "tenant stream has its own versions" "$(field version "$T/out")" 0
run 0 "read tenant" "$EVS" read account-1 --tenant acme
same "tenant read: 1 event" "$(wc -l <"$T/out" | tr -d ' ')" 1
has "tenant read names the tenant" "$T/out" '"tenant":"acme"'
run 0 "read default tenant" "$EVS" read account-1
same "default tenant unaffected" "$(wc -l <"$T/out" | tr -d ' ')" 3

# --- all / head -----------------------------------------------------------------
run 0 "all" "$EVS" all
same "all: default tenant's 5 events" "$(wc -l <"$T/out" | tr -d ' ')" 5
same "all: in position order" "$(sed -n 's/^{"position":\([0-9]*\).*/\1/p' "$T/out" | tr '\n' ' ')" "1 2 3 4 5 "
run 0 "all from/limit" "$EVS" all --from 2 --limit 2
same "all from 2 limit 2" "$(sed -n 's/^{"position":\([0-9]*\).*/\1/p' "$T/out" | tr '\n' ' ')" "2 3 "
run 0 "all tenants" "$EVS" all --all-tenants
same "all tenants: 6 events" "$(wc -l <"$T/out" | tr -d ' ')" 6
same "all tenants: tenant on every line" "$(grep -c '"tenant":' "$T/out")" 6
has "all tenants: default tenant is empty" "$T/out" '{"position":1,"tenant":"","stream":"account-1"'
run 0 "all of one tenant" "$EVS" all --tenant acme
same "tenant acme: 1 event at position 6" "$(field position "$T/out")" 6

run 0 "head" "$EVS" head
same "head of the default tenant" "$(cat "$T/out")" 5
run 0 "head tenant" "$EVS" head --tenant acme
same "head of acme" "$(cat "$T/out")" 6
run 0 "head all" "$EVS" head --all-tenants
same "head of the store" "$(cat "$T/out")" 6

# --- --db and EVS_DB --------------------------------------------------------------
run 0 "--db before the command" "$EVS" --db "$T/db2" append s-1 E
run 0 "--db after the command" "$EVS" read s-1 --db "$T/db2"
same "--db store has its own event" "$(field position "$T/out")" 1
run 0 "stats of --db store" env EVS_DB="$T/db2" "$EVS" stats
same "EVS_DB names the store" "$(field events "$T/out")" 1

# --- stats ----------------------------------------------------------------------------
run 0 "stats" "$EVS" stats
for k in events streams tenants head_position log_bytes index_bytes segments bytes_on_disk; do
    has "stats has $k" "$T/out" "\"$k\":"
done
same "stats events" "$(field events "$T/out")" 6
same "stats streams" "$(field streams "$T/out")" 4
same "stats tenants" "$(field tenants "$T/out")" 2
same "stats head" "$(field head_position "$T/out")" 6
lb=$(field log_bytes "$T/out"); ib=$(field index_bytes "$T/out")
same "bytes_on_disk = log + index" "$(field bytes_on_disk "$T/out")" $((lb + ib))

# --- help and version -------------------------------------------------------------------
run 0 "evs --help" "$EVS" --help
cp "$T/out" "$T/help"
for c in append read all head import export stats verify; do
    has "help lists $c" "$T/help" "  $c "
    run 0 "$c --help" "$EVS" "$c" --help
    has "$c --help is its usage" "$T/out" "usage: evs $c"
done
run 0 "evs --version" "$EVS" --version
has "version" "$T/out" "evs "

summary
