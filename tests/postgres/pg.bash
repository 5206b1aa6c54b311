# pg.bash -- a fresh database on the test server, for the scripts in
# tests/postgres/ and tests/readme.sh. Sourced, not run (the name keeps
# ctest's glob of tests/cli/*.sh away from it).
#
#     pg_fresh_db NAME    create database NAME on the server EVS_TEST_PG
#                         names (an admin libpq URI); PG_URI is then its
#                         URI: EVS_TEST_PG with the database name
#                         replaced (postgresql://AUTHORITY/DB?PARAMS)
#     pg_drop_db          drop it again (call it from the EXIT trap)
PSQL=psql
command -v psql >/dev/null 2>&1 || PSQL=/usr/lib/postgresql/15/bin/psql
PG_DB=""
PG_URI=""

pg_fresh_db() {
    local admin=${EVS_TEST_PG:?EVS_TEST_PG names the test server} base params auth
    PG_DB=$1
    base=${admin%%\?*}
    params=${admin#"$base"}
    auth=${base#*://}
    case $auth in */*) auth=${auth%%/*} ;; esac
    PG_URI="${base%%://*}://$auth/$PG_DB$params"
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$admin" -c "CREATE DATABASE $PG_DB" >/dev/null
}

pg_drop_db() {
    if [ -n "$PG_DB" ]; then
        "$PSQL" -X -q -d "$EVS_TEST_PG" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" \
            >/dev/null 2>&1 || true
    fi
}
