#!/usr/bin/python3
"""grpc_test.py -- `evs serve` over gRPC, driven by python3-grpcio (gRPC's C
core, Debian) with messages that protoc generates at test time from
tools/serve/proto/*.proto (tests/serve/servelib.py).

    /usr/bin/python3 grpc_test.py GROUP PATH/TO/evs [--pg]

GROUP (one ctest test each, each with its own server, ports and store):
  calls     every call of umadb.v1.DCB and grpc.health.v1.Health, every
            error status with its grpc-status-details-bin, the old
            /umadb.UmaDBService/ path, tenants       (also on PostgreSQL)
  auth_tls  API keys (missing, wrong, read-only, tenant-limited), TLS,
            start-up refusals (bad keys file, non-loopback without TLS)
  races     the DCB race (16 clients, one username), Subscribe under 4
            racing writers with a reconnect, the conformance checks of 20
            parallel writers                           (also on PostgreSQL)
  abuse     malformed protobuf, oversize messages, abrupt disconnects
            mid-append and mid-subscription, 1,000 idle connections
  load      a subscriber that reads nothing for 10 s while writers go on
            (server RSS, writers' rate), SIGTERM during load (nothing
            acknowledged lost, exit 0)

Prints one line per check and ends with "NAME: N passed, N failed"; exit 1
on any failure.
"""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid as uuidlib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servelib as sl  # noqa: E402
from servelib import Dcb, Health, append_req, event, expect_error, query  # noqa: E402

import grpc  # noqa: E402

SC = grpc.StatusCode
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
OWN = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own


def pb():
    return sl.pb


def tags_of(e):
    return list(e.event.tags)


def md_of(e):
    return [(m.key, m.value) for m in e.event.metadata]


def matches(se, q):
    """The DCB query semantics, locally: no items = everything; an item
    matches when the type is one of its types (or it has none) and the event
    has all its tags; items are OR'ed."""
    if q is None or len(q.items) == 0:
        return True
    for it in q.items:
        if (not it.types or se.event.event_type in it.types) and \
                all(t in se.event.tags for t in it.tags):
            return True
    return False


def collect(stream, out, stop_at=None, errors=None):
    """Read a response stream into out (a list of SequencedEvent) until it
    ends, is cancelled, or len(out) >= stop_at."""
    try:
        for r in stream:
            out.extend(r.events)
            if stop_at is not None and len(out) >= stop_at:
                return
    except grpc.RpcError as e:
        if errors is not None:
            errors.append(e)


