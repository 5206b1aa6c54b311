// kurrent_test.js -- `evs serve`'s KurrentDB protocol (tools/serve/kurrent.c)
// driven by the official KurrentDB Node client, @kurrent/kurrentdb-client,
// unmodified (installed by scripts/install-deps.sh test: npm ci in
// tests/kurrent). Its appends, deletes and server-features calls go through
// @grpc/grpc-js; its reads through the client's bundled native bridge (a
// Rust gRPC client): both stacks are exercised.
//
//     node tests/kurrent/kurrent_test.js PATH/TO/evs [--pg]
//
// Starts its own server (free loopback port, its own store: a temporary
// directory, or with --pg a fresh database on the server EVS_TEST_PG names)
// and connects with kurrentdb://127.0.0.1:PORT?tls=false. Exit 0 only when
// every check passed.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const { spawn, spawnSync } = require('child_process');

let K;
try {
  K = require('@kurrent/kurrentdb-client');
} catch (e) {
  console.error('kurrent_test: @kurrent/kurrentdb-client is not installed; install the Node ' +
    'packages: scripts/install-deps.sh test (npm ci --prefix tests/kurrent)');
  process.exit(1);
}
const { KurrentDBClient, jsonEvent, binaryEvent, NO_STREAM, ANY, STREAM_EXISTS, FORWARDS,
  BACKWARDS, START, END, WrongExpectedVersionError, StreamNotFoundError,
  StreamDeletedError } = K;

const NAME = 'kurrent_test';
const EVS = process.argv[2];
const PG = process.argv.includes('--pg');
if (!EVS) {
  console.error('usage: node kurrent_test.js PATH/TO/evs [--pg]');
  process.exit(2);
}

let passed = 0;
let failed = 0;
function check(what, ok, detail) {
  if (ok) {
    passed++;
  } else {
    failed++;
    console.log(`FAIL ${what}${detail !== undefined ? ': ' + detail : ''}`);
  }
}
const show = (v) => JSON.stringify(v, (k, x) => (typeof x === 'bigint' ? x.toString() + 'n' : x));
function eq(what, got, want) {
  const g = show(got);
  const w = show(want);
  check(what, g === w, `got ${g}, want ${w}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- server
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}
function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `evs-${NAME}-`));
let pgAdmin = null;
let pgDb = null;
const psql = fs.existsSync('/usr/bin/psql') ? 'psql' : '/usr/lib/postgresql/15/bin/psql';
function storeUri() {
  if (!PG) return path.join(tmp, 'store');
  pgAdmin = process.env.EVS_TEST_PG;
  if (!pgAdmin) throw new Error('--pg needs EVS_TEST_PG (an admin libpq URI; ctest sets it)');
  pgDb = `evs_kurrent_${process.pid}`;
  const [base, params] = pgAdmin.split('?');
  const [scheme, rest] = base.split('://');
  const auth = rest.split('/')[0];
  const r = spawnSync(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', pgAdmin, '-c',
    `CREATE DATABASE ${pgDb}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`CREATE DATABASE ${pgDb}: ${r.stderr}`);
  return `${scheme}://${auth}/${pgDb}${params !== undefined ? '?' + params : ''}`;
}
function dropPg() {
  if (!pgDb) return;
  spawnSync(psql, ['-X', '-q', '-d', pgAdmin, '-c', `DROP DATABASE IF EXISTS ${pgDb} WITH (FORCE)`]);
}

