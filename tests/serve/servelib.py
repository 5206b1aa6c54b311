"""servelib -- what the Python tests of `evs serve` share (tests/serve/).

Not a test itself. It gives:

  Checks      counts passed and failed checks, prints one line per check
              ("ok: ..." or "FAIL: ..."), ends with "NAME: N passed, N failed"
  load_protos protoc --python_out of tools/serve/proto/*.proto into a
              temporary directory, imported as umadb_pb2 and health_pb2
  Server      one `evs serve` on free loopback ports with its own store
              (a temporary directory, or a fresh PostgreSQL database on the
              server EVS_TEST_PG names), started, probed, stopped by SIGTERM
  Dcb         the umadb.v1.DCB methods (or the old /umadb.UmaDBService/
              path) on a channel, by channel.unary_unary/unary_stream with
              the messages' SerializeToString/FromString: no codegen of
              service stubs, nothing committed that protoc made
  error_of    an RpcError's code, message and grpc-status-details-bin
              trailer parsed as umadb.v1.ErrorResponse

Run with Debian's /usr/bin/python3 (python3-grpcio, python3-protobuf), not
another python3 on PATH: ctest does.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

# gRPC's fork support (pthread_atfork handlers that wait for its threads)
# is not needed: the tests start processes by vfork/posix_spawn only.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
try:
    import grpc
except ImportError:  # pragma: no cover - the message is the point
    sys.stderr.write(
        "servelib: cannot import grpc: run the tests with Debian's /usr/bin/python3 "
        "and install python3-grpcio and python3-protobuf "
        "(scripts/install-deps.sh test); %s is %s\n" % ("python", sys.executable))
    sys.exit(1)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROTO_DIR = os.path.join(ROOT, "tools", "serve", "proto")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testenv import PgDatabase, free_port  # noqa: E402

SANITIZED = os.environ.get("EVS_SERVE_SANITIZED") == "1"
pb = None      # umadb_pb2, after load_protos()
health = None  # health_pb2


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------

def short(v, n=120):
    """repr(v), cut to about n characters."""
    r = repr(v)
    return r if len(r) <= n else "%s ...(%d chars) %s" % (r[:n // 2], len(r), r[-n // 4:])


class Checks:
    """Counts checks; thread-safe. Every check prints what it checked."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.lock = threading.Lock()
        self.t0 = time.monotonic()

    def check(self, what, cond, detail=""):
        with self.lock:
            if cond:
                self.passed += 1
                print("ok: %s" % what, flush=True)
            else:
                self.failed += 1
                print("FAIL: %s%s" % (what, (" -- " + detail) if detail else ""), flush=True)
        return bool(cond)

    def eq(self, what, got, want):
        return self.check("%s (= %s)" % (what, short(want)), got == want,
                          "got %s, want %s" % (short(got, 600), short(want, 600)))

    def bound(self, what, cond, detail=""):
        """A performance bound (memory, rate): checked, except in a
        sanitizer build (EVS_SERVE_SANITIZED=1, set by tests/CMakeLists.txt
        when EVS_SANITIZE is), where it is printed as not checked."""
        if SANITIZED:
            print("  .. not checked in a sanitizer build: %s (%s)"
                  % (what, "holds" if cond else "does not hold"), flush=True)
            return True
        return self.check(what, cond, detail)

    def note(self, text):
        print("  .. %s" % text, flush=True)

    def section(self, title):
        print("== %s  [%.1f s]" % (title, time.monotonic() - self.t0), flush=True)

    def summary(self):
        print("%s: %d passed, %d failed" % (self.name, self.passed, self.failed), flush=True)
        return 0 if self.failed == 0 and self.passed > 0 else 1


# --------------------------------------------------------------------------
# Protos
# --------------------------------------------------------------------------

