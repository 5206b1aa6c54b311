// grpc_test.js -- `evs serve` over gRPC from Node: @grpc/grpc-js with
// @grpc/proto-loader loading tools/serve/proto/*.proto at run time (no
// generated code), the second client stack beside grpc_test.py.
//
//     node tests/serve/grpc_test.js PATH/TO/evs [--pg]
//
// Starts its own server (free loopback port, its own store: a temporary
// directory, or with --pg a fresh database on the server EVS_TEST_PG names)
// and checks every call of umadb.v1.DCB and grpc.health.v1.Health, every
// error status with its grpc-status-details-bin (umadb.v1.ErrorResponse),
// Subscribe catch-up then live, the old /umadb.UmaDBService/ path, tenants,
// API keys, and the DCB race (16 clients on connections of their own claim
// one username: exactly one wins). Prints one line per check, ends with
// "NAME: N passed, N failed", exits 1 on any failure.
'use strict';

const path = require('path');
const fs = require('fs');
const os = require('os');
const net = require('net');
const crypto = require('crypto');
const { spawn, spawnSync } = require('child_process');

let grpc, protoLoader, protobuf;
try {
  grpc = require('@grpc/grpc-js');
  protoLoader = require('@grpc/proto-loader');
  protobuf = require('protobufjs');
} catch (e) {
  console.error(`grpc_test.js: ${e.message}\n` +
    'install the Node packages: scripts/install-deps.sh test (npm ci --prefix tests/serve)');
  process.exit(1);
}

const ROOT = path.resolve(__dirname, '..', '..');
const PROTO_DIR = path.join(ROOT, 'tools', 'serve', 'proto');
const EVS = process.argv[2] && path.resolve(process.argv[2]);
const PG = process.argv.includes('--pg');
const NAME = 'serve_grpc_node' + (PG ? '_pg' : '');
if (!EVS) {
  console.error('usage: node grpc_test.js PATH/TO/evs [--pg]');
  process.exit(2);
}

// ---------------------------------------------------------------- checks
let passed = 0;
let failed = 0;
function check(what, cond, detail) {
  if (cond) {
    passed++;
    console.log(`ok: ${what}`);
  } else {
    failed++;
    console.log(`FAIL: ${what}${detail ? ' -- ' + detail : ''}`);
  }
  return !!cond;
}
const show = (v) => JSON.stringify(v, (k, x) =>
  (x && x.type === 'Buffer' && Array.isArray(x.data)) ? Buffer.from(x.data).toString('latin1') : x);
function eq(what, got, want) {
  return check(`${what} (= ${show(want)})`, show(got) === show(want), `got ${show(got)}`);
}
function section(t) { console.log(`== ${t}`); }
function note(t) { console.log(`  .. ${t}`); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(pred, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return true;
    await sleep(10);
  }
  return pred();
}

// ---------------------------------------------------------------- protos
const LOAD = { keepCase: true, longs: String, enums: String, defaults: false, oneofs: true,
  includeDirs: [PROTO_DIR] };