let proc = null;
let log = '';
async function startServer(db, args = []) {
  const port = await freePort();
  proc = spawn(EVS, ['serve', '--db', db, '--listen', `127.0.0.1:${port}`, '--http', 'off', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', (b) => { log += b; });
  proc.stderr.on('data', (b) => { log += b; });
  const end = Date.now() + 20000;
  while (Date.now() < end && proc.exitCode === null) {
    if (await portOpen(port)) return port;
    await sleep(100);
  }
  throw new Error(`evs serve did not come up; log:\n${log}`);
}

// ---------------------------------------------------------------- helpers
async function rejects(what, p, cls, test) {
  try {
    await p;
    check(`${what}: rejected`, false, 'it succeeded');
    return null;
  } catch (e) {
    check(`${what}: ${cls.name}`, e instanceof cls, `${e && e.constructor && e.constructor.name}: ${e && e.message}`);
    if (test && e instanceof cls) test(e);
    return e;
  }
}
async function collect(iter) {
  const out = [];
  for await (const r of iter) out.push(r);
  return out;
}

// The native bridge's reads now and then fail with UnavailableError (seen
// in about one run in ten on a loaded machine, never in isolation; the
// server logged nothing and sent no UNAVAILABLE status): the client
// documents it as transient, to retry. A read that fails so before its
// first event is retried once, and said so; any other error, or a second
// one, fails.
let retried = 0;
function withRetry(client) {
  for (const m of ['readStream', 'readAll']) {
    const orig = client[m].bind(client);
    client[m] = (...args) => (async function* () {
      let first = true;
      for (;;) {
        let got = 0;
        try {
          for await (const r of orig(...args)) {
            got++;
            yield r;
          }
          return;
        } catch (e) {
          if (!first || got > 0 || !(e instanceof K.UnavailableError)) throw e;
          first = false;
          retried++;
          console.log(`  note: ${m} failed with UnavailableError before its first event; retried once`);
        }
      }
    })();
  }
  return client;
}
const revs = (list) => list.map((r) => Number(r.event.revision));
const ev = (type, data, extra = {}) => jsonEvent({ type, data, ...extra });

// ---------------------------------------------------------------- tests
async function testAppend(client) {
  const s = `order-${process.pid}`;
  // no_stream on a new stream, then again: wrong expected version
  let r = await client.appendToStream(s, [ev('Created', { n: 0 }), ev('Paid', { n: 1 })],
    { streamState: NO_STREAM });
  eq('append no_stream: success', r.success, true);
  eq('append no_stream: next revision', r.nextExpectedRevision, 1n);
  check('append: position given', r.position && r.position.commit > 0n &&
    r.position.commit === r.position.prepare, JSON.stringify(r.position, (k, v) =>
    typeof v === 'bigint' ? v.toString() : v));
  await rejects('append no_stream on an existing stream',
    client.appendToStream(s, ev('X', {}), { streamState: NO_STREAM }),
    WrongExpectedVersionError, (e) => {
      eq('  its actual revision', e.actualState, 1n);
      eq('  its expected state', e.expectedState, 'no_stream');
      eq('  its stream', e.streamName, s);
    });
  // exact revision: right, then stale
  r = await client.appendToStream(s, ev('Shipped', { n: 2 }), { streamState: 1n });
  eq('append revision 1: next revision 2', r.nextExpectedRevision, 2n);
  await rejects('append revision 1 (stale)',
    client.appendToStream(s, ev('X', {}), { streamState: 1n }), WrongExpectedVersionError,
    (e) => {
      eq('  its actual revision', e.actualState, 2n);
      eq('  its expected revision', e.expectedState, 1n);
    });
  // stream_exists: ok on this one, error on a new one
  r = await client.appendToStream(s, ev('Noted', { n: 3 }), { streamState: STREAM_EXISTS });
  eq('append stream_exists: next revision 3', r.nextExpectedRevision, 3n);
  await rejects('append stream_exists on a new stream',
    client.appendToStream(`${s}-none`, ev('X', {}), { streamState: STREAM_EXISTS }),
    WrongExpectedVersionError, (e) => {
      eq('  its actual state', e.actualState, 'no_stream');
      eq('  its expected state', e.expectedState, 'stream_exists');
    });
  await rejects('append revision 0 on a new stream',
    client.appendToStream(`${s}-none`, ev('X', {}), { streamState: 0n }),
    WrongExpectedVersionError, (e) => eq('  its actual state', e.actualState, 'no_stream'));
  // any
  r = await client.appendToStream(s, [ev('A', { n: 4 }), ev('B', { n: 5 })], { streamState: ANY });
  eq('append any: next revision 5', r.nextExpectedRevision, 5n);
  r = await client.appendToStream(s, ev('C', { n: 6 }));
  eq('append (default any): next revision 6', r.nextExpectedRevision, 6n);

  // idempotent re-append: same ids, same events -> the original result
  const i = `idem-${process.pid}`;
  const e1 = ev('I1', { a: 1 });
  const e2 = ev('I2', { a: 2 });
  const first = await client.appendToStream(i, [e1, e2], { streamState: NO_STREAM });
  const again = await client.appendToStream(i, [e1, e2], { streamState: NO_STREAM });
  eq('idempotent re-append: success', again.success, true);
  eq('idempotent re-append: same revision', again.nextExpectedRevision, first.nextExpectedRevision);
  eq('idempotent re-append: same position', again.position.commit, first.position.commit);
  eq('idempotent re-append: nothing written twice', revs(await collect(client.readStream(i))),
    [0, 1]);

  // binary data and metadata, JSON and not
  const b = `bin-${process.pid}`;
  const raw = Uint8Array.from([0, 1, 2, 250, 255]);
  const rawMeta = Uint8Array.from([0xff, 0x00, 0x7b]); // not JSON, not UTF-8
  await client.appendToStream(b, [
    binaryEvent({ type: 'Blob', data: raw, metadata: rawMeta }),
    jsonEvent({ type: 'Doc', data: { x: [1, 'two'] }, metadata: { corr: 'c-1', n: 2 } }),
    jsonEvent({ type: 'Wrapped', data: {}, metadata: { $base64: 'not mine' } }),
  ]);
  const got = await collect(client.readStream(b));
  eq('binary event: type', got[0].event.type, 'Blob');
  eq('binary event: not JSON', got[0].event.isJson, false);
  eq('binary event: data bytes', Array.from(got[0].event.data), Array.from(raw));
  eq('binary event: non-JSON metadata bytes', Array.from(got[0].event.metadata),
    Array.from(rawMeta));
  eq('json event: is JSON', got[1].event.isJson, true);
  eq('json event: data', got[1].event.data, { x: [1, 'two'] });
  eq('json event: metadata', got[1].event.metadata, { corr: 'c-1', n: 2 });
  eq('json event: id kept', got[1].event.id.length, 36);
  eq('metadata shaped like the wrapper comes back as sent', got[2].event.metadata,
    { $base64: 'not mine' });
  return s;
}

async function testRead(client, s) {
  eq('readStream forwards', revs(await collect(client.readStream(s))), [0, 1, 2, 3, 4, 5, 6]);
  eq('readStream forwards from 2, max 3',
    revs(await collect(client.readStream(s, { fromRevision: 2n, maxCount: 3 }))), [2, 3, 4]);
  eq('readStream backwards from END',
    revs(await collect(client.readStream(s, { direction: BACKWARDS, fromRevision: END }))),
    [6, 5, 4, 3, 2, 1, 0]);
  eq('readStream backwards from 4, max 2',
    revs(await collect(client.readStream(s, { direction: BACKWARDS, fromRevision: 4n, maxCount: 2 }))),
    [4, 3]);
  const one = (await collect(client.readStream(s, { maxCount: 1 })))[0].event;
  eq('event: type', one.type, 'Created');
  eq('event: data', one.data, { n: 0 });
  eq('event: stream', one.streamId, s);
  check('event: position', one.position && one.position.commit > 0n, String(one.position));
  await rejects('readStream of a missing stream', collect(client.readStream(`nope-${process.pid}`)),
    StreamNotFoundError);

  // $all
  const all = await collect(client.readAll());
  const mine = all.filter((r) => r.event && r.event.streamId === s);
  eq('readAll forwards: this stream in order', revs(mine), [0, 1, 2, 3, 4, 5, 6]);
  const pos = all.map((r) => r.event.position.commit);
  check('readAll forwards: positions increase', pos.every((p, i) => i === 0 || p > pos[i - 1]));
  check('readAll: commit == prepare', all.every((r) => r.event.position.commit === r.event.position.prepare));
  const back = await collect(client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 3 }));
  eq('readAll backwards from END, max 3: the newest 3', back.map((r) => r.event.position.commit),
    pos.slice(-3).reverse());
  const from = all[2].event.position;
  const fwd = await collect(client.readAll({ fromPosition: from, maxCount: 2 }));
  eq('readAll forwards from a position (inclusive), max 2', fwd.map((r) => r.event.position.commit),
    [pos[2], pos[3]]);
  const bwd = await collect(client.readAll({ direction: BACKWARDS, fromPosition: from }));
  eq('readAll backwards from a position (exclusive)', bwd.map((r) => r.event.position.commit),
    [pos[1], pos[0]]);
}