def load_protos(tmp):
    """Generate umadb_pb2 and health_pb2 from the project's .proto files into
    tmp (protoc, Debian's protobuf-compiler) and import them."""
    global pb, health
    out = os.path.join(tmp, "pb")
    os.makedirs(out, exist_ok=True)
    cmd = ["protoc", "--python_out=" + out, "-I", PROTO_DIR,
           os.path.join(PROTO_DIR, "umadb.proto"), os.path.join(PROTO_DIR, "health.proto")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("servelib: %s failed: %s (install protobuf-compiler: "
                         "scripts/install-deps.sh test)" % (" ".join(cmd), r.stderr))
    sys.path.insert(0, out)
    import umadb_pb2
    import health_pb2
    pb, health = umadb_pb2, health_pb2
    return pb, health


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------



def raise_fd_limit():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


# SIGKILL to the server when the test dies (a ctest timeout leaves no server
# behind). PR_SET_PDEATHSIG fires when the thread that started the server
# ends: servers are started from the main thread.
DEATHSIG = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []




class Server:
    """One `evs serve` process.

    evs: path of the evs binary; db: store URI; args: extra arguments
    (--tls-cert ..., --api-keys ...); channel_factory(target): a channel the
    readiness probe uses (default: insecure); probe_md: metadata for it."""

    def __init__(self, evs, db, workdir, args=(), tls_root=None, probe_md=()):
        self.evs = evs
        self.db = db
        self.workdir = workdir
        self.args = list(args)
        self.tls_root = tls_root
        self.probe_md = list(probe_md)
        self.proc = None
        self.port = None
        self.logpath = None
        self.n = 0

    @property
    def target(self):
        return "127.0.0.1:%d" % self.port

    def channel(self, options=()):
        opts = list(options)
        if self.tls_root is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=self.tls_root)
            return grpc.secure_channel(self.target, creds, options=opts)
        return grpc.insecure_channel(self.target, options=opts)

    def start(self, timeout=20.0):
        """Start on a fresh free port; wait until Head answers. Returns self;
        raises SystemExit with the server's log when it does not come up."""
        self.n += 1
        self.port = free_port()
        self.logpath = os.path.join(self.workdir, "serve-%d-%d.log" % (self.port, self.n))
        cmd = [self.evs, "serve", "--db", self.db, "--listen", self.target,
               "--http", "off"] + self.args
        self.log_f = open(self.logpath, "wb")
        # No preexec_fn: it makes Python fork() rather than vfork, and
        # gRPC's fork handlers then wait for its thread pool to go idle,
        # which may be never. The descriptor limit is the test's own
        # (raise_fd_limit in main); setpriv (util-linux) sets the signal.
        self.proc = subprocess.Popen(DEATHSIG + cmd, stdout=self.log_f, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("servelib: `%s` exited %d at start; its log:\n%s"
                                 % (" ".join(cmd), self.proc.returncode, self.log()))
            ch = self.channel()
            try:
                Dcb(ch).head(pb.HeadRequest(), timeout=1.0, metadata=self.probe_md)
                ch.close()
                return self
            except grpc.RpcError as e:
                last = e
            finally:
                ch.close()
            time.sleep(0.1)
        self.kill()
        raise SystemExit("servelib: `%s` did not answer Head within %.0f s (last: %s); log:\n%s"
                         % (" ".join(cmd), timeout, last, self.log()))

    def log(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def rss_mb(self, field="VmRSS"):
        """A memory figure of the server's /proc/PID/status, in MB."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
        return -1.0

    def sockets(self):
        """Open sockets of the server process (its /proc/PID/fd)."""
        n = 0
        d = "/proc/%d/fd" % self.proc.pid
        for fd in os.listdir(d):
            try:
                if os.readlink(os.path.join(d, fd)).startswith("socket:"):
                    n += 1
            except OSError:
                pass
        return n

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=30.0):
        """SIGTERM; wait; return the exit status (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        self.log_f.close()
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------

class Dcb:
    """umadb.v1.DCB's methods on a channel; prefix "/umadb.UmaDBService/"
    for the old path."""

    def __init__(self, channel, prefix="/umadb.v1.DCB/"):
        self.channel = channel
        ser = lambda m: m.SerializeToString()
        self.read = channel.unary_stream(prefix + "Read", request_serializer=ser,
                                         response_deserializer=pb.ReadResponse.FromString)
        self.subscribe = channel.unary_stream(prefix + "Subscribe", request_serializer=ser,
                                              response_deserializer=pb.SubscribeResponse.FromString)
        self.append = channel.unary_unary(prefix + "Append", request_serializer=ser,
                                          response_deserializer=pb.AppendResponse.FromString)
        self.head = channel.unary_unary(prefix + "Head", request_serializer=ser,
                                        response_deserializer=pb.HeadResponse.FromString)
        self.tracking = channel.unary_unary(prefix + "GetTrackingInfo", request_serializer=ser,
                                            response_deserializer=pb.TrackingResponse.FromString)

    def read_all(self, req=None, **kw):
        """Every response of a Read, as a list."""
        return list(self.read(req if req is not None else pb.ReadRequest(), **kw))

    def events(self, req=None, **kw):
        """The SequencedEvents of a Read, flattened."""
        return [e for r in self.read_all(req, **kw) for e in r.events]

    def head_pos(self, **kw):
        r = self.head(pb.HeadRequest(), **kw)
        return r.position if r.HasField("position") else None


class Health:
    def __init__(self, channel):
        ser = lambda m: m.SerializeToString()
        self.check = channel.unary_unary(
            "/grpc.health.v1.Health/Check", request_serializer=ser,
            response_deserializer=health.HealthCheckResponse.FromString)
        self.watch = channel.unary_stream(
            "/grpc.health.v1.Health/Watch", request_serializer=ser,
            response_deserializer=health.HealthCheckResponse.FromString)


def query(*items):
    """query(("T1","T2"), ["tag:a"]), ...: a Query of items (types, tags)."""
    q = pb.Query()
    for types, tags in items:
        it = q.items.add()
        it.types.extend(types)
        it.tags.extend(tags)
    return q


def event(etype, tags=(), data=b"{}", uuid="", metadata=()):
    e = pb.Event(event_type=etype, data=data, uuid=uuid)
    e.tags.extend(tags)
    for k, v in metadata:
        e.metadata.add(key=k, value=v)
    return e


def append_req(events, fail_if=None, after=None, tracking=None):
    r = pb.AppendRequest()
    r.events.extend(events)
    if fail_if is not None or after is not None:
        c = r.condition
        if fail_if is not None:
            c.fail_if_events_match.CopyFrom(fail_if)
        if after is not None:
            c.after = after
        r.condition.SetInParent()
    if tracking is not None:
        r.tracking_info.source = tracking[0]
        r.tracking_info.position = tracking[1]
    return r


def error_of(e):
    """(code, details text, ErrorResponse or None, raw trailer or None) of an
    RpcError."""
    raw = None
    for k, v in (e.trailing_metadata() or ()):
        if k == "grpc-status-details-bin":
            raw = v
    parsed = None
    if raw is not None:
        try:
            parsed = pb.ErrorResponse.FromString(raw)
        except Exception:  # a trailer that is not an ErrorResponse
            parsed = None
    return e.code(), e.details(), parsed, raw


ERROR_TYPE_FOR = {
    "FAILED_PRECONDITION": "INTEGRITY",
    "INVALID_ARGUMENT": "INVALID_ARGUMENT",
    "UNAUTHENTICATED": "AUTHENTICATION",
    "PERMISSION_DENIED": "AUTHENTICATION",
}


def expect_error(c, what, fn, code, details=True):
    """Call fn(); check it fails with status code (a grpc.StatusCode or a
    tuple of them) and, when details, that grpc-status-details-bin parses as
    an ErrorResponse with a message and the error_type UmaDB gives that
    status. Returns the RpcError (or None)."""
    codes = code if isinstance(code, tuple) else (code,)
    try:
        r = fn()
        if isinstance(r, grpc.Call):  # a stream: its error comes while reading
            r = list(r)
        c.check("%s -> %s" % (what, "/".join(x.name for x in codes)), False,
                "it succeeded: %r" % (r,))
        return None
    except grpc.RpcError as e:
        got, msg, parsed, raw = error_of(e)
        c.check("%s -> %s" % (what, "/".join(x.name for x in codes)), got in codes,
                "got %s %r" % (got, msg))
        if details and got in codes:
            want_t = ERROR_TYPE_FOR.get(got.name)
            if raw is None:
                c.check("%s: grpc-status-details-bin trailer present" % what, False,
                        "trailers: %r" % (e.trailing_metadata(),))
            elif parsed is None:
                c.check("%s: grpc-status-details-bin parses as umadb.v1.ErrorResponse" % what,
                        False, "raw %r" % raw[:80])
            else:
                tname = pb.ErrorResponse.ErrorType.Name(parsed.error_type) \
                    if parsed.HasField("error_type") else None
                c.check("%s: details ErrorResponse{error_type=%s, message=%r}"
                        % (what, want_t, parsed.message[:60]),
                        tname == want_t and parsed.message != "",
                        "got error_type %s message %r" % (tname, parsed.message))
        return e


def new_tmp(prefix):
    return tempfile.mkdtemp(prefix=prefix)


def setup(name, argv):
    """Parse `TEST.py GROUP EVS [--pg]`; make the temp dir, protos, the store
    URI. Returns (checks, evs, tmp, db_uri, pgdb-or-None)."""
    if len(argv) < 3:
        raise SystemExit("usage: %s GROUP PATH/TO/evs [--pg]" % argv[0])
    evs = os.path.abspath(argv[2])
    pg = "--pg" in argv[3:]
    tmp = new_tmp("evs-%s-" % name)
    load_protos(tmp)
    pgdb = None
    if pg:
        pgdb = PgDatabase("evs_%s_%d" % (name.replace("-", "_"), os.getpid()))
        db = pgdb.uri
    else:
        db = os.path.join(tmp, "store")
    return Checks(name), evs, tmp, db, pgdb


def init_store(c, evs, db):
    r = subprocess.run([evs, "--db", db, "init"], capture_output=True, text=True)
    c.check("evs init %s" % ("(PostgreSQL)" if db.startswith("postgres") else "(embedded)"),
            r.returncode == 0, r.stderr)


def cleanup(tmp, pgdb, servers=()):
    for s in servers:
        if s is not None:
            s.kill()
    if pgdb is not None:
        pgdb.drop()
    shutil.rmtree(tmp, ignore_errors=True)
