#!/usr/bin/env bash
# Messages a new user meets when a store's files are not as the store left
# them: a missing index/, a replaced or overwritten index/data.mdb (the
# index is derived from the log: it is rebuilt, and the message says so),
# a segment cut short or of another size (what is wrong, in words, not two
# equal numbers said to differ). Each store still reads every event after
# an index problem.
# Usage: messages.sh PATH/TO/evs
set -euo pipefail
NAME=cli_messages
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
D="$T/s"
"$EVS" --db "$D" append s-1 E '{"n":1}' >/dev/null
"$EVS" --db "$D" append s-1 E '{"n":2}' >/dev/null

rm -rf "$D/index"
run 0 "read without index/" "$EVS" --db "$D" read s-1
has "missing index named" "$T/err" "index/data.mdb is missing"
has "missing index: derived" "$T/err" "the index is derived from the log, which holds every event"
same "missing index: every event read" "$(grep -c '"type":"E"' "$T/out")" 2

"$EVS" --db "$D" append s-1 E '{"n":3}' >/dev/null # a writer made index/ again
head -c 65536 /dev/urandom >"$T/random"
cp "$T/random" "$D/index/data.mdb.new" && mv "$D/index/data.mdb.new" "$D/index/data.mdb"
run 0 "read with a replaced data.mdb" "$EVS" --db "$D" read s-1
has "replaced index named" "$T/err" "index/data.mdb is not the file this store wrote"
has "replaced index: derived" "$T/err" "the index is derived from the log"
same "replaced index: every event read" "$(grep -c '"type":"E"' "$T/out")" 3

"$EVS" --db "$D" append s-1 E '{"n":4}' >/dev/null
dd if="$T/random" of="$D/index/data.mdb" bs=4096 count=4 conv=notrunc status=none
run 0 "read with an overwritten data.mdb" "$EVS" --db "$D" read s-1
has "overwritten index named" "$T/err" "index/data.mdb changed after the store was closed"
same "overwritten index: every event read" "$(grep -c '"type":"E"' "$T/out")" 4

# A segment cut short: said in words, with the two different sizes.
cp -r "$D" "$T/cut"
seg=$(ls "$T/cut"/log/*.evslog)
truncate -s 1000000 "$seg"
run 1 "read of a store with a cut segment" "$EVS" --db "$T/cut" read s-1
has "cut segment: sizes" "$T/err" "the file is 1000000 bytes, but a segment is 67108864 bytes"
has "cut segment: cut short" "$T/err" "the file was cut short"
if grep -q "67108864 .*differs from .*67108864" "$T/err"; then
    bad "equal sizes said to differ: $(cat "$T/err")"
else ok; fi
run 1 "verify of a store with a cut segment" "$EVS" --db "$T/cut" verify
has "verify: cut segment" "$T/out" "the file was cut short"

# A segment of another store's size after the first one.
"$EVS" --db "$T/big" --segment-size 2M append s-1 E '{}' >/dev/null
{ printf '"'; head -c 200000 /dev/zero | tr '\0' 'x'; printf '"'; } >"$T/big.json"
for i in 1 2 3 4 5 6; do
    "$EVS" --db "$T/small" --segment-size 1M append s-1 E - <"$T/big.json" >/dev/null
done
cp "$T/small/log/0000000000000002.evslog" "$T/big/log/0000000000000002.evslog"
run 1 "a segment of another size" "$EVS" --db "$T/big" read s-1
has "another size: said" "$T/err" "every segment of a store has the same size"

summary