async function testDelete(client) {
  const d = `del-${process.pid}`;
  await client.appendToStream(d, [ev('A', {}), ev('B', {})]);
  await rejects('deleteStream with a stale revision',
    client.deleteStream(d, { expectedRevision: 0n }), WrongExpectedVersionError);
  const dr = await client.deleteStream(d, { expectedRevision: 1n });
  check('deleteStream: a position', dr.position && dr.position.commit > 0n);
  await rejects('readStream after deleteStream', collect(client.readStream(d)), StreamNotFoundError);
  const last = await collect(client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 1 }));
  eq('readAll shows the delete as a $metadata event of $$STREAM',
    [last[0].event.type, last[0].event.streamId], ['$metadata', `$$${d}`]);
  const r = await client.appendToStream(d, ev('C', {}));
  eq('append after deleteStream continues the numbering', r.nextExpectedRevision, 2n);
  eq('read after the re-append: only the new event', revs(await collect(client.readStream(d))), [2]);

  const t = `tomb-${process.pid}`;
  await client.appendToStream(t, ev('A', {}));
  const tr = await client.tombstoneStream(t, { expectedRevision: 0n });
  check('tombstoneStream: a position', tr.position && tr.position.commit > 0n);
  await rejects('append after tombstoneStream', client.appendToStream(t, ev('B', {})),
    StreamDeletedError, (e) => eq('  its stream', e.streamName, t));
  await rejects('readStream after tombstoneStream', collect(client.readStream(t)),
    StreamDeletedError);
  const u = `tömb-\u00e9-${process.pid}`;
  await client.appendToStream(u, ev('A', {}));
  await client.tombstoneStream(u);
  await rejects('append after tombstoneStream, a non-ASCII stream name (header-safe answer)',
    client.appendToStream(u, ev('B', {})), StreamDeletedError);
  await rejects('tombstoneStream of a new stream with a wrong revision',
    client.tombstoneStream(`${t}-x`, { expectedRevision: 3n }), WrongExpectedVersionError);
}

async function waitFor(what, cond, ms = 5000) {
  const end = Date.now() + ms;
  while (Date.now() < end && !cond()) await sleep(20);
  check(what, cond());
}

