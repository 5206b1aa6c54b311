#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the test suite (tests/README.md).
#
#   scripts/pg-cluster.sh start DIR [PORT]   initdb into DIR/data, start it,
#                                            print the libpq URI of the
#                                            maintenance database "postgres"
#   scripts/pg-cluster.sh stop DIR           stop it and delete DIR/data
#                                            (idempotent; works after any
#                                            failure, also of `start`)
#   scripts/pg-cluster.sh uri DIR [PORT]     print the URI only
#
# The server listens on a Unix socket in DIR only (listen_addresses = '':
# no TCP port, so clusters never clash; PORT, default 54329, only names the
# socket file DIR/.s.PGSQL.PORT). fsync stays on: the tests measure the
# durable behaviour. Authentication (pg_hba.conf): the role evs_pw (password
# EVS_PW_PASSWORD below, for the wrong-password test) needs its password
# (scram-sha-256); every other local connection is trusted. The superuser
# is "postgres".
#
# initdb and postgres refuse to run as root: as root they run as the
# `postgres` user (runuser), which then owns DIR. DIR/postgres.log is the
# server log; it is kept by `stop` for a post-mortem.
set -euo pipefail

EVS_PW_PASSWORD="evs-pw-secret"
DEFAULT_PORT=54329

usage() {
  echo "usage: $0 start|stop|uri DIR [PORT]" >&2
  exit 2
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
port=${3:-$DEFAULT_PORT}
case $port in '' | *[!0-9]*) echo "pg-cluster: bad port '$port'" >&2; exit 2 ;; esac

find_bin() {
  local d
  for d in "${PG_BINDIR:-}" /usr/lib/postgresql/15/bin; do
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return 0
    fi
  done
  echo "pg-cluster: PostgreSQL 15 server binaries not found in /usr/lib/postgresql/15/bin" \
       "(install postgresql-15: scripts/install-deps.sh, or set PG_BINDIR)" >&2
  return 1
}

# Run a server binary as the cluster's owner.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# libpq URI of database $1: percent-encode the socket directory.
uri_of() {
  local db=$1 enc="" c i LC_ALL=C
  for ((i = 0; i < ${#dir}; i++)); do
    c=${dir:i:1}
    case $c in
      [A-Za-z0-9/._~-]) enc+=$c ;;
      *) enc+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  echo "postgresql:///$db?host=$enc&port=$port&user=postgres"
}

abs_dir() {
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
}

do_stop() {
  local bin pid data=$dir/data
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd -P)
  data=$dir/data
  if [ -f "$data/postmaster.pid" ]; then
    pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
    if bin=$(find_bin 2>/dev/null); then
      as_owner "$bin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
        as_owner "$bin/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    # Whatever is left (pg_ctl missing, a hung server): kill the postmaster,
    # which takes its children with it.
    case $pid in
      '' | *[!0-9]*) ;;
      *)
        if kill -0 "$pid" 2>/dev/null && grep -q postgres "/proc/$pid/cmdline" 2>/dev/null; then
          kill -QUIT "$pid" 2>/dev/null || true
          for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
          done
          kill -KILL "$pid" 2>/dev/null || true
        fi
        ;;
    esac
  fi
  rm -rf "$data" "$dir/.s.PGSQL.$port" "$dir/.s.PGSQL.$port.lock"
}

do_start() {
  local bin data log sock uri
  bin=$(find_bin)
  abs_dir
  data=$dir/data
  log=$dir/postgres.log
  sock="$dir/.s.PGSQL.$port"
  # sun_path holds 107 bytes.
  if [ ${#sock} -gt 100 ]; then
    echo "pg-cluster: socket path $sock is too long for a Unix socket; use a shorter DIR" >&2
    exit 1
  fi
  # A cluster left over from an earlier run: throw it away.
  do_stop
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
      echo "pg-cluster: running as root but there is no 'postgres' user to run the server as" >&2
      exit 1
    fi
    chown postgres: "$dir"
    chmod 700 "$dir"
    if ! runuser -u postgres -- test -w "$dir"; then
      echo "pg-cluster: user postgres cannot reach $dir (a parent directory is not searchable);" \
           "use a DIR under a world-searchable path such as /tmp" >&2
      exit 1
    fi
  fi
  : >"$log" 2>/dev/null || true
  [ "$(id -u)" -ne 0 ] || chown postgres: "$log"

  if ! as_owner "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 \
         --locale=C.UTF-8 >"$dir/initdb.log" 2>&1; then
    echo "pg-cluster: initdb failed:" >&2
    cat "$dir/initdb.log" >&2
    exit 1
  fi
  cat >>"$data/postgresql.conf" <<EOF

# scripts/pg-cluster.sh: a throwaway cluster for the tests
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
fsync = on
synchronous_commit = on
max_connections = 300
password_encryption = 'scram-sha-256'
logging_collector = off
log_min_messages = warning
EOF
  cat >"$data/pg_hba.conf" <<'EOF'
# scripts/pg-cluster.sh: evs_pw must give its password (the wrong-password
# test); everything else on the socket is trusted. No TCP.
local all evs_pw scram-sha-256
local all all trust
EOF
  if ! as_owner "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null 2>&1; then
    echo "pg-cluster: the server did not start; log $log:" >&2
    tail -n 30 "$log" >&2 || true
    do_stop
    exit 1
  fi
  uri=$(uri_of postgres)
  if ! "$bin/psql" -X -q -v ON_ERROR_STOP=1 -d "$uri" \
         -c "CREATE ROLE evs_pw LOGIN PASSWORD '$EVS_PW_PASSWORD'" >"$dir/setup.log" 2>&1; then
    echo "pg-cluster: creating the role evs_pw failed:" >&2
    cat "$dir/setup.log" >&2
    do_stop
    exit 1
  fi
  echo "$uri" >"$dir/uri"
  echo "$uri"
}

case $cmd in
  start) do_start ;;
  stop) do_stop ;;
  uri) abs_dir; uri_of postgres ;;
  *) usage ;;
esac
