// emmett_test.js -- a small application on Emmett (@event-driven-io/emmett
// with its EventStoreDB event store, @event-driven-io/emmett-esdb) and the
// older official EventStoreDB Node client it runs on (@eventstore/db-client,
// pure @grpc/grpc-js: its reads go over grpc-js, unlike the KurrentDB
// client's), all from npm, unmodified, against `evs serve`'s KurrentDB
// protocol: a shopping cart's command handler (business rules, optimistic
// concurrency) and a projection of the carts' totals fed by a filtered
// $all subscription.
//
//     node tests/kurrent/emmett_test.js PATH/TO/evs [--pg]
//
// Exit 0 only when every check passed.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const { spawn, spawnSync } = require('child_process');

// Emmett 0.20.0's CommonJS build does not load (a top-level await in it):
// its ES modules are imported instead (in main).
let E, EE, DB;
async function load() {
  try {
    E = await import('@event-driven-io/emmett');
    EE = await import('@event-driven-io/emmett-esdb');
    DB = require('@eventstore/db-client');
  } catch (e) {
    console.error('emmett_test: the Node packages are not installed: scripts/install-deps.sh ' +
      `test (npm ci --prefix tests/kurrent): ${e.message}`);
    process.exit(1);
  }
}

const NAME = 'emmett_test';
const EVS = process.argv[2];
const PG = process.argv.includes('--pg');
if (!EVS) {
  console.error('usage: node emmett_test.js PATH/TO/evs [--pg]');
  process.exit(2);
}