// fell_behind: a live subscription that finds a full batch (512 events)
// waiting sends fellBehind, reads on from the store, then caughtUp again.
async function testFellBehind(client) {
  const s = `behind-${process.pid}`;
  const sub = client.subscribeToStream(s);
  const got = [];
  const signals = [];
  let subErr = null;
  sub.on('data', (r) => got.push(r));
  sub.on('caughtUp', () => signals.push(['caughtUp', got.length]));
  sub.on('fellBehind', (info) => signals.push(['fellBehind', got.length, info && info.date instanceof Date]));
  sub.on('error', (e) => { subErr = e; });
  await waitFor('fellBehind: the first caughtUp', () => signals.length >= 1);
  const many = [];
  for (let i = 0; i < 600; i++) many.push(ev('Many', { i }));
  await client.appendToStream(s, many);
  await waitFor('fellBehind: the 600 events arrive', () => got.length >= 600 && signals.length >= 3);
  eq('fellBehind: caughtUp, fellBehind (with a date), caughtUp',
    signals.map((x) => x[0] + (x[2] === undefined ? '' : `:${x[2]}`)), ['caughtUp', 'fellBehind:true', 'caughtUp']);
  check('fellBehind: sent after a full batch, before the rest', signals[1] && signals[1][1] >= 500 && signals[1][1] < 600,
    JSON.stringify(signals));
  await client.appendToStream(s, [ev('Few', {}), ev('Few', {})]);
  await waitFor('fellBehind: a small append arrives', () => got.length >= 602);
  await sleep(100);
  eq('fellBehind: not sent for a small append', signals.length, 3);
  eq('fellBehind: every event once, in order', revs(got).every((r, i) => r === i), true);
  check('fellBehind: no error', subErr === null, subErr && subErr.message);
  await sub.unsubscribe();
}

async function testSubscribe(client) {
  const s = `sub-${process.pid}`;
  await client.appendToStream(s, [ev('S0', { i: 0 }), ev('S1', { i: 1 })]);
  // a stream: catch-up, caught_up, then live
  const sub = client.subscribeToStream(s);
  const got = [];
  let caught = false;
  let subErr = null;
  sub.on('data', (r) => got.push(r));
  sub.on('caughtUp', () => { caught = true; });
  sub.on('error', (e) => { subErr = e; });
  await waitFor('subscribeToStream: the stored events', () => got.length >= 2);
  await waitFor('subscribeToStream: caughtUp', () => caught);
  await client.appendToStream(s, ev('S2', { i: 2 }));
  await client.appendToStream(`${s}-other`, ev('O', {}));
  await client.appendToStream(s, ev('S3', { i: 3 }));
  await waitFor('subscribeToStream: live events', () => got.length >= 4);
  await sleep(100);
  eq('subscribeToStream: this stream only, in order', revs(got), [0, 1, 2, 3]);
  eq('subscribeToStream: the data', got.map((r) => r.event.data.i), [0, 1, 2, 3]);
  check('subscribeToStream: no error', subErr === null, subErr && subErr.message);
  await sub.unsubscribe();
  // resubscribe after a revision (exclusive, as KurrentDB)
  const sub2 = client.subscribeToStream(s, { fromRevision: 1n });
  const got2 = [];
  sub2.on('data', (r) => got2.push(r));
  sub2.on('error', () => {});
  await waitFor('subscribeToStream from revision 1: the events after it', () => got2.length >= 2);
  await sleep(100);
  eq('subscribeToStream from revision 1', revs(got2), [2, 3]);
  await sub2.unsubscribe();

  // $all from a position (exclusive), then live
  const mine = (await collect(client.readStream(s)));
  const after = mine[1].event.position;
  const suba = client.subscribeToAll({ fromPosition: after });
  const gota = [];
  suba.on('data', (r) => gota.push(r));
  suba.on('error', () => {});
  await waitFor('subscribeToAll from a position: stored events', () =>
    gota.some((r) => r.event && r.event.type === 'S3'));
  await client.appendToStream(s, ev('S4', { i: 4 }));
  await waitFor('subscribeToAll: a live event', () =>
    gota.some((r) => r.event && r.event.type === 'S4'));
  eq('subscribeToAll: the events after the position, in order',
    gota.filter((r) => r.event.streamId.startsWith('sub-')).map((r) => r.event.type),
    ['S2', 'O', 'S3', 'S4']);
  check('subscribeToAll: positions increase', gota.every((r, i) => i === 0 ||
    r.event.position.commit > gota[i - 1].event.position.commit));
  await suba.unsubscribe();
  // a subscription to a tombstoned stream: StreamDeletedError
  const t = `subtomb-${process.pid}`;
  await client.appendToStream(t, ev('A', {}));
  await client.tombstoneStream(t);
  const subt = client.subscribeToStream(t);
  let terr = null;
  subt.on('error', (e) => { terr = e; });
  subt.on('data', () => {});
  await waitFor('subscribeToStream of a tombstoned stream fails', () => terr !== null);
  check('  with StreamDeletedError', terr instanceof StreamDeletedError, terr && terr.constructor.name);
}

async function testSizes(client) {
  const { MaxAppendSizeExceededError } = K;
  const z = `size-${process.pid}`;
  const near = new Uint8Array(1024 * 1024 - 4096).map((_, i) => i & 0xff);
  await client.appendToStream(z, binaryEvent({ type: 'Near', data: near }));
  const back = (await collect(client.readStream(z)))[0].event.data;
  check('an event near the 1 MiB event limit: stored and read back exactly',
    back.length === near.length && Buffer.compare(Buffer.from(back), Buffer.from(near)) === 0);
  await rejects('an event over the store\'s event limit',
    client.appendToStream(z, binaryEvent({ type: 'Over', data: new Uint8Array(1024 * 1024 + 1) })),
    MaxAppendSizeExceededError);
  const parts = [];
  for (let i = 0; i < 5; i++) parts.push(binaryEvent({ type: 'Part', data: new Uint8Array(900 * 1024) }));
  await rejects('an append of 4.5 MiB (over --max-message-bytes 4 MiB)',
    client.appendToStream(z, parts), MaxAppendSizeExceededError,
    (e) => eq('  its maximum append size', e.maxAppendSize, 4 * 1024 * 1024));
  eq('nothing of the refused appends was written', revs(await collect(client.readStream(z))), [0]);
}

