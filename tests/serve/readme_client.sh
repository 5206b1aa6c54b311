#!/usr/bin/env bash
# Runs the README's Node.js client block (the one after the
# "tests/serve/readme_client.sh runs" mark) against `evs serve`, twice, as
# a new user would: the first run registers "ada" and its subscription
# sees the event; the second is refused by the DCB condition (the name is
# taken) and its subscription sees the first run's event, which is stored.
#
#   readme_client.sh README.md PATH/TO/evs
set -euo pipefail
README=$(cd "$(dirname "${1:?usage: $0 README.md PATH/TO/evs}")" && pwd)/$(basename "$1")
EVS=${2:?}
ROOT=$(dirname "$README")
T=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT

awk '/<!-- tests\/serve\/readme_client.sh runs/ { want = 1; next }
     want && /^```/ { if (inside) exit; inside = 1; next }
     want && inside { print }' "$README" >"$T/client.js"
[ -s "$T/client.js" ] || { echo "FAIL: no client block in $README" >&2; exit 1; }

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -i "s/127.0.0.1:50051/127.0.0.1:$port/" "$T/client.js"
"$EVS" serve --db "$T/store" --listen "127.0.0.1:$port" --http off 2>"$T/server.log" &
PID=$!
for _ in $(seq 100); do
    grep -q "serving" "$T/server.log" 2>/dev/null && break
    sleep 0.05
done

run() { (cd "$ROOT" && NODE_PATH="$ROOT/tests/serve/node_modules" timeout 20 node "$T/client.js"); }
fail=0
out1=$(run) || { echo "FAIL: first run exited $?: $out1" >&2; exit 1; }
echo "first run:"; echo "$out1"
grep -qx "registered at 1" <<<"$out1" || { echo "FAIL: first run did not register at 1" >&2; fail=1; }
grep -qx "event 1 Registered" <<<"$out1" || { echo "FAIL: first run's subscription did not see event 1" >&2; fail=1; }
out2=$(run) || { echo "FAIL: second run exited $?: $out2" >&2; exit 1; }
echo "second run:"; echo "$out2"
grep -q "^taken: .*condition" <<<"$out2" || { echo "FAIL: second run was not refused by the condition" >&2; fail=1; }
[ "$(grep -c '^event ' <<<"$out2")" = 1 ] || { echo "FAIL: second run's subscription should see exactly the one stored event" >&2; fail=1; }

kill -TERM "$PID"
wait "$PID" || { echo "FAIL: evs serve exited $? on SIGTERM" >&2; fail=1; }
PID=
[ $fail = 0 ] && echo "readme client: ok"
exit $fail
