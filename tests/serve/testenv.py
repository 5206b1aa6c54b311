"""What the `evs serve` tests share beyond either client stack
(grpc_test.py through servelib.py, http_test.py): a free loopback port and
a throwaway PostgreSQL database. Standard library only."""

import os
import shutil
import socket
import subprocess

PSQL = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"


def free_port():
    """A loopback port free right now (bind port 0, read it, close)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class PgDatabase:
    """A fresh database on the PostgreSQL server EVS_TEST_PG names (an admin
    libpq URI, as tests/postgres/pg.bash): uri is its URI, drop() drops it."""

    def __init__(self, name):
        admin = os.environ.get("EVS_TEST_PG", "")
        if not admin:
            raise SystemExit("--pg needs EVS_TEST_PG (an admin libpq URI; ctest sets it, "
                             "see tests/CMakeLists.txt)")
        self.admin = admin
        self.name = name
        base, q, params = admin.partition("?")
        scheme, _, rest = base.partition("://")
        auth = rest.split("/", 1)[0]
        self.uri = "%s://%s/%s%s%s" % (scheme, auth, name, q, params)
        r = subprocess.run([PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", admin,
                            "-c", "CREATE DATABASE %s" % name], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit("CREATE DATABASE %s failed: %s" % (name, r.stderr))

    def drop(self):
        subprocess.run([PSQL, "-X", "-q", "-d", self.admin, "-c",
                        "DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.name],
                       capture_output=True, text=True)