def wait_for(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


# ==========================================================================
# calls
# ==========================================================================

def group_calls(c, srv):
    P = pb()
    ch = srv.channel()
    d = Dcb(ch)
    h = Health(ch)
    HS = sl.health.HealthCheckResponse.ServingStatus

    c.section("grpc.health.v1.Health")
    for svc in ("", "umadb.v1.DCB"):
        r = h.check(sl.health.HealthCheckRequest(service=svc), timeout=5)
        c.eq("Health/Check(service=%r).status" % svc, HS.Name(r.status), "SERVING")
    w = h.watch(sl.health.HealthCheckRequest(service=""), timeout=10)
    first = next(w)
    c.eq("Health/Watch(service='') first message", HS.Name(first.status), "SERVING")
    w.cancel()
    try:
        r = h.check(sl.health.HealthCheckRequest(service="no.such.Service"), timeout=5)
        c.check("Health/Check(unknown service) -> NOT_FOUND or SERVICE_UNKNOWN",
                r.status == HS.Value("SERVICE_UNKNOWN"), "answered %s" % HS.Name(r.status))
    except grpc.RpcError as e:
        c.check("Health/Check(unknown service) -> NOT_FOUND or SERVICE_UNKNOWN",
                e.code() == SC.NOT_FOUND, "got %s %r" % (e.code(), e.details()))

    c.section("an empty store")
    c.eq("Head on an empty store: position absent", d.head_pos(timeout=5), None)
    rs = d.read_all(P.ReadRequest(), timeout=5)
    c.eq("Read on an empty store: responses", len(rs), 1)
    if rs:
        c.eq("Read on an empty store: events", len(rs[0].events), 0)
        c.check("Read on an empty store: head absent", not rs[0].HasField("head"),
                "head=%d" % rs[0].head)
    t = d.tracking(P.TrackingRequest(source="proj"), timeout=5)
    c.check("GetTrackingInfo(never stored): position absent", not t.HasField("position"),
            "position=%d" % t.position)

    c.section("Append and Read back")
    want = [event("Opened", ["acct:1", "owner:ann"], b'{"owner":"ann"}',
                  metadata=[("by", "ann"), ("corr", "c-1"), ("a", "z")]),
            event("Deposited", ["acct:1"], b'{"amount":5}', metadata=[("z", "1"), ("b", "2")]),
            event("Noted", [], b'[1,2,3]')]
    r = d.append(append_req(want), timeout=10)
    c.check("Append(3 events) answers a position", r.HasField("position") and r.position >= 3,
            str(r))
    p3 = r.position
    c.eq("Head after it = the append's position", d.head_pos(timeout=5), p3)
    got = d.events(P.ReadRequest(), timeout=5)
    c.eq("Read: 3 events", len(got), 3)
    c.eq("Read: positions of one append are consecutive, the last is the answer",
         [e.position for e in got], [p3 - 2, p3 - 1, p3])
    for i, (g, w_) in enumerate(zip(got, want)):
        c.eq("event %d: event_type" % i, g.event.event_type, w_.event_type)
        c.eq("event %d: tags" % i, sorted(tags_of(g)), sorted(w_.tags))
        c.eq("event %d: data bytes" % i, g.event.data, w_.data)
        c.eq("event %d: metadata entries in order" % i, md_of(g),
             [(m.key, m.value) for m in w_.metadata])
        c.check("event %d: server-assigned uuid %r is a UUID" % (i, g.event.uuid),
                UUID_RE.match(g.event.uuid) is not None)
    c.eq("the 3 uuids are distinct", len({g.event.uuid for g in got}), 3)

    bin_data = b"\x00\x01\xfe\xffnot json\n"
    r = d.append(append_req([event("Blob", ["blob:1"], bin_data)]), timeout=10)
    got = d.events(P.ReadRequest(start=r.position, limit=1), timeout=5)
    c.check("binary (non-JSON) data round-trips byte for byte",
            len(got) == 1 and got[0].event.data == bin_data, repr(got[:1]))
    r = d.append(append_req([event("Empty", ["e:1"], b"")]), timeout=10)
    got = d.events(P.ReadRequest(start=r.position, limit=1), timeout=5)
    c.check("empty data round-trips", len(got) == 1 and got[0].event.data == b"", repr(got[:1]))

    c.section("uuids: client-given, retries, bad ones")
    u1 = str(uuidlib.uuid4())
    req = append_req([event("Withdrawn", ["acct:1"], b'{"amount":2}', uuid=u1)])
    r1 = d.append(req, timeout=10)
    got = d.events(P.ReadRequest(start=r1.position, limit=1), timeout=5)
    c.check("a client-given uuid is kept", len(got) == 1 and got[0].event.uuid == u1,
            repr([g.event.uuid for g in got]))
    H = d.head_pos(timeout=5)
    r2 = d.append(req, timeout=10)
    c.eq("retry with the same uuid: the original position", r2.position, r1.position)
    c.eq("retry with the same uuid: head unchanged", d.head_pos(timeout=5), H)
    u2, u3 = str(uuidlib.uuid4()), str(uuidlib.uuid4())
    req = append_req([event("A", ["r:1"], uuid=u2), event("B", ["r:1"], uuid=u3)])
    r1 = d.append(req, timeout=10)
    H = d.head_pos(timeout=5)
    r2 = d.append(req, timeout=10)
    c.eq("retry of a 2-event append: the original position", r2.position, r1.position)
    c.eq("retry of a 2-event append: head unchanged", d.head_pos(timeout=5), H)
    # A retry is recognised by its uuids even when its condition would now
    # fail (the events it wrote match it): docs/SERVER.md, "Idempotency".
    u4 = str(uuidlib.uuid4())
    qr = query(([], ["retry:1"]))
    req = append_req([event("Claimed", ["retry:1"], uuid=u4)], fail_if=qr)
    r1 = d.append(req, timeout=10)
    r2 = d.append(req, timeout=10)
    c.eq("retry of a conditional append (its condition now fails): the original position",
         r2.position, r1.position)
    expect_error(c, "the same condition with a new uuid",
                 lambda: d.append(append_req([event("Claimed", ["retry:1"], uuid=str(uuidlib.uuid4()))],
                                             fail_if=qr), timeout=10), SC.FAILED_PRECONDITION)
    H = d.head_pos(timeout=5)
    expect_error(c, "Append with uuid 'not-a-uuid'",
                 lambda: d.append(append_req([event("X", [], uuid="not-a-uuid")]), timeout=10),
                 SC.INVALID_ARGUMENT)
    c.eq("... head unchanged", d.head_pos(timeout=5), H)
    expect_error(c, "Append with an empty event_type",
                 lambda: d.append(append_req([event("", ["x:1"])]), timeout=10),
                 SC.INVALID_ARGUMENT)
    c.eq("... head unchanged", d.head_pos(timeout=5), H)
    expect_error(c, "Append of [good event, bad uuid]",
                 lambda: d.append(append_req([event("Good", ["g:1"]),
                                              event("Bad", [], uuid="zz")]), timeout=10),
                 SC.INVALID_ARGUMENT)
    c.eq("... nothing of it written (head unchanged)", d.head_pos(timeout=5), H)

    c.section("what events may hold")
    odd = [("q\"uote", "a\\b\nc\t}"), ("ümlaut", "😀 ünïcode"), ("", "empty key"), ("empty value", "")]
    r = d.append(append_req([event("Odd Type/1", ["a b", "x:y:z", "ünï"], b'{}', metadata=odd)]), timeout=10)
    got = d.events(P.ReadRequest(start=r.position, limit=1), timeout=5)
    c.check("quotes, backslashes, newlines, non-ASCII in metadata, type and tags round-trip",
            len(got) == 1 and md_of(got[0]) == odd and got[0].event.event_type == "Odd Type/1"
            and sorted(tags_of(got[0])) == sorted(["a b", "x:y:z", "ünï"]),
            repr(got[:1]))
    for what, md in [("a repeated metadata key", [("k", "1"), ("k", "2")]),
                     ("a NUL in a metadata value", [("k", "a\x00b")]),
                     ("a NUL in a metadata key", [("k\x00z", "v")])]:
        H = d.head_pos(timeout=5)
        try:
            r = d.append(append_req([event("Md", ["md:1"], b'{}', metadata=md)]), timeout=10)
            got = d.events(P.ReadRequest(start=r.position, limit=1), timeout=5)
            c.check("%s: round-trips, or is refused (INVALID_ARGUMENT); not changed silently" % what,
                    len(got) == 1 and md_of(got[0]) == md,
                    "sent %r, read back %r" % (md, md_of(got[0]) if got else None))
        except grpc.RpcError as e:
            c.check("%s: round-trips, or is refused (INVALID_ARGUMENT)" % what,
                    e.code() == SC.INVALID_ARGUMENT, "got %s %r" % (e.code(), e.details()))
            c.eq("... nothing written", d.head_pos(timeout=5), H)
    # protobuf strings may hold NUL; C strings end at one. Each must be kept
    # whole or refused, never cut at the NUL (a cut tag is another tag).
    for what, ev_ in [("a NUL in a tag", event("Nul", ["nul:1\x00evil"])),
                      ("a NUL in an event_type", event("Nul\x00Type", ["nul:2"]))]:
        H = d.head_pos(timeout=5)
        try:
            r = d.append(append_req([ev_]), timeout=10)
            got = d.events(P.ReadRequest(start=r.position, limit=1), timeout=5)
            c.check("%s: round-trips, or is refused (INVALID_ARGUMENT); not cut at the NUL" % what,
                    len(got) == 1 and got[0].event.event_type == ev_.event_type
                    and tags_of(got[0]) == list(ev_.tags),
                    "sent %r %r, read back %r" % (ev_.event_type, list(ev_.tags),
                                                 (got[0].event.event_type, tags_of(got[0])) if got else None))
        except grpc.RpcError as e:
            c.check("%s: round-trips, or is refused (INVALID_ARGUMENT)" % what,
                    e.code() == SC.INVALID_ARGUMENT, "got %s %r" % (e.code(), e.details()))
            c.eq("... nothing written", d.head_pos(timeout=5), H)
    r = d.append(append_req([event("Reg", ["user:alice"])]), timeout=10)
    try:
        got = d.events(P.ReadRequest(query=query(([], ["user:alice\x00x"]))), timeout=5)
        c.eq("Read query tag 'user:alice\\x00x' does not match tag 'user:alice'",
             [e.position for e in got if e.position == r.position], [])
    except grpc.RpcError as e:
        c.check("Read query tag 'user:alice\\x00x': no match, or INVALID_ARGUMENT",
                e.code() == SC.INVALID_ARGUMENT, "got %s %r" % (e.code(), e.details()))
    try:
        r2 = d.append(append_req([event("Reg", ["user:alice2"])], fail_if=query(([], ["user:alice\x00x"]))),
                      timeout=10)
        c.check("Append fail_if tag 'user:alice\\x00x' (no such event): succeeds", r2.HasField("position"))
    except grpc.RpcError as e:
        c.check("Append fail_if tag 'user:alice\\x00x' (no such event): succeeds, or INVALID_ARGUMENT",
                e.code() == SC.INVALID_ARGUMENT, "got %s %r" % (e.code(), e.details()))
    try:
        d.append(append_req([], tracking=("nulsrc\x00a", 5)), timeout=10)
        t = d.tracking(P.TrackingRequest(source="nulsrc"), timeout=5)
        c.check("tracking_info source 'nulsrc\\x00a' is not stored as source 'nulsrc'",
                not t.HasField("position"), "GetTrackingInfo(nulsrc) = %s" % t.position)
    except grpc.RpcError as e:
        c.check("tracking_info source 'nulsrc\\x00a': kept whole, or INVALID_ARGUMENT",
                e.code() == SC.INVALID_ARGUMENT, "got %s %r" % (e.code(), e.details()))
    H = d.head_pos(timeout=5)
    expect_error(c, "Append with an empty tag", lambda: d.append(append_req([event("T", [""])]), timeout=10),
                 SC.INVALID_ARGUMENT)
    expect_error(c, "Append of an event over the store's event size limit (2 MiB of data)",
                 lambda: d.append(append_req([event("T", ["t:1"], b"x" * (2 * 1024 * 1024))]), timeout=20),
                 SC.INVALID_ARGUMENT)
    u = str(uuidlib.uuid4())
    expect_error(c, "Append of 2 events with the same uuid",
                 lambda: d.append(append_req([event("T", ["t:1"], uuid=u), event("T", ["t:1"], uuid=u)]),
                                  timeout=10), SC.INVALID_ARGUMENT)
    c.eq("... nothing written", d.head_pos(timeout=5), H)
    got_uuid = d.events(P.ReadRequest(start=H, limit=1), timeout=5)[0].event.uuid
    expect_error(c, "Append reusing an existing uuid for a different event",
                 lambda: d.append(append_req([event("Different", ["t:2"], b'{"x":1}', uuid=got_uuid)]),
                                  timeout=10), SC.FAILED_PRECONDITION)
    c.eq("... nothing written", d.head_pos(timeout=5), H)
    expect_error(c, "Append with a tag starting with '$'",
                 lambda: d.append(append_req([event("T", ["$stream:x"])]), timeout=10), SC.INVALID_ARGUMENT)
    c.eq("... nothing written", d.head_pos(timeout=5), H)
    expect_error(c, "Append with tracking_info of an empty source",
                 lambda: d.append(append_req([event("T", ["t:1"])], tracking=("", 5)), timeout=10),
                 SC.INVALID_ARGUMENT)
    expect_error(c, "GetTrackingInfo of an empty source",
                 lambda: d.tracking(P.TrackingRequest(source=""), timeout=10), SC.INVALID_ARGUMENT)
    expect_error(c, "a tenant name of 300 bytes",
                 lambda: d.head(P.HeadRequest(), timeout=10, metadata=[("evs-tenant", "t" * 300)]),
                 SC.INVALID_ARGUMENT)
    c.eq("... nothing written", d.head_pos(timeout=5), H)

    c.section("Read: queries, start, backwards, limit, batches, head")
    more = [event("Opened", ["acct:2"], b'{"owner":"bob"}'),
            event("Deposited", ["acct:2"], b'{"amount":7}'),
            event("Deposited", ["acct:1", "big:yes"], b'{"amount":700}'),
            event("Closed", ["acct:2"], b'{}')]
    d.append(append_req(more), timeout=10)
    H = d.head_pos(timeout=5)
    everything = d.events(P.ReadRequest(), timeout=5)
    c.eq("Read everything: last position = Head", everything[-1].position if everything else None, H)
    pos = [e.position for e in everything]
    c.check("Read everything: positions strictly increase", pos == sorted(set(pos)), str(pos))
    queries = {
        "type Deposited": query((["Deposited"], [])),
        "tag acct:1": query(([], ["acct:1"])),
        "tags acct:1 AND big:yes": query(([], ["acct:1", "big:yes"])),
        "type Opened AND tag acct:2": query((["Opened"], ["acct:2"])),
        "types Opened|Closed": query((["Opened", "Closed"], [])),
        "item OR item": query((["Closed"], []), ([], ["owner:ann"])),
        "tag nobody:0 (no match)": query(([], ["nobody:0"])),
    }
    for name, q in queries.items():
        got = [e.position for e in d.events(P.ReadRequest(query=q), timeout=5)]
        c.eq("Read query %s: the events a local filter selects" % name, got,
             [e.position for e in everything if matches(e, q)])
    mid = everything[len(everything) // 2].position
    got = [e.position for e in d.events(P.ReadRequest(start=mid), timeout=5)]
    c.eq("Read start=%d (inclusive)" % mid, got, [p for p in pos if p >= mid])
    got = [e.position for e in d.events(P.ReadRequest(backwards=True), timeout=5)]
    c.eq("Read backwards: everything, newest first", got, pos[::-1])
    got = [e.position for e in d.events(P.ReadRequest(limit=2), timeout=5)]
    c.eq("Read limit=2: the first 2", got, pos[:2])
    got = [e.position for e in d.events(P.ReadRequest(limit=2, backwards=True), timeout=5)]
    c.eq("Read limit=2 backwards: the last 2, newest first", got, pos[::-1][:2])
    q = query(([], ["acct:1"]))
    got = [e.position for e in d.events(P.ReadRequest(query=q, backwards=True, limit=1), timeout=5)]
    c.eq("Read query tag acct:1 backwards limit 1: its newest event", got,
         [e.position for e in everything if matches(e, q)][-1:])
    rs = d.read_all(P.ReadRequest(batch_size=2), timeout=5)
    c.check("Read batch_size=2: several responses of at most 2 events",
            len(rs) >= len(pos) // 2 and all(len(x.events) <= 2 for x in rs),
            "sizes %s" % [len(x.events) for x in rs])
    c.check("Read batch_size=2 without limit: every response's head = Head at the start (%s)" % H,
            all(x.HasField("head") and x.head == H for x in rs),
            "heads %s" % [x.head if x.HasField("head") else None for x in rs])
    c.eq("Read batch_size=2: all events", [e.position for x in rs for e in x.events], pos)
    rs = d.read_all(P.ReadRequest(limit=5, batch_size=2), timeout=5)
    c.eq("Read limit=5 batch_size=2: the first 5", [e.position for x in rs for e in x.events], pos[:5])
    c.check("Read with limit: each response's head = its last event's position",
            all(x.events and x.HasField("head") and x.head == x.events[-1].position for x in rs),
            "heads %s, last positions %s" % ([x.head if x.HasField("head") else None for x in rs],
                                              [x.events[-1].position if x.events else None for x in rs]))
    rs = d.read_all(P.ReadRequest(query=query(([], ["nobody:0"]))), timeout=5)
    c.check("Read with no match, no limit: one response, no events, head = %s" % H,
            len(rs) == 1 and len(rs[0].events) == 0 and rs[0].HasField("head") and rs[0].head == H,
            str([(len(x.events), x.head if x.HasField("head") else None) for x in rs]))
    rs = d.read_all(P.ReadRequest(start=H + 1), timeout=5)
    c.check("Read start=head+1: one response, no events",
            len(rs) == 1 and len(rs[0].events) == 0, str(rs))
    rs = d.read_all(P.ReadRequest(limit=0), timeout=5)
    c.check("Read limit=0: no events (docs/SERVER.md: it sends nothing, as UmaDB)",
            sum(len(x.events) for x in rs) == 0, "%d responses: %s" % (len(rs), sl.short(rs)))
    got = [e.position for e in d.events(P.ReadRequest(backwards=True, start=pos[2]), timeout=5)]
    c.eq("Read backwards start=%d: from it (inclusive) down" % pos[2], got, pos[:3][::-1])
    expect_error(c, "Read subscribe=true", lambda: d.read(P.ReadRequest(subscribe=True), timeout=5),
                 SC.INVALID_ARGUMENT)

    bulk = P.AppendRequest()
    for i in range(5000):
        bulk.events.append(event("Bulk", ["bulk:%d" % (i % 7)], b'{"i":%d}' % i))
    rb = d.append(bulk, timeout=30)
    qb = query((["Bulk"], []))
    rs = d.read_all(P.ReadRequest(query=qb), timeout=30)
    sizes = [len(x.events) for x in rs]
    c.check("Read 5000 events, default batch_size: responses of at most 1024 events",
            sum(sizes) == 5000 and max(sizes) <= 1024 and len(rs) >= 5, "sizes %s" % sizes)
    rs = d.read_all(P.ReadRequest(query=qb, batch_size=100000), timeout=30)
    sizes = [len(x.events) for x in rs]
    c.check("Read 5000 events, batch_size=100000: capped at 4096 a response",
            sum(sizes) == 5000 and max(sizes) <= 4096, "sizes %s" % sizes)
    got = [e.position for x in rs for e in x.events]
    c.check("... the 5000 in order, the last at the append's position %d" % rb.position,
            got == sorted(set(got)) and got[-1] == rb.position, "last %s" % got[-1:])

    c.section("Append conditions")
    H = d.head_pos(timeout=5)
    acct1 = [e.position for e in d.events(P.ReadRequest(query=query(([], ["acct:1"]))), timeout=5)]
    q1 = query(([], ["acct:1"]))
    expect_error(c, "Append fail_if_events_match tag acct:1 (it has events), no after",
                 lambda: d.append(append_req([event("Deposited", ["acct:1"])], fail_if=q1), timeout=10),
                 SC.FAILED_PRECONDITION)
    c.eq("... head unchanged", d.head_pos(timeout=5), H)
    expect_error(c, "Append fail_if tag acct:1, after=%d (before its last event)" % (acct1[-1] - 1),
                 lambda: d.append(append_req([event("Deposited", ["acct:1"])], fail_if=q1,
                                             after=acct1[-1] - 1), timeout=10),
                 SC.FAILED_PRECONDITION)
    c.eq("... head unchanged", d.head_pos(timeout=5), H)
    r = d.append(append_req([event("Deposited", ["acct:1"], b'{"amount":1}')], fail_if=q1,
                            after=acct1[-1]), timeout=10)
    c.eq("Append fail_if tag acct:1, after=its last event (%d): succeeds" % acct1[-1],
         r.position, H + 1)
    r = d.append(append_req([event("Opened", ["acct:3"])], fail_if=query(([], ["acct:3"]))), timeout=10)
    c.eq("Append fail_if tag acct:3 (no events yet), no after: succeeds", r.position, H + 2)
    expect_error(c, "the same again",
                 lambda: d.append(append_req([event("Opened", ["acct:3"])],
                                             fail_if=query(([], ["acct:3"]))), timeout=10),
                 SC.FAILED_PRECONDITION)
    r = d.append(append_req([event("Deposited", ["acct:3"])],
                            fail_if=query((["Closed"], ["acct:3"]))), timeout=10)
    c.eq("Append fail_if type Closed AND tag acct:3 (no such event): succeeds", r.position, H + 3)

    c.section("tracking_info")
    r = d.append(append_req([event("Projected", ["proj:1"])], tracking=("proj", 100)), timeout=10)
    c.check("Append with tracking_info(proj, 100) succeeds", r.HasField("position"), str(r))
    t = d.tracking(P.TrackingRequest(source="proj"), timeout=5)
    c.eq("GetTrackingInfo(proj)", t.position if t.HasField("position") else None, 100)
    H = d.head_pos(timeout=5)
    expect_error(c, "Append with tracking_info(proj, 100) again (not increasing)",
                 lambda: d.append(append_req([event("Projected", ["proj:1"])], tracking=("proj", 100)),
                                  timeout=10), SC.FAILED_PRECONDITION)
    c.eq("... its events not written (head unchanged)", d.head_pos(timeout=5), H)
    expect_error(c, "Append with tracking_info(proj, 50) (going back)",
                 lambda: d.append(append_req([event("Projected", ["proj:1"])], tracking=("proj", 50)),
                                  timeout=10), SC.FAILED_PRECONDITION)
    far = 10 ** 12
    d.append(append_req([], tracking=("proj", far)), timeout=10)
    got = d.events(P.ReadRequest(start=H + 1), timeout=5)
    c.eq("Append of zero events with tracking_info(proj, 10^12, past the head): no event readable",
         [(e.position, e.event.event_type) for e in got], [])
    c.note("Head after it: %s (was %s)" % (d.head_pos(timeout=5), H))
    t = d.tracking(P.TrackingRequest(source="proj"), timeout=5)
    c.eq("... GetTrackingInfo(proj) = 10^12", t.position if t.HasField("position") else None, far)
    t = d.tracking(P.TrackingRequest(source="proj2"), timeout=5)
    c.check("GetTrackingInfo(proj2): sources are independent (absent)", not t.HasField("position"),
            str(t))

    c.section("Subscribe: catch-up, then live")
    H = d.head_pos(timeout=5)
    n_all = len(d.events(P.ReadRequest(), timeout=30))
    got, errs = [], []
    sub = d.subscribe(P.SubscribeRequest(after=0), timeout=60)
    th = threading.Thread(target=collect, args=(sub, got, None, errs), daemon=True)
    th.start()
    c.check("Subscribe after=0: catches up with all %d events" % n_all,
            wait_for(lambda: len(got) >= n_all, 15), "got %d" % len(got))
    t0 = time.monotonic()
    r = d.append(append_req([event("Live", ["live:1"], b'{"n":1}'), event("Live", ["live:1"], b'{"n":2}')]),
                 timeout=10)
    live_ok = wait_for(lambda: len(got) >= n_all + 2, 5)
    c.check("... then a live append (2 events) arrives", live_ok,
            "got %d of %d" % (len(got), n_all + 2))
    if live_ok:
        c.note("live delivery took %.1f ms" % ((time.monotonic() - t0) * 1000))
    gp = [e.position for e in got]
    c.check("... positions strictly increase, no duplicates", gp == sorted(set(gp)), str(gp[-10:]))
    c.eq("... the last is the live append's", gp[-1] if gp else None, r.position)
    sub.cancel()
    th.join(5)

    got2, errs2 = [], []
    qa = query(([], ["acct:1"]))
    acct1 = [e.position for e in d.events(P.ReadRequest(query=qa), timeout=5)]
    sub = d.subscribe(P.SubscribeRequest(query=qa, after=acct1[0]), timeout=60)
    th = threading.Thread(target=collect, args=(sub, got2, None, errs2), daemon=True)
    th.start()
    c.check("Subscribe query tag acct:1 after=%d (exclusive): its %d later events" %
            (acct1[0], len(acct1) - 1),
            wait_for(lambda: len(got2) >= len(acct1) - 1, 10) and
            [e.position for e in got2] == acct1[1:],
            "got %s want %s" % ([e.position for e in got2], acct1[1:]))
    d.append(append_req([event("Other", ["acct:9"])]), timeout=10)
    r = d.append(append_req([event("Deposited", ["acct:1"], b'{"amount":3}')]), timeout=10)
    wait_for(lambda: len(got2) >= len(acct1), 5)
    time.sleep(0.3)
    c.eq("... live: only the matching event", [e.position for e in got2][len(acct1) - 1:], [r.position])
    sub.cancel()
    th.join(5)
    c.check("a cancelled Subscribe ends with CANCELLED", all(e.code() == SC.CANCELLED for e in errs2),
            str([e.code() for e in errs2]))
    H = d.head_pos(timeout=5)
    got3 = []
    rsub = []
    sub = d.subscribe(P.SubscribeRequest(after=0, batch_size=3), timeout=60)
    try:
        for x in sub:
            rsub.append(len(x.events))
            if sum(rsub) >= 30:
                break
    finally:
        sub.cancel()
    c.check("Subscribe batch_size=3: responses of at most 3 events", rsub and max(rsub) <= 3, str(rsub))
    sub = d.subscribe(P.SubscribeRequest(after=H - 1, batch_size=1), timeout=60)
    th = threading.Thread(target=collect, args=(sub, got3, 1), daemon=True)
    th.start()
    th.join(10)
    c.eq("Subscribe after=head-1: the head's event first", [e.position for e in got3][:1], [H])
    sub.cancel()

    if srv.db.startswith("postgres"):
        c.section("PostgreSQL: a commit by another process reaches a subscriber")
        H = d.head_pos(timeout=5)
        gotx = []
        sub = d.subscribe(P.SubscribeRequest(after=H), timeout=30)
        th = threading.Thread(target=collect, args=(sub, gotx, 1), daemon=True)
        th.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        r = subprocess.run([srv.evs, "--db", srv.db, "append", "ext-stream", "External", '{"by":"cli"}'],
                           capture_output=True, text=True, timeout=30)
        c.eq("evs append (another process) on the server's database: exit status", r.returncode, 0)
        th.join(10)
        c.check("the subscriber gets that event", [e.event.event_type for e in gotx] == ["External"],
                str(gotx))
        if gotx:
            c.note("%.0f ms after the CLI started" % ((time.monotonic() - t0) * 1000))
        sub.cancel()
        c.eq("Head sees it", d.head_pos(timeout=5), gotx[0].position if gotx else "(none)")

    c.section("the old path /umadb.UmaDBService/")
    old = Dcb(ch, prefix="/umadb.UmaDBService/")
    c.eq("old Head = Head", old.head_pos(timeout=5), d.head_pos(timeout=5))
    r = old.append(append_req([event("ViaOld", ["old:1"])]), timeout=10)
    c.eq("old Append, then Head", d.head_pos(timeout=5), r.position)
    got = old.events(P.ReadRequest(query=query(([], ["old:1"]))), timeout=5)
    c.eq("old Read finds it", [e.position for e in got], [r.position])
    t = old.tracking(P.TrackingRequest(source="proj"), timeout=5)
    c.eq("old GetTrackingInfo", t.position if t.HasField("position") else None, far)
    got4 = []
    sub = old.subscribe(P.SubscribeRequest(after=r.position - 1), timeout=30)
    th = threading.Thread(target=collect, args=(sub, got4, 1), daemon=True)
    th.start()
    th.join(10)
    c.eq("old Subscribe", [e.position for e in got4][:1], [r.position])
    sub.cancel()
    expect_error(c, "old Append with a failing condition",
                 lambda: old.append(append_req([event("ViaOld", ["old:1"])],
                                               fail_if=query(([], ["old:1"]))), timeout=10),
                 SC.FAILED_PRECONDITION)
    raw = ch.unary_unary("/umadb.v1.DCB/NoSuchMethod")
    expect_error(c, "an unknown method", lambda: raw(b"", timeout=5), SC.UNIMPLEMENTED, details=False)

    c.section("tenants (header %s)" % "evs-tenant")
    TA, TB = [("evs-tenant", "tenant-a")], [("evs-tenant", "tenant-b")]
    before_default = [e.position for e in d.events(P.ReadRequest(), timeout=30)]
    r = d.append(append_req([event("Secret", ["acct:1"], b'{"t":"a"}')], fail_if=query(([], ["acct:1"]))),
                 timeout=10, metadata=TA)
    c.check("tenant-a: a condition on tag acct:1 ignores the default tenant's acct:1 events",
            r.HasField("position"), str(r))
    pa = r.position
    got = d.events(P.ReadRequest(), timeout=5, metadata=TA)
    c.eq("tenant-a reads only its own event", [(e.position, e.event.event_type) for e in got],
         [(pa, "Secret")])
    got = d.events(P.ReadRequest(), timeout=30)
    c.eq("the default tenant does not see it", [e.position for e in got], before_default)
    got = d.events(P.ReadRequest(), timeout=5, metadata=TB)
    c.eq("tenant-b sees nothing", len(got), 0)
    got = d.events(P.ReadRequest(), timeout=5, metadata=[("evs-tenant", "")])
    c.eq("an empty evs-tenant header is the default tenant", [e.position for e in got], before_default)
    t = d.tracking(P.TrackingRequest(source="proj"), timeout=5, metadata=TA)
    c.check("tenant-a: GetTrackingInfo(proj) absent (the default tenant's is not shared)",
            not t.HasField("position"), str(t))
    d.append(append_req([], tracking=("proj", 5)), timeout=10, metadata=TA)
    t = d.tracking(P.TrackingRequest(source="proj"), timeout=5, metadata=TA)
    c.eq("tenant-a: tracking (proj, 5) stored", t.position if t.HasField("position") else None, 5)
    t = d.tracking(P.TrackingRequest(source="proj"), timeout=5)
    c.eq("default tenant's tracking proj still 10^12", t.position if t.HasField("position") else None, far)
    c.eq("Head in tenant-a: its own newest event", d.head_pos(timeout=5, metadata=TA), pa)
    c.eq("Head in tenant-b: absent", d.head_pos(timeout=5, metadata=TB), None)
    gotb, gota = [], []
    subb = d.subscribe(P.SubscribeRequest(after=0), timeout=30, metadata=TB)
    suba = d.subscribe(P.SubscribeRequest(after=pa), timeout=30, metadata=TA)
    tb = threading.Thread(target=collect, args=(subb, gotb), daemon=True)
    ta = threading.Thread(target=collect, args=(suba, gota), daemon=True)
    tb.start()
    ta.start()
    time.sleep(0.3)
    r = d.append(append_req([event("Secret", ["acct:2"])]), timeout=10, metadata=TA)
    wait_for(lambda: len(gota) >= 1, 5)
    time.sleep(0.3)
    c.eq("tenant-a's subscriber gets tenant-a's live event", [e.position for e in gota], [r.position])
    c.eq("tenant-b's subscriber gets nothing", len(gotb), 0)
    subb.cancel()
    suba.cancel()
    ch.close()


# ==========================================================================
# auth_tls
# ==========================================================================

def openssl_cert(tmp, name):
    cert, key = os.path.join(tmp, name + ".crt"), os.path.join(tmp, name + ".key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("openssl req failed: " + r.stderr)
    return cert, key


def probe_ok(d, md):
    try:
        d.head(pb().HeadRequest(), timeout=5, metadata=md)
        return True
    except grpc.RpcError:
        return False


def start_refused(c, what, evs, args, want_in_log, tmp):
    """`evs serve ARGS` must exit non-zero at once with a message."""
    r = subprocess.run([evs, "serve"] + args, capture_output=True, text=True, timeout=20)
    out = r.stdout + r.stderr
    c.check("%s: evs serve refuses to start (exit %d)" % (what, r.returncode), r.returncode != 0,
            out[:300])
    c.check("%s: the message names %r" % (what, want_in_log), want_in_log.lower() in out.lower(),
            out[:300])


def group_auth_tls(c, evs, tmp, db):
    P = pb()
    keys = os.path.join(tmp, "keys")
    with open(keys, "w") as f:
        f.write("# API keys of the test\n"
                "admin-key-0001\n"
                "ro-key-0002 read-only\n"
                "ta-key-0003 tenants=ta read-write\n"
                "tab-ro-key-0004 tenants=ta,tb read-only\n"
                "star-key-0005 tenants=* read-write\n")
    keys0 = os.path.join(tmp, "keys0")
    shutil.copy(keys, keys0)
    cert, key = openssl_cert(tmp, "server")
    other_cert, _ = openssl_cert(tmp, "other")
    root = open(cert, "rb").read()
    ADMIN = [("authorization", "Bearer admin-key-0001")]
    srv = sl.Server(evs, db, tmp, ["--api-keys", keys], probe_md=ADMIN).start()
    servers = [srv]
    try:
        c.section("API keys")
        ch = srv.channel()
        d = Dcb(ch)
        def bearer(k):
            return [("authorization", "Bearer " + k)]
        r = d.append(append_req([event("Opened", ["acct:1"])]), timeout=10, metadata=ADMIN)
        c.check("admin key: Append succeeds", r.HasField("position"), str(r))
        H = d.head_pos(timeout=5, metadata=ADMIN)
        c.eq("admin key: Head", H, r.position)
        for name, md in [("no authorization header", []),
                         ("an unknown key", bearer("wrong-key")),
                         ("an empty bearer", [("authorization", "Bearer ")]),
                         ("a Basic credential", [("authorization", "Basic YWRtaW4ta2V5LTAwMDE=")]),
                         ("the key without 'Bearer '", [("authorization", "admin-key-0001")])]:
            expect_error(c, "Head with %s" % name, lambda: d.head(P.HeadRequest(), timeout=5, metadata=md),
                         SC.UNAUTHENTICATED)
        for name, md in [("no authorization header", []), ("an unknown key", bearer("wrong-key"))]:
            expect_error(c, "Append with %s" % name,
                         lambda: d.append(append_req([event("X", ["x:1"])]), timeout=5, metadata=md),
                         SC.UNAUTHENTICATED)
            expect_error(c, "Read with %s" % name, lambda: d.read(P.ReadRequest(), timeout=5, metadata=md),
                         SC.UNAUTHENTICATED)
            expect_error(c, "Subscribe with %s" % name,
                         lambda: d.subscribe(P.SubscribeRequest(), timeout=5, metadata=md),
                         SC.UNAUTHENTICATED)
            expect_error(c, "GetTrackingInfo with %s" % name,
                         lambda: d.tracking(P.TrackingRequest(source="s"), timeout=5, metadata=md),
                         SC.UNAUTHENTICATED)
        c.eq("... nothing written by the refused calls", d.head_pos(timeout=5, metadata=ADMIN), H)
        RO = bearer("ro-key-0002")
        c.eq("read-only key: Head", d.head_pos(timeout=5, metadata=RO), H)
        c.eq("read-only key: Read", len(d.events(P.ReadRequest(), timeout=5, metadata=RO)), 1)
        t = d.tracking(P.TrackingRequest(source="s"), timeout=5, metadata=RO)
        c.check("read-only key: GetTrackingInfo", not t.HasField("position"), str(t))
        expect_error(c, "read-only key: Append",
                     lambda: d.append(append_req([event("X", ["x:1"])]), timeout=5, metadata=RO),
                     SC.PERMISSION_DENIED)
        expect_error(c, "read-only key: Append of zero events with tracking_info",
                     lambda: d.append(append_req([], tracking=("s", 1)), timeout=5, metadata=RO),
                     SC.PERMISSION_DENIED)
        c.eq("... nothing written", d.head_pos(timeout=5, metadata=ADMIN), H)
        t = d.tracking(P.TrackingRequest(source="s"), timeout=5, metadata=ADMIN)
        c.check("... no tracking stored", not t.HasField("position"), str(t))
        got = []
        sub = d.subscribe(P.SubscribeRequest(), timeout=10, metadata=RO)
        th = threading.Thread(target=collect, args=(sub, got, 1), daemon=True)
        th.start()
        th.join(5)
        c.eq("read-only key: Subscribe delivers", len(got), 1)
        sub.cancel()

        TA = bearer("ta-key-0003") + [("evs-tenant", "ta")]
        r = d.append(append_req([event("InA", ["a:1"])]), timeout=5, metadata=TA)
        c.check("tenant-limited key (ta): Append in tenant ta", r.HasField("position"), str(r))
        c.eq("tenant-limited key (ta): Read in tenant ta",
             [e.event.event_type for e in d.events(P.ReadRequest(), timeout=5, metadata=TA)], ["InA"])
        H = d.head_pos(timeout=5, metadata=ADMIN)
        expect_error(c, "tenant-limited key (ta): Append in tenant tb",
                     lambda: d.append(append_req([event("X", ["x:1"])]), timeout=5,
                                      metadata=bearer("ta-key-0003") + [("evs-tenant", "tb")]),
                     SC.PERMISSION_DENIED)
        expect_error(c, "tenant-limited key (ta): Read in tenant tb",
                     lambda: d.read(P.ReadRequest(), timeout=5,
                                    metadata=bearer("ta-key-0003") + [("evs-tenant", "tb")]),
                     SC.PERMISSION_DENIED)
        expect_error(c, "tenant-limited key (ta): Head in the default tenant",
                     lambda: d.head(P.HeadRequest(), timeout=5, metadata=bearer("ta-key-0003")),
                     SC.PERMISSION_DENIED)
        expect_error(c, "tenant-limited key (ta,tb) read-only: Append in tb",
                     lambda: d.append(append_req([event("X", ["x:1"])]), timeout=5,
                                      metadata=bearer("tab-ro-key-0004") + [("evs-tenant", "tb")]),
                     SC.PERMISSION_DENIED)
        got = d.events(P.ReadRequest(), timeout=5,
                       metadata=bearer("tab-ro-key-0004") + [("evs-tenant", "tb")])
        c.eq("tenant-limited key (ta,tb) read-only: Read in tb", len(got), 0)
        c.eq("... nothing written by the denied calls", d.head_pos(timeout=5, metadata=ADMIN), H)
        r = d.append(append_req([event("InC", ["c:1"])]), timeout=5,
                     metadata=bearer("star-key-0005") + [("evs-tenant", "tc")])
        c.check("tenants=* key: Append in tenant tc", r.HasField("position"), str(r))
        hl = Health(ch)
        try:
            hr = hl.check(sl.health.HealthCheckRequest(service=""), timeout=5)
            c.note("Health/Check without a key answers %s (not checked)" %
                   sl.health.HealthCheckResponse.ServingStatus.Name(hr.status))
        except grpc.RpcError as e:
            c.note("Health/Check without a key: %s (not checked)" % e.code())

        c.section("SIGHUP reloads the API keys")
        # a subscription of a key the reload removes: caught up, parked
        doomed = d.subscribe(P.SubscribeRequest(query=sl.query(((), ["doomed:1"]))),
                             timeout=30, metadata=bearer("star-key-0005"))
        with open(keys + ".new", "w") as f:
            f.write("new-key-0006\nro-key-0002 read-write\n")
        os.replace(keys + ".new", keys)
        srv.proc.send_signal(signal.SIGHUP)
        NEW = bearer("new-key-0006")
        ok_new = wait_for(lambda: probe_ok(d, NEW), 5)
        c.check("after SIGHUP a key added to the file works", ok_new)
        # the next commit wakes it: it must end, not deliver the event
        d.append(append_req([event("Doomed", ["doomed:1"])]), timeout=5, metadata=NEW)
        got, code = [], None
        try:
            for resp in doomed:
                got.extend(resp.events)
        except grpc.RpcError as e:
            code = e.code()
        c.check("a subscription whose key SIGHUP removed ends UNAUTHENTICATED at the next "
                "commit, without the event", code == SC.UNAUTHENTICATED and not got,
                "code %s, %d events" % (code, len(got)))
        expect_error(c, "after SIGHUP a key removed from the file",
                     lambda: d.head(P.HeadRequest(), timeout=5, metadata=ADMIN), SC.UNAUTHENTICATED)
        c.note("(the TLS-and-keys server below gets the first keys file again)")
        r = d.append(append_req([event("Hup", ["hup:1"])]), timeout=5, metadata=RO)
        c.check("after SIGHUP ro-key-0002, now read-write, appends", r.HasField("position"))
        with open(keys + ".new", "w") as f:
            f.write("new-key-0006\nbroken tenants= sideways\n")
        os.replace(keys + ".new", keys)
        srv.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        c.check("SIGHUP with a broken keys file: the server keeps running", srv.alive())
        c.check("... with the old keys (new-key-0006 still works)", probe_ok(d, NEW))
        r = d.append(append_req([event("Hup", ["hup:1"])]), timeout=5, metadata=RO)
        c.check("... (ro-key-0002 still read-write)", r.HasField("position"))
        log = srv.log()
        c.check("... and says so in its log, naming the file", os.path.basename(keys) in log
                and re.search(r"keep|kept|old|still", log, re.I) is not None, log[-400:])
        ch.close()
        c.eq("SIGTERM: exit status 0", srv.stop(), 0)

        c.section("TLS")
        tsrv = sl.Server(evs, db, tmp, ["--tls-cert", cert, "--tls-key", key], tls_root=root).start()
        servers.append(tsrv)
        ch = tsrv.channel()
        d = Dcb(ch)
        H = d.head_pos(timeout=5)
        c.check("TLS (root = the self-signed certificate): Head answers", H is not None, str(H))
        r = d.append(append_req([event("OverTls", ["tls:1"], b'{"x":1}')]), timeout=10)
        got = d.events(P.ReadRequest(query=query(([], ["tls:1"]))), timeout=5)
        c.eq("TLS: Append then Read", [e.position for e in got], [r.position])
        gs = []
        sub = d.subscribe(P.SubscribeRequest(after=r.position - 1), timeout=10)
        th = threading.Thread(target=collect, args=(sub, gs, 1), daemon=True)
        th.start()
        th.join(5)
        c.eq("TLS: Subscribe", [e.position for e in gs], [r.position])
        sub.cancel()
        ch.close()
        creds = grpc.ssl_channel_credentials(root_certificates=root)
        ch = grpc.secure_channel("localhost:%d" % tsrv.port, creds)
        c.eq("TLS by the name localhost: Head", Dcb(ch).head_pos(timeout=5), r.position)
        ch.close()
        ch = grpc.insecure_channel(tsrv.target)
        expect_error(c, "cleartext (h2c) to the TLS port", lambda: Dcb(ch).head(P.HeadRequest(), timeout=3),
                     SC.UNAVAILABLE, details=False)
        ch.close()
        ch = grpc.secure_channel(tsrv.target,
                                 grpc.ssl_channel_credentials(root_certificates=open(other_cert, "rb").read()))
        expect_error(c, "TLS trusting another certificate", lambda: Dcb(ch).head(P.HeadRequest(), timeout=3),
                     SC.UNAVAILABLE, details=False)
        ch.close()
        c.check("the TLS server still serves after the bad handshakes",
                Dcb(tsrv.channel()).head_pos(timeout=5) == r.position)
        c.eq("SIGTERM: exit status 0", tsrv.stop(), 0)

        c.section("TLS and API keys together")
        ksrv = sl.Server(evs, db, tmp, ["--tls-cert", cert, "--tls-key", key, "--api-keys", keys0],
                         tls_root=root, probe_md=ADMIN).start()
        servers.append(ksrv)
        ch = ksrv.channel()
        d = Dcb(ch)
        expect_error(c, "TLS without a key: Head", lambda: d.head(P.HeadRequest(), timeout=5),
                     SC.UNAUTHENTICATED)
        c.eq("TLS with the admin key: Head", d.head_pos(timeout=5, metadata=ADMIN), r.position)
        ch.close()
        c.eq("SIGTERM: exit status 0", ksrv.stop(), 0)

        c.section("start-up refusals")
        port = sl.free_port()
        bad = os.path.join(tmp, "badkeys")
        with open(bad, "w") as f:
            f.write("good-key-1\nkey2 tenants= read-sideways\n")
        start_refused(c, "a keys file with a bad line", evs,
                      ["--db", db, "--listen", "127.0.0.1:%d" % port, "--http", "off", "--api-keys", bad],
                      "badkeys", tmp)
        start_refused(c, "a missing keys file", evs,
                      ["--db", db, "--listen", "127.0.0.1:%d" % port, "--http", "off",
                       "--api-keys", os.path.join(tmp, "nokeys")], "nokeys", tmp)
        start_refused(c, "--tls-cert without --tls-key", evs,
                      ["--db", db, "--listen", "127.0.0.1:%d" % port, "--http", "off", "--tls-cert", cert],
                      "tls-key", tmp)
        start_refused(c, "a missing certificate file", evs,
                      ["--db", db, "--listen", "127.0.0.1:%d" % port, "--http", "off",
                       "--tls-cert", os.path.join(tmp, "none.crt"), "--tls-key", key], "none.crt", tmp)
        start_refused(c, "0.0.0.0 without TLS or --insecure", evs,
                      ["--db", db, "--listen", "0.0.0.0:%d" % port, "--http", "off"], "insecure", tmp)
        isrv = sl.Server(evs, db, tmp, ["--insecure"])
        isrv.start()
        servers.append(isrv)
        c.check("127.0.0.1 with --insecure starts", isrv.alive())
        c.eq("SIGTERM: exit status 0", isrv.stop(), 0)
    finally:
        for s in servers:
            s.kill()


# ==========================================================================
# races
# ==========================================================================

def group_races(c, srv):
    P = pb()
    ch0 = srv.channel()
    d0 = Dcb(ch0)
    d0.append(append_req([event("Seed", ["seed:1"])]), timeout=10)

    c.section("the DCB race: 16 clients claim one username")
    for round_ in range(5):
        name = "username:user-%d" % round_
        n = 16
        chans = [srv.channel(options=OWN) for _ in range(n)]
        for ch in chans:
            Dcb(ch).head(P.HeadRequest(), timeout=10)
        bar = threading.Barrier(n)
        results = [None] * n

        def worker(i):
            d = Dcb(chans[i])
            q = query(([], [name]))
            rs = d.read_all(P.ReadRequest(query=q), timeout=20)
            h = rs[-1].head if rs and rs[-1].HasField("head") else None
            bar.wait()
            try:
                r = d.append(append_req([event("UserRegistered", [name], b'{"client":%d}' % i)],
                                        fail_if=q, after=h), timeout=30)
                results[i] = ("OK", r.position)
            except grpc.RpcError as e:
                code, msg, parsed, _ = sl.error_of(e)
                results[i] = (code.name, msg, parsed.error_type if parsed else None)
        ths = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(60)
        oks = [r for r in results if r and r[0] == "OK"]
        fails = [r for r in results if r and r[0] == "FAILED_PRECONDITION"]
        c.check("round %d: exactly 1 of 16 succeeds, 15 get FAILED_PRECONDITION" % round_,
                len(oks) == 1 and len(fails) == 15, str(results))
        c.check("round %d: the 15 carry ErrorResponse INTEGRITY" % round_,
                all(r[2] == P.ErrorResponse.INTEGRITY for r in fails), str(fails[:2]))
        got = Dcb(chans[0]).events(P.ReadRequest(query=query(([], [name]))), timeout=10)
        c.eq("round %d: the store holds one claim, at the winner's position" % round_,
             [e.position for e in got], [oks[0][1]] if oks else ["(no winner)"])
        for ch in chans:
            ch.close()

    c.section("Subscribe under 4 racing writers, with a reconnect")
    base = d0.head_pos(timeout=5)
    W, N = 4, 300
    acked = [[] for _ in range(W)]
    werr = []

    def writer(w):
        ch = srv.channel(options=OWN)
        d = Dcb(ch)
        try:
            for i in range(N):
                k = 3 if i % 4 == 0 else 1
                evs_ = [event("Sub4", ["w:%d" % w], json.dumps({"w": w, "i": i, "k": j}).encode())
                        for j in range(k)]
                r = d.append(append_req(evs_), timeout=30)
                acked[w].append((i, k, r.position))
        except grpc.RpcError as e:
            werr.append((w, e.code(), e.details()))
        finally:
            ch.close()

    total = W * sum(3 if i % 4 == 0 else 1 for i in range(N))
    q = query((["Sub4"], []))
    chs = srv.channel()
    ds = Dcb(chs)
    got, errs = [], []
    sub = ds.subscribe(P.SubscribeRequest(query=q, after=base), timeout=120)
    th = threading.Thread(target=collect, args=(sub, got, None, errs), daemon=True)
    th.start()
    ws = [threading.Thread(target=writer, args=(w,)) for w in range(W)]
    t0 = time.monotonic()
    for t in ws:
        t.start()
    half = wait_for(lambda: len(got) >= total // 2, 30)
    sub.cancel()
    th.join(10)
    first = list(got)
    running = sum(t.is_alive() for t in ws)
    c.check("the first subscription got half the events (%d of %d)" % (len(first), total),
            half and len(first) >= total // 2, "got %d" % len(first))
    c.note("%d of 4 writers were still writing when it was cancelled" % running)
    last = first[-1].position if first else base
    got2, errs2 = [], []
    sub2 = ds.subscribe(P.SubscribeRequest(query=q, after=last), timeout=120)
    th2 = threading.Thread(target=collect, args=(sub2, got2, None, errs2), daemon=True)
    th2.start()
    for t in ws:
        t.join(90)
    wrote = time.monotonic() - t0
    c.check("4 writers: no errors", not werr, str(werr[:3]))
    c.note("%d events in %d appends by 4 writers in %.1f s" % (total, W * N, wrote))
    done = wait_for(lambda: len(first) + len(got2) >= total, 30)
    time.sleep(0.3)
    sub2.cancel()
    th2.join(10)
    allgot = first + got2
    c.check("subscriber (with a reconnect after position %d): all %d events" % (last, total),
            done and len(allgot) == total, "got %d" % len(allgot))
    pos = [e.position for e in allgot]
    c.check("... every event exactly once, positions strictly increasing", pos == sorted(set(pos)),
            "first disorder at %s" % next((i for i in range(1, len(pos)) if pos[i] <= pos[i - 1]), None))
    stored = [e.position for e in ds.events(P.ReadRequest(query=q, start=base + 1), timeout=30)]
    c.check("... exactly the positions Read returns", pos == stored,
            "%d delivered vs %d stored" % (len(pos), len(stored)))
    keys = [tuple(json.loads(e.event.data)[x] for x in ("w", "i", "k")) for e in allgot]
    c.eq("... exactly the events written (by writer, append, index)", sorted(keys),
         sorted((w, i, j) for w in range(W) for i in range(N) for j in range(3 if i % 4 == 0 else 1)))
    for w in range(W):
        mine = [k for k in keys if k[0] == w]
        c.check("... writer %d's events in the order it wrote them" % w, mine == sorted(mine))
    ackpos = {p for w in range(W) for (_, _, p) in acked[w]}
    c.check("... every acknowledged append's position delivered", ackpos <= set(pos),
            str(sorted(ackpos - set(pos))[:5]))
    chs.close()

    c.section("conformance: 20 parallel writers with conditions")
    ACCTS = ["bal:%d" % i for i in range(4)]
    log, unrelated_fail, other_err = [], [], []
    lk = threading.Lock()

    def contender(i):
        ch = srv.channel(options=OWN)
        d = Dcb(ch)
        rnd = random.Random(i)
        last_pos = 0
        try:
            for k in range(20):
                a = rnd.choice(ACCTS)
                qa = query(([], [a]))
                rs = d.read_all(P.ReadRequest(query=qa), timeout=20)
                h = rs[-1].head if rs[-1].HasField("head") else None
                rp = [e.position for r in rs for e in r.events]
                if rp != sorted(set(rp)) or (rp and h is not None and rp[-1] > h):
                    with lk:
                        other_err.append(("read order", a, rp, h))
                try:
                    r = d.append(append_req([event("Moved", [a, "cw:%d" % i])], fail_if=qa, after=h),
                                 timeout=30)
                    with lk:
                        log.append((a, h, r.position, "OK"))
                    if r.position <= last_pos:
                        with lk:
                            other_err.append(("position went back", i, last_pos, r.position))
                    last_pos = r.position
                except grpc.RpcError as e:
                    with lk:
                        if e.code() == SC.FAILED_PRECONDITION:
                            log.append((a, h, None, "FAIL"))
                        else:
                            other_err.append((e.code(), e.details()))
        finally:
            ch.close()

    def loner(i):
        ch = srv.channel(options=OWN)
        d = Dcb(ch)
        tag = "solo:%d" % i
        qa = query(([], [tag]))
        h = None
        try:
            for k in range(20):
                try:
                    r = d.append(append_req([event("Solo", [tag], b'{"k":%d}' % k)], fail_if=qa, after=h),
                                 timeout=30)
                    if h is not None and r.position <= h:
                        with lk:
                            other_err.append(("position went back", tag, h, r.position))
                    h = r.position
                except grpc.RpcError as e:
                    with lk:
                        unrelated_fail.append((tag, k, e.code(), e.details()))
        finally:
            ch.close()

    ths = [threading.Thread(target=contender, args=(i,)) for i in range(20)] + \
          [threading.Thread(target=loner, args=(i,)) for i in range(20)]
    t0 = time.monotonic()
    for t in ths:
        t.start()
    for t in ths:
        t.join(120)
    oks = [x for x in log if x[3] == "OK"]
    c.note("20 contending writers: %d appends succeeded, %d met their condition's failure; "
           "20 unrelated writers alongside; %.1f s" % (len(oks), len(log) - len(oks), time.monotonic() - t0))
    c.check("no error other than FAILED_PRECONDITION; reads ordered; positions increase per writer",
            not other_err, str(other_err[:3]))
    c.eq("the 20 writers of unrelated tags (conditions on their own tag): failures", unrelated_fail, [])
    c.eq("every contending append answered", len(log), 20 * 20)
    c.check("some contending appends succeeded", len(oks) >= len(ACCTS), str(len(oks)))
    d = d0
    bad = []
    for a in ACCTS:
        stored = [e.position for e in d.events(P.ReadRequest(query=query(([], [a]))), timeout=20)]
        mine = sorted(x[2] for x in oks if x[0] == a)
        if stored != mine:
            bad.append(("stored != succeeded", a, stored, mine))
        for (a2, h, p, _) in oks:
            if a2 != a:
                continue
            between = [s for s in stored if (h is None or s > h) and s < p]
            if between:
                bad.append(("condition did not hold", a, "after", h, "appended at", p, "but", between))
    c.check("re-read: each successful append's condition really held (no event of its tag "
            "between its read head and its position), and the store holds exactly the successes",
            not bad, str(bad[:3]))
    for i in range(20):
        stored = [e.position for e in d.events(P.ReadRequest(query=query(([], ["solo:%d" % i]))), timeout=20)]
        if len(stored) != 20:
            bad.append(("solo", i, len(stored)))
    c.check("each unrelated writer's 20 events stored", not bad, str(bad[:3]))
    ch0.close()


# ==========================================================================
# abuse
# ==========================================================================

def group_abuse(c, srv):
    P = pb()
    ch = srv.channel()
    d = Dcb(ch)
    d.append(append_req([event("Seed", ["seed:1"])]), timeout=10)
    H = d.head_pos(timeout=5)

    c.section("malformed protobuf")
    ident = lambda b: b
    for m in ("Append", "Head", "Read", "Subscribe", "GetTrackingInfo"):
        stream = m in ("Read", "Subscribe")
        mk = ch.unary_stream if stream else ch.unary_unary
        call = mk("/umadb.v1.DCB/" + m, request_serializer=ident, response_deserializer=ident)
        for junk in (b"\xff\xff\xff", b"\x0a\xff\xff\xff\x0f", b"\x12\x05ab"):
            e = expect_error(c, "%s with the bytes %r" % (m, junk), lambda: call(junk, timeout=5),
                             (SC.INVALID_ARGUMENT, SC.INTERNAL), details=False)
            if e is not None and e.code() == SC.INVALID_ARGUMENT:
                code, msg, parsed, raw = sl.error_of(e)
                c.check("... with ErrorResponse details, error_type SERIALIZATION or INVALID_ARGUMENT",
                        parsed is not None and parsed.message != "" and parsed.error_type in
                        (P.ErrorResponse.SERIALIZATION, P.ErrorResponse.INVALID_ARGUMENT),
                        repr(raw))
    c.eq("the server still serves: Head", d.head_pos(timeout=5), H)
    c.eq("... nothing written", len(d.events(P.ReadRequest(), timeout=5)), 1)

    c.section("connections that do not speak HTTP/2")
    import socket as socketlib
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00" * 64 + b"\xff" * 4096,
                 b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 100, b"PRI * HTTP/2.0\r\n"):
        so = socketlib.create_connection(("127.0.0.1", srv.port), timeout=5)
        try:
            so.sendall(junk)
            so.settimeout(2)
            try:
                so.recv(4096)
            except (socketlib.timeout, OSError):
                pass
        finally:
            so.close()
    c.eq("after 4 connections sending junk, the server still serves: Head", d.head_pos(timeout=5), H)

    c.section("oversize messages")
    big = append_req([event("Big", ["big:1"], b"x" * (5 * 1024 * 1024))])
    expect_error(c, "Append of a 5 MiB message (limit 4 MiB)", lambda: d.append(big, timeout=20),
                 SC.RESOURCE_EXHAUSTED, details=False)
    many = P.AppendRequest()
    for i in range(3):
        many.events.append(event("Big", ["big:1"], b"y" * (2 * 1024 * 1024)))
    expect_error(c, "Append of 3 events of 2 MiB (6 MiB message)", lambda: d.append(many, timeout=20),
                 SC.RESOURCE_EXHAUSTED, details=False)
    c.eq("the server still serves, nothing written", d.head_pos(timeout=5), H)
    r = d.append(append_req([event("Small", ["s:1"], b'{"ok":true}')]), timeout=10)
    c.eq("... and appends", r.position, H + 1)
    H = r.position

    c.section("1,000 idle connections")
    rss0 = srv.rss_mb()
    sock0 = srv.sockets()
    chans = []
    t0 = time.monotonic()
    failed = []
    for i in range(1000):
        cc = srv.channel(options=OWN + [("grpc.keepalive_time_ms", 600000)])
        try:
            Dcb(cc).head(P.HeadRequest(), timeout=10)
        except grpc.RpcError as e:
            failed.append((i, e.code()))
        chans.append(cc)
    c.eq("1,000 connections each answered a Head", failed[:3], [])
    c.note("opened in %.1f s" % (time.monotonic() - t0))
    time.sleep(1.0)
    socks = srv.sockets()
    c.check("the server holds >= 1,000 more sockets (%d -> %d)" % (sock0, socks), socks - sock0 >= 1000)
    rss = srv.rss_mb()
    c.bound("server RSS with 1,000 idle connections < 200 MB (%.1f MB, %.1f MB before)" % (rss, rss0),
            rss < 200)
    c.eq("... the server still answers on another connection", Dcb(srv.channel(options=OWN)).head_pos(timeout=10),
         d.head_pos(timeout=10))
    r = d.append(append_req([event("Busy", ["busy:1"])]), timeout=10)
    c.check("... and appends", r.HasField("position"))
    for cc in chans:
        cc.close()
    time.sleep(1.0)
    c.check("after the 1,000 close, the server's sockets go back (%d)" % srv.sockets(),
            wait_for(lambda: srv.sockets() < sock0 + 50, 10), "%d" % srv.sockets())

    c.section("abrupt disconnect mid-append")
    # Appends of 1,000 events (about 2.3 MB) whose connection closes 0 to
    # 30 ms after the call starts: some are cut off while the request is
    # still being sent, some while the store commits, some after.
    reqs = []
    NE = 1000
    for k in range(20):
        req = P.AppendRequest()
        for j in range(NE):
            req.events.append(event("Cut", ["cut:%d" % k], b'{"j":%d,"pad":"%s"}' % (j, b"p" * 2000),
                                    uuid=str(uuidlib.uuid4())))
        reqs.append(req)
    answered = 0
    for k, req in enumerate(reqs):
        cch = srv.channel(options=OWN)
        Dcb(cch).head(P.HeadRequest(), timeout=10)
        f = Dcb(cch).append.future(req, timeout=10)
        time.sleep(k * 0.0015)
        cch.close()
        try:
            f.result(timeout=5)
            answered += 1
        except Exception:
            pass
    c.check("20 appends cut off by closing their connection: the server is alive", srv.alive())
    cut_ids = [e.uuid for req in reqs for e in req.events]
    stored = d.events(P.ReadRequest(query=query((["Cut"], []))), timeout=30)
    n_before = len(stored)
    c.check("... each cut append is all or nothing (%d of 20 committed, %d answered)"
            % (n_before // NE, answered),
            n_before % NE == 0 and all(
                len({e.event.uuid for e in stored if e.event.tags[0] == "cut:%d" % k}) in (0, NE)
                for k in range(20)), "%d events" % n_before)
    pos_retry = []
    for req in reqs:
        pos_retry.append(d.append(req, timeout=30).position)
    stored = d.events(P.ReadRequest(query=query((["Cut"], []))), timeout=30)
    ids = [e.event.uuid for e in stored]
    c.check("retrying all 20 with the same uuids: every event exactly once",
            sorted(ids) == sorted(cut_ids) and len(set(ids)) == len(ids),
            "%d stored of %d" % (len(ids), len(cut_ids)))
    by_id = {e.event.uuid: e.position for e in stored}
    c.check("... each retry answers the position of its last event",
            all(by_id.get(req.events[-1].uuid) == p for req, p in zip(reqs, pos_retry)))

    c.section("abrupt disconnect mid-subscription")
    for k in range(20):
        cch = srv.channel(options=OWN)
        sub = Dcb(cch).subscribe(P.SubscribeRequest(after=0, batch_size=16), timeout=30)
        next(sub)
        cch.close()
    for k in range(5):  # and some that never read at all
        cch = srv.channel(options=OWN)
        Dcb(cch).subscribe(P.SubscribeRequest(after=0), timeout=30)
        time.sleep(0.05)
        cch.close()
    time.sleep(0.5)
    r = d.append(append_req([event("After", ["after:1"])]), timeout=10)
    c.check("25 subscriptions cut off: the server still appends", r.HasField("position"))
    got = []
    sub = d.subscribe(P.SubscribeRequest(after=r.position - 1), timeout=10)
    th = threading.Thread(target=collect, args=(sub, got, 1), daemon=True)
    th.start()
    th.join(5)
    c.eq("... and subscribes", [e.position for e in got], [r.position])
    sub.cancel()

    ch.close()
    c.eq("SIGTERM: exit status 0", srv.stop(), 0)


# ==========================================================================
# load
# ==========================================================================

def self_anon_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024.0
    return -1.0


def rate_of(srv, seconds, tag, data):
    """4 writers append 8 events of len(data) bytes a call for seconds;
    returns (appends/s, errors)."""
    stop = time.monotonic() + seconds
    counts = [0] * 4
    errs = []

    def w(i):
        ch = srv.channel(options=OWN)
        d = Dcb(ch)
        req = append_req([event("Load", [tag, "w:%d" % i], data) for _ in range(8)])
        try:
            while time.monotonic() < stop:
                d.append(req, timeout=30)
                counts[i] += 1
        except grpc.RpcError as e:
            errs.append((e.code(), e.details()))
        finally:
            ch.close()
    ths = [threading.Thread(target=w, args=(i,)) for i in range(4)]
    t0 = time.monotonic()
    for t in ths:
        t.start()
    for t in ths:
        t.join(seconds + 60)
    return sum(counts) / (time.monotonic() - t0), errs


def group_load(c, srv, evs, tmp, db, servers):
    P = pb()
    c.section("a subscriber that reads nothing for 10 s while writers go on")
    data = json.dumps({"pad": "q" * int(os.environ.get("EVS_TEST_PAD", "1000"))}).encode()
    ch = srv.channel()
    d = Dcb(ch)
    d.append(append_req([event("Seed", ["seed:1"])]), timeout=10)
    base_rate, e0 = rate_of(srv, 3.0, "phase:base", data)
    c.check("baseline: 4 writers, no errors", not e0, str(e0[:2]))
    c.note("baseline: %.0f appends/s (8 events of %d bytes each)" % (base_rate, len(data)))
    stalled = []
    for i in range(4):
        sch = srv.channel(options=OWN)
        it = Dcb(sch).subscribe(P.SubscribeRequest(after=0), timeout=120)
        stalled.append((sch, it))
    time.sleep(0.5)
    # VmRSS counts the store's memory-mapped log pages too (page cache that
    # grows with what is written, subscribers or not); what a subscriber
    # buffers is anonymous memory: RssAnon is the bound checked.
    rss0, anon0 = srv.rss_mb(), srv.rss_mb("RssAnon")
    me0 = self_anon_mb()
    peak = [rss0, anon0]
    stop_mon = threading.Event()

    def monitor():
        while not stop_mon.is_set():
            try:
                peak[0] = max(peak[0], srv.rss_mb())
                peak[1] = max(peak[1], srv.rss_mb("RssAnon"))
            except OSError:
                return
            time.sleep(0.1)
    mt = threading.Thread(target=monitor, daemon=True)
    mt.start()
    H0 = d.head_pos(timeout=5)
    stall_rate, e1 = rate_of(srv, 10.0, "phase:stall", data)
    stop_mon.set()
    mt.join(2)
    H1 = d.head_pos(timeout=5)
    written_mb = (H1 - H0) * len(data) / 1e6
    c.check("during the stall: writers, no errors", not e1, str(e1[:2]))
    c.note("during the stall of 4 subscribers that read nothing: %.0f appends/s, %.0f MB written"
           % (stall_rate, written_mb))
    c.bound("writers' rate with the stalled subscribers >= half the baseline (%.0f vs %.0f appends/s)"
            % (stall_rate, base_rate), stall_rate >= base_rate / 2)
    c.bound("server anonymous memory (RssAnon) grew < 100 MB during the stall (%.1f -> peak %.1f MB; "
            "%.0f MB written, 4 stalled subscribers)" % (anon0, peak[1], written_mb), peak[1] - anon0 < 100)
    c.note("server VmRSS (with the mapped log) %.1f -> peak %.1f MB" % (rss0, peak[0]))
    me1 = self_anon_mb()
    c.check("the stalled subscribers really did not read: this client's own RssAnon grew < 50 MB "
            "(%.1f -> %.1f MB), so flow control held the server back" % (me0, me1), me1 - me0 < 50)
    # The stalled subscriber now reads: it must get everything, in order.
    sch, it = stalled[0]
    got = []
    th = threading.Thread(target=collect, args=(it, got, H1), daemon=True)
    t0 = time.monotonic()
    th.start()
    th.join(60)
    pos = [e.position for e in got]
    c.check("a stalled subscriber, reading again, gets all %d events in order (%.1f s)"
            % (H1, time.monotonic() - t0),
            len(pos) >= H1 and pos[:H1] == list(range(1, H1 + 1)),
            "got %d, first gap at %s" % (len(pos), next((i for i in range(len(pos)) if pos[i] != i + 1), None)))
    for sch, it in stalled:
        it.cancel()
        sch.close()
    ch.close()
    c.eq("SIGTERM: exit status 0", srv.stop(), 0)

    c.section("SIGTERM during load (a fresh store)")
    db = os.path.join(tmp, "store-sigterm") if not db.startswith("postgres") else db
    srv = sl.Server(evs, db, tmp).start()
    servers.append(srv)
    acked = []
    unacked = []
    lk = threading.Lock()
    stop_err = []
    running = threading.Event()
    running.set()

    def w(i):
        ch = srv.channel(options=OWN)
        d = Dcb(ch)
        n = 0
        while running.is_set():
            ids = [str(uuidlib.uuid4()) for _ in range(5)]
            req = append_req([event("Term", ["t:%d" % i], b'{"n":%d}' % n, uuid=u) for u in ids])
            n += 1
            try:
                r = d.append(req, timeout=10)
                with lk:
                    acked.append((ids, r.position))
            except grpc.RpcError as e:
                with lk:
                    stop_err.append(e.code())
                    unacked.append((ids, e.code(), e.details()))
                if e.code() in (SC.UNAVAILABLE, SC.CANCELLED, SC.DEADLINE_EXCEEDED):
                    break
        ch.close()
    subch = srv.channel(options=OWN)
    sub = Dcb(subch).subscribe(P.SubscribeRequest(after=0), timeout=60)
    sub_got, sub_err = [], []
    st = threading.Thread(target=collect, args=(sub, sub_got, None, sub_err), daemon=True)
    st.start()
    watch_got = []

    def watch():
        try:
            for m in Health(subch).watch(sl.health.HealthCheckRequest(service=""), timeout=60):
                watch_got.append(sl.health.HealthCheckResponse.ServingStatus.Name(m.status))
        except grpc.RpcError as e:
            watch_got.append(e.code().name)
    wt = threading.Thread(target=watch, daemon=True)
    wt.start()
    ths = [threading.Thread(target=w, args=(i,)) for i in range(6)]
    for t in ths:
        t.start()
    time.sleep(2.0)
    n_before = len(acked)
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    try:
        rc = srv.proc.wait(30)
    except subprocess.TimeoutExpired:
        rc = None
    took = time.monotonic() - t0
    running.clear()
    for t in ths:
        t.join(30)
    st.join(10)
    c.eq("SIGTERM under 6 appending writers: exit status", rc, 0)
    c.note("%d appends acknowledged before SIGTERM, %d in all; the server stopped in %.2f s; "
           "writers then got %s" % (n_before, len(acked), took, sorted({x.name for x in stop_err})))
    c.check("the writers' failures after SIGTERM are UNAVAILABLE (or CANCELLED)",
            all(x in (SC.UNAVAILABLE, SC.CANCELLED) for x in stop_err), str(stop_err[:5]))
    c.check("the subscription ended with UNAVAILABLE",
            len(sub_err) == 1 and sub_err[0].code() == SC.UNAVAILABLE,
            str([(e.code(), e.details()) for e in sub_err]))
    if sub_err and sub_err[0].code() == SC.UNAVAILABLE:
        c.note("its message: %r" % sub_err[0].details())
    log = srv.log()
    c.check("the server's log mentions the stop", re.search(r"stop|SIGTERM|shut", log, re.I) is not None,
            log[-300:])
    r = subprocess.run([evs, "--db", db, "export"], capture_output=True, text=True, timeout=120)
    c.eq("evs export of the store after the stop: exit status", r.returncode, 0)
    by_id = {}
    for line in r.stdout.splitlines():
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if "id" in o and "position" in o:
            by_id[o["id"]] = o["position"]
    lost = [(ids, p) for ids, p in acked if [by_id.get(u) for u in ids] != list(range(p - 4, p + 1))]
    c.check("every acknowledged append (%d, 5 events each) is in the store at its position" % len(acked),
            len(acked) > 0 and not lost, "%d lost or moved, e.g. %s" % (len(lost), lost[:2]))
    torn = [(ids, code) for ids, code, _ in unacked if 0 < sum(u in by_id for u in ids) < 5]
    c.check("no append is half in the store", not torn, str(torn[:2]))
    done_unanswered = [(code.name, msg) for ids, code, msg in unacked if all(u in by_id for u in ids)]
    c.check("appends in flight at SIGTERM were finished and answered: none of the %d that failed "
            "is in the store" % len(unacked), not done_unanswered,
            "%d committed but answered with an error: %s" % (len(done_unanswered), done_unanswered[:3]))
    wt.join(5)
    c.note("a Health/Watch open across the SIGTERM got: %s" % watch_got)
    srv.start()
    d = Dcb(srv.channel())
    c.eq("restarted: Head = the store's last position", d.head_pos(timeout=5), max(by_id.values()))
    t0 = time.monotonic()
    c.eq("SIGTERM of a server with one idle client connection: exit status 0", srv.stop(), 0)
    took = time.monotonic() - t0
    c.check("... within 10 s (%.2f s)" % took, took < 10)


# ==========================================================================

def main():
    group = sys.argv[1] if len(sys.argv) > 1 else ""
    if group not in ("calls", "auth_tls", "races", "abuse", "load"):
        raise SystemExit("usage: %s calls|auth_tls|races|abuse|load PATH/TO/evs [--pg]" % sys.argv[0])
    pg = "--pg" in sys.argv[3:]
    name = "serve_grpc_py_%s%s" % (group, "_pg" if pg else "")
    c, evs, tmp, db, pgdb = sl.setup(name, sys.argv)
    sl.raise_fd_limit()
    srv = None
    extra = []
    try:
        c.note("evs %s, store %s" % (evs, db))
        sl.init_store(c, evs, db)
        if group == "auth_tls":
            group_auth_tls(c, evs, tmp, db)
        else:
            srv = sl.Server(evs, db, tmp).start()
            c.note("server pid %d on %s" % (srv.proc.pid, srv.target))
            if group == "calls":
                group_calls(c, srv)
            elif group == "races":
                group_races(c, srv)
            elif group == "abuse":
                group_abuse(c, srv)
            elif group == "load":
                group_load(c, srv, evs, tmp, db, extra)
            if srv.alive():
                c.eq("SIGTERM: exit status 0", srv.stop(), 0)
    except SystemExit as e:
        c.check("the test ran to its end", False, str(e))
    except Exception as e:  # a failure of the test's own code still reports
        import traceback
        traceback.print_exc()
        c.check("the test ran to its end", False, "%s: %s" % (type(e).__name__, e))
    finally:
        if srv is not None and c.failed:
            sys.stdout.write("---- the server's log (last 3000 chars) ----\n%s\n" % srv.log()[-3000:])
        sl.cleanup(tmp, pgdb, [srv] + extra)
    sys.exit(c.summary())


if __name__ == "__main__":
    main()
