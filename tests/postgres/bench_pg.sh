#!/usr/bin/env bash
# `evs bench --db postgresql://...` on the test cluster (EVS_TEST_PG, the
# pg_cluster fixture: tests/CMakeLists.txt): a quick run of three scenarios
# on a fresh database of its own exits 0 (every scenario's outcomes add up
# and its checks hold), and the report has the PostgreSQL-only section:
# EXPLAIN (ANALYZE, BUFFERS) of the hot queries with a verdict each, and
# the PostgreSQL peers ran on the same server by default; the same
# database, now holding events, is refused without --force.
# Usage: bench_pg.sh PATH/TO/evs   (EVS_TEST_PG: an admin libpq URI)
set -euo pipefail
NAME=cli_bench_pg
. "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.bash"
. "$(dirname "${BASH_SOURCE[0]}")/pg.bash"
trap 'pg_drop_db; rm -rf "$T"' EXIT
pg_fresh_db evs_bench_pg_$$
URI=$PG_URI

O=$T/results
run 0 "quick bench on PostgreSQL" "$EVS" bench --quick --events 5000 --seconds 0.2 \
    --scenarios append-1,dcb-query,tokens --no-plots --db "$URI" --out "$O"
R=$O/report.md
J=$O/report.json
has "EXPLAIN section" "$R" "## PostgreSQL: EXPLAIN (ANALYZE, BUFFERS) of the hot queries"
has "ANALYZE after the load stated" "$R" "the runner ran ANALYZE"
# the PostgreSQL peers (issue 20) ran by default on the --db server, beside
# evstore-on-PostgreSQL's figures (tests/test_bench.c `pg` checks their
# accounting)
has "raw PostgreSQL peer ran" "$R" "| peer postgres | ran (PostgreSQL "
has "Message DB peer ran" "$R" "| peer messagedb | ran (Message DB "
has "compared on the same server" "$R" "beside evstore on PostgreSQL, on the same server"
has "summary line" "$T/out" "PostgreSQL EXPLAIN: "
for q in "stream read" "read_streams (command executor)" "tenant \$all page" \
    "tracking page from a token (tenant)" "DCB query: type + tag" \
    "DCB query (dcb-query scenario)" "DCB append condition (in evstore.append)" \
    "token_at" "append, 1 event (evstore.append)"; do
    has "plan of '$q'" "$R" "### $q"
    has "JSON entry of '$q'" "$J" "\"name\": \"$q\""
done
# every plan is a real plan, none failed
if grep -q "EXPLAIN failed" "$R" "$T/err"; then bad "an EXPLAIN failed: $(grep -m1 'EXPLAIN failed' "$R" "$T/err")"; else ok; fi
has "plans have execution times" "$R" "Execution Time:"
has "capture not stopped" "$J" "\"explain_error\": null"
# point lookups whose plan cannot reasonably be anything but their index,
# and the DCB tag query, whose statement leaves it the GIN index alone
# (evs__pg_dcb_sql, docs/POSTGRES.md "Reads")
for row in "stream read|events_stream" "read_streams (command executor)|events_stream" \
    "token_at|times_pkey" "event position by id|events_id_key" \
    "DCB query: tag|events_tags"; do
    q=${row%%|*} idx=${row#*|}
    if grep -qF "| $q |" "$R" && grep -F "| $q |" "$R" | grep -qF "| $idx | used |"; then ok; else
        bad "$q: $idx not used: $(grep -F "| $q |" "$R" | head -n 1)"
    fi
done
# the appends explained were rolled back: the store holds what the run wrote
events_json=$(awk '/"store_end"/ { f = 1 } f && /"events":/ { gsub(/[^0-9]/, ""); print; exit }' "$J")
same "nothing left by the explained appends" "$(events "$URI")" "$events_json"

# the database now holds events: refused without --force, unchanged
before=$(events "$URI")
run 1 "non-empty PostgreSQL store without --force" "$EVS" bench --quick --events 5000 \
    --scenarios tokens --no-plots --db "$URI" --out "$T/o2"
has "refusal names --force" "$T/err" "--force"
same "store unchanged" "$(events "$URI")" "$before"

summary
