#!/usr/bin/env bash
# evs query, evs append --tag/--tag-field/--fail-if/--no-stream: DCB reads
# by type and tag, the consistency marker, conditional appends (exit 3,
# nothing written), events of no stream, and clear errors for bad queries
# and tags.
# Usage: query.sh PATH/TO/evs
set -euo pipefail
NAME=cli_query
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
export EVS_DB="$T/db"

# positions FILE: the global positions of the event lines in FILE.
positions() { sed -n 's/^{"position":\([0-9]*\).*/\1/p' "$1" | tr '\n' ' '; }
# q WANT NAME ARGS...: evs query ARGS must exit 0 and print the events at
# positions WANT ("1 3 "), and nothing but event lines.
q() {
    local want=$1 name=$2
    shift 2
    run 0 "$name" "$EVS" query "$@"
    same "$name: positions" "$(positions "$T/out")" "$want"
    if grep -qv '^{"position":' "$T/out"; then
        bad "$name: stdout holds a line that is not an event"
    else ok; fi
}
# marker: the N of the "marker: N" line on stderr.
marker() { sed -n 's/^marker: \([0-9]*\)$/\1/p' "$T/err"; }

# --- events with tags ----------------------------------------------------------
run 0 "append course-1" "$EVS" append course-1 Opened '{"course":"c1"}' --tag course:c1
run 0 "append student-1" "$EVS" append student-1 Registered '{"student":"s1"}' --tag student:s1
run 0 "append subscription" "$EVS" append course-1 Subscribed '{"course":"c1","student":"s1"}' \
    --tag course:c1 --tag student:s1
same "subscription position" "$(field position "$T/out")" 3
run 0 "append course-2" "$EVS" append course-2 Opened '{}' --tag course:c2

# --- query by tag, type, --or, --query JSON ---------------------------------------
q "1 3 " "by tag" --tag course:c1
q "1 4 " "by type" --type Opened
q "4 " "type and tag in one item" --type Opened --tag course:c2
q "3 " "two tags in one item" --tag course:c1 --tag student:s1
q "1 2 4 " "two types in one item" --type Opened --type Registered
q "2 4 " "--or" --type Registered --or --tag course:c2
q "2 3 " "--query JSON" --query '{"items":[{"types":["Subscribed"],"tags":["student:s1"]},{"types":["Registered"]}]}'
q "1 2 3 4 " "no flags: every event"
q "1 2 3 4 " "empty items: every event" --query '{"items":[]}'
q "1 2 3 4 " "no items: every event" --query '{}'
q "" "no match" --type Closed
q "1 3 " "the \$stream: tag" --tag '$stream:course-1'
"$EVS" read course-1 >"$T/read"
same "query lines are read lines" "$(cat "$T/out")" "$(cat "$T/read")"

# --- direction, bounds, limit -----------------------------------------------------
q "3 " "--backward --limit 1" --tag course:c1 --backward --limit 1
q "3 1 " "--backward" --tag course:c1 --backward
q "1 " "--backward --before" --tag course:c1 --backward --before 3
q "3 " "--after" --tag course:c1 --after 1
q "" "--after the last" --tag course:c1 --after 3
q "1 " "--limit" --tag course:c1 --limit 1

# --- the consistency marker: stderr, or --marker-file --------------------------------
run 0 "marker of a full read" "$EVS" query --tag course:c1
same "marker is the head" "$(marker)" 4
run 0 "marker when nothing matched" "$EVS" query --type Closed
same "marker when nothing matched" "$(marker)" 4
run 0 "marker of a forward read cut by --limit" "$EVS" query --tag course:c1 --limit 1
same "marker is the last event returned" "$(marker)" 1
run 0 "--marker-file" "$EVS" query --type Opened --marker-file "$T/m"
same "--marker-file holds the marker" "$(cat "$T/m")" 4
same "--marker-file: stderr empty" "$(cat "$T/err")" ""

# --- tenants ---------------------------------------------------------------------------
run 0 "append to tenant" "$EVS" append course-1 Opened '{}' --tag course:c1 --tenant acme
acme=$(field position "$T/out")
q "$acme " "query a tenant" --tag course:c1 --tenant acme
has "tenant named in the lines" "$T/out" '"tenant":"acme"'
q "1 3 " "other tenants' events are not seen" --tag course:c1

# --- unique username (dcb.events): query, decide, conditional append -------------
claim='{"items":[{"types":["AccountRegistered"],"tags":["username:ada"]}]}'
run 0 "read the boundary" "$EVS" query --query "$claim" --marker-file "$T/m"
same "nobody has ada" "$(wc -c <"$T/out" | tr -d ' ')" 0
m=$(cat "$T/m")
run 0 "claim ada" "$EVS" append --no-stream AccountRegistered '{"username":"ada"}' \
    --tag-field username --fail-if "$claim" --after "$m"
same "no-stream append output" "$(sed 's/"position":[0-9]*/"position":P/' "$T/out")" \
    '{"stream":null,"version":null,"position":P}'
ada=$(field position "$T/out")
n=$(events)
run 3 "claim ada again" "$EVS" append --no-stream AccountRegistered '{"username":"ada"}' \
    --tag-field username --fail-if "$claim" --after "$m"
has "conflict names the offending position" "$T/err" "position $ada"
same "a failed condition writes nothing" "$(events)" "$n"
run 3 "fail-if on a stream append" "$EVS" append user-2 Renamed '{}' --fail-if "$claim"
same "failed stream append wrote nothing" "$(events)" "$n"
run 0 "fail-if after the offender holds" "$EVS" append --no-stream Noted '{}' \
    --fail-if "$claim" --after "$ada"
