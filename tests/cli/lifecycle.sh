#!/usr/bin/env bash
# A stream's lifecycle from the command line: evs stream meta get|set
# (max count, max age, truncate-before, custom; reads of read and all
# honour them; the expected metadata version), evs stream delete (reads
# as absent, an append continues the numbering), evs stream tombstone
# (appends, reads and metadata fail for good; all shows the tombstone),
# bad input (exit 2, nothing written), evs scavenge (space of a deleted
# stream reclaimed, survivors keep their positions, verify clean), and
# export | import into an empty store keeping the lifecycle.
# Usage: lifecycle.sh PATH/TO/evs [postgresql]
#   postgresql: the store is a fresh database on the server EVS_TEST_PG
#   names (tests/postgres/pg.bash); its export is imported into an
#   embedded store, and the checks of segments are left out.
set -euo pipefail
NAME=cli_lifecycle
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
PG=0
if [ "${2:-}" = postgresql ]; then
    NAME=cli_lifecycle_pg
    PG=1
    . "$(dirname "${BASH_SOURCE[0]}")/../postgres/pg.bash"
    trap 'pg_drop_db; rm -rf "$T"' EXIT
    pg_fresh_db evs_lifecycle_pg_$$
    export EVS_DB="$PG_URI"
else
    export EVS_DB="$T/db"
fi

# versions [ARGS]: the stream versions `evs read ARGS` prints.
versions() { "$EVS" read "$@" | sed -n 's/.*"version":\([0-9]*\).*/\1/p' | tr '\n' ' '; }
add() { "$EVS" append "$@" >/dev/null; }
head_pos() { "$EVS" head --all-tenants; }

# 1 MiB segments, so that a few hundred KiB seal one for scavenge
"$EVS" --segment-size 1M init >/dev/null
for i in 0 1 2 3 4; do add s-1 E "{\"i\":$i}"; done
add other-1 E '{}'

# --- meta get of a stream with no metadata ------------------------------------------------
run 0 "meta get, never set" "$EVS" stream meta get s-1
same "meta get, never set" "$(cat "$T/out")" \
'{"stream":"s-1","max_count":0,"max_age_s":0,"truncate_before":0,"custom":{},"meta_version":null,"stream_version":4,"deleted":false,"tombstoned":false}'
run 0 "meta get of a stream that does not exist" "$EVS" stream meta get nosuch-1
has "meta get nosuch: no version" "$T/out" '"meta_version":null,"stream_version":null'

# --- max count -----------------------------------------------------------------------------
run 0 "meta set --max-count 2" "$EVS" stream meta set s-1 --max-count 2 --custom '{"owner":"team-a"}'
same "meta set prints the metadata version" "$(cat "$T/out")" '{"stream":"s-1","meta_version":0}'
same "read honours max count" "$(versions s-1)" "3 4 "
same "read --backward honours max count" "$(versions s-1 --backward)" "4 3 "
same "all honours max count" "$("$EVS" all | grep -c '"stream":"s-1","version"')" 2
has "all shows the metadata change (an event of no stream)" <("$EVS" all) \
    '"stream":null,"version":null,"type":"$metadata"'
run 0 "meta get after set" "$EVS" stream meta get s-1
same "meta get after set" "$(cat "$T/out")" \
'{"stream":"s-1","max_count":2,"max_age_s":0,"truncate_before":0,"custom":{"owner":"team-a"},"meta_version":0,"stream_version":4,"deleted":false,"tombstoned":false}'

# --- expected metadata version --------------------------------------------------------------
h=$(head_pos)
run 3 "meta set, wrong --expected-meta-version" "$EVS" stream meta set s-1 --max-count 1 \
    --expected-meta-version 5
has "conflict message names the version" "$T/err" "is at version 0"
run 3 "meta set, --expected-meta-version no-stream" "$EVS" stream meta set s-1 \
    --expected-meta-version no-stream
same "a conflict writes nothing" "$(head_pos)" "$h"
same "a conflict changes nothing" "$(versions s-1)" "3 4 "

# --- truncate-before (replaces the whole metadata: max count is gone) ------------------------
run 0 "meta set --truncate-before 1" "$EVS" stream meta set s-1 --truncate-before 1 \
    --expected-meta-version 0
same "meta version 1" "$(cat "$T/out")" '{"stream":"s-1","meta_version":1}'
same "read honours truncate-before" "$(versions s-1)" "1 2 3 4 "
same "read --from 0 starts at truncate-before" "$(versions s-1 --from 0 --limit 2)" "1 2 "
has "custom is gone (a set replaces everything)" <("$EVS" stream meta get s-1) '"custom":{}'

