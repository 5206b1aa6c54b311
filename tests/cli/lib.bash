# lib.bash -- what the tests/cli/*.sh scripts share. Sourced, not a test
# itself (ctest runs tests/cli/*.sh, hence the name). A script sets NAME
# and sources it with its own arguments:
#
#     set -euo pipefail
#     NAME=cli_something
#     . "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
#
# and ends with `summary`. It gets EVS (the evs under test, $1), T (a
# temporary directory, removed at exit) and the checks below, each
# counting a pass or printing a FAIL line.
EVS=${1:?usage: $0 PATH/TO/evs}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
failed=0

ok() { pass=$((pass + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# run WANT_STATUS NAME CMD...: run, keep stdout in $T/out and stderr in
# $T/err, check the exit status.
run() {
    local want=$1 name=$2 got=0
    shift 2
    "$@" >"$T/out" 2>"$T/err" || got=$?
    if [ "$got" -eq "$want" ]; then ok; else
        bad "$name: exit $got, want $want; stderr: $(head -c 300 "$T/err")"
    fi
}
# has NAME FILE TEXT: FILE contains the fixed string TEXT; has_i: in any
# case.
has_with() {
    if grep "$1" -- "$4" "$3"; then ok; else
        bad "$2: '$4' not in $(head -c 400 "$3")"
    fi
}
has() { has_with -qF "$@"; }
has_i() { has_with -qiF "$@"; }
# same NAME GOT WANT
same() {
    if [ "$2" = "$3" ]; then ok; else bad "$1: got '$2', want '$3'"; fi
}
# field KEY FILE: the first number after "KEY": in FILE.
field() { sed -n "s/.*\"$1\":\\([0-9-]*\\).*/\\1/p" "$2" | head -n 1; }
# events [DB]: the event count of DB (default: $EVS_DB).
events() {
    "$EVS" ${1:+--db "$1"} stats | sed -n 's/.*"events":\([0-9]*\).*/\1/p'
}

summary() {
    echo "$NAME: $pass passed, $failed failed"
    [ "$failed" -eq 0 ]
}
