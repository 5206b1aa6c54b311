#!/usr/bin/env bash
# evs's store options (--segment-size, --max-event-size, --snapshot-keep and
# their EVS_* variables, docs/OPERATIONS.md) and the messages a new user
# meets: a negative number given as a value, a huge argument quoted back,
# subscribe after a usage error, the exit statuses in every --help.
# Usage: config.sh PATH/TO/evs
set -euo pipefail
NAME=cli_config
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
export EVS_DB="$T/db"
unset EVS_SEGMENT_SIZE EVS_MAX_EVENT_SIZE EVS_SNAPSHOT_KEEP

# lacks NAME FILE TEXT: FILE does not contain TEXT.
lacks() {
    if grep -qF -- "$3" "$2"; then bad "$1: '$3' in $(head -c 300 "$2")"; else ok; fi
}
# segsizes DB: the sizes of its log segment files, one line each.
segsizes() { stat -c %s "$1"/log/*.evslog | sort -u; }

big200="\"$(head -c 200 /dev/zero | tr '\0' a)\""

# --- --max-event-size and EVS_MAX_EVENT_SIZE ---------------------------------
run 0 "small event under --max-event-size" "$EVS" --max-event-size 100 append s-1 T '{}'
run 1 "event over --max-event-size" "$EVS" --max-event-size 100 append s-1 T "$big200"
has "over the limit names the option" "$T/err" "--max-event-size"
has "over the limit names the variable" "$T/err" "EVS_MAX_EVENT_SIZE"
has "over the limit names the field" "$T/err" "max_event_size"
run 1 "event over EVS_MAX_EVENT_SIZE" env EVS_MAX_EVENT_SIZE=100 "$EVS" append s-1 T "$big200"
run 0 "the option wins over the variable" env EVS_MAX_EVENT_SIZE=100 "$EVS" --max-event-size 1K append s-1 T "$big200"
run 0 "default limit takes 200 bytes" "$EVS" append s-1 T "$big200"
same "only the allowed events were written" "$(events)" 3

# --- --segment-size and EVS_SEGMENT_SIZE (only when creating) ---------------
run 0 "--segment-size 1M creates 1 MiB segments" "$EVS" --db "$T/s1" --segment-size 1M append s T '{}'
same "segments of 1 MiB" "$(segsizes "$T/s1")" 1048576
run 0 "EVS_SEGMENT_SIZE=2M" env EVS_SEGMENT_SIZE=2M "$EVS" --db "$T/s2" append s T '{}'
same "segments of 2 MiB" "$(segsizes "$T/s2")" 2097152
run 0 "--segment-size=1024K wins over EVS_SEGMENT_SIZE" env EVS_SEGMENT_SIZE=2M "$EVS" --db "$T/s3" --segment-size=1024K append s T '{}'
same "segments of 1024K" "$(segsizes "$T/s3")" 1048576
run 0 "segment size in bytes, MiB suffix" "$EVS" --db "$T/s4" --segment-size 1MiB append s T '{}'
same "segments of 1MiB" "$(segsizes "$T/s4")" 1048576
# an existing store keeps its size, whatever is asked (docs/OPERATIONS.md)
run 0 "another --segment-size on an existing store" "$EVS" --db "$T/s1" --segment-size 4M append s T '{}'
same "the store keeps its segment size" "$(segsizes "$T/s1")" 1048576
# 1.5 MiB of events fill a second segment of 1 MiB
{ printf '"'; head -c 300000 /dev/zero | tr '\0' x; printf '"'; } >"$T/ev"
for i in 1 2 3 4 5; do
    run 0 "append 300 KB $i" "$EVS" --db "$T/s1" append s T - <"$T/ev"
done
same "a second 1 MiB segment" "$(ls "$T/s1/log/"*.evslog | wc -l | tr -d ' ')" 2
same "every segment 1 MiB" "$(segsizes "$T/s1")" 1048576
run 2 "max event size beyond a 1 MiB segment" "$EVS" --db "$T/s5" --segment-size 1M --max-event-size 2M append s T '{}'
has "names --segment-size" "$T/err" "--segment-size"
has "names --max-event-size" "$T/err" "--max-event-size"
if [ -e "$T/s5/log" ]; then bad "a refused open created a store"; else ok; fi

# --- --snapshot-keep and EVS_SNAPSHOT_KEEP -----------------------------------
for db in k1 k3 kenv; do
    for v in 0 1 2; do run 0 "$db: append $v" "$EVS" --db "$T/$db" append a T '{}'; done
done
for v in 0 1 2; do
    run 0 "keep 1: save $v" "$EVS" --db "$T/k1" --snapshot-keep 1 snapshot save a $v --schema S --data x$v
    run 0 "default: save $v" "$EVS" --db "$T/k3" snapshot save a $v --schema S --data x$v
    run 0 "env keep 1: save $v" env EVS_SNAPSHOT_KEEP=1 "$EVS" --db "$T/kenv" snapshot save a $v --schema S --data x$v
done
run 1 "--snapshot-keep 1 kept one: no snapshot at version 1" "$EVS" --db "$T/k1" snapshot load a --version 1
run 1 "EVS_SNAPSHOT_KEEP=1 kept one" "$EVS" --db "$T/kenv" snapshot load a --version 1
run 0 "--snapshot-keep 1 kept the newest" "$EVS" --db "$T/k1" snapshot load a --raw
same "the newest is version 2" "$(cat "$T/out")" x2
run 0 "the default keeps 3" "$EVS" --db "$T/k3" snapshot load a --version 0 --raw
same "version 0 kept" "$(cat "$T/out")" x0

# --- bad values: exit 2, the limits named, nothing opened --------------------
for bad_arg in "--segment-size 1000" "--segment-size 2G" "--segment-size 1X" \
               "--segment-size -1" "--max-event-size 0" "--max-event-size abc" \
               "--max-event-size 1G" "--snapshot-keep 0" "--snapshot-keep 1001" \
               "--snapshot-keep 1K"; do
    # shellcheck disable=SC2086
    run 2 "bad $bad_arg" "$EVS" --db "$T/bad" $bad_arg append s T '{}'
    has "bad $bad_arg: names the option" "$T/err" "${bad_arg%% *}"
done
run 2 "--segment-size out of range names the limits" "$EVS" --db "$T/bad" --segment-size 1000 head
has "segment size limits" "$T/err" "1M..1G"
run 2 "--snapshot-keep out of range names the limits" "$EVS" --db "$T/bad" --snapshot-keep 0 head
has "snapshot keep limits" "$T/err" "1..1000"
run 2 "missing value" "$EVS" --db "$T/bad" --max-event-size
run 2 "bad EVS_SNAPSHOT_KEEP" env EVS_SNAPSHOT_KEEP=x "$EVS" --db "$T/bad" append s T '{}'
has "names the variable" "$T/err" "EVS_SNAPSHOT_KEEP"
run 2 "bad EVS_SEGMENT_SIZE" env EVS_SEGMENT_SIZE=5 "$EVS" --db "$T/bad" append s T '{}'
has "names the variable" "$T/err" "EVS_SEGMENT_SIZE"
run 0 "a good option hides a bad variable" env EVS_MAX_EVENT_SIZE=x "$EVS" --db "$T/bad" --max-event-size 1M append s T '{}'
run 0 "an empty variable is unset" env EVS_SNAPSHOT_KEEP= "$EVS" head

# --- a negative number is a value, not an unknown option ---------------------
run 2 "checkpoint set c1 -1" "$EVS" checkpoint set c1 -1
lacks "checkpoint -1: not an unknown option" "$T/err" "unknown option"
has "checkpoint -1: says what a token is" "$T/err" ">= 0"
has "checkpoint -1: quotes the value" "$T/err" "'-1'"
run 2 "token-at -1" "$EVS" token-at -1
lacks "token-at -1: not an unknown option" "$T/err" "unknown option"
has "token-at -1: says what TIME is" "$T/err" "TIME"
run 0 "token-at -- -1 is 1 µs before 1970" "$EVS" token-at -- -1
same "token-at -- -1" "$(cat "$T/out")" 0
run 2 "read --from -3" "$EVS" read s-1 --from -3
lacks "read --from -3: not an unknown option" "$T/err" "unknown option"

# --- a huge argument is quoted cut -------------------------------------------
huge=$(head -c 120000 /dev/zero | tr '\0' a)
for args in "$huge" "--$huge" "read s-1 --from $huge" "read s-1 --from=$huge" \
            "append s-1 T {} --expect $huge" "checkpoint $huge" "all --limit $huge"; do
    # shellcheck disable=SC2086
    run 2 "huge argument (${args:0:12}…)" "$EVS" $args
    size=$(wc -c <"$T/err" | tr -d ' ')
    if [ "$size" -lt 400 ]; then ok; else bad "huge argument (${args:0:12}…): $size bytes of message"; fi
    has "huge argument (${args:0:12}…): its size said" "$T/err" "bytes)"
done

# --- subscribe: no 'token:' after a usage error -------------------------------
run 2 "subscribe with an empty category" "$EVS" subscribe --category ''
lacks "no token after a usage error" "$T/err" "token:"
run 2 "subscribe with a bad --limit" "$EVS" subscribe --limit x
lacks "no token after a bad --limit" "$T/err" "token:"
run 0 "subscribe --limit 1" "$EVS" subscribe --limit 1
has "a subscription that ran prints its token" "$T/err" "token: 1"

# --- every command's --help lists its exit statuses ---------------------------
cmds=$("$EVS" --help | sed -n '/^Commands:/,/^$/p' | awk 'NF > 1 {print $1}')
[ -n "$cmds" ] && ok || bad "no commands in evs --help"
for c in $cmds; do
    run 0 "$c --help" "$EVS" "$c" --help
    has "$c --help lists exit statuses" "$T/out" "Exit status"
    tr '\n' ' ' <"$T/out" | tr -s ' ' >"$T/help1"
    has "$c --help: 2 is a usage error" "$T/help1" "2 usage error"
done
run 0 "evs --help" "$EVS" --help
has "evs --help lists the store options" "$T/out" "--max-event-size"

summary