const def = protoLoader.loadSync(['umadb.proto', 'health.proto'], LOAD);
const pkg = grpc.loadPackageDefinition(def);
const DCB = pkg.umadb.v1.DCB;
const HealthSvc = pkg.grpc.health.v1.Health;
// The old path: the same methods under /umadb.UmaDBService/.
const oldDef = {};
for (const [m, d] of Object.entries(def['umadb.v1.DCB'])) {
  oldDef[m] = { ...d, path: d.path.replace('/umadb.v1.DCB/', '/umadb.UmaDBService/') };
}
const OldDCB = grpc.makeGenericClientConstructor(oldDef, 'UmaDBService');
const pbroot = new protobuf.Root().loadSync(path.join(PROTO_DIR, 'umadb.proto'), { keepCase: true });
const ErrorResponse = pbroot.lookupType('umadb.v1.ErrorResponse');
const ERROR_TYPE_FOR = { FAILED_PRECONDITION: 'INTEGRITY', INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  UNAUTHENTICATED: 'AUTHENTICATION', PERMISSION_DENIED: 'AUTHENTICATION' };
const codeName = (n) => Object.keys(grpc.status).find((k) => grpc.status[k] === n) || String(n);

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

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `evs-${NAME}-`));
let pgAdmin = null;
let pgDb = null;
function storeUri() {
  if (!PG) return path.join(tmp, 'store');
  pgAdmin = process.env.EVS_TEST_PG;
  if (!pgAdmin) throw new Error('--pg needs EVS_TEST_PG (an admin libpq URI; ctest sets it)');
  pgDb = `evs_node_${process.pid}`;
  const [base, params] = pgAdmin.split('?');
  const [scheme, rest] = base.split('://');
  const auth = rest.split('/')[0];
  const psql = fs.existsSync('/usr/bin/psql') ? 'psql' : '/usr/lib/postgresql/15/bin/psql';
  const r = spawnSync(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', pgAdmin, '-c',
    `CREATE DATABASE ${pgDb}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`CREATE DATABASE ${pgDb}: ${r.stderr}`);
  return `${scheme}://${auth}/${pgDb}${params !== undefined ? '?' + params : ''}`;
}
function dropPg() {
  if (!pgDb) return;
  const psql = fs.existsSync('/usr/bin/psql') ? 'psql' : '/usr/lib/postgresql/15/bin/psql';
  spawnSync(psql, ['-X', '-q', '-d', pgAdmin, '-c', `DROP DATABASE IF EXISTS ${pgDb} WITH (FORCE)`]);
}

class Server {
  constructor(db, args = [], probeMd = null) {
    this.db = db;
    this.args = args;
    this.probeMd = probeMd;
    this.log = '';
  }
  get target() { return `127.0.0.1:${this.port}`; }
  client(cls = DCB, own = false) {
    return new cls(this.target, grpc.credentials.createInsecure(),
      own ? { 'grpc.use_local_subchannel_pool': 1 } : {});
  }
  async start() {
    this.port = await freePort();
    this.log = '';
    const args = ['serve', '--db', this.db, '--listen', this.target, '--http', 'off', ...this.args];
    this.proc = spawn(EVS, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((r) => this.proc.on('exit', (code, sig) => r({ code, sig })));
    this.proc.stdout.on('data', (b) => { this.log += b; });
    this.proc.stderr.on('data', (b) => { this.log += b; });
    let done = false;
    this.exited.then(() => { done = true; });
    const end = Date.now() + 20000;
    let last = null;
    while (Date.now() < end && !done) {
      const c = this.client();
      try {
        await call(c, 'Head', {}, this.probeMd, 1000);
        c.close();
        return this;
      } catch (e) { last = e; }
      c.close();
      await sleep(100);
    }
    this.kill();
    throw new Error(`evs ${args.join(' ')} did not come up (${last && last.message}); log:\n${this.log}`);
  }
  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return this.proc ? this.proc.exitCode : null;
    this.proc.kill('SIGTERM');
    const r = await Promise.race([this.exited, sleep(30000).then(() => null)]);
    if (r === null) { this.kill(); return null; }
    return r.code;
  }
  kill() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

// ---------------------------------------------------------------- calls
function mdOf(pairs) {
  const m = new grpc.Metadata();
  for (const [k, v] of pairs || []) m.set(k, v);
  return m;
}
function call(client, method, req, md, ms = 10000) {
  return new Promise((resolve, reject) => {
    client[method](req, md instanceof grpc.Metadata ? md : mdOf(md),
      { deadline: Date.now() + ms }, (err, r) => (err ? reject(err) : resolve(r)));
  });
}
function stream(client, method, req, md, ms = 10000) {
  return new Promise((resolve, reject) => {
    const out = [];
    const s = client[method](req, md instanceof grpc.Metadata ? md : mdOf(md), { deadline: Date.now() + ms });
    s.on('data', (r) => out.push(r));
    s.on('error', reject);
    s.on('status', (st) => { if (st.code === grpc.status.OK) resolve(out); });
  });
}
const events = (rs) => rs.flatMap((r) => r.events || []);
const positions = (es) => es.map((e) => Number(e.position));
const ev = (type, tags = [], data = '{}', extra = {}) => ({ event_type: type, tags,
  data: Buffer.isBuffer(data) ? data : Buffer.from(data), ...extra });
const q = (...items) => ({ items: items.map(([types, tags]) => ({ types, tags })) });
const headOf = async (c, md) => {
  const r = await call(c, 'Head', {}, md);
  return r.position === undefined ? undefined : Number(r.position);
};

async function expectError(what, fn, codes, details = true) {
  const want = Array.isArray(codes) ? codes : [codes];
  const names = want.map(codeName).join('/');
  try {
    const r = await fn();
    check(`${what} -> ${names}`, false, `it succeeded: ${show(r)}`);
    return null;
  } catch (e) {
    if (!check(`${what} -> ${names}`, want.includes(e.code), `got ${codeName(e.code)} ${e.details}`)) return e;
    if (!details) return e;
    const raw = e.metadata && e.metadata.get('grpc-status-details-bin');
    if (!raw || raw.length === 0) {
      check(`${what}: grpc-status-details-bin trailer present`, false,
        `trailers ${show(e.metadata && e.metadata.getMap())}`);
      return e;
    }
    let er;
    try {
      er = ErrorResponse.toObject(ErrorResponse.decode(raw[0]), { enums: String });
    } catch (x) {
      check(`${what}: grpc-status-details-bin is an ErrorResponse`, false, x.message);
      return e;
    }
    const wantT = ERROR_TYPE_FOR[codeName(e.code)];
    check(`${what}: details ErrorResponse{error_type=${wantT}, message=${show((er.message || '').slice(0, 60))}}`,
      er.error_type === wantT && !!er.message, `got ${show(er)}`);
    return e;
  }
}

function subscribe(client, req, md) {
  const got = [];
  const errs = [];
  const s = client.Subscribe(req, mdOf(md), { deadline: Date.now() + 120000 });
  s.on('data', (r) => got.push(...(r.events || [])));
  s.on('error', (e) => errs.push(e));
  return { s, got, errs };
}

// ---------------------------------------------------------------- the test
async function testCalls(srv) {
  const c = srv.client();
  const h = srv.client(HealthSvc);
  section('grpc.health.v1.Health');
  for (const service of ['', 'umadb.v1.DCB']) {
    const r = await call(h, 'Check', { service });
    eq(`Health/Check(service=${show(service)}).status`, r.status, 'SERVING');
  }
  {
    const w = h.Watch({ service: '' }, new grpc.Metadata(), { deadline: Date.now() + 10000 });
    const first = await new Promise((res) => { w.on('data', res); w.on('error', () => res(null)); });
    eq('Health/Watch first message', first && first.status, 'SERVING');
    w.cancel();
  }

  section('an empty store');
  eq('Head: position absent', await headOf(c), undefined);
  let rs = await stream(c, 'Read', {});
  check('Read: one response, no events, no head',
    rs.length === 1 && !(rs[0].events || []).length && rs[0].head === undefined, show(rs));
  let t = await call(c, 'GetTrackingInfo', { source: 'proj' });
  eq('GetTrackingInfo(never stored): position', t.position, undefined);

  section('Append and Read');
  const want = [ev('Opened', ['acct:1', 'owner:ann'], '{"owner":"ann"}',
    { metadata: [{ key: 'by', value: 'ann' }, { key: 'corr', value: 'c-1' }, { key: 'a', value: 'z' }] }),
  ev('Deposited', ['acct:1'], '{"amount":5}'),
  ev('Blob', [], Buffer.from([0, 1, 0xfe, 0xff, 0x41]))];
  let r = await call(c, 'Append', { events: want });
  const p3 = Number(r.position);
  check('Append(3 events) answers a position', p3 >= 3, show(r));
  eq('Head = that position', await headOf(c), p3);
  let got = events(await stream(c, 'Read', {}));
  eq('Read: positions', positions(got), [p3 - 2, p3 - 1, p3]);
  got.forEach((g, i) => {
    eq(`event ${i}: type`, g.event.event_type, want[i].event_type);
    eq(`event ${i}: tags`, [...(g.event.tags || [])].sort(), [...want[i].tags].sort());
    check(`event ${i}: data bytes`, Buffer.compare(g.event.data || Buffer.alloc(0), want[i].data) === 0,
      show(g.event.data));
    eq(`event ${i}: metadata in order`, (g.event.metadata || []).map((m) => [m.key, m.value]),
      (want[i].metadata || []).map((m) => [m.key, m.value]));
    check(`event ${i}: uuid ${g.event.uuid} assigned`,
      /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(g.event.uuid || ''));
  });
  const u = crypto.randomUUID();
  const once = { events: [ev('Withdrawn', ['acct:1'], '{"amount":1}', { uuid: u })] };
  const r1 = await call(c, 'Append', once);
  const H1 = await headOf(c);
  const r2 = await call(c, 'Append', once);
  eq('retry with the same uuid: the original position', Number(r2.position), Number(r1.position));
  eq('... head unchanged', await headOf(c), H1);
  got = events(await stream(c, 'Read', { start: r1.position, limit: 1 }));
  eq('the client-given uuid is kept', got.map((e) => e.event.uuid), [u]);
  await expectError('Append with uuid "not-a-uuid"',
    () => call(c, 'Append', { events: [ev('X', [], '{}', { uuid: 'not-a-uuid' })] }),
    grpc.status.INVALID_ARGUMENT);
  await expectError('Append with an empty event_type',
    () => call(c, 'Append', { events: [ev('', ['x:1'])] }), grpc.status.INVALID_ARGUMENT);
  eq('... nothing written', await headOf(c), H1);

  section('Read options');
  await call(c, 'Append', { events: [ev('Opened', ['acct:2']), ev('Deposited', ['acct:2']),
    ev('Deposited', ['acct:1', 'big:yes'])] });
  const H = await headOf(c);
  const all = events(await stream(c, 'Read', {}));
  const pos = positions(all);
  eq('Read everything: the last is Head', pos[pos.length - 1], H);
  const match = (e, qq) => qq.items.some((it) => (!it.types.length || it.types.includes(e.event.event_type)) &&
    it.tags.every((x) => (e.event.tags || []).includes(x)));
  for (const [name, qq] of [['type Deposited', q([['Deposited'], []])], ['tag acct:1', q([[], ['acct:1']])],
    ['tags acct:1 AND big:yes', q([[], ['acct:1', 'big:yes']])],
    ['type Opened AND tag acct:2 OR type Blob', q([['Opened'], ['acct:2']], [['Blob'], []])]]) {
    eq(`Read query ${name}`, positions(events(await stream(c, 'Read', { query: qq }))),
      positions(all.filter((e) => match(e, qq))));
  }
  eq('Read start (inclusive)', positions(events(await stream(c, 'Read', { start: pos[2] }))), pos.slice(2));
  eq('Read backwards', positions(events(await stream(c, 'Read', { backwards: true }))), [...pos].reverse());
  eq('Read limit 2', positions(events(await stream(c, 'Read', { limit: 2 }))), pos.slice(0, 2));
  rs = await stream(c, 'Read', { batch_size: 2 });
  check(`Read batch_size 2: batches of <= 2, each head = ${H}`,
    rs.length >= 3 && rs.every((x) => (x.events || []).length <= 2 && Number(x.head) === H),
    show(rs.map((x) => [(x.events || []).length, x.head])));
  rs = await stream(c, 'Read', { limit: 3, batch_size: 2 });
  check('Read limit 3 batch_size 2: each head = its last event',
    rs.every((x) => x.events && x.events.length && x.head === x.events[x.events.length - 1].position),
    show(rs.map((x) => [positions(x.events || []), x.head])));
  rs = await stream(c, 'Read', { query: q([[], ['nobody:0']]) });
  check(`Read with no match: one response, no events, head ${H}`,
    rs.length === 1 && !(rs[0].events || []).length && Number(rs[0].head) === H, show(rs));
  await expectError('Read subscribe=true', () => stream(c, 'Read', { subscribe: true }),
    grpc.status.INVALID_ARGUMENT);

  section('conditions and tracking');
  const acct1 = positions(all.filter((e) => (e.event.tags || []).includes('acct:1')));
  await expectError('Append fail_if tag acct:1 (it has events)', () => call(c, 'Append',
    { events: [ev('Deposited', ['acct:1'])], condition: { fail_if_events_match: q([[], ['acct:1']]) } }),
  grpc.status.FAILED_PRECONDITION);
  await expectError('Append fail_if tag acct:1 after its second-last event', () => call(c, 'Append',
    { events: [ev('Deposited', ['acct:1'])],
      condition: { fail_if_events_match: q([[], ['acct:1']]), after: acct1[acct1.length - 2] } }),
  grpc.status.FAILED_PRECONDITION);
  eq('... head unchanged', await headOf(c), H);
  r = await call(c, 'Append', { events: [ev('Deposited', ['acct:1'])],
    condition: { fail_if_events_match: q([[], ['acct:1']]), after: acct1[acct1.length - 1] } });
  eq('Append fail_if tag acct:1 after its last event: succeeds', Number(r.position), H + 1);
  r = await call(c, 'Append', { events: [ev('P', ['p:1'])], tracking_info: { source: 'proj', position: 100 } });
  t = await call(c, 'GetTrackingInfo', { source: 'proj' });
  eq('tracking_info (proj, 100) stored', t.position, '100');
  await expectError('Append with tracking_info (proj, 100) again', () => call(c, 'Append',
    { events: [ev('P', ['p:1'])], tracking_info: { source: 'proj', position: 100 } }),
  grpc.status.FAILED_PRECONDITION);
  await call(c, 'Append', { events: [], tracking_info: { source: 'proj', position: '1000000000000' } });
  t = await call(c, 'GetTrackingInfo', { source: 'proj' });
  eq('Append of zero events with tracking_info (proj, 10^12): stored', t.position, '1000000000000');

  section('Subscribe: catch-up then live');
  const n = events(await stream(c, 'Read', {})).length;
  const sub = subscribe(c, { after: 0 });
  check(`catch-up: all ${n} events`, await waitFor(() => sub.got.length >= n, 10000), `got ${sub.got.length}`);
  r = await call(c, 'Append', { events: [ev('Live', ['live:1']), ev('Live', ['live:1'])] });
  check('live: the 2 new events arrive', await waitFor(() => sub.got.length >= n + 2, 5000),
    `got ${sub.got.length}`);
  const sp = positions(sub.got);
  check('positions strictly increase, the last is the append\'s',
    sp.every((p, i) => i === 0 || p > sp[i - 1]) && sp[sp.length - 1] === Number(r.position), show(sp.slice(-5)));
  sub.s.cancel();
  const sub2 = subscribe(c, { query: q([[], ['acct:2']]), after: Number(r.position) });
  await sleep(200);
  await call(c, 'Append', { events: [ev('Other', ['acct:9'])] });
  r = await call(c, 'Append', { events: [ev('Closed', ['acct:2'])] });
  await waitFor(() => sub2.got.length >= 1, 5000);
  await sleep(200);
  eq('Subscribe query tag acct:2 after the head: only the new matching event', positions(sub2.got),
    [Number(r.position)]);
  sub2.s.cancel();

  section('the old path /umadb.UmaDBService/');
  const old = srv.client(OldDCB);
  eq('old Head', await headOf(old), Number(r.position));
  const ro = await call(old, 'Append', { events: [ev('ViaOld', ['old:1'])] });
  eq('old Append then Read', positions(events(await stream(old, 'Read', { query: q([[], ['old:1']]) }))),
    [Number(ro.position)]);
  t = await call(old, 'GetTrackingInfo', { source: 'proj' });
  eq('old GetTrackingInfo', t.position, '1000000000000');
  await expectError('old Append with a failing condition', () => call(old, 'Append',
    { events: [ev('ViaOld', ['old:1'])], condition: { fail_if_events_match: q([[], ['old:1']]) } }),
  grpc.status.FAILED_PRECONDITION);
  old.close();
  const raw = new grpc.Client(srv.target, grpc.credentials.createInsecure());
  await expectError('an unknown method', () => new Promise((res, rej) => raw.makeUnaryRequest(
    '/umadb.v1.DCB/NoSuchMethod', (x) => x, (x) => x, Buffer.alloc(0), new grpc.Metadata(),
    { deadline: Date.now() + 5000 }, (e, v) => (e ? rej(e) : res(v)))), grpc.status.UNIMPLEMENTED, false);
  raw.close();
  const big = { events: [ev('Big', ['big:1'], Buffer.alloc(5 * 1024 * 1024, 0x78))] };
  const Hb = await headOf(c);
  await expectError('Append of a 5 MiB message', () => call(c, 'Append', big, null, 20000),
    grpc.status.RESOURCE_EXHAUSTED, false);
  eq('... nothing written', await headOf(c), Hb);

  section('tenants');
  const TA = [['evs-tenant', 'tenant-a']];
  const defAll = positions(events(await stream(c, 'Read', {})));
  r = await call(c, 'Append', { events: [ev('Secret', ['acct:1'])],
    condition: { fail_if_events_match: q([[], ['acct:1']]) } }, TA);
  check('tenant-a: a condition on acct:1 ignores the default tenant\'s events', r.position !== undefined);
  eq('tenant-a reads only its own', positions(events(await stream(c, 'Read', {}, TA))), [Number(r.position)]);
  eq('the default tenant does not see it', positions(events(await stream(c, 'Read', {}))), defAll);
  eq('tenant-b sees nothing', events(await stream(c, 'Read', {}, [['evs-tenant', 'tenant-b']])).length, 0);
  t = await call(c, 'GetTrackingInfo', { source: 'proj' }, TA);
  eq('tenant-a: tracking proj absent', t.position, undefined);
  const subB = subscribe(c, { after: 0 }, [['evs-tenant', 'tenant-b']]);
  await sleep(200);
  await call(c, 'Append', { events: [ev('Secret', ['acct:2'])] }, TA);
  await sleep(500);
  eq('tenant-b\'s subscriber got nothing of tenant-a\'s', subB.got.length, 0);
  subB.s.cancel();
  c.close();
  h.close();
}

async function testRace(srv) {
  section('the DCB race: 16 clients claim one username');
  const first = srv.client();
  await call(first, 'Append', { events: [ev('Seed', ['seed:1'])] });
  first.close();
  for (let round = 0; round < 2; round++) {
    const name = `username:node-${round}`;
    const clients = Array.from({ length: 16 }, () => srv.client(DCB, true));
    await Promise.all(clients.map((c) => headOf(c)));
    const qq = q([[], [name]]);
    const heads = await Promise.all(clients.map(async (c) => {
      const rs = await stream(c, 'Read', { query: qq });
      return rs[rs.length - 1].head;
    }));
    const results = await Promise.all(clients.map((c, i) => call(c, 'Append', {
      events: [ev('UserRegistered', [name], JSON.stringify({ client: i }))],
      condition: { fail_if_events_match: qq, ...(heads[i] !== undefined ? { after: heads[i] } : {}) },
    }, null, 30000).then((r) => ['OK', Number(r.position)], (e) => [codeName(e.code), e.details])));
    const oks = results.filter((x) => x[0] === 'OK');
    const fails = results.filter((x) => x[0] === 'FAILED_PRECONDITION');
    check(`round ${round}: exactly 1 of 16 wins, 15 FAILED_PRECONDITION`, oks.length === 1 && fails.length === 15,
      show(results));
    eq(`round ${round}: the store holds one claim, the winner's`,
      positions(events(await stream(clients[0], 'Read', { query: qq }))), oks.map((x) => x[1]));
    clients.forEach((c) => c.close());
  }
}

async function testAuth(db) {
  section('API keys');
  const keys = path.join(tmp, 'keys');
  fs.writeFileSync(keys, 'node-admin-key\nnode-ro-key read-only\nnode-ta-key tenants=ta read-write\n');
  const ADMIN = [['authorization', 'Bearer node-admin-key']];
  const srv = await new Server(db, ['--api-keys', keys], mdOf(ADMIN)).start();
  try {
    const c = srv.client();
    const r = await call(c, 'Append', { events: [ev('K', ['k:1'])] }, ADMIN);
    check('admin key: Append', r.position !== undefined);
    await expectError('Head without a key', () => call(c, 'Head', {}), grpc.status.UNAUTHENTICATED);
    await expectError('Read with a wrong key', () => stream(c, 'Read', {}, [['authorization', 'Bearer nope']]),
      grpc.status.UNAUTHENTICATED);
    await expectError('Append with a read-only key', () => call(c, 'Append', { events: [ev('K', ['k:1'])] },
      [['authorization', 'Bearer node-ro-key']]), grpc.status.PERMISSION_DENIED);
    eq('read-only key: Head', await headOf(c, [['authorization', 'Bearer node-ro-key']]), Number(r.position));
    await expectError('tenant-limited key in another tenant', () => call(c, 'Append', { events: [ev('K', ['k:1'])] },
      [['authorization', 'Bearer node-ta-key'], ['evs-tenant', 'tb']]), grpc.status.PERMISSION_DENIED);
    eq('... nothing written by the denied calls', await headOf(c, ADMIN), Number(r.position));
    const ra = await call(c, 'Append', { events: [ev('K', ['k:1'])] },
      [['authorization', 'Bearer node-ta-key'], ['evs-tenant', 'ta']]);
    check('tenant-limited key in its tenant: Append', ra.position !== undefined);
    c.close();
    eq('SIGTERM: exit 0', await srv.stop(), 0);
  } finally {
    srv.kill();
  }
}

async function main() {
  const db = storeUri();
  console.log(`  .. evs ${EVS}, store ${db}`);
  const init = spawnSync(EVS, ['--db', db, 'init'], { encoding: 'utf8' });
  check('evs init', init.status === 0, init.stderr);
  const srv = new Server(db);
  try {
    await srv.start();
    await testCalls(srv);
    await testRace(srv);
    eq('SIGTERM: exit 0', await srv.stop(), 0);
    await testAuth(db);
  } catch (e) {
    check('the test ran to its end', false, e.stack);
  } finally {
    if (failed) console.log(`---- the server's log (last 3000 chars) ----\n${srv.log.slice(-3000)}`);
    srv.kill();
    dropPg();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`${NAME}: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

main();
