#!/usr/bin/env bash
# evs on bad input: the right exit status, a one-line "evs: " reason naming
# the problem, and nothing written.
# Usage: errors.sh PATH/TO/evs
set -euo pipefail
NAME=cli_errors
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
export EVS_DB="$T/db"

# reason NAME TEXT: stderr is one line, "evs: ...", containing TEXT.
reason() {
    local lines
    lines=$(wc -l <"$T/err" | tr -d ' ')
    if [ "$lines" = 1 ] && grep -q '^evs: ' "$T/err"; then ok; else
        bad "$1: stderr is not one 'evs: ' line: $(head -c 300 "$T/err")"
    fi
    has_i "$1" "$T/err" "$2"
}

# --- read-only commands on a missing store: exit 2 (EVS_EINVAL), the path
# named, nothing created ------------------------------------------------------
for c in read all head stats export verify; do
    args=()
    [ "$c" = read ] && args=(s-1)
    run 2 "$c on a missing store" "$EVS" "$c" "${args[@]}"
    reason "$c: missing store is named" "$T/db"
done
if [ -e "$T/db" ]; then bad "a read-only command created the store"; else ok; fi

# --- a store with events to protect ------------------------------------------
run 0 "setup append" "$EVS" append acct-1 Opened '{"a":1}'
run 0 "setup append 2" "$EVS" append acct-1 Renamed '{"a":2}'
same "setup: 2 events" "$(events)" 2

# --- version conflicts: exit 3, nothing written --------------------------------
run 3 "expect 0 when at 1" "$EVS" append acct-1 Closed --expect 0
reason "conflict reason" "acct-1"
run 3 "expect no-stream when it exists" "$EVS" append acct-1 Closed --expect no-stream
reason "no-stream conflict reason" "acct-1"
run 3 "expect exists when it does not" "$EVS" append acct-9 Opened --expect exists
run 3 "expect 5 on a missing stream" "$EVS" append acct-9 Opened --expect 5
same "conflicts wrote nothing" "$(events)" 2
run 0 "expect 1 when at 1" "$EVS" append acct-1 Closed --expect 1
same "right expectation writes" "$(events)" 3

# --- usage errors: exit 2, nothing written -----------------------------------------
run 2 "unknown flag" "$EVS" append acct-1 E --frobnicate
reason "unknown flag reason" "--frobnicate"
run 2 "unknown global flag" "$EVS" --frobnicate stats
reason "unknown global flag reason" "--frobnicate"
run 2 "unknown command" "$EVS" frobnicate
reason "unknown command reason" "frobnicate"
run 2 "no command" "$EVS"
run 2 "missing TYPE" "$EVS" append acct-1
reason "missing TYPE reason" "TYPE"
run 2 "missing STREAM" "$EVS" read
reason "missing STREAM reason" "STREAM"
run 2 "missing flag value" "$EVS" read acct-1 --limit
reason "missing value reason" "--limit"
run 2 "too many arguments" "$EVS" append acct-1 E '{}' extra
reason "too many reason" "extra"
run 2 "bad --expect" "$EVS" append acct-1 E --expect maybe
reason "bad --expect reason" "maybe"
run 2 "negative --expect" "$EVS" append acct-1 E --expect -3
run 2 "bad --limit" "$EVS" read acct-1 --limit 12x
reason "bad --limit reason" "12x"
run 2 "negative --from" "$EVS" all --from -1
run 2 "bad --batch" "$EVS" import --batch 0 /dev/null
run 2 "bad --id" "$EVS" append acct-1 E --id not-a-uuid
reason "bad --id reason" "not-a-uuid"
run 2 "flag that takes no value" "$EVS" append acct-1 E --binary=yes
run 2 "--tenant with --all-tenants" "$EVS" all --tenant a --all-tenants
same "usage errors wrote nothing" "$(events)" 3

# --- invalid JSON: exit 2, the problem named, nothing written --------------------
run 2 "invalid JSON data" "$EVS" append acct-1 E '{"a":}'
reason "invalid JSON reason" "not valid JSON"
has_i "invalid JSON says where" "$T/err" "column 6"
run 2 "trailing garbage" "$EVS" append acct-1 E '{"a":1} x'
run 2 "not JSON at all" "$EVS" append acct-1 E 'hello'
run 2 "empty stdin" "$EVS" append acct-1 E - </dev/null
run 2 "invalid metadata" "$EVS" append acct-1 E '{}' --metadata '{bad'
reason "invalid metadata reason" "metadata"
printf '{"a":\n  nope}' >"$T/bad.json"
run 2 "invalid JSON from stdin" "$EVS" append acct-1 E - <"$T/bad.json"
has_i "multi-line error names the line" "$T/err" "line 2"
same "invalid JSON wrote nothing" "$(events)" 3

# --- names the library rejects --------------------------------------------------
run 2 "empty stream" "$EVS" append '' E
reason "empty stream reason" "stream"
long=$(printf 'x%.0s' $(seq 1 300))
run 2 "over-long stream" "$EVS" append "$long" E
reason "over-long stream reason" "stream"
run 2 "empty type" "$EVS" append acct-1 ''
reason "empty type reason" "type"
run 2 "empty tag" "$EVS" append acct-1 E --tag ''
run 2 "duplicate tag" "$EVS" append acct-1 E --tag a --tag a
same "rejected names wrote nothing" "$(events)" 3

# --- the same --id twice: idempotent, nothing new ------------------------------------
id=0190f5a4-7c1e-7d2a-8b3c-4d5e6f700001
run 0 "append with id" "$EVS" append acct-2 Opened '{"x":1}' --id "$id"
first=$(cat "$T/out")
run 0 "append the same id again" "$EVS" append acct-2 Opened '{"x":1}' --id "$id"
same "same id: same result" "$(cat "$T/out")" "$first"
same "same id: written once" "$(events)" 4
run 1 "same id, different event" "$EVS" append acct-2 Opened '{"x":2}' --id "$id"
same "reused id wrote nothing" "$(events)" 4

# --- a --db that is a file, an empty --db ------------------------------------------
echo "not a store" >"$T/file"
run 2 "--db FILE: append" "$EVS" --db "$T/file" append s-1 E
reason "--db FILE reason" "$T/file"
same "--db FILE left alone" "$(cat "$T/file")" "not a store"
run 2 "--db FILE: stats" "$EVS" --db "$T/file" stats
reason "--db FILE stats reason" "$T/file"
run 2 "--db FILE: import" "$EVS" --db "$T/file" import /dev/null
run 2 "empty --db" "$EVS" --db '' stats

# --- a store written by a newer evstore ------------------------------------
# Raise the log format version (u32 LE at offset 8 of a segment header,
# docs/FORMAT.md) of a copy: it must be refused, by name, and left alone.
cp -r "$T/db" "$T/newer"
seg=$(ls "$T/newer"/log/*.evslog | head -n 1)
printf '\x63' | dd of="$seg" bs=1 seek=8 conv=notrunc status=none
sum_before=$(cksum <"$seg")
run 1 "newer format: append" "$EVS" --db "$T/newer" append acct-1 E
reason "newer format reason" "format"
run 1 "newer format: read" "$EVS" --db "$T/newer" read acct-1
same "newer format store untouched" "$(cksum <"$seg")" "$sum_before"

summary
