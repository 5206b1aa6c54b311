#!/usr/bin/env bash
# Runs the README's shell walkthrough as a new user would: each "$ " line
# (with its "\" continuation lines) in order, in one directory, with `evs`
# on PATH, and checks that it exits 0 and prints what the README shows
# after it (stdout and stderr together; "..." stands for any text, a
# trailing "  # comment" is not part of the output; no lines shown: any
# output). Paths under /tmp/ become paths under a temporary directory.
#
#   readme.sh README.md PATH/TO/evs embedded     the block after the first
#                                                 "tests/readme.sh runs" mark
#   readme.sh README.md PATH/TO/evs postgresql   that block, then the one
#       after the second mark, with EVS_TEST_PG an admin URI: "createdb
#       shop" makes a fresh database there, whose URI replaces
#       postgresql:///shop?host=/run/postgresql
set -euo pipefail
README=${1:?usage: $0 README.md PATH/TO/evs embedded|postgresql}
EVS=$(cd "$(dirname "${2:?}")" && pwd)/$(basename "$2")
MODE=${3:?}
T=$(mktemp -d)
. "$(dirname "${BASH_SOURCE[0]}")/postgres/pg.bash"
trap 'pg_drop_db; rm -rf "$T"' EXIT
pass=0
failed=0
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

case $MODE in
embedded | postgresql) ;;
*) echo "readme.sh: mode is embedded or postgresql" >&2; exit 2 ;;
esac

# The fenced block after the nth mark, without its fences, into FILE.
block() { # block N FILE
    awk -v nth="$1" '
        /<!-- tests\/readme.sh runs/ { marks++; if (marks == nth) want = 1; next }
        want && /^```/ { if (inside) exit; inside = 1; next }
        want && inside { print }
    ' "$README" >"$2"
    [ -s "$2" ] || { echo "readme.sh: no block after mark $1 in $README" >&2; exit 1; }
}

# The walkthrough's directory. The PostgreSQL block imports the first
# block's backup.jsonl: in that mode the first block runs first, in the
# same directory.
mkdir -p "$T/work" "$T/tmp"
export PATH="$(dirname "$EVS"):$PATH"
unset EVS_DB EVS_WAIT

# ${s//old/new} with a "&" in new (the URI's parameters) must not insert
# the match (bash 5.2's patsub_replacement)
shopt -u patsub_replacement 2>/dev/null || true
# /tmp/ paths, and the PostgreSQL URI, as this run has them.
subst() {
    local s=$1
    s=${s//\/tmp\//$T/tmp/}
    if [ -n "$PG_URI" ]; then s=${s//postgresql:\/\/\/shop?host=\/run\/postgresql/$PG_URI}; fi
    printf '%s' "$s"
}

# expected line -> glob pattern: glob characters escaped, "..." -> *
pattern() {
    local s=$1 out="" c i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        if [ "${s:i:3}" = "..." ]; then out+="*"; i=$((i + 2)); continue; fi
        case $c in '*' | '?' | '[' | ']' | '\') out+="\\$c" ;; *) out+="$c" ;; esac
    done
    printf '%s' "$out"
}

check() { # check CMD EXPECTED_FILE
    local cmd=$1 want=$2 got=0 i pat g
    # `export NAME=VALUE` holds for the lines after it, as in a shell
    if [[ $cmd =~ ^export\ ([A-Z_]+)=([^ ]+) ]]; then
        export "${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"
        pass=$((pass + 1))
        return
    fi
    (cd "$T/work" && bash -c "$cmd") >"$T/got" 2>&1 || got=$?
    if [ "$got" -ne 0 ]; then
        bad "\$ $cmd: exit $got; output: $(head -c 400 "$T/got")"
        return
    fi
    [ -s "$want" ] || { pass=$((pass + 1)); return; }
    mapfile -t G <"$T/got"
    mapfile -t W <"$want"
    if [ "${#G[@]}" -ne "${#W[@]}" ]; then
        bad "\$ $cmd: ${#G[@]} lines, the README shows ${#W[@]}: $(head -c 400 "$T/got")"
        return
    fi
    for ((i = 0; i < ${#W[@]}; i++)); do
        pat=$(pattern "${W[i]}")
        g=${G[i]}
        # shellcheck disable=SC2053
        if [[ $g != $pat ]]; then
            bad "\$ $cmd: line $((i + 1)) is '${g:0:200}', the README shows '${W[i]}'"
            return
        fi
    done
    pass=$((pass + 1))
}

run_block() { # run_block BLOCK_FILE
    local cmd="" line
    : >"$T/want"
    while IFS= read -r line || [ -n "$line" ]; do
        if [ -n "$cmd" ] && [ "${cmd: -1}" = "\\" ]; then # a continuation line
            cmd="$cmd"$'\n'"$line"
            continue
        fi
        if [ "${line:0:2}" = '$ ' ]; then
            [ -n "$cmd" ] && check "$(subst "$cmd")" "$T/want"
            cmd=${line:2}
            : >"$T/want"
            if [ "$MODE" = postgresql ] && [ "${cmd%% *}" = createdb ]; then
                pg_fresh_db "evs_readme_$$"
                pass=$((pass + 1))
                cmd=""
            fi
        elif [ -n "$cmd" ]; then
            # expected output, without a trailing comment
            line=$(printf '%s' "$line" | sed -E 's/ {2,}# .*$//')
            subst "$line" >>"$T/want"
            printf '\n' >>"$T/want"
        fi
    done <"$1"
    [ -n "$cmd" ] && check "$(subst "$cmd")" "$T/want"
    return 0
}

block 1 "$T/block1"
run_block "$T/block1"
if [ "$MODE" = postgresql ]; then
    block 2 "$T/block2"
    run_block "$T/block2"
fi
echo "readme ($MODE): $pass passed, $failed failed"
[ "$failed" -eq 0 ]