let passed = 0;
let failed = 0;
const show = (v) => JSON.stringify(v, (k, x) => (typeof x === 'bigint' ? x.toString() + 'n' : x));
function check(what, ok, detail) {
  if (ok) {
    passed++;
  } else {
    failed++;
    console.log(`FAIL ${what}${detail !== undefined ? ': ' + detail : ''}`);
  }
}
function eq(what, got, want) {
  check(what, show(got) === show(want), `got ${show(got)}, want ${show(want)}`);
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
const psql = fs.existsSync('/usr/bin/psql') ? 'psql' : '/usr/lib/postgresql/15/bin/psql';
let pgAdmin = null;
let pgDb = null;
function storeUri() {
  if (!PG) return path.join(tmp, 'store');
  pgAdmin = process.env.EVS_TEST_PG;
  if (!pgAdmin) throw new Error('--pg needs EVS_TEST_PG (an admin libpq URI; ctest sets it)');
  pgDb = `evs_emmett_${process.pid}`;
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
async function startServer(db) {
  const port = await freePort();
  proc = spawn(EVS, ['serve', '--db', db, '--listen', `127.0.0.1:${port}`, '--http', 'off'],
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

// ---------------------------------------------------------------- the app
// A shopping cart: add and remove products while open, then confirm.
const initialState = () => ({ status: 'Empty', items: {} });
function evolve(state, { type, data }) {
  const items = { ...state.items };
  switch (type) {
    case 'ProductItemAdded':
      items[data.productId] = (items[data.productId] || 0) + data.quantity;
      return { status: 'Open', items };
    case 'ProductItemRemoved':
      items[data.productId] -= data.quantity;
      if (items[data.productId] <= 0) delete items[data.productId];
      return { status: 'Open', items };
    case 'ShoppingCartConfirmed':
      return { ...state, status: 'Confirmed' };
    default:
      return state;
  }
}
function addProduct(state, productId, quantity, price) {
  if (state.status === 'Confirmed') throw new Error('the cart is confirmed: no more changes');
  return { type: 'ProductItemAdded', data: { productId, quantity, price } };
}
function removeProduct(state, productId, quantity, price) {
  if (state.status === 'Confirmed') throw new Error('the cart is confirmed: no more changes');
  if ((state.items[productId] || 0) < quantity) throw new Error(`not that many ${productId}`);
  return { type: 'ProductItemRemoved', data: { productId, quantity, price } };
}
function confirm(state) {
  if (state.status !== 'Open') throw new Error('only an open cart can be confirmed');
  return { type: 'ShoppingCartConfirmed', data: { confirmedAt: new Date(0).toISOString() } };
}

async function rejectsWith(what, p, test) {
  try {
    await p;
    check(`${what}: rejected`, false, 'it succeeded');
  } catch (e) {
    check(what, test(e), `${e && e.constructor && e.constructor.name}: ${e && e.message}`);
  }
}

async function main() {
  await load();
  const handle = E.CommandHandler({ evolve, initialState, mapToStreamId: (id) => `shopping_cart-${id}` });
  const db = storeUri();
  console.log(`  .. evs ${EVS}, store ${db}`);
  const init = spawnSync(EVS, ['--db', db, 'init'], { encoding: 'utf8' });
  check('evs init', init.status === 0, init.stderr);
  let client = null;
  let sub = null;
  try {
    const port = await startServer(db);
    client = DB.EventStoreDBClient.connectionString`esdb://127.0.0.1:${port}?tls=false`;
    const store = EE.getEventStoreDBEventStore(client);
    const run = `${process.pid}`;

    // the projection: totals per cart, from a filtered $all subscription
    const totals = {};
    const confirmed = new Set();
    sub = client.subscribeToAll({ fromPosition: DB.START,
      filter: DB.streamNameFilter({ prefixes: [`shopping_cart-${run}-`] }) });
    sub.on('data', ({ event }) => {
      const cart = event.streamId;
      if (event.type === 'ProductItemAdded') totals[cart] = (totals[cart] || 0) + event.data.quantity * event.data.price;
      if (event.type === 'ProductItemRemoved') totals[cart] = (totals[cart] || 0) - event.data.quantity * event.data.price;
      if (event.type === 'ShoppingCartConfirmed') confirmed.add(cart);
    });
    sub.on('error', () => {});

    const a = `${run}-a`;
    const b = `${run}-b`;
    let r = await handle(store, a, (s) => addProduct(s, 'shoes', 2, 50));
    eq('cart a: first command at version 0', r.nextExpectedStreamVersion, 0n);
    r = await handle(store, a, (s) => addProduct(s, 'socks', 3, 5));
    r = await handle(store, a, (s) => removeProduct(s, 'socks', 1, 5));
    eq('cart a: state after three commands', r.newState.items, { shoes: 2, socks: 2 });
    await rejectsWith('cart a: removing more than is there is refused by the handler',
      handle(store, a, (s) => removeProduct(s, 'shoes', 5, 50)), (e) => /not that many/.test(e.message));
    r = await handle(store, a, (s) => confirm(s));
    eq('cart a: confirmed', r.newState.status, 'Confirmed');
    await rejectsWith('cart a: no change after confirmation',
      handle(store, a, (s) => addProduct(s, 'hat', 1, 20)), (e) => /confirmed/.test(e.message));
    await handle(store, b, (s) => addProduct(s, 'hat', 1, 20));
    // optimistic concurrency: a command that expects an old version
    await rejectsWith('cart b: a command expecting another version is a concurrency error',
      handle(store, b, (s) => addProduct(s, 'hat', 1, 20), { expectedStreamVersion: 5n }),
      (e) => e.errorCode === 412);
    // the server's own check: an append with a stale expected version
    await rejectsWith('cart b: a stale append is refused by the server (412, current 0)',
      store.appendToStream(`shopping_cart-${b}`, [{ type: 'ProductItemAdded',
        data: { productId: 'hat', quantity: 1, price: 20 } }], { expectedStreamVersion: 'STREAM_DOES_NOT_EXIST' }),
      (e) => e.errorCode === 412 && String(e.current) === '0');

    const agg = await store.aggregateStream(`shopping_cart-${a}`, { evolve, initialState });
    eq('aggregateStream: the state', agg.state, { status: 'Confirmed', items: { shoes: 2, socks: 2 } });
    eq('aggregateStream: the version', agg.currentStreamVersion, 3n);
    const rs = await store.readStream(`shopping_cart-${a}`);
    eq('readStream (grpc-js): the types', rs.events.map((e) => e.type),
      ['ProductItemAdded', 'ProductItemAdded', 'ProductItemRemoved', 'ShoppingCartConfirmed']);
    check('readStream (grpc-js): global positions increase', rs.events.every((e, i) => i === 0 ||
      e.metadata.globalPosition > rs.events[i - 1].metadata.globalPosition));

    // the old client's own reads, over grpc-js
    const back = [];
    for await (const x of client.readStream(`shopping_cart-${a}`, { direction: DB.BACKWARDS, fromRevision: DB.END, maxCount: 2 })) back.push(Number(x.event.revision));
    eq('db-client readStream backwards (grpc-js)', back, [3, 2]);
    let notFound = null;
    try {
      for await (const x of client.readStream(`shopping_cart-${run}-none`)) void x;
    } catch (e) { notFound = e; }
    check('db-client readStream of a missing stream: StreamNotFoundError',
      notFound instanceof DB.StreamNotFoundError, notFound && notFound.constructor.name);
    const all = [];
    for await (const x of client.readAll({ direction: DB.BACKWARDS, fromPosition: DB.END, maxCount: 3 })) all.push(x.event.position.commit);
    check('db-client readAll backwards (grpc-js): 3 newest, descending', all.length === 3 &&
      all[0] > all[1] && all[1] > all[2], show(all));

    // the projection caught up with every cart
    const end = Date.now() + 5000;
    while (Date.now() < end && !(totals[`shopping_cart-${b}`] === 20 && confirmed.size === 1)) await sleep(20);
    eq('projection: totals per cart', totals, { [`shopping_cart-${a}`]: 110, [`shopping_cart-${b}`]: 20 });
    eq('projection: confirmed carts', [...confirmed], [`shopping_cart-${a}`]);
  } catch (e) {
    check('the test ran to its end', false, e && e.stack);
  } finally {
    if (sub) await sub.unsubscribe().catch(() => {});
    if (client) await client.dispose().catch(() => {});
    if (proc && proc.exitCode === null) {
      proc.kill('SIGTERM');
      await Promise.race([new Promise((r) => proc.on('exit', r)), sleep(20000)]);
      check('SIGTERM: the server exits 0', proc.exitCode === 0, `exit ${proc.exitCode}`);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    }
    if (failed) console.log(`---- the server's log (last 3000 chars) ----\n${log.slice(-3000)}`);
    dropPg();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`${NAME}: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

main();
