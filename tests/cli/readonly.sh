#!/usr/bin/env bash
# A store the user cannot write (a read-only mount, `chmod -R a-w`, another
# user's store): every read command works and prints what it prints on the
# writable store; writing fails with exit 1 saying why; blocking reads
# (--follow) print what there is, then fail saying why they cannot wait;
# an index that cannot be trusted is not rebuilt but named as needing a
# read-write open; and nothing in the store changes.
#
# Made read-only by a read-only bind mount when running as root (CI runs
# as root, for whom chmod restricts nothing); else by `chmod -R a-w`, read
# as the user `nobody` (root without mounts) or as oneself (not root).
# Exit 77 (skipped) when none of these is possible.
# Usage: readonly.sh PATH/TO/evs
set -euo pipefail
NAME=cli_readonly
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

W="$T/w"          # the writable directory holding the stores
RO="$T/ro"        # the same, read-only (a bind mount), or $W after chmod
mkdir -p "$W" "$RO"
S="$W/s"
AS=()             # the command prefix that reads as a user who cannot write

# ---- a store with events of two streams, tags, a snapshot, a checkpoint ------
export EVS_DB="$S"
"$EVS" append acct-1 Opened '{"owner":"ann"}' --tag owner:ann >/dev/null
"$EVS" append acct-1 Deposited '{"amount":10}' >/dev/null
"$EVS" append acct-2 Opened '{"owner":"bob"}' --tag owner:bob >/dev/null
"$EVS" snapshot save acct-1 1 --schema Account --data '{"balance":10}' >/dev/null
"$EVS" checkpoint set mailer 2 >/dev/null
unset EVS_DB
# a copy made file by file: its index cannot be trusted (state.c)
cp -a "$S" "$W/copy"

# what the read commands print on the writable store
reads=("read acct-1" "all" "query --tag owner:bob" "stats" "verify" "head"
       "snapshot load acct-1" "checkpoint get mailer" "export")
i=0
for c in "${reads[@]}"; do
    # shellcheck disable=SC2086
    "$EVS" --db "$S" $c >"$T/want.$i" 2>&1 || echo "exit $?" >>"$T/want.$i"
    i=$((i + 1))
done

# ---- make it read-only ----------------------------------------------------------
mode=
if [ "$(id -u)" -eq 0 ] && mount --bind "$W" "$RO" 2>/dev/null; then
    trap 'umount "$RO" 2>/dev/null || umount -l "$RO" 2>/dev/null; rm -rf "$T"' EXIT
    if mount -o remount,ro,bind "$RO" 2>/dev/null; then
        mode=mount
    else
        umount "$RO"
    fi
fi
if [ -z "$mode" ]; then
    chmod -R a-w "$W"
    trap 'chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT
    RO="$W"
    if [ "$(id -u)" -ne 0 ]; then
        mode=chmod
    elif command -v runuser >/dev/null && id nobody >/dev/null 2>&1; then
        chmod a+rx "$T"
        if runuser -u nobody -- test -x "$EVS" -a -r "$S/state" 2>/dev/null; then
            mode="chmod, as nobody"
            AS=(runuser -u nobody --)
        fi
    fi
fi
if [ -z "$mode" ]; then
    echo "$NAME: SKIPPED (no read-only mount, and no user for whom chmod -R a-w restricts)"
    exit 77
fi
echo "$NAME: read-only by $mode"
find "$W" -printf '%P %s %T@ %m\n' | sort >"$T/before"

# ---- every read command prints what it printed before ----------------------------
i=0
for c in "${reads[@]}"; do
    # shellcheck disable=SC2086
    "${AS[@]}" "$EVS" --db "$RO/s" $c >"$T/got.$i" 2>&1 || echo "exit $?" >>"$T/got.$i"
    same "read-only: evs $c prints the same" "$(cat "$T/got.$i")" "$(cat "$T/want.$i")"
    i=$((i + 1))
done

# ---- writing fails, saying why --------------------------------------------------
run 1 "read-only: append fails" "${AS[@]}" "$EVS" --db "$RO/s" append acct-1 Deposited '{}'
has "read-only: append says the store cannot be written" "$T/err" "cannot be written"
has_i "read-only: append says why" "$T/err" "$([ "$mode" = mount ] && echo "read-only file system" || echo "permission denied")"
run 1 "read-only: checkpoint set fails" "${AS[@]}" "$EVS" --db "$RO/s" checkpoint set mailer 3
has "read-only: checkpoint set says the store cannot be written" "$T/err" "cannot be written"
run 1 "read-only: snapshot save fails" "${AS[@]}" "$EVS" --db "$RO/s" snapshot save acct-1 1 \
    --schema Account --data '{}'

# ---- blocking reads: what there is, then a clear failure -------------------------
run 1 "read-only: all --follow fails" timeout 10 "${AS[@]}" "$EVS" --db "$RO/s" all --follow
same "read-only: all --follow prints the events first" "$(cat "$T/out")" "$(cat "$T/want.1")"
has "read-only: all --follow says it cannot wait" "$T/err" "cannot wait for commits"
has "read-only: all --follow says why" "$T/err" "lock.mdb"
run 1 "read-only: read --follow fails" timeout 10 "${AS[@]}" "$EVS" --db "$RO/s" read acct-1 --follow
has "read-only: read --follow says it cannot wait" "$T/err" "cannot wait for commits"

# ---- an untrusted index is not rebuilt: the message says who can ------------------
run 1 "read-only copy: read fails" "${AS[@]}" "$EVS" --db "$RO/copy" read acct-1
has "read-only copy: the index cannot be trusted" "$T/err" "index cannot be trusted"
has "read-only copy: a read-write open must rebuild it" "$T/err" \
    "must be rebuilt from the log by a read-write open"
has "read-only copy: by a user who can write" "$T/err" "who can write the store"

# ---- nothing changed ------------------------------------------------------------
find "$W" -printf '%P %s %T@ %m\n' | sort >"$T/after"
same "the read-only store is unchanged (files, sizes, times)" \
    "$(diff "$T/before" "$T/after" || true)" ""

# ---- a writer through another (writable) path: the reader that cannot take
# part in LMDB's reader locks does not read beside it (exit 4, store busy) --
if [ "$mode" = mount ]; then
    "$EVS" --db "$W/busy" append a E '{}' >/dev/null
    sleep 3 | "$EVS" --db "$W/busy" import >/dev/null 2>&1 &
    holder=$!
    sleep 0.5
    run 4 "read-only beside a writer: busy" "$EVS" --db "$RO/busy" read a
    has "read-only beside a writer: says a writer has it" "$T/err" \
        "open for writing in another process"
    wait "$holder" || true
    run 0 "read-only after the writer: reads" "$EVS" --db "$RO/busy" read a
fi

summary