async function testFilters(client) {
  const { eventTypeFilter, streamNameFilter } = K;
  const p = `f${process.pid}`;
  await client.appendToStream(`${p}-a`, [ev(`${p}Alpha`, { i: 0 }), ev(`${p}Beta`, { i: 1 })]);
  await client.appendToStream(`${p}-b`, [ev(`${p}Alpha`, { i: 2 }), ev('Other', { i: 3 })]);
  const byType = await collect(client.readAll({ filter: eventTypeFilter({ prefixes: [`${p}Alpha`] }) }));
  eq('readAll with an event-type prefix filter', byType.map((r) => r.event.data.i), [0, 2]);
  const byRe = await collect(client.readAll({ direction: BACKWARDS, fromPosition: END,
    filter: streamNameFilter({ regex: `^${p}-b$` }) }));
  eq('readAll backwards with a stream-name regex filter', byRe.map((r) => r.event.data.i), [3, 2]);

  // a filtered $all subscription with checkpoints every 2 events considered
  const got = [];
  const checkpoints = [];
  const sub = client.subscribeToAll({ fromPosition: START, filter: streamNameFilter({
    prefixes: [`${p}-a`], maxSearchWindow: 2, checkpointInterval: 1,
    checkpointReached: (_s, pos) => { checkpoints.push(pos.commit); } }) });
  sub.on('data', (r) => got.push(r));
  sub.on('error', () => {});
  await waitFor('filtered subscribeToAll: the stored matches', () => got.length >= 2);
  await client.appendToStream(`${p}-b`, ev('Other', { i: 4 }));
  await client.appendToStream(`${p}-a`, ev('Late', { i: 5 }));
  await waitFor('filtered subscribeToAll: a live match', () => got.length >= 3);
  await sleep(100);
  eq('filtered subscribeToAll: only the matching stream', got.map((r) => r.event.data.i), [0, 1, 5]);
  check('filtered subscribeToAll: checkpoints arrive', checkpoints.length > 0, checkpoints.length);
  check('filtered subscribeToAll: checkpoints increase', checkpoints.every((c, i) => i === 0 || c > checkpoints[i - 1]));
  await sub.unsubscribe();
  await rejects('a filter regex that does not compile', collect(client.readAll({
    filter: eventTypeFilter({ regex: '(' }) })), Error);
}

async function testMetadata(client) {
  const m = `meta-${process.pid}`;
  const none = await client.getStreamMetadata(m);
  eq('getStreamMetadata of a stream without: no metadata', none.metadata, undefined);
  await client.appendToStream(m, [0, 1, 2, 3, 4].map((i) => ev('E', { i })));
  const r = await client.setStreamMetadata(m, { maxCount: 2, custom: 'mine' }, { streamState: NO_STREAM });
  eq('setStreamMetadata: success', r.success, true);
  eq('setStreamMetadata: metadata revision 0', r.nextExpectedRevision, 0n);
  const got = await client.getStreamMetadata(m);
  eq('getStreamMetadata: maxCount', got.metadata.maxCount, 2);
  eq('getStreamMetadata: custom key', got.metadata.custom, 'mine');
  // (the client fills metastreamRevision with the event's commit position)
  check('getStreamMetadata: metastreamRevision given', typeof got.metastreamRevision === 'bigint' &&
    got.metastreamRevision > 0n, String(got.metastreamRevision));
  eq('maxCount 2 hides the older events from reads', revs(await collect(client.readStream(m))), [3, 4]);
  await rejects('setStreamMetadata with a stale revision',
    client.setStreamMetadata(m, { truncateBefore: 1 }, { streamState: NO_STREAM }),
    WrongExpectedVersionError, (e) => eq('  its actual revision', e.actualState, 0n));
  await client.setStreamMetadata(m, { truncateBefore: 4 }, { streamState: 0n });
  eq('truncateBefore 4 (maxCount dropped): revision 4 only',
    revs(await collect(client.readStream(m))), [4]);
  await rejects('setStreamMetadata with $acl (not implemented)',
    client.setStreamMetadata(m, { acl: { readRoles: ['$all'] } }), Error);
}

async function testConcurrent(port) {
  // 32 clients (each its own connection) append at once: 4 appends each to
  // a shared stream (any) and to their own stream (exact revisions)
  const shared = `conc-${process.pid}`;
  const clients = [];
  for (let i = 0; i < 32; i++) {
    clients.push(withRetry(KurrentDBClient.connectionString`kurrentdb://127.0.0.1:${port}?tls=false`));
  }
  try {
    await Promise.all(clients.map(async (c, i) => {
      for (let k = 0; k < 4; k++) {
        await c.appendToStream(shared, ev('C', { i, k }));
        await c.appendToStream(`${shared}-${i}`, ev('Own', { k }), { streamState: k === 0 ? NO_STREAM : BigInt(k - 1) });
      }
    }));
    const all = await collect(clients[0].readStream(shared));
    eq('32 concurrent clients: every shared append stored once', all.length, 128);
    eq('32 concurrent clients: revisions gapless', revs(all), [...Array(128).keys()]);
    const own = await Promise.all(clients.map((c, i) => collect(c.readStream(`${shared}-${i}`))));
    check('32 concurrent clients: each own stream 0..3', own.every((l) => show(revs(l)) === '[0,1,2,3]'));
  } finally {
    await Promise.all(clients.map((c) => c.dispose().catch(() => {})));
  }
}

