#!/usr/bin/env bash
# Exploring a store from the command line: evs tenants, evs streams
# (order, counts, --prefix, --limit, --system, --all-tenants, paging past
# a page), evs event ID (any tenant, not found, bad id), the hint on
# standard error of head/all/query/streams when the default tenant is
# empty but others are not (a store made by `evs generate`), query
# --all-tenants, and all --follow --from end printing only the events
# committed after it started. Usage: explore.sh PATH/TO/evs
set -euo pipefail
NAME=cli_explore
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
export EVS_DB="$T/db"

# positions FILE: the global positions of the event lines in FILE.
positions() { sed -n 's/^{"position":\([0-9]*\).*/\1/p' "$1" | tr '\n' ' '; }
add() { "$EVS" append "$@" | sed -n 's/.*"position":\([0-9]*\).*/\1/p'; }

# --- a small store: two tenants, a checkpoint, an event of no stream ---------------------
add account-2 Opened '{}' >/dev/null
add account-10 Opened '{}' >/dev/null
add account-2 Deposited '{"amount":5}' >/dev/null
add order-1 Placed '{}' --tenant acme >/dev/null
add --no-stream Loose '{}' --tenant acme >/dev/null
"$EVS" checkpoint set proj 2 >/dev/null

run 0 "tenants" "$EVS" tenants
same "tenants: names and counts (no checkpoint counted)" "$(cat "$T/out")" \
'{"tenant":"","events":3}
{"tenant":"acme","events":2}'
same "tenants: count = evs all" "$("$EVS" all | wc -l)" 3

run 0 "streams" "$EVS" streams
same "streams of the default tenant, byte order" "$(cat "$T/out")" \
'{"tenant":"","stream":"account-10","events":1,"last_version":0}
{"tenant":"","stream":"account-2","events":2,"last_version":1}'
run 0 "streams --system" "$EVS" streams --system
has "streams --system lists the checkpoint" "$T/out" '"stream":"$checkpoint-proj","events":1'
run 0 "streams --prefix" "$EVS" streams --prefix account-2
same "streams --prefix" "$(cat "$T/out")" \
'{"tenant":"","stream":"account-2","events":2,"last_version":1}'
run 0 "streams --all-tenants --limit 2" "$EVS" streams --all-tenants --limit 2
same "streams --limit" "$(wc -l <"$T/out")" 2
run 0 "streams --all-tenants" "$EVS" streams --all-tenants
same "streams --all-tenants: every tenant's, in order" "$(sed -n 's/.*"tenant":"\([^"]*\)","stream":"\([^"]*\)".*/\1\/\2/p' "$T/out" | tr '\n' ' ')" \
"/account-10 /account-2 acme/order-1 "
run 0 "streams --tenant" "$EVS" streams --tenant acme
has "streams --tenant" "$T/out" '"tenant":"acme","stream":"order-1","events":1'
run 0 "streams of a tenant without events" "$EVS" streams --tenant nobody
same "streams of nobody: nothing" "$(cat "$T/out")" ""
run 2 "streams --tenant --all-tenants" "$EVS" streams --tenant a --all-tenants
run 2 "streams --limit x" "$EVS" streams --limit x
has "streams: bad limit named" "$T/err" "'x' is not a number"
run 0 "streams --help" "$EVS" streams --help
has "streams --help: exit statuses" "$T/out" "Exit status"

# --- event ID ------------------------------------------------------------------------
"$EVS" all --tenant acme --limit 1 >"$T/acme"
id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' "$T/acme")
run 0 "event ID" "$EVS" event "$id"
same "event ID: the event line, with its tenant" "$(cat "$T/out")" "$(cat "$T/acme")"
has "event ID: names the tenant" "$T/out" '"tenant":"acme"'
run 1 "event: no such id" "$EVS" event 01a2011e-961d-775e-8f45-a0207a72a97d
has "event: not found said" "$T/err" "no event has the id 01a2011e-961d-775e-8f45-a0207a72a97d"
run 2 "event: not a UUID" "$EVS" event 12345
has "event: bad id named" "$T/err" "'12345' is not an event id"
run 2 "event: no ID" "$EVS" event
run 0 "event --help" "$EVS" event --help
has "event --help: exit statuses" "$T/out" "Exit status"

