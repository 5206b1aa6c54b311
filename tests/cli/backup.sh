#!/usr/bin/env bash
# evs backup: a backup verifies and reads back the store's events; a second
# run into the same directory copies only what is new; a backup made while
# another process appends; refusals and their exit statuses.
# Usage: backup.sh PATH/TO/evs
set -euo pipefail
NAME=cli_backup
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
S="$T/store"
B="$T/bk"

# --- a store of several 1 MiB segments -----------------------------------
run 0 "generate" "$EVS" --db "$S" --segment-size 1M generate --events 6000 --snapshot-every 20 --quiet
n=$(events "$S")
same "source has 6000 events" "$n" 6000

run 0 "backup" "$EVS" --db "$S" backup "$B"
has "backup line" "$T/out" "backup of $S at position 6000: "
has "nothing reused the first time" "$T/out" ", 0 reused (0 bytes)"
if [ ! -s "$T/err" ]; then ok; else bad "backup wrote to stderr: $(head -c 300 "$T/err")"; fi
has "BACKUP records the position" "$B/BACKUP" "position 6000"
run 0 "verify the backup" "$EVS" --db "$B" verify
has "verify: every record" "$T/out" "verify: 6000 records checked, 0 problems"
"$EVS" --db "$S" export >"$T/s.jsonl"
"$EVS" --db "$B" export >"$T/b.jsonl"
if cmp -s "$T/s.jsonl" "$T/b.jsonl"; then ok; else bad "backup's export differs"; fi
run 0 "read back" "$EVS" --db "$B" all --all-tenants --limit 3
same "three events read back" "$(wc -l <"$T/out" | tr -d ' ')" 3

# --- incremental -----------------------------------------------------------
segs1=$(ls "$B/log" | wc -l)
run 0 "generate more" "$EVS" --db "$S" --segment-size 1M generate --events 3000 --seed 2 \
    --force --quiet
run 0 "second backup" "$EVS" --db "$S" backup "$B"
has "second backup's position" "$T/out" "at position 9000: "
reused=$(sed -n 's/.*, \([0-9]*\) reused.*/\1/p' "$T/out")
same "sealed segments reused" "$reused" "$((segs1 - 1))"
run 0 "verify the second backup" "$EVS" --db "$B" verify
has "verify: 9000" "$T/out" "verify: 9000 records checked, 0 problems"
"$EVS" --db "$S" export >"$T/s.jsonl"
"$EVS" --db "$B" export >"$T/b.jsonl"
if cmp -s "$T/s.jsonl" "$T/b.jsonl"; then ok; else bad "second backup's export differs"; fi
run 0 "--quiet" "$EVS" --db "$S" backup "$B" --quiet
same "--quiet prints nothing" "$(cat "$T/out" "$T/err")" ""

# --- restore: a new store with the backup's events and snapshots ----------
R="$T/restored"
run 0 "restore" "$EVS" restore "$B" "$R"
has "restore line" "$T/out" "restored $B at position 9000 into $R"
if [ ! -e "$R/BACKUP" ]; then ok; else bad "the restored store kept BACKUP"; fi
"$EVS" --db "$R" export >"$T/r.jsonl"
if cmp -s "$T/s.jsonl" "$T/r.jsonl"; then ok; else bad "restored export differs"; fi
has "export has snapshots" "$T/r.jsonl" '"kind":"snapshot"'
run 0 "append to the restored store" "$EVS" --db "$R" append r-1 T '{}'
if ! grep -q rebuild "$T/err"; then ok; else bad "restored store rebuilt: $(cat "$T/err")"; fi
run 2 "restore into a non-empty directory" "$EVS" restore "$B" "$R"
run 2 "restore: one argument" "$EVS" restore "$B"

# --- an empty directory (a mount point, say) is filled in place -----------
E="$T/empty"
mkdir "$E"
ino=$(stat -c %i "$E")
run 0 "backup into an empty directory" "$EVS" --db "$S" backup "$E"
same "the same directory, not replaced" "$(stat -c %i "$E")" "$ino"
if [ ! -e "$E/backup.tmp" ]; then ok; else bad "backup.tmp left in a finished backup"; fi
run 0 "verify the in-place backup" "$EVS" --db "$E" verify
has "verify: 9000 in place" "$T/out" "verify: 9000 records checked, 0 problems"

# --- beside a writer (another process holds the store open for writing) ---
W="$T/w"
run 0 "writer store" "$EVS" --db "$W" append a-1 T '{}'
( for i in $(seq 1 15); do "$EVS" --db "$W" append "a-$((i % 5))" T "{\"i\":$i}" \
      >/dev/null 2>&1 || true; done ) &
wpid=$!
sleep 0.1
run 0 "backup beside a writer" "$EVS" --db "$W" backup "$T/wb"
wait "$wpid"
p=$(sed -n 's/.* at position \([0-9]*\):.*/\1/p' "$T/out")
run 0 "verify the writer's backup" "$EVS" --db "$T/wb" verify
has "verify: as many as the position" "$T/out" "verify: $p records checked, 0 problems"
"$EVS" --db "$W" export >"$T/wall.jsonl"
sed -n "1,${p}p" "$T/wall.jsonl" >"$T/w.jsonl"
"$EVS" --db "$T/wb" export >"$T/wb.jsonl"
if cmp -s "$T/w.jsonl" "$T/wb.jsonl"; then ok; else bad "writer's backup differs"; fi

# --- refusals ---------------------------------------------------------------
run 2 "another store's backup" "$EVS" --db "$W" backup "$B"
has "says another store" "$T/err" "another store"
run 2 "a store, not a backup" "$EVS" --db "$W" backup "$S"
has "says not a backup" "$T/err" "not a backup"
mkdir "$T/junk" && echo x >"$T/junk/f"
run 2 "a non-empty directory" "$EVS" --db "$S" backup "$T/junk"
run 2 "inside the store" "$EVS" --db "$S" backup "$S/bk"
run 2 "no DEST" "$EVS" --db "$S" backup
run 2 "two DESTs" "$EVS" --db "$S" backup "$T/x" "$T/y"
run 0 "--help" "$EVS" backup --help
has "help: exit statuses" "$T/out" "Exit status"
run 2 "missing store" "$EVS" --db "$T/none" backup "$T/nb"
if ls -d "$T"/*.tmp-* >/dev/null 2>&1; then bad "a DEST.tmp-* was left"; else ok; fi

summary
