#!/usr/bin/env bash
# Many processes on one embedded store: one writes at a time, the others
# wait for it (--wait, EVS_WAIT; evs_open_options.busy_timeout_ms), so
# eight `evs append` started at once all succeed, a DCB race between eight
# processes has exactly one winner, and a store held longer than --wait
# fails with exit 4 (store busy) and says why.
# Usage: busy.sh PATH/TO/evs
set -euo pipefail
NAME=cli_busy
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

# ms: a monotonic-enough clock in milliseconds.
ms() { echo $(($(date +%s%N) / 1000000)); }
# wait_all: wait for the pids in $pids; their exit statuses, sorted, in
# $statuses ("0 0 3 ...").
wait_all() {
    local p st out=()
    for p in "${pids[@]}"; do
        st=0
        wait "$p" || st=$?
        out+=("$st")
    done
    statuses=$(printf '%s\n' "${out[@]}" | sort -n | tr '\n' ' ')
}

# --- eight appends started at once on a new store: all succeed --------------------
export EVS_DB="$T/eight"
pids=()
for i in 1 2 3 4 5 6 7 8; do
    "$EVS" append "acct-$i" Opened "{\"n\":$i}" >"$T/eight.$i" 2>&1 &
    pids+=($!)
done
wait_all
same "eight appends: every one exits 0" "$statuses" "0 0 0 0 0 0 0 0 "
same "eight appends: 8 events" "$(events)" 8
same "eight appends: 8 distinct positions 1..8" \
    "$(cat "$T"/eight.* | sed -n 's/.*"position":\([0-9]*\).*/\1/p' | sort -n | tr '\n' ' ')" \
    "1 2 3 4 5 6 7 8 "
run 0 "eight appends: verify" "$EVS" verify
has "eight appends: verify clean" "$T/out" "8 records checked, 0 problems"

# --- a DCB race: eight processes claim one username, one wins -----------------------
# Every process reads the marker first; only when all eight have read it
# do they append, each with the same condition after its marker.
export EVS_DB="$T/dcb"
run 0 "dcb: another user" "$EVS" append --no-stream UserRegistered \
    '{"user":"u-0","username":"bob"}' --tag-field username
q='{"items":[{"types":["UserRegistered","UsernameChanged"],"tags":["username:ada"]}]}'
pids=()
for i in 1 2 3 4 5 6 7 8; do
    (
        "$EVS" query --query "$q" --marker-file "$T/marker.$i" >/dev/null
        touch "$T/read.$i"
        while [ ! -e "$T/go" ]; do sleep 0.01; done
        exec "$EVS" append --no-stream UserRegistered "{\"user\":\"u-$i\",\"username\":\"ada\"}" \
            --tag-field username --fail-if "$q" --after "$(cat "$T/marker.$i")"
    ) >"$T/dcb.$i" 2>&1 &
    pids+=($!)
done
for _ in $(seq 1000); do
    [ "$(ls "$T" | grep -c '^read\.')" -eq 8 ] && break
    sleep 0.01
done
same "dcb: all eight read before any appends" "$(ls "$T" | grep -c '^read\.')" 8
same "dcb: every marker is 1" "$(cat "$T"/marker.* | sort -u)" 1
touch "$T/go"
wait_all
same "dcb: one success, seven conflicts" "$statuses" "0 3 3 3 3 3 3 3 "
same "dcb: seven say the condition failed" \
    "$(cat "$T"/dcb.* | grep -c -- '--fail-if: the event at position 2 matches (after 1)')" 7
run 0 "dcb: query ada" "$EVS" query --query "$q"
same "dcb: ada claimed once" "$(grep -c '"username":"ada"' "$T/out")" 1
same "dcb: 2 events" "$(events)" 2

# --- a store held for writing by another process ------------------------------------
# `evs import` holds the store open for writing while it waits for input
# on a FIFO whose writer end this script keeps open.
export EVS_DB="$T/held"
run 0 "held: first event" "$EVS" append held-1 Opened '{}'
mkfifo "$T/fifo"
"$EVS" import <"$T/fifo" >/dev/null 2>&1 &
holder=$!
exec 7>"$T/fifo"
held=0
for _ in $(seq 200); do
    if ls -l "/proc/$holder/fd" 2>/dev/null | grep -q "$EVS_DB/LOCK"; then
        held=1
        break
    fi
    sleep 0.05
done
same "held: the holder opened the store" "$held" 1

t0=$(ms)
run 4 "held: --wait 0 fails at once with the busy status" "$EVS" --wait 0 append held-1 More '{}'
t1=$(ms)
has "held: --wait 0 says another process writes" "$T/err" "is open for writing in another process"
has "held: --wait 0 says what to do" "$T/err" "give --wait SECONDS"
has "held: --wait 0 names PostgreSQL" "$T/err" "PostgreSQL"
if [ $((t1 - t0)) -lt 1000 ]; then ok; else bad "held: --wait 0 took $((t1 - t0)) ms"; fi

t0=$(ms)
run 4 "held: --wait 2 fails with the busy status" "$EVS" --wait 2 append held-1 More '{}'
t1=$(ms)
has "held: --wait 2 says how long it waited" "$T/err" "after waiting 2.0 s"
if [ $((t1 - t0)) -ge 1500 ] && [ $((t1 - t0)) -lt 10000 ]; then ok; else
    bad "held: --wait 2 took $((t1 - t0)) ms, want about 2000"
fi
run 4 "held: EVS_WAIT=0" env EVS_WAIT=0 "$EVS" append held-1 More '{}'
run 4 "held: --wait=0.2" "$EVS" --wait=0.2 checkpoint set c1 1
run 0 "held: read-only commands run beside it" "$EVS" read held-1
same "held: nothing written meanwhile" "$(events)" 1

# A waiting writer gets the store once the holder closes it.
# (7>&-: the waiter must not keep the FIFO's writer end open itself)
"$EVS" --wait 20 append held-1 After '{}' >"$T/after.out" 2>&1 7>&- &
waiter=$!
sleep 0.3
exec 7>&-
wait "$holder" || true
st=0
wait "$waiter" || st=$?
same "held: the waiter succeeds after the holder closes" "$st" 0
has "held: the waiter's event" "$T/after.out" '"position":2'

# --- bad --wait values: usage errors -----------------------------------------------
run 2 "--wait x" "$EVS" --wait x head
has "--wait x: said" "$T/err" "is not a number of seconds"
run 2 "--wait -1" "$EVS" --wait -1 head
run 2 "--wait without a value" "$EVS" --wait
run 2 "EVS_WAIT=abc" env EVS_WAIT=abc "$EVS" head
run 0 "evs --help lists --wait" "$EVS" --help
has "--help: --wait" "$T/out" "--wait SECONDS"
has "--help: exit 4" "$T/out" "4 store busy"

summary