async function testMulti(client) {
  const a = `ma-${process.pid}`;
  const b = `mb-${process.pid}`;
  await client.appendToStream(b, ev('B0', {}));
  const r = await client.multiStreamAppend([
    { streamName: a, expectedState: NO_STREAM, events: [ev('A0', { i: 0 }, { metadata: { who: 'x' } }), ev('A1', { i: 1 })] },
    { streamName: b, expectedState: 0n, events: [ev('B1', { i: 2 })] },
  ]);
  eq('multiStreamAppend: revisions', r.responses.map((x) => [x.streamName, Number(x.revision)]),
    [[a, 1], [b, 1]]);
  check('multiStreamAppend: a position', r.position > 0n, String(r.position));
  const ra = await collect(client.readStream(a));
  eq('multiStreamAppend: events stored with their types', ra.map((x) => x.event.type), ['A0', 'A1']);
  eq('multiStreamAppend: string properties as metadata', ra[0].event.metadata, { who: 'x' });
  eq('multiStreamAppend: JSON data', ra[1].event.data, { i: 1 });
  await rejects('multiStreamAppend with one stale expectation: nothing written',
    client.multiStreamAppend([
      { streamName: a, expectedState: ANY, events: [ev('A2', {})] },
      { streamName: b, expectedState: 0n, events: [ev('B2', {})] },
    ]), WrongExpectedVersionError, (e) => {
      eq('  its stream', e.streamName, b);
      eq('  its actual revision', e.actualState, 1n);
    });
  eq('  and the other stream untouched', revs(await collect(client.readStream(a))), [0, 1]);
}

// Raw calls with bytes that are not the method's message (grpc-js, the
// client's own dependency): a clear INVALID_ARGUMENT, and the server lives.
async function testMalformed(port) {
  const grpc = require('@grpc/grpc-js');
  const id = (b) => b;
  const Raw = grpc.makeGenericClientConstructor({
    append: { path: '/event_store.client.streams.Streams/Append', requestStream: true,
      responseStream: false, requestSerialize: id, requestDeserialize: id,
      responseSerialize: id, responseDeserialize: id },
    read: { path: '/event_store.client.streams.Streams/Read', requestStream: false,
      responseStream: true, requestSerialize: id, requestDeserialize: id,
      responseSerialize: id, responseDeserialize: id },
    session: { path: '/kurrentdb.protocol.v2.streams.StreamsService/AppendSession',
      requestStream: true, responseStream: false, requestSerialize: id, requestDeserialize: id,
      responseSerialize: id, responseDeserialize: id },
    batch: { path: '/event_store.client.streams.Streams/BatchAppend', requestStream: true,
      responseStream: true, requestSerialize: id, requestDeserialize: id,
      responseSerialize: id, responseDeserialize: id },
  });
  const raw = new Raw(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);
  const unary = (m, msgs) => new Promise((resolve) => {
    const call = raw[m]((err) => resolve(err));
    msgs.forEach((b) => call.write(b));
    call.end();
  });
  let err = await unary('append', [garbage]);
  eq('Append of bytes that are no AppendReq: INVALID_ARGUMENT', err && err.code, grpc.status.INVALID_ARGUMENT);
  err = await unary('append', []);
  eq('Append without messages: INVALID_ARGUMENT', err && err.code, grpc.status.INVALID_ARGUMENT);
  err = await unary('session', [garbage]);
  eq('AppendSession of garbage: INVALID_ARGUMENT', err && err.code, grpc.status.INVALID_ARGUMENT);
  err = await new Promise((resolve) => {
    const call = raw.read(garbage);
    call.on('data', () => {});
    call.on('error', (e) => resolve(e));
    call.on('end', () => resolve(null));
  });
  eq('Read of garbage: INVALID_ARGUMENT', err && err.code, grpc.status.INVALID_ARGUMENT);
  err = await new Promise((resolve) => {
    const call = raw.batch();
    call.on('data', () => {});
    call.on('error', (e) => resolve(e));
    call.on('end', () => resolve(null));
    call.write(Buffer.alloc(0));
  });
  eq('BatchAppend: UNIMPLEMENTED', err && err.code, grpc.status.UNIMPLEMENTED);
  raw.close();
}

async function stopServer() {
  if (!proc || proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.on('exit', r));
  proc.kill('SIGTERM');
  await Promise.race([exited, sleep(20000)]);
  check('SIGTERM: the server exits 0', proc.exitCode === 0, `exit ${proc.exitCode}`);
  if (proc.exitCode === null) proc.kill('SIGKILL');
}