# --- max age: an event recorded in 2020 (imported), one now -----------------------------------
echo '{"stream":"aged-1","type":"Old","data":{},"recorded_at":"2020-01-01T00:00:00Z"}' >"$T/old.jsonl"
"$EVS" import "$T/old.jsonl" 2>/dev/null
add aged-1 New '{}'
same "before max age: both" "$(versions aged-1)" "0 1 "
run 0 "meta set --max-age" "$EVS" stream meta set aged-1 --max-age 86400
same "read honours max age" "$(versions aged-1)" "1 "
same "all honours max age" "$("$EVS" all | grep -c '"type":"Old"' || true)" 0

# --- soft delete -------------------------------------------------------------------------------
run 3 "delete, wrong --expected-version" "$EVS" stream delete s-1 --expected-version 3
has "delete conflict names the version" "$T/err" "is at 4"
run 0 "delete --expected-version 4" "$EVS" stream delete s-1 --expected-version 4
has "delete prints a position" "$T/out" '{"stream":"s-1","position":'
same "a deleted stream reads as absent" "$(versions s-1)" ""
same "all: no event of the deleted stream" "$("$EVS" all | grep -c '"stream":"s-1","version"' || true)" 0
run 0 "meta get of a deleted stream" "$EVS" stream meta get s-1
has "meta get: deleted, version kept" "$T/out" '"truncate_before":5,"custom":{},"meta_version":2,"stream_version":4,"deleted":true,"tombstoned":false'
h=$(head_pos)
run 0 "delete again (idempotent)" "$EVS" stream delete s-1
same "delete again: nothing written" "$(cat "$T/out")" '{"stream":"s-1","position":null}'
same "delete again: head unchanged" "$(head_pos)" "$h"
run 0 "append after delete" "$EVS" append s-1 E '{"i":5}'
has "the numbering continues" "$T/out" '"version":5'
same "only the new event reads" "$(versions s-1)" "5 "
run 0 "delete of a stream with no events" "$EVS" stream delete never-1
same "nothing to delete" "$(cat "$T/out")" '{"stream":"never-1","position":null}'

# --- tombstone -----------------------------------------------------------------------------------
add t-1 E '{}'
add t-1 E '{}'
run 3 "tombstone, wrong --expected-version" "$EVS" stream tombstone t-1 --expected-version 0
run 0 "tombstone" "$EVS" stream tombstone t-1 --expected-version 1
tpos=$(field position "$T/out")
same "tombstone prints its position" "$(cat "$T/out")" "{\"stream\":\"t-1\",\"position\":$tpos}"
run 1 "append to a tombstoned stream" "$EVS" append t-1 E '{}'
has "append: deleted (tombstoned)" "$T/err" "t-1 is deleted (tombstoned)"
run 1 "append --expect any to a tombstoned stream" "$EVS" append t-1 E '{}' --expect any
run 1 "read of a tombstoned stream" "$EVS" read t-1
has "read: deleted (tombstoned)" "$T/err" "deleted (tombstoned)"
run 1 "meta set of a tombstoned stream" "$EVS" stream meta set t-1 --max-count 1
has "meta set: deleted (tombstoned)" "$T/err" "deleted (tombstoned)"
run 1 "delete of a tombstoned stream" "$EVS" stream delete t-1
run 0 "tombstone again (idempotent)" "$EVS" stream tombstone t-1
same "tombstone again: the same position" "$(field position "$T/out")" "$tpos"
run 0 "meta get of a tombstoned stream" "$EVS" stream meta get t-1
has "meta get: tombstoned" "$T/out" '"tombstoned":true'
"$EVS" all >"$T/all"
same "all shows only the tombstone of t-1" "$(grep -c '"stream":"t-1"' "$T/all")" 1
has "all shows the tombstone" "$T/all" '"stream":"t-1","version":9223372036854775807,"type":"$streamDeleted"'

