#!/usr/bin/env bash
# evs forget (crypto-shredding, docs/ERASURE.md): events appended with
# --subject read back decrypted; after `evs forget SUBJECT` they read,
# export and back up redacted ("redacted":true, no data), other subjects
# and plain events unchanged; forget is idempotent; an unknown subject and
# an append under a forgotten one are refused; usage errors.
# Usage: forget.sh PATH/TO/evs
set -euo pipefail
NAME=cli_forget
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
S="$T/store"

run 0 "init" "$EVS" --db "$S" init
run 0 "append encrypted" "$EVS" --db "$S" append customer-1 Registered \
    '{"name":"Ada Lovelace"}' --subject person-42 --metadata '{"ip":"192.0.2.42"}' \
    --encrypt-metadata --tag customer:ada
run 0 "append plain" "$EVS" --db "$S" append customer-1 Audited '{"ok":true}'
run 0 "append other subject" "$EVS" --db "$S" append customer-2 Registered \
    '{"name":"Bob Babbage"}' --subject person-43
run 0 "append in a tenant" "$EVS" --db "$S" append customer-1 Registered \
    '{"name":"Ada in acme"}' --subject person-42 --tenant acme

if ! grep -rqF "Lovelace" "$S/log"; then ok; else bad "the plaintext is in the log"; fi
run 0 "read" "$EVS" --db "$S" read customer-1
has "decrypted data" "$T/out" '"data":{"name":"Ada Lovelace"}'
has "decrypted metadata" "$T/out" '"metadata":{"ip":"192.0.2.42"}'
has "subject tag" "$T/out" '"$subject:person-42"'
run 0 "query by subject" "$EVS" --db "$S" query --tag '$subject:person-42'
same "one event of person-42" "$(wc -l <"$T/out" | tr -d ' ')" 1

run 0 "forget" "$EVS" --db "$S" forget person-42
has "forget says so" "$T/err" "person-42 forgotten"
run 0 "forget again" "$EVS" --db "$S" forget person-42
run 1 "forget unknown" "$EVS" --db "$S" forget person-99
has "unknown: says why" "$T/err" "has no key"
run 2 "forget: no subject" "$EVS" --db "$S" forget
run 2 "forget: two subjects" "$EVS" --db "$S" forget a b
run 2 "forget: empty subject" "$EVS" --db "$S" forget ""

run 0 "read after forget" "$EVS" --db "$S" read customer-1
has "redacted" "$T/out" '"redacted":true'
if ! grep -qF "Lovelace" "$T/out" && ! grep -qF "192.0.2.42" "$T/out"; then ok; else
    bad "the forgotten data is still read: $(cat "$T/out")"; fi
has "plain event kept" "$T/out" '"data":{"ok":true}'
run 0 "other subject" "$EVS" --db "$S" read customer-2
has "person-43 still readable" "$T/out" "Bob Babbage"
run 0 "other tenant" "$EVS" --db "$S" read customer-1 --tenant acme
has "acme's person-42 still readable" "$T/out" "Ada in acme"

run 0 "export" "$EVS" --db "$S" export
same "export: one redacted event" "$(grep -c '"redacted":true' "$T/out")" 1
if ! grep -qF "Lovelace" "$T/out"; then ok; else bad "export holds the forgotten data"; fi
run 0 "backup" "$EVS" --db "$S" backup "$T/bk"
run 0 "read the backup" "$EVS" --db "$T/bk" read customer-1
has "backup: redacted" "$T/out" '"redacted":true'
run 0 "backup: other subject" "$EVS" --db "$T/bk" read customer-2
has "backup: person-43 readable" "$T/out" "Bob Babbage"

run 2 "append under a forgotten subject" "$EVS" --db "$S" append customer-1 Registered \
    '{}' --subject person-42
has "refusal names the subject" "$T/err" 'subject "person-42" was forgotten'
run 2 "encrypt metadata without subject" "$EVS" --db "$S" append c-3 T '{}' \
    --metadata '{}' --encrypt-metadata
summary