# --- the hint: a store of `evs generate` has no events in the default tenant ----------
G="$T/gen"
"$EVS" --db "$G" generate --events 2000 --tenants 3 --quiet >/dev/null
"$EVS" --db "$G" tenants >"$T/gt"
same "generate: three tenants" "$(wc -l <"$T/gt")" 3
same "generate: counts add up" "$(sed -n 's/.*"events":\([0-9]*\).*/\1/p' "$T/gt" | awk '{s += $1} END {print s}')" 2000
# the hint names the tenants with events (no counts: it only seeks)
names=$(sed -n 's/{"tenant":"\([^"]*\)","events":[1-9][0-9]*}/\1/p' "$T/gt" | paste -sd, - | sed 's/,/, /g')
for c in "head" "all" "query --type X" "streams"; do
    # shellcheck disable=SC2086
    run 0 "$c on the empty default tenant" "$EVS" --db "$G" $c
    has "$c: hint names the tenants" "$T/err" "the default tenant has no events; tenants with events: $names; use"
    has "$c: hint points to the counts" "$T/err" "('evs tenants' counts them)"
    has "$c: hint says what to do" "$T/err" "use --tenant NAME or --all-tenants"
done
run 0 "all: stdout unchanged by the hint" "$EVS" --db "$G" all
same "all: nothing on stdout" "$(cat "$T/out")" ""
run 0 "head: stdout unchanged by the hint" "$EVS" --db "$G" head
same "head: 0 on stdout" "$(cat "$T/out")" 0
run 0 "no hint with --tenant" "$EVS" --db "$G" all --tenant nobody
same "no hint with --tenant" "$(cat "$T/err")" ""
run 0 "no hint when the default tenant has events" "$EVS" all --from 100
same "no hint: default tenant has events" "$(cat "$T/err")" ""

# --- query --all-tenants: merged in position order -------------------------------------
run 0 "query --all-tenants" "$EVS" --db "$G" query --all-tenants --limit 5
same "query --all-tenants: positions" "$(positions "$T/out")" "1 2 3 4 5 "
run 0 "query --all-tenants --backward" "$EVS" --db "$G" query --all-tenants --backward --limit 3
same "query --all-tenants --backward" "$(positions "$T/out")" "2000 1999 1998 "
"$EVS" --db "$G" all --all-tenants >"$T/gall"
run 0 "query --all-tenants (all)" "$EVS" --db "$G" query --all-tenants
same "query --all-tenants = all --all-tenants" "$(cat "$T/out")" "$(cat "$T/gall")"
run 2 "query --all-tenants --tenant" "$EVS" query --all-tenants --tenant acme
run 2 "query --all-tenants --marker-file" "$EVS" query --all-tenants --marker-file "$T/m"

# --- all --follow --from end: only what is committed after it starts ------------------
run 2 "--from end without --follow" "$EVS" all --from end
has "--from end: says it needs --follow" "$T/err" "--follow"
head_before=$("$EVS" head --all-tenants)
"$EVS" all --all-tenants --follow --from end >"$T/f" 2>"$T/f.err" &
pid=$!
# The follower takes the head as it starts: append until it prints one.
for ((i = 0; i < 100; i++)); do
    add new-1 Ping '{}' >/dev/null
    [ -s "$T/f" ] && break
    sleep 0.1
done
last=$(add new-1 Pong '{}')
for ((i = 0; i < 200; i++)); do
    grep -qF "\"position\":$last," "$T/f" && break
    sleep 0.05
done
kill -INT "$pid"
st=0
wait "$pid" || st=$?
same "follow --from end: exit 0 on SIGINT" "$st" 0
got=$(positions "$T/f")
[ -n "$got" ] && ok || bad "follow --from end: printed nothing"
for p in $got; do
    [ "$p" -gt "$head_before" ] && ok || bad "follow --from end printed old position $p (head was $head_before)"
done
has "follow --from end: the last event came" "$T/f" "\"position\":$last,"
same "follow --from end: positions are consecutive" "$got" "$(seq "${got%% *}" "$last" | tr '\n' ' ')"

summary