// API keys over TLS: the client's bearer credentials are the server's API
// keys (both stacks); GetSupportedMethods needs none; basic credentials are
// refused. A CA and a server certificate for 127.0.0.1 (rustls, under the
// bridge, refuses a self-signed CA certificate as the server's).
function makeCerts() {
  if (makeCerts.made) return makeCerts.made;
  const dir = path.join(tmp, 'tls');
  fs.mkdirSync(dir);
  const f = (n) => path.join(dir, n);
  const run = (args) => {
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=evs-test-ca']);
  run(['req', ...ec, '-keyout', f('s.key'), '-out', f('s.csr'), '-subj', '/CN=localhost']);
  fs.writeFileSync(f('ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  run(['x509', '-req', '-in', f('s.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-out', f('s.crt'), '-days', '2', '-extfile', f('ext')]);
  makeCerts.made = { ca: f('ca.crt'), cert: f('s.crt'), key: f('s.key'), dir };
  return makeCerts.made;
}

async function testAuth(db) {
  const { AccessDeniedError } = K;
  const t = makeCerts();
  const keys = path.join(t.dir, 'keys');
  const RW = 'rw-key-0123456789abcdef0123';
  const RO = 'ro-key-0123456789abcdef0123';
  const TK = 'tk-key-0123456789abcdef0123';
  fs.writeFileSync(keys, `${RW}\n${RO} read-only\n${TK} tenants=t1\n`, { mode: 0o600 });
  const port = await startServer(db, ['--tls-cert', t.cert, '--tls-key', t.key, '--api-keys', keys]);
  const c = withRetry(KurrentDBClient.connectionString`kurrentdb://127.0.0.1:${port}?tls=true&tlsCAFile=${t.ca}`);
  const rw = { credentials: { bearerToken: RW } };
  const ro = { credentials: { bearerToken: RO } };
  const s = `auth-${process.pid}`;
  try {
    await rejects('TLS, API keys: an append without credentials',
      c.appendToStream(s, ev('A', {})), AccessDeniedError);
    const r = await c.appendToStream(s, ev('A', {}), rw);
    eq('TLS, API keys: an append with a read-write key (grpc-js)', r.nextExpectedRevision, 0n);
    await rejects('TLS, API keys: an append with a read-only key', c.appendToStream(s, ev('B', {}), ro),
      AccessDeniedError);
    eq('TLS, API keys: a read with a read-only key (the native bridge)',
      revs(await collect(c.readStream(s, ro))), [0]);
    await rejects('TLS, API keys: a read without credentials', collect(c.readStream(s)), AccessDeniedError);
    const tk = { credentials: { bearerToken: TK } };
    await c.appendToStream(s, ev('TK', {}), tk);
    eq('TLS, API keys: a key of one tenant works in it (no tenant header)',
      (await collect(c.readStream(s, tk))).map((e) => e.event.type), ['TK']);
    eq('TLS, API keys: the default tenant is unchanged', (await collect(c.readStream(s, rw))).map((e) => e.event.type), ['A']);
    await rejects('TLS, API keys: basic credentials are refused',
      c.appendToStream(s, ev('C', {}), { credentials: { username: 'admin', password: 'changeit' } }),
      AccessDeniedError);
  } finally {
    await c.dispose().catch(() => {});
  }
  await stopServer();
}

// Users over TLS (--users): the clients' basic credentials checked against
// salted Argon2id hashes made by `evs serve --hash-password`; a read-only
// user, a user limited to a tenant; wrong passwords and unknown users are
// refused as KurrentDB refuses them (AccessDeniedError); --users without
// TLS is refused at start unless --insecure-basic-auth.
async function testUsers(db) {
  const { AccessDeniedError } = K;
  const t = makeCerts();
  const hash = (pw) => {
    const r = spawnSync(EVS, ['serve', '--hash-password'], { input: `${pw}\n`, encoding: 'utf8' });
    check('evs serve --hash-password', r.status === 0 && r.stdout.startsWith('$argon2id$'), r.stderr);
    return r.stdout.trim();
  };
  const users = path.join(t.dir, 'users');
  fs.writeFileSync(users, `# test users\nadmin ${hash('changeit')}\nreader ${hash('r3ad')} read-only\n` +
    `tuser ${hash('tpw')} tenants=t1 read-write\nt2user ${hash('t2pw')} tenants=t1,t2\n`, { mode: 0o600 });
  const clear = spawnSync(EVS, ['serve', '--db', db, '--listen', '127.0.0.1:1', '--http', 'off', '--users', users],
    { encoding: 'utf8', timeout: 10000 });
  check('--users without TLS: refused at start (exit 2)', clear.status === 2 && /--insecure-basic-auth/.test(clear.stderr),
    `exit ${clear.status}: ${clear.stderr}`);
  const port = await startServer(db, ['--tls-cert', t.cert, '--tls-key', t.key, '--users', users]);
  const url = (cred) => KurrentDBClient.connectionString`kurrentdb://${cred}@127.0.0.1:${port}?tls=true&tlsCAFile=${t.ca}`;
  const admin = withRetry(url('admin:changeit'));
  const wrong = url('admin:wrong');
  const reader = withRetry(url('reader:r3ad'));
  const anon = KurrentDBClient.connectionString`kurrentdb://127.0.0.1:${port}?tls=true&tlsCAFile=${t.ca}`;
  const s = `users-${process.pid}`;
  try {
    const r = await admin.appendToStream(s, ev('A', {}));
    eq('TLS, users: an append by a read-write user (grpc-js)', r.nextExpectedRevision, 0n);
    eq('TLS, users: a read by the same user (the native bridge)', revs(await collect(admin.readStream(s))), [0]);
    const again = await admin.appendToStream(s, ev('A2', {}));
    eq('TLS, users: a second append (the verified password remembered)', again.nextExpectedRevision, 1n);
    await rejects('TLS, users: an append with a wrong password', wrong.appendToStream(s, ev('B', {})), AccessDeniedError);
    await rejects('TLS, users: a read with a wrong password', collect(wrong.readStream(s)), AccessDeniedError);
    await rejects('TLS, users: an unknown user', anon.appendToStream(s, ev('B', {}),
      { credentials: { username: 'nobody', password: 'changeit' } }), AccessDeniedError);
    await rejects('TLS, users: no credentials', anon.appendToStream(s, ev('B', {})), AccessDeniedError);
    await rejects('TLS, users: an append by a read-only user', reader.appendToStream(s, ev('B', {})), AccessDeniedError,
      (e) => check('TLS, users: the read-only refusal says why', /read-only user/.test(e.message), e.message));
    eq('TLS, users: a read by a read-only user', revs(await collect(reader.readStream(s))), [0, 1]);
    eq('TLS, users: per-call credentials (a read-only user reads)',
      revs(await collect(anon.readStream(s, { credentials: { username: 'reader', password: 'r3ad' } }))), [0, 1]);
    await rejects('TLS, users: a user of two tenants, no tenant header: the default tenant, refused',
      anon.appendToStream(s, ev('B', {}), { credentials: { username: 't2user', password: 't2pw' } }), AccessDeniedError);
    const after = await collect(admin.readStream(s));
    eq('TLS, users: nothing written by the refused calls', revs(after), [0, 1]);
    // The clients cannot send evs-tenant: a user limited to one tenant works in it.
    const tuser = withRetry(url('tuser:tpw'));
    try {
      const tr = await tuser.appendToStream(s, ev('T', { t: 1 }));
      eq('tenant bound to a one-tenant user: the append starts a new stream in t1', tr.nextExpectedRevision, 0n);
      const tev = await collect(tuser.readStream(s));
      eq('tenant bound to a one-tenant user: its read (native bridge) sees t1 only',
        tev.map((e) => e.event.type), ['T']);
      const tall = await collect(tuser.readAll({ maxCount: 100 }));
      eq('tenant bound to a one-tenant user: $all of t1 (its event and the API-key test\'s)',
        tall.filter((e) => e.event && !e.event.streamId.startsWith('$')).map((e) => e.event.type), ['TK', 'T']);
      eq('tenant bound: the default tenant is unchanged', revs(await collect(admin.readStream(s))), [0, 1]);
    } finally {
      await tuser.dispose().catch(() => {});
    }
  } finally {
    for (const c of [admin, wrong, reader, anon]) await c.dispose().catch(() => {});
  }
  await stopServer();
}

async function main() {
  const db = storeUri();
  console.log(`  .. evs ${EVS}, store ${db}`);
  const init = spawnSync(EVS, ['--db', db, 'init'], { encoding: 'utf8' });
  check('evs init', init.status === 0, init.stderr);
  let client = null;
  try {
    const port = await startServer(db);
    client = withRetry(KurrentDBClient.connectionString`kurrentdb://127.0.0.1:${port}?tls=false`);
    const s = await testAppend(client);
    await testRead(client, s);
    await testDelete(client);
    await testSubscribe(client);
    await testFellBehind(client);
    await testSizes(client);
    await testFilters(client);
    await testMetadata(client);
    await testConcurrent(port);
    await testMulti(client);
    await testMalformed(port);
    const after = await client.appendToStream(`alive-${process.pid}`, ev('A', {}));
    eq('the server still answers after the malformed calls', after.success, true);
    // basic credentials in insecure mode (no --api-keys): accepted, not checked
    const withUser = withRetry(KurrentDBClient.connectionString`kurrentdb://admin:changeit@127.0.0.1:${port}?tls=false`);
    try {
      const cs = `creds-${process.pid}`;
      const r = await withUser.appendToStream(cs, ev('A', {}));
      eq('basic credentials, insecure mode: append', r.nextExpectedRevision, 0n);
      eq('basic credentials, insecure mode: read', revs(await collect(withUser.readStream(cs))), [0]);
    } finally {
      await withUser.dispose().catch(() => {});
    }
    await client.dispose();
    client = null;
    await stopServer();
    await testAuth(db);
    await testUsers(db);
  } catch (e) {
    check('the test ran to its end', false, e && e.stack);
  } finally {
    if (client) await client.dispose().catch(() => {});
    await stopServer();
    if (failed) console.log(`---- the server's log (last 3000 chars) ----\n${log.slice(-3000)}`);
    dropPg();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`${NAME}: ${passed} passed, ${failed} failed${retried ? `, ${retried} read(s) retried after UnavailableError` : ''}`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

main();
