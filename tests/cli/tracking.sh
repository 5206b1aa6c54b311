#!/usr/bin/env bash
# Tracking from the command line: evs head/tail/token-at, evs all --follow
# and evs read --follow (the events there, then new ones as they are
# committed, exit 0 on SIGINT/SIGTERM), evs subscribe (filters, consumer
# groups, checkpoints that resume with no gap and no duplicate), evs
# checkpoint get/set, evs snapshot save/load, and clear errors for bad
# input. Background readers are waited for in short sleeps, 10 s at most.
# Usage: tracking.sh PATH/TO/evs
set -euo pipefail
NAME=cli_tracking
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
export EVS_DB="$T/db"

# positions FILE...: the global positions of the event lines in the FILEs.
positions() { cat "$@" | sed -n 's/^{"position":\([0-9]*\).*/\1/p' | tr '\n' ' '; }
# add ARGS...: evs append ARGS; prints the event's position.
add() { "$EVS" append "$@" | sed -n 's/.*"position":\([0-9]*\).*/\1/p'; }
# wait_lines N FILE...: until the FILEs hold N lines in all (10 s at most).
wait_lines() {
    local want=$1 i
    shift
    for ((i = 0; i < 200; i++)); do
        [ "$(cat "$@" | wc -l)" -ge "$want" ] && return 0
        sleep 0.05
    done
    return 1
}
# wait_exit PID: wait for background PID, which should end by itself;
# its exit status in $st (killed after 10 s: 124). Not in a $(...): a
# subshell cannot wait for the script's children.
wait_exit() {
    local i
    st=0
    for ((i = 0; i < 200; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$1" 2>/dev/null; then
        kill -KILL "$1"
        wait "$1" 2>/dev/null || true
        st=124
        return
    fi
    wait "$1" || st=$?
}
# stop SIG PID: send SIG to background PID, wait; its exit status in $st.
stop() { kill -"$1" "$2"; wait_exit "$2"; }
# token FILE: the N of the "token: N" line in FILE (subscribe's stderr).
token() { sed -n 's/^token: \([0-9]*\)$/\1/p' "$1"; }
# category_positions CAT: positions of the default tenant's events of
# streams of category CAT.
category_positions() {
    "$EVS" all | grep "\"stream\":\"$1-" | sed -n 's/^{"position":\([0-9]*\).*/\1/p' | tr '\n' ' '
}
# first_n N LIST / after_n N LIST: the first N words of LIST / the others.
first_n() { echo "$2" | tr ' ' '\n' | sed -n "1,$1p" | tr '\n' ' '; }
after_n() { echo "$2" | tr ' ' '\n' | sed -n "$(($1 + 1)),\$p" | grep . | tr '\n' ' ' || true; }

# --- a few events -------------------------------------------------------------------
p1=$(add account-1 Opened '{"owner":"ann"}')
add account-2 Opened '{}' >/dev/null
add order-1 Placed '{}' >/dev/null
p4=$(add account-1 Deposited '{"amount":5}')
add account-3 Opened '{}' >/dev/null
p6=$(add account-2 Deposited '{"amount":7}')
a7=$(add account-9 Opened '{}' --tenant acme)
same "positions as expected" "$p1 $p4 $p6 $a7" "1 4 6 7"

# --- head, tail, token-at -----------------------------------------------------------
run 0 "head" "$EVS" head
same "head of the default tenant" "$(cat "$T/out")" 6
run 0 "tail" "$EVS" tail
same "tail of the default tenant" "$(cat "$T/out")" 0
run 0 "tail --tenant" "$EVS" tail --tenant acme
same "tail of a tenant: before its first event" "$(cat "$T/out")" 6
run 0 "tail --all-tenants" "$EVS" tail --all-tenants
same "tail of the store" "$(cat "$T/out")" 0
run 0 "tail of a tenant without events" "$EVS" tail --tenant nobody
same "tail of an empty tenant" "$(cat "$T/out")" 0

ts=$("$EVS" all --from 4 --limit 1 | sed -n 's/.*"recorded_at":"\([^"]*\)".*/\1/p')
run 0 "token-at RFC 3339" "$EVS" token-at "$ts"
same "token-at the 4th event's time" "$(cat "$T/out")" 3
frac=${ts##*.}
us=$(($(date -u -d "${ts%.*}Z" +%s) * 1000000 + 10#${frac%Z}))
run 0 "token-at microseconds" "$EVS" token-at "$us"
same "token-at in microseconds" "$(cat "$T/out")" 3
run 0 "token-at a date long ago" "$EVS" token-at 1970-01-01
same "token-at before every event" "$(cat "$T/out")" 0
run 0 "token-at the future" "$EVS" token-at 2100-01-01T00:00:00Z
same "token-at after every event: the head" "$(cat "$T/out")" 7
run 2 "token-at a bad time" "$EVS" token-at yesterday
has "token-at: bad time named" "$T/err" "'yesterday' is not a time"
run 2 "token-at without TIME" "$EVS" token-at
has "token-at: missing TIME" "$T/err" "missing TIME"

# --- all --follow: the events there, then new ones, until SIGINT ------------------------
"$EVS" all --follow >"$T/f1" 2>"$T/f1.err" &
pid=$!
wait_lines 6 "$T/f1" && ok || bad "all --follow: the 6 events already there did not come"
p8=$(add account-3 Deposited '{"amount":1}')
wait_lines 7 "$T/f1" && ok || bad "all --follow: the new event did not come"
stop INT "$pid"
    same "all --follow: exit 0 on SIGINT" "$st" 0
same "all --follow: existing then new" "$(positions "$T/f1")" "1 2 3 4 5 6 $p8 "
"$EVS" all >"$T/all"
same "all --follow lines are all lines" "$(cat "$T/f1")" "$(cat "$T/all")"
same "all --follow: nothing on stderr" "$(cat "$T/f1.err")" ""

run 0 "all --follow --limit (events there)" "$EVS" all --follow --limit 2
same "all --follow --limit stops by itself" "$(positions "$T/out")" "1 2 "
run 0 "all --follow --from --tenant --limit" "$EVS" all --follow --from 2 --tenant acme --limit 1
same "all --follow --tenant" "$(positions "$T/out")" "7 "
has "all --follow --tenant: lines name the tenant" "$T/out" '"tenant":"acme"'

# --- read --follow: one stream's events, from a version, until SIGTERM -------------------
"$EVS" read account-1 --follow --from 1 >"$T/f2" 2>"$T/f2.err" &
pid=$!
wait_lines 1 "$T/f2" && ok || bad "read --follow: the event there did not come"
add account-2 Closed '{}' >/dev/null
p10=$(add account-1 Closed '{}')
wait_lines 2 "$T/f2" && ok || bad "read --follow: the new event did not come"
stop TERM "$pid"
    same "read --follow: exit 0 on SIGTERM" "$st" 0
same "read --follow: that stream only, from version 1" "$(positions "$T/f2")" "$p4 $p10 "

"$EVS" read account-7 --follow --limit 1 >"$T/f3" 2>"$T/f3.err" &
pid=$!
p11=$(add account-7 Opened '{}')
wait_exit "$pid"
same "read --follow --limit: a new stream's event, then exit 0" "$st" 0
same "read --follow of a stream created later" "$(positions "$T/f3")" "$p11 "
"$EVS" read account-7 --follow --from 2 --limit 1 >"$T/f4" 2>"$T/f4.err" &
pid=$!
add account-7 Deposited '{"amount":1}' >/dev/null
p13=$(add account-7 Deposited '{"amount":2}')
wait_exit "$pid"
same "read --follow --from beyond the end: exit 0" "$st" 0
same "read --follow --from beyond the end: from that version on" "$(positions "$T/f4")" "$p13 "
run 2 "read --follow --backward" "$EVS" read account-1 --follow --backward
has "read --follow --backward refused" "$T/err" "--follow reads forward"

# --- subscribe: filters -----------------------------------------------------------------
acc=$(category_positions account)
nacc=$(echo "$acc" | wc -w)
run 0 "subscribe --category --limit" "$EVS" subscribe --category account --limit "$nacc"
same "subscribe --category" "$(positions "$T/out")" "$acc"
last=$(echo $acc)
same "subscribe: the token after the last event" "$(token "$T/err")" "${last##* }"
dep=$("$EVS" all | grep '"type":"Deposited"' | sed -n 's/^{"position":\([0-9]*\).*/\1/p' | tr '\n' ' ')
run 0 "subscribe --type" "$EVS" subscribe --type Deposited --limit "$(echo "$dep" | wc -w)"
same "subscribe --type" "$(positions "$T/out")" "$dep"
run 0 "subscribe --type --type" "$EVS" subscribe --type Placed --type Nothing --limit 1
same "subscribe: types OR'ed" "$(positions "$T/out")" "3 "
run 0 "subscribe --query" "$EVS" subscribe --query '{"items":[{"tags":["$stream:account-2"]}]}' --limit 3
same "subscribe --query" "$(positions "$T/out")" "$("$EVS" read account-2 | sed -n 's/^{"position":\([0-9]*\).*/\1/p' | tr '\n' ' ')"
run 0 "subscribe --tenant" "$EVS" subscribe --tenant acme --limit 1
same "subscribe --tenant" "$(positions "$T/out")" "7 "
has "subscribe --tenant: lines name the tenant" "$T/out" '"tenant":"acme"'
run 0 "subscribe --after" "$EVS" subscribe --after 5 --limit 1
same "subscribe --after is exclusive" "$(positions "$T/out")" "6 "

# --- subscribe with a checkpoint: resumes with no gap and no duplicate -------------------
run 0 "subscribe --checkpoint (first 3)" "$EVS" subscribe --category account --checkpoint c1 --limit 3
same "checkpoint run 1" "$(positions "$T/out")" "$(first_n 3 "$acc")"
cp=$(token "$T/err")
run 0 "checkpoint get" "$EVS" checkpoint get c1
same "checkpoint stored: the last event printed" "$(cat "$T/out")" "$cp"
run 0 "subscribe --checkpoint (next 2)" "$EVS" subscribe --category account --checkpoint c1 --limit 2 --after 0
same "checkpoint run 2 resumes (--after ignored)" "$(positions "$T/out")" "$(first_n 2 "$(after_n 3 "$acc")")"

rest=$(after_n 5 "$acc")
"$EVS" subscribe --category account --checkpoint c1 >"$T/s1" 2>"$T/s1.err" &
pid=$!
wait_lines "$(echo "$rest" | wc -w)" "$T/s1" && ok || bad "subscribe: the rest did not come"
pn=$(add account-2 Reopened '{}')
add order-1 Shipped '{}' >/dev/null
wait_lines "$(($(echo "$rest" | wc -w) + 1))" "$T/s1" && ok || bad "subscribe: the new event did not come"
stop INT "$pid"
    same "subscribe --checkpoint: exit 0 on SIGINT" "$st" 0
same "checkpoint run 3: the rest, then the new event" "$(positions "$T/s1")" "$rest$pn "
run 0 "checkpoint get after SIGINT" "$EVS" checkpoint get c1
if [ "$(cat "$T/out")" -ge "$pn" ]; then ok; else bad "checkpoint after SIGINT: $(cat "$T/out") < $pn"; fi

"$EVS" subscribe --category account --checkpoint c1 >"$T/s2" 2>"$T/s2.err" &
pid=$!
pn2=$(add account-1 Reopened '{}')
wait_lines 1 "$T/s2" && ok || bad "subscribe: resumed run saw nothing"
stop TERM "$pid"
    same "subscribe --checkpoint: exit 0 on SIGTERM" "$st" 0
same "checkpoint run 4: only the newer event" "$(positions "$T/s2")" "$pn2 "

# A run that prints nothing leaves the checkpoint alone (no write).
h0=$("$EVS" stats | sed -n 's/.*"head_position":\([0-9]*\).*/\1/p')
"$EVS" subscribe --category nothing --checkpoint c1 >"$T/s3" 2>"$T/s3.err" &
pid=$!
sleep 0.3
stop INT "$pid"
same "subscribe printing nothing: exit 0" "$st" 0
same "subscribe printing nothing: the checkpoint is not written" \
    "$("$EVS" stats | sed -n 's/.*"head_position":\([0-9]*\).*/\1/p')" "$h0"

run 0 "checkpoint set" "$EVS" checkpoint set c2 5
run 0 "checkpoint set: same token" "$EVS" checkpoint set c2 5
run 0 "checkpoint get c2" "$EVS" checkpoint get c2
same "checkpoint set then get" "$(cat "$T/out")" 5
run 0 "subscribe from a set checkpoint" "$EVS" subscribe --checkpoint c2 --limit 1
same "subscribe starts after the set checkpoint" "$(positions "$T/out")" "6 "

# --- consumer groups: members together see each event once, each stream whole ----------
for i in $(seq 20 31); do
    printf '{"stream":"account-%d","type":"Opened","data":{}}\n{"stream":"account-%d","type":"Deposited","data":{"amount":%d}}\n' "$i" "$i" "$i"
done >"$T/more.jsonl"
run 0 "import more streams" "$EVS" import "$T/more.jsonl"
acc=$(category_positions account)
nacc=$(echo "$acc" | wc -w)
pids=""
: >"$T/g0"; : >"$T/g1"; : >"$T/g2"
for m in 0 1 2; do
    "$EVS" subscribe --category account --group "$m/3" >"$T/g$m" 2>"$T/g$m.err" &
    pids="$pids $!"
done
wait_lines "$nacc" "$T/g0" "$T/g1" "$T/g2" && ok || bad "group: not every event came"
sleep 0.3 # room for a duplicate to show
for pid in $pids; do
    stop INT "$pid"
    same "group member: exit 0 on SIGINT" "$st" 0
done
same "group: every event once" "$(positions "$T/g0" "$T/g1" "$T/g2" | tr ' ' '\n' | grep . | sort -n | tr '\n' ' ')" "$acc"
for m in 0 1 2; do
    sed -n 's/.*"stream":"\([^"]*\)".*/\1/p' "$T/g$m" | sort -u >"$T/g$m.streams"
    [ -s "$T/g$m.streams" ] && ok || bad "group member $m of 3 got no stream"
    same "group member $m: positions in order" "$(positions "$T/g$m")" \
        "$(positions "$T/g$m" | tr ' ' '\n' | grep . | sort -n | tr '\n' ' ')"
done
same "group: each stream with one member" "$(cat "$T"/g?.streams | sort | uniq -d)" ""
run 0 "group 0/1 is everything" "$EVS" subscribe --category account --group 0/1 --limit "$nacc"
same "group 0/1" "$(positions "$T/out")" "$acc"

# --- snapshots ----------------------------------------------------------------------------
run 0 "snapshot save --data" "$EVS" snapshot save account-1 1 --schema Account/v1 --data '{"balance": 5}'
same "snapshot save output" "$(cat "$T/out")" '{"stream":"account-1","version":1,"schema":"Account/v1","bytes":14}'
printf 'bin\000\001\377' >"$T/state.bin"
run 0 "snapshot save --file (binary)" "$EVS" snapshot save account-1 0 --schema Account/v0 --file "$T/state.bin"
echo '{"balance":0}' | "$EVS" snapshot save account-2 0 --schema Account/v1 >/dev/null && ok || bad "snapshot save from stdin"
run 0 "snapshot load" "$EVS" snapshot load account-1
has "snapshot load: newest" "$T/out" '{"stream":"account-1","version":1,"schema":"Account/v1","saved_at":"'
has "snapshot load: JSON data as JSON" "$T/out" '"data":{"balance": 5}}'
run 0 "snapshot load --version" "$EVS" snapshot load account-1 --version 0
has "snapshot load --version: binary as base64" "$T/out" '"version":0,"schema":"Account/v0"'
has "snapshot load: data_base64" "$T/out" '"data_base64":"YmluAAH/"}'
"$EVS" snapshot load account-1 --version 0 --raw >"$T/state.out"
cmp -s "$T/state.bin" "$T/state.out" && ok || bad "snapshot load --raw: bytes differ"
run 0 "snapshot load from stdin save" "$EVS" snapshot load account-2
has "snapshot from stdin" "$T/out" '"data":{"balance":0}}'
run 1 "snapshot load: none" "$EVS" snapshot load account-3
has "snapshot load: none, said" "$T/err" "stream account-3 has no snapshot"
run 2 "snapshot save beyond the stream" "$EVS" snapshot save account-1 99 --schema S --data '{}'
grep -q '^evs: ' "$T/err" && ok || bad "snapshot save beyond: no message"
run 2 "snapshot save of no stream" "$EVS" snapshot save nosuch-1 0 --schema S --data '{}'
run 2 "snapshot save without --schema" "$EVS" snapshot save account-1 0 --data '{}'
has "snapshot: --schema required" "$T/err" "missing --schema"
run 2 "snapshot save: bad version" "$EVS" snapshot save account-1 -1 --schema S --data '{}'
run 2 "snapshot: unknown action" "$EVS" snapshot drop account-1

# --- a checkpoint that cannot be stored: another process writes -------------------
# evs import --batch 1 from a FIFO holds the store open for writing while
# it waits for its next line; it writes a line's event when the next
# one comes, so the first event showing means the store is held.
mkfifo "$T/fifo"
"$EVS" import --batch 1 "$T/fifo" >/dev/null 2>&1 &
ipid=$!
exec 3>"$T/fifo"
printf '{"stream":"busy-1","type":"Held","data":{}}\n%.0s' 1 2 >&3
for ((i = 0; i < 200; i++)); do
    "$EVS" read busy-1 | grep -q Held && break
    sleep 0.05
done
run 4 "subscribe: checkpoint not stored while another process writes" \
    "$EVS" --wait 0 subscribe --checkpoint c3 --limit 1
has "checkpoint not stored, said" "$T/err" "checkpoint c3 not stored"
has "the token to resume from" "$T/err" "(resume with --after 1)"
same "the events were printed" "$(positions "$T/out")" "1 "
run 4 "checkpoint set while another process writes (store busy)" \
    "$EVS" --wait 0 checkpoint set c3 1
exec 3>&-
wait_exit "$ipid"
same "the import holding the store ended" "$st" 0

# --- bad input ------------------------------------------------------------------------------
run 2 "--group I = N" "$EVS" subscribe --group 3/3 --limit 1
has "--group member not below size" "$T/err" "member 3 is not below the group size 3"
run 2 "--group N = 0" "$EVS" subscribe --group 0/0 --limit 1
has "--group size 0" "$T/err" "the group size must be 1..1024"
run 2 "--group N too big" "$EVS" subscribe --group 0/2000 --limit 1
has "--group size too big" "$T/err" "the group size must be 1..1024"
run 2 "--group not I/N" "$EVS" subscribe --group two --limit 1
has "--group shape" "$T/err" "is not I/N"
run 2 "--query with --type" "$EVS" subscribe --query '{}' --type A --limit 1
run 1 "checkpoint get unknown" "$EVS" checkpoint get nosuch
has "unknown checkpoint, said" "$T/err" 'checkpoint "nosuch" is not stored'
run 1 "checkpoint of another tenant" "$EVS" checkpoint get c1 --tenant acme
run 2 "checkpoint set backward" "$EVS" checkpoint set c2 3
run 2 "checkpoint set beyond the head" "$EVS" checkpoint set c2 100000
run 2 "checkpoint set: bad token" "$EVS" checkpoint set c2 x
run 2 "checkpoint: unknown action" "$EVS" checkpoint list
run 2 "subscribe --category bad name" "$EVS" subscribe --category '' --limit 1
run 2 "no store" "$EVS" --db "$T/none" subscribe --limit 1
has "no store named" "$T/err" "no store at"

summary