# --- bad input: exit 2, nothing written --------------------------------------------------------
h=$(head_pos)
for args in "meta set s-1 --max-count -1" "meta set s-1 --max-count=-1" \
    "meta set s-1 --max-age x" "meta set s-1 --truncate-before 1.5" \
    "meta set s-1 --custom [1]" "meta set s-1 --custom {bad" "meta set s-1 --custom 7" \
    "meta set s-1 --custom {\"\$maxCount\":3}" "meta set s-1 --expected-meta-version -3" \
    "meta set s-1 --expected-version 1" "meta get s-1 --max-count 1" \
    "delete s-1 --max-count 1" "delete s-1 --expected-version nope" \
    "delete s-1 --expected-meta-version 0" "tombstone s-1 --expected-version -1" \
    "meta set \$checkpoint-x --max-count 1" "delete \$\$s-1" "meta" "meta put s-1" \
    "frobnicate s-1" "delete" "delete a b" ""; do
    # shellcheck disable=SC2086
    run 2 "stream $args" "$EVS" stream $args
    if [ -s "$T/err" ]; then ok; else bad "stream $args: no message"; fi
done
run 2 "custom not an object: the library's message" "$EVS" stream meta set s-1 --custom '[1]'
has "custom not an object named" "$T/err" "custom is not a JSON object"
run 2 "negative count named" "$EVS" stream meta set s-1 --max-count=-1
has "negative count named" "$T/err" "'-1' is not a number >= 0"
same "bad input wrote nothing" "$(head_pos)" "$h"
same "bad input changed nothing" "$(versions s-1)" "5 "
run 0 "stream --help" "$EVS" stream --help
has "stream --help: exit statuses" "$T/out" "Exit status"

# --- the store's types are the store's -------------------------------------------------------
run 2 "append of type \$metadata" "$EVS" append x-1 '$metadata' '{}'
run 2 "append of type \$streamDeleted" "$EVS" append x-1 '$streamDeleted' '{}'

# --- export | import into an empty store keeps the lifecycle -----------------------------------
add m-1 E '{"i":0}'
add m-1 E '{"i":1}'
add m-1 E '{"i":2}'
"$EVS" stream meta set m-1 --max-count 2 --custom '{"owner":"b"}' >/dev/null
"$EVS" export >"$T/src.jsonl"
has "export holds the metadata streams" "$T/src.jsonl" '"stream":"$$s-1"'
has "export holds the lifecycle records" "$T/src.jsonl" '"stream":"$lifecycle"'
has "export holds the tombstone" "$T/src.jsonl" '"type":"$streamDeleted"'
C="$T/copy"
run 0 "import of an export with lifecycle events" "$EVS" --db "$C" import "$T/src.jsonl"
has "import: the soft-deleted stream's truncate-before moved" "$T/err" "renumbered: 1 stream"
# ids [EVS ARGS]: the event ids a read prints (versions may differ)
ids() { "$EVS" "$@" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | tr '\n' ' '; }
for s in s-1 m-1 aged-1 other-1; do
    same "copy: read $s returns the same events" "$(ids --db "$C" read "$s")" "$(ids read "$s")"
done
same "copy: all returns the same events (but for metadata changes)" \
    "$("$EVS" --db "$C" all | grep -v '"type":"$metadata"' | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')" \
    "$("$EVS" all | grep -v '"type":"$metadata"' | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')"
run 0 "copy: meta get of a max-count stream" "$EVS" --db "$C" stream meta get m-1
has "copy: the same metadata" "$T/out" '"max_count":2,"max_age_s":0,"truncate_before":0,"custom":{"owner":"b"},"meta_version":0'
run 0 "copy: meta get of a max-age stream" "$EVS" --db "$C" stream meta get aged-1
has "copy: the same max age" "$T/out" '"max_age_s":86400'
run 0 "copy: meta get of the tombstoned stream" "$EVS" --db "$C" stream meta get t-1
has "copy: tombstoned" "$T/out" '"tombstoned":true'
run 1 "copy: append to the tombstoned stream" "$EVS" --db "$C" append t-1 E '{}'
has "copy: append says tombstoned" "$T/err" "deleted (tombstoned)"
run 1 "copy: read of the tombstoned stream" "$EVS" --db "$C" read t-1
run 0 "copy: meta get of the soft-deleted stream" "$EVS" --db "$C" stream meta get s-1
has "copy: its truncate-before in the copy's numbering" "$T/out" '"truncate_before":0,"custom":{},"meta_version":3,"stream_version":0,"deleted":false'
run 0 "copy: append to the soft-deleted stream" "$EVS" --db "$C" append s-1 E '{"i":6}'
same "copy: the new event reads after the old one" "$(ids --db "$C" read s-1 | wc -w)" 2
run 0 "copy: import again writes nothing" "$EVS" --db "$C" import "$T/src.jsonl"
has "copy: import again" "$T/err" "imported 0 events"
# a tombstone after events of its stream in one file: a part of its own
printf '%s\n' '{"stream":"z-1","type":"E","data":{}}' \
    '{"stream":"z-1","type":"$streamDeleted","data":{"stream":"z-1"}}' >"$T/z.jsonl"