run 0 "fail-if --after beyond the head holds" "$EVS" append --no-stream Noted '{}' \
    --fail-if "$claim" --after 1000000
q "$ada " "streamless event found by type and tag" --type AccountRegistered --tag username:ada
has "streamless event line" "$T/out" '"stream":null,"version":null,"type":"AccountRegistered"'
has "--tag-field made the tag" "$T/out" '"tags":["username:ada"]'

# A retry (same id, same event) answers the first result, condition or not.
id=0190f5a4-7c1e-7d2a-8b3c-4d5e6f70aa01
bob='{"items":[{"tags":["username:bob"]}]}'
run 0 "claim bob with an id" "$EVS" append --no-stream AccountRegistered '{"username":"bob"}' \
    --tag username:bob --fail-if "$bob" --id "$id"
first=$(cat "$T/out")
n=$(events)
run 0 "retry of the claim" "$EVS" append --no-stream AccountRegistered '{"username":"bob"}' \
    --tag username:bob --fail-if "$bob" --id "$id"
same "retry: the original result" "$(cat "$T/out")" "$first"
same "retry wrote nothing" "$(events)" "$n"

# --- --tag-field: tags from top-level members of the data --------------------------
run 0 "--tag-field" "$EVS" append book-1 Lent \
    '{"BookID":"x-1","copies":3,"rare":true,"note":null,"meta":{"a":1}}' \
    --tag lib:main --tag-field BookID --tag-field copies --tag-field rare \
    --tag-field note --tag-field meta --tag-field absent
for t in lib:main BookID:x-1 copies:3 rare:true; do
    run 0 "query derived tag $t" "$EVS" query --tag "$t"
    has "derived tag $t" "$T/out" '"type":"Lent"'
done
if grep -qE '"(note|meta|absent):' "$T/out"; then bad "null, object or absent member gave a tag"; else ok; fi

# --- export | import keeps events of no stream ------------------------------------
run 0 "export" "$EVS" export
cp "$T/out" "$T/dump.jsonl"
run 0 "import" "$EVS" --db "$T/copy" import "$T/dump.jsonl"
run 0 "export the copy" "$EVS" --db "$T/copy" export
same "copy exports the same bytes" "$(cat "$T/out")" "$(cat "$T/dump.jsonl")"

# --- errors: exit 2, a clear one-line reason, nothing written --------------------------
n=$(events)
run 2 "malformed --query" "$EVS" query --query '{"items":[{"types":["A"]'
has "malformed --query reason" "$T/err" "--query: not valid JSON"
run 2 "types not an array" "$EVS" query --query '{"items":[{"types":"A"}]}'
has "types reason" "$T/err" '"types" must be an array of strings'
run 2 "unknown item key" "$EVS" query --query '{"items":[{"type":["A"]}]}'
has "unknown key reason" "$T/err" 'unknown key "type"'
run 2 "items not an array" "$EVS" query --query '{"items":{}}'
run 2 "query not an object" "$EVS" query --query '["A"]'
run 2 "--query with --type" "$EVS" query --query '{}' --type A
run 2 "dangling --or" "$EVS" query --type A --or
has "dangling --or reason" "$T/err" "--or"
run 2 "--after with --backward" "$EVS" query --after 1 --backward
run 2 "--before without --backward" "$EVS" query --before 1
run 2 "bad --after" "$EVS" query --after x1
run 2 "empty tag in a query" "$EVS" query --tag ''
has "empty tag reason" "$T/err" "tag 0 is empty"
run 2 "reserved tag in a query" "$EVS" query --tag '$x:1'
has "reserved tag reason" "$T/err" "reserved"
run 2 "empty tag on append" "$EVS" append s-1 E --tag ''
has "append empty tag reason" "$T/err" "is empty"
run 2 "reserved tag on append" "$EVS" append s-1 E --tag '$x'
has "append reserved tag reason" "$T/err" "reserved"
run 2 "malformed --fail-if" "$EVS" append --no-stream E --fail-if '{"items":['
has "malformed --fail-if reason" "$T/err" "--fail-if: not valid JSON"
run 2 "--after without --fail-if" "$EVS" append s-1 E --after 3
run 2 "--no-stream with --expect" "$EVS" append --no-stream E --expect 0
run 2 "--no-stream with too many arguments" "$EVS" append --no-stream E '{}' extra
run 2 "reserved --tag-field" "$EVS" append s-1 E '{"$a":1}' --tag-field '$a'
same "errors wrote nothing" "$(events)" "$n"
if [ "$(wc -l <"$T/err" | tr -d ' ')" = 1 ] && grep -q '^evs: ' "$T/err"; then ok; else
    bad "error is not one 'evs: ' line: $(head -c 300 "$T/err")"
fi

# --- help --------------------------------------------------------------------------------
run 0 "evs --help" "$EVS" --help
has "help lists query" "$T/out" "  query "
run 0 "query --help" "$EVS" query --help
for f in --type --tag --or --query --after --backward --before --limit --tenant --marker-file; do
    has "query --help: $f" "$T/out" "$f"
done
run 0 "append --help" "$EVS" append --help
for f in --no-stream --tag-field --fail-if --after; do
    has "append --help: $f" "$T/out" "$f"
done

summary
