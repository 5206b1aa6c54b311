#!/usr/bin/env bash
# `evs bench` on bad input: the right exit status, a message naming the
# problem, nothing measured and nothing written to a store it must not
# touch. (The quick run itself, its accounting and the report's figures
# against the JSON's: tests/test_bench.c.)
# Usage: bench.sh PATH/TO/evs
set -euo pipefail
NAME=cli_bench
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
unset EVS_DB EVS_BENCH_LABEL
# The smallest run, for the cases that would get as far as running.
Q=(--quick --events 20000 --seconds 0.05 --warmup 0 --no-plots)

# nothing_measured NAME: stderr shows no data load and no scenario.
nothing_measured() {
    if grep -qE 'generating|setup|warm-up' "$T/err"; then
        bad "$1: something was measured: $(head -c 300 "$T/err")"
    else ok; fi
}

# --- usage errors: exit 2 ----------------------------------------------------
run 2 "unknown scenario" "$EVS" bench --scenarios bank,nosuch "${Q[@]}" --out "$T/o"
has "unknown scenario named" "$T/err" "nosuch"
has "valid names listed" "$T/err" "bank"
run 2 "empty scenario name" "$EVS" bench --scenarios "bank,,shop" --out "$T/o"
for t in 0 -1 1,0 8,-3 abc 1, ''; do
    run 2 "--threads '$t'" "$EVS" bench --threads "$t" --out "$T/o"
    has "--threads '$t' named" "$T/err" "--threads"
done
for e in 0 -5 abc 1e3; do
    run 2 "--events '$e'" "$EVS" bench --events "$e" --out "$T/o"
    has "--events '$e' named" "$T/err" "--events"
done
for s in 0 -1 abc inf; do
    run 2 "--seconds '$s'" "$EVS" bench --seconds "$s" --out "$T/o"
    has "--seconds '$s' named" "$T/err" "--seconds"
done
run 2 "--warmup -1" "$EVS" bench --warmup -1 --out "$T/o"
run 2 "--seed -1" "$EVS" bench --seed -1 --out "$T/o"
run 2 "--force without --db" "$EVS" bench --force --out "$T/o"
# --peers (issue 20): the PostgreSQL peers asked for by name need a
# server, and the message says how to give one
for p in postgres messagedb sqlite,postgres; do
    run 2 "--peers $p without a server" "$EVS" bench --peers "$p" --out "$T/o"
    has "--peers $p: needs a server" "$T/err" "--pg-throwaway"
done
run 2 "--pg-uri with --pg-throwaway" "$EVS" bench --pg-uri postgresql:///x \
    --pg-throwaway --out "$T/o"
has "--pg-uri with --pg-throwaway named" "$T/err" "not both"
run 2 "--pg-uri ''" "$EVS" bench --pg-uri "" --out "$T/o"
for p in nosuch '' sqlite,, none,sqlite; do
    run 2 "--peers '$p'" "$EVS" bench --peers "$p" --out "$T/o"
    has "--peers '$p' named" "$T/err" "--peers"
done
has "--peers: the valid ones listed" "$T/err" "sqlite"
# --transport (issue 16): grpc or none, nothing else
for t in nosuch '' GRPC grpc,none; do
    run 2 "--transport '$t'" "$EVS" bench --transport "$t" --out "$T/o"
    has "--transport '$t' named" "$T/err" "--transport"
done
has "--transport: the valid ones listed" "$T/err" "grpc, or none"
run 2 "unknown option" "$EVS" bench --nosuch
run 2 "stray argument" "$EVS" bench extra
if [ -e "$T/o" ]; then bad "a usage error created the results directory"; else ok; fi
run 0 "--help" "$EVS" bench --help
has "help names --scenarios" "$T/out" "--scenarios"
run 0 "--list" "$EVS" bench --list
has "--list names bank" "$T/out" "bank"

# --- results directory that cannot be written: exit 1 before measuring ------
echo x >"$T/file"
mkdir -p "$T/dir"
run 1 "--out under a regular file" "$EVS" bench "${Q[@]}" --out "$T/file/results" --dir "$T/dir"
has "--out reason" "$T/err" "$T/file"
nothing_measured "--out unwritable"
same "no temporary store left in --dir" "$(ls -A "$T/dir")" ""

# --- a --db that cannot be opened: exit 1, a clean message ------------------
run 1 "--db is a regular file" "$EVS" bench "${Q[@]}" --db "$T/file" --out "$T/o1"
has "--db reason" "$T/err" "cannot open"
nothing_measured "--db unopenable"
mkdir -p "$T/notastore"
echo x >"$T/notastore/something"
run 1 "--db a non-empty directory that is not a store" "$EVS" bench "${Q[@]}" --db "$T/notastore" --out "$T/o1"
nothing_measured "--db not a store"
same "not-a-store untouched" "$(ls -A "$T/notastore")" "something"

