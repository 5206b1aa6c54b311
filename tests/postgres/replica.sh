#!/usr/bin/env bash
# Reads from a hot standby (docs/POSTGRES.md, "Reads from a replica"):
#
#   tests/postgres/replica.sh REPLICA_CLIENT
#
# Starts a throwaway primary (wal_level replica; a Unix socket only, no
# TCP, as scripts/pg-cluster.sh) that accepts replication connections on
# its socket, makes a streaming standby of it with `pg_basebackup -R`,
# starts the standby (hot_standby, a socket of its own), runs
# tests/postgres/replica_client.c against both, and stops and deletes both
# clusters whatever happens. initdb and the base backup skip their fsync
# (-N: nothing here must survive a crash); the servers keep fsync on. As
# root the servers run as `postgres`, as in pg-cluster.sh.
set -euo pipefail

bin=${1:?usage: $0 REPLICA_CLIENT}
pgbin=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PPORT=54341
SPORT=54342

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

base=$(mktemp -d /tmp/evs-replica-XXXXXX)
chmod 755 "$base"
primary=$base/p
standby=$base/s

cleanup() {
  set +e
  for d in "$standby" "$primary"; do
    if [ -f "$d/data/postmaster.pid" ]; then
      as_owner "$pgbin/pg_ctl" -D "$d/data" -m immediate -w -t 30 stop >/dev/null 2>&1
    fi
  done
  rm -rf "$base"
}
trap cleanup EXIT

# start_server DIR: start the cluster in DIR/data, log in DIR/postgres.log
start_server() {
  : >"$1/postgres.log"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$1/postgres.log"; fi
  if ! as_owner "$pgbin/pg_ctl" -D "$1/data" -l "$1/postgres.log" -w -t 60 \
         start >/dev/null 2>&1; then
    echo "replica.sh: the server in $1 did not start:" >&2
    tail -n 30 "$1/postgres.log" >&2
    exit 1
  fi
}

t0=$(date +%s%N)
mkdir -p "$primary" "$standby"
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$primary" "$standby"; fi
chmod 700 "$primary" "$standby"
if ! as_owner "$pgbin/initdb" -N -D "$primary/data" -U postgres -A trust -E UTF8 \
       --locale=C.UTF-8 >"$base/initdb.log" 2>&1; then
  echo "replica.sh: initdb failed:" >&2
  cat "$base/initdb.log" >&2
  exit 1
fi
cat >>"$primary/data/postgresql.conf" <<EOF

# tests/postgres/replica.sh: the primary
listen_addresses = ''
unix_socket_directories = '$primary'
port = $PPORT
fsync = on
wal_level = replica
max_wal_senders = 4
log_min_messages = warning
EOF
# local connections, replication ones included, are trusted; no TCP
printf 'local all all trust\nlocal replication all trust\n' >"$primary/data/pg_hba.conf"
start_server "$primary"
puri="postgresql:///postgres?host=$primary&port=$PPORT&user=postgres"

if ! as_owner "$pgbin/pg_basebackup" -N -D "$standby/data" -R -X stream -c fast \
       -d "host=$primary port=$PPORT user=postgres" >"$base/basebackup.log" 2>&1; then
  echo "replica.sh: pg_basebackup failed:" >&2
  cat "$base/basebackup.log" >&2
  exit 1
fi
# the copied postgresql.conf names the primary's socket: the standby's own
cat >>"$standby/data/postgresql.conf" <<EOF

# tests/postgres/replica.sh: the standby
unix_socket_directories = '$standby'
port = $SPORT
hot_standby = on
EOF
start_server "$standby"
suri="postgresql:///postgres?host=$standby&port=$SPORT&user=postgres"
# it must be a standby
state=$("$pgbin/psql" -X -At -d "$suri" -c "SELECT pg_is_in_recovery()")
if [ "$state" != t ]; then
  echo "replica.sh: the standby is not in recovery ($state)" >&2
  exit 1
fi
t1=$(date +%s%N)
echo "clusters up in $(( (t1 - t0) / 1000000 )) ms"

"$bin" "$puri" "$suri"
t2=$(date +%s%N)
echo "test ran in $(( (t2 - t1) / 1000000 )) ms"