run 0 "import: events then a tombstone" "$EVS" --db "$T/z" import "$T/z.jsonl"
run 1 "import: the stream is tombstoned" "$EVS" --db "$T/z" append z-1 E '{}'
has "import: the tombstone is the tombstone" <("$EVS" --db "$T/z" all) '"version":9223372036854775807'
# bad lifecycle lines: exit 1, the line named
for line in '{"stream":"$lifecycle","type":"$lifecycle","content_type":"binary","data_base64":"AQID"}' \
    '{"stream":"$lifecycle","type":"E","data":{}}' \
    '{"stream":"$$q-1","type":"$metadata","data":[1]}' \
    '{"stream":"$$q-1","type":"$metadata","data":{"$maxCount":-1}}' \
    '{"stream":"q-1","type":"$metadata","data":{}}' \
    '{"stream":"$other","type":"E","data":{}}'; do
    echo "$line" >"$T/badlc.jsonl"
    run 1 "import of $line" "$EVS" --db "$T/badlc" import "$T/badlc.jsonl"
    has "import of $line: the line is named" "$T/err" "line 1 of"
done
same "bad lifecycle lines wrote nothing" "$(events "$T/badlc")" 0

# --- scavenge ------------------------------------------------------------------------------------
# 40 events of ~40 KB in big-1 fill more than a segment; deleting the
# stream makes all but its last eligible.
pad=$(head -c 40000 /dev/zero | tr '\0' 'x')
for i in $(seq 0 39); do
    printf '{"stream":"big-1","type":"Big","data":{"i":%d,"pad":"%s"}}\n' "$i" "$pad"
done >"$T/big.jsonl"
"$EVS" import "$T/big.jsonl" 2>/dev/null
add after-1 E '{}'
"$EVS" stream delete big-1 >/dev/null
"$EVS" all --all-tenants >"$T/all.before"
run 0 "scavenge --json" "$EVS" scavenge --json
cp "$T/out" "$T/sc1.json"
for k in streams events_removed segments_examined segments_rewritten segments_resumed \
    bytes_before bytes_after seconds mb_per_s; do
    has "scavenge --json: $k" "$T/sc1.json" "\"$k\":"
done
removed=$(field events_removed "$T/sc1.json")
rewritten=$(field segments_rewritten "$T/sc1.json")
before=$(field bytes_before "$T/sc1.json")
after=$(field bytes_after "$T/sc1.json")
# segment 1 holds s-1's first events, t-1's, aged-1's old one and big-1's
# first ~20: all eligible (the active segment is never rewritten)
if [ "${removed:-0}" -ge 20 ]; then ok; else bad "scavenge removed ${removed:-?} events, want >= 20"; fi
if [ "$PG" = 0 ]; then
    if [ "${rewritten:-0}" -ge 1 ]; then ok; else bad "scavenge rewrote ${rewritten:-?} segments"; fi
    if [ "${after:-0}" -lt "${before:-0}" ]; then ok; else
        bad "scavenge: bytes after ${after:-?} not below before ${before:-?}"; fi
fi
"$EVS" all --all-tenants >"$T/all.after" 2>"$T/all.err" ||
    bad "all after scavenge: $(cat "$T/all.err")"
if cmp -s "$T/all.before" "$T/all.after"; then ok; else
    bad "scavenge changed what reads return: $(diff "$T/all.before" "$T/all.after" | head -n 4)"
fi
same "after scavenge: the deleted stream still reads as absent" "$(versions big-1)" ""
same "after scavenge: s-1 as before" "$(versions s-1)" "5 "
run 0 "verify after scavenge" "$EVS" verify
has "verify after scavenge: clean" "$T/out" " 0 problems"
run 0 "scavenge again" "$EVS" scavenge
has "scavenge again: the summary line" "$T/out" "events removed; segments:"
has "scavenge again: nothing left to remove" "$T/out" " 0 events removed"
run 0 "append after scavenge" "$EVS" append big-1 Big '{"i":40}'
has "after scavenge the numbering continues" "$T/out" '"version":40'
same "after scavenge: the new event reads" "$(versions big-1)" "40 "
run 0 "scavenge --help" "$EVS" scavenge --help
run 2 "scavenge with an argument" "$EVS" scavenge now
run 2 "scavenge of no store" "$EVS" --db "$T/none" scavenge

summary