# --- a store with events, without --force: refused, unchanged ---------------
S=$T/store
"$EVS" --db "$S" append acct-1 Opened '{"a":1}' >/dev/null
"$EVS" --db "$S" append acct-1 Renamed '{"a":2}' >/dev/null
before=$("$EVS" --db "$S" stats)
run 1 "non-empty store without --force" "$EVS" bench "${Q[@]}" --db "$S" --out "$T/o2"
has "refusal names --force" "$T/err" "--force"
nothing_measured "non-empty store"
same "store unchanged (stats)" "$("$EVS" --db "$S" stats)" "$before"
# the global --db counts the same
run 1 "global --db, non-empty store" "$EVS" --db "$S" bench "${Q[@]}" --out "$T/o2"
same "store unchanged (global --db)" "$("$EVS" --db "$S" stats)" "$before"
# $EVS_DB does not: the bench uses a fresh store, never the one the shell
# points at; the fresh store's temporary directory is removed after.
run 0 "EVS_DB ignored" env EVS_DB="$S" "$EVS" bench "${Q[@]}" --scenarios tokens --threads 1 --out "$T/o4"
same "store unchanged (EVS_DB)" "$("$EVS" --db "$S" stats)" "$before"
same "fresh store removed" "$(ls -d "$T"/o4/evs-bench-* 2>/dev/null || true)" ""
has "report written" "$T/o4/report.md" "tokens"

# --- small data: a generated tenant may get no events -----------------------
# With a few hundred events some of the ten tenants are empty; the tokens
# scenario picks among those that got events (an empty tenant's head is 0).
for seed in 1 2 3; do
    run 0 "tokens on 500 events, seed $seed" "$EVS" bench --quick --events 500 --seed "$seed" --scenarios tokens --threads 1 --seconds 0.05 --warmup 0 --no-plots --out "$T/o5"
done

# --- --db --force on a store with events: the generated data is added ------
# The generator numbers its streams above the store's head (as `evs generate
# --force` does); without that, the same seed gives the same ids again and
# the store takes them as retries of events it holds: nothing is added.
F=$T/forced
"$EVS" --db "$F" generate --events 3000 --quiet >/dev/null
run 0 "--force on a generated store" "$EVS" bench --db "$F" --force --quick --events 3000 --scenarios tokens --threads 1 --seconds 0.05 --warmup 0 --no-plots --out "$T/o6"
same "--force adds the generated events" "$(events "$F")" 6000

# --- SIGTERM and SIGINT: the fresh store is removed, exit 128 + signal ------
# interrupt SIG STATUS: start a long level, signal it once the level runs.
interrupt() {
    local sig=$1 want=$2 got=0 d=$T/int-$1
    mkdir -p "$d"
    # a background job of a script ignores SIGINT; env gives it back
    env --default-signal=INT "$EVS" bench --quick --events 2000 --scenarios tokens --threads 1 --seconds 60 --warmup 0 --no-plots --out "$d" 2>"$d.err" >/dev/null &
    local pid=$!
    for _ in $(seq 200); do
        grep -q "warm-up" "$d.err" && break
        sleep 0.05
    done
    kill -s "$sig" "$pid"
    wait "$pid" || got=$?
    same "$sig: exit status" "$got" "$want"
    same "$sig: fresh store removed" "$(ls -d "$d"/evs-bench-* 2>/dev/null || true)" ""
    if [ -e "$d/report.json" ]; then bad "$sig: a cut run wrote a report"; else ok; fi
}
interrupt TERM 143
interrupt INT 130

# --- a store another process holds for writing: exit 1, nothing written -----
# `evs import` holds the store open for writing while it waits for input.
fifo=$T/fifo
mkfifo "$fifo"
"$EVS" --db "$S" import <"$fifo" >/dev/null 2>&1 &
holder=$!
exec 7>"$fifo" # the writer end, kept open until the end of the case
held=0
for _ in $(seq 100); do
    # import has opened the store once it holds the store's LOCK file
    if ls -l "/proc/$holder/fd" 2>/dev/null | grep -q "$S/LOCK"; then
        held=1
        break
    fi
    sleep 0.1
done
same "the holder opened the store" "$held" 1
# The holder is a writer: its open goes on after it takes LOCK, and a
# read-write open sets the index file to its map's size (LMDB's ftruncate
# with MDB_WRITEMAP), which lets go of the blocks the last writer reserved
# ahead (fallocate KEEP_SIZE): index_bytes, the blocks, drops from 64 MiB
# to 16 MiB whenever that happens, between the two stats or before both.
# That is the holder's doing, not the bench's: compare what a write by the
# bench would change (events, streams, tenants, head, log), not the index's
# blocks. (A read-only open changes nothing: the cases above compare all.)
stats_written() {
    "$EVS" --db "$S" stats | sed -E 's/"(index_bytes|bytes_on_disk)":[0-9]+,?//g'
}
before=$(stats_written)
run 1 "store held by a writer, --force" "$EVS" bench "${Q[@]}" --db "$S" --force --out "$T/o3"
has_i "held store reason" "$T/err" "open for writing"
nothing_measured "held store"
same "held store unchanged" "$(stats_written)" "$before"
exec 7>&-
wait "$holder" || true

summary
