// End-to-end test of the demo page and the browser client (crates/sse-http/src/client.js) in
// headless Chromium, driven over CDP by playwright-core. Run it with `bash tests/browser/run.sh`
// (which builds the demo and sets DEMO_BIN), or directly: `DEMO_BIN=… node --test`.
//
// It starts every process itself (the demo server, Chromium), waits for each with a bound, and
// kills them by PID at the end, also when a check fails. Chromium that cannot start is a failure.

import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const DEMO_BIN = process.env.DEMO_BIN;
/** The runtime the demo serves on (`--runtime`): tokio (the default) or smol. */
const DEMO_RUNTIME = process.env.DEMO_RUNTIME || 'tokio';
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const OUTPUT = path.join(here, 'output');
const TOKEN = 'browser-test-' + Math.random().toString(36).slice(2);
const STEP = 5000; // ms: the bound of one ordinary expectation
const RECOVERY = 15000; // ms: the bound of a recovery (the browser's own retry is 2 s)
const run = Math.random().toString(36).slice(2, 7); // keeps names and keys unique per run

// --- processes ----------------------------------------------------------------------------------

/** Every process started, by PID, so that they are all killed however the test ends. */
const started = new Map(); // pid -> { child, group }

function track(child, group) {
  started.set(child.pid, { child, group });
  child.once('exit', () => started.delete(child.pid));
}

function killNow(pid, group) {
  try {
    process.kill(group ? -pid : pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/** Kills a started process by its PID (and its process group, for Chromium) and waits. */
async function kill(child) {
  const entry = started.get(child.pid);
  if (!entry) return;
  const exited = once(child, 'exit');
  killNow(child.pid, entry.group);
  await withTimeout(exited, STEP, `process ${child.pid} did not exit after SIGKILL`);
}

// The last resort, should the runner exit without the `after` hook running.
process.on('exit', () => {
  for (const [pid, { group }] of started) killNow(pid, group);
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const [pid, { group }] of started) killNow(pid, group);
    process.exit(130);
  });
}

function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} (after ${ms} ms)`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts the demo on `port` and resolves once it accepts connections. */
async function startDemo(port) {
  const child = spawn(
    DEMO_BIN,
    ['--listen', `127.0.0.1:${port}`, '--admin-token', TOKEN, '--step-ms', '100', '--runtime', DEMO_RUNTIME],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } },
  );
  track(child, false);
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = once(child, 'exit').then(([code, signal]) => {
    throw new Error(`the demo exited (code ${code}, signal ${signal}) before listening:\n${output}`);
  });
  const deadline = Date.now() + 10000;
  const listening = (async () => {
    // Binding can fail for a moment after a restart on the same port: retry connecting.
    while (Date.now() < deadline) {
      if (await canConnect(port)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`the demo did not listen on ${port} within 10 s:\n${output}`);
  })();
  try {
    await Promise.race([listening, exited]);
  } catch (err) {
    await kill(child).catch(() => {});
    throw err;
  }
  exited.catch(() => {}); // its later exit (when killed) is expected
  return child;
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Starts Chromium with a fresh profile and connects to it over CDP. */
async function startChromium() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it (apt-get install chromium)`);
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sse-browser-test-'));
  const child = spawn(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
      // Several tabs are watched at once: none of them may be throttled as a background tab.
      '--disable-background-timer-throttling',
      '--disable-backgrounding-occluded-windows',
      '--disable-renderer-backgrounding',
      `--user-data-dir=${profile}`,
      '--remote-debugging-address=127.0.0.1',
      '--remote-debugging-port=0',
      'about:blank',
    ],
    // Its own process group, so that killing it by PID takes its helper processes too.
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  );
  track(child, true);
  let stderr = '';
  const endpoint = new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => {
      stderr += d;
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
      if (m) resolve(m[1]);
    });
    child.once('error', (err) => reject(new Error(`Chromium could not start: ${err.message}`)));
    child.once('exit', (code, signal) =>
      reject(new Error(`Chromium exited (code ${code}, signal ${signal}) before listening:\n${stderr}`)),
    );
  });
  try {
    const ws = await withTimeout(endpoint, 30000, `Chromium did not start:\n${stderr}`);
    const browser = await withTimeout(chromium.connectOverCDP(ws), 15000, 'could not connect to Chromium');
    return { child, browser, profile };
  } catch (err) {
    await kill(child).catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
    throw err;
  }
}

// --- the page -----------------------------------------------------------------------------------

let port;
let demo;
let chrome;
let context;
const pageErrors = [];
const base = () => `http://127.0.0.1:${port}`;

async function openTab(name) {
  const page = await context.newPage();
  await page.setViewportSize({ width: 1280, height: 960 });
  page.on('pageerror', (err) => pageErrors.push(`${name}: ${err.message}`));
  await page.goto(`${base()}/?name=${encodeURIComponent(name)}`, { timeout: STEP });
  await expectText(page, '#state', 'open');
  const id = await clientId(page);
  assert.match(id, /^[0-9a-f-]{8,}$/i, `#client-id shows an id, not ${JSON.stringify(id)}`);
  return page;
}

const clientId = (page) => page.locator('#client-id').textContent().then((t) => t.trim());

/** Waits (bounded) until `selector`'s text includes `text`; fails with what it shows instead. */
async function expectText(page, selector, text, timeout = STEP) {
  try {
    await page.waitForFunction(
      ([sel, want]) => document.querySelector(sel)?.textContent.includes(want),
      [selector, text],
      { timeout, polling: 50 },
    );
  } catch (err) {
    const shown = await page.locator(selector).textContent({ timeout: 1000 }).catch(() => '(none)');
    throw new Error(`${selector} did not show ${JSON.stringify(text)} within ${timeout} ms; ` +
      `it shows ${JSON.stringify(shown?.slice(0, 400))}`, { cause: err });
  }
}

/** Waits (bounded) until `fn(arg)` is true in the page. */
async function expectTrue(page, what, fn, arg, timeout = STEP) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch (err) {
    throw new Error(`${what}: not within ${timeout} ms`, { cause: err });
  }
}

async function admin(method, route, body) {
  const res = await fetch(`${base()}/sse/${route}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}` },
    body,
    signal: AbortSignal.timeout(STEP),
  });
  const text = await res.text();
  return { status: res.status, json: text.startsWith('{') ? JSON.parse(text) : text };
}

async function listed() {
  const { status, json } = await admin('GET', 'clients');
  assert.equal(status, 200);
  return json.clients;
}

/** Clicks in `page` as a user would: in the front tab (a background tab draws no frames). */
async function click(page, selector) {
  await page.bringToFront();
  await page.click(selector, { timeout: STEP });
}

async function listenInPage(page, key) {
  await page.bringToFront();
  await page.fill('#key-input', key);
  await click(page, '#listen');
  await expectTrue(page, `the chip of ${key} is confirmed`,
    (k) => !!document.querySelector(`#keys li[data-key="${k}"]:not(.pending)`), key);
}

const progressOf = (page) =>
  page.locator('#progress').getAttribute('aria-valuenow').then(Number);

// --- the checks ---------------------------------------------------------------------------------

describe('demo page in headless Chromium', { timeout: 120000 }, () => {
  let alice1;
  let alice2;
  let bob;
  const alice = `alice-${run}`;
  const news = `news-${run}`;

  // A setup that fails (no demo, Chromium that cannot start) fails every test with its reason,
  // rather than leaving them cancelled or skipped.
  let setupError;
  before(async () => {
    try {
      assert.ok(DEMO_BIN, 'DEMO_BIN must name the built demo binary (run.sh sets it)');
      assert.ok(fs.existsSync(DEMO_BIN), `DEMO_BIN ${DEMO_BIN} does not exist`);
      fs.mkdirSync(OUTPUT, { recursive: true });
      port = await freePort();
      demo = await startDemo(port);
      chrome = await startChromium();
      context = chrome.browser.contexts()[0] ?? (await chrome.browser.newContext());
    } catch (err) {
      setupError = err;
    }
  });
  beforeEach(() => {
    if (setupError) throw new Error(`setup failed: ${setupError.message}`, { cause: setupError });
  });

  after(async () => {
    await chrome?.browser.close().catch(() => {});
    for (const { child } of [...started.values()]) await kill(child).catch(() => {});
    if (chrome) fs.rmSync(chrome.profile, { recursive: true, force: true });
  });

  it('(a) a task shows progress and completion in every tab of the name, none in another', async () => {
    alice1 = await openTab(alice);
    alice2 = await openTab(alice);
    bob = await openTab(`bob-${run}`);
    const ids = await Promise.all([alice1, alice2, bob].map(clientId));
    assert.equal(new Set(ids).size, 3, `three tabs, three ids: ${ids}`);
    await expectText(alice1, '#name', alice);

    await click(alice1, '#submit');
    const taskid = (await alice1.locator('#task-id').textContent()).trim();
    assert.match(taskid, /^t-/);
    // Progress is shown while the task runs, in both tabs of the name.
    for (const page of [alice1, alice2]) {
      await expectTrue(page, 'the progress bar moves', () => {
        const n = Number(document.querySelector('#progress').getAttribute('aria-valuenow'));
        return n >= 1;
      });
    }
    for (const page of [alice1, alice2]) {
      await expectText(page, '#completed', `Completed ${taskid}`);
      await expectText(page, '#task-id', taskid);
      assert.equal(await progressOf(page), 10);
      await expectText(page, '#log', `"taskid":"${taskid}"`);
    }
    await expectText(alice2, '#task-origin', 'from another tab');
    await expectText(alice1, '#task-origin', 'started here');
    // The other name saw nothing of it.
    await bob.waitForTimeout(300);
    const bobLog = await bob.locator('#log').textContent();
    assert.ok(!bobLog.includes(taskid), `bob's log shows nothing of ${taskid}: ${bobLog}`);
    assert.ok(!/progress|completed/.test(bobLog), `bob's log has no task events: ${bobLog}`);
    assert.equal(await bob.locator('#tasks li').count(), 0);
    assert.equal(await progressOf(bob), 0);
  });

  it('(b) a key subscribed in the page gets the admin notify, shown in the log', async () => {
    await listenInPage(alice1, news);
    const data = `hello from the test ${run}`;
    const res = await admin('POST', `notify/${news}`, data);
    assert.equal(res.status, 202);
    assert.equal(res.json.delivered, 1, 'delivered to the one subscriber');
    await expectText(alice1, '#log', data);
    await expectTrue(alice1, 'the log row has the key as its type',
      ([k, d]) => [...document.querySelectorAll('#log li')].some(
        (li) => li.dataset.type === k && li.textContent.includes(d)),
      [news, data]);
    await expectText(alice1, `#keys li[data-key="${news}"] .count`, '1');
    // Not subscribed: the other tab of the name does not get it.
    assert.ok(!(await alice2.locator('#log').textContent()).includes(data));
  });

  it('(b2) screenshot of the page during a task', async () => {
    await admin('POST', `notify/${news}`, JSON.stringify({ headline: 'Markets up 2%', at: '09:30' }));
    await click(alice1, '#submit');
    await expectTrue(alice1, 'the task is half way', () => {
      const n = Number(document.querySelector('#progress').getAttribute('aria-valuenow'));
      return n >= 4 && n < 10;
    });
    await alice1.screenshot({ path: path.join(OUTPUT, `demo-task-${DEMO_RUNTIME}.png`), fullPage: true });
    const shown = await progressOf(alice1);
    assert.ok(shown < 10, `the screenshot is taken during the task (now at step ${shown})`);
    await expectText(alice1, '#completed', 'Completed');
  });

  it('(c) after a server restart the page gets a new id, listens again, and queued calls go through', async () => {
    const oldId = await clientId(alice1);
    const before = (await listed()).find((c) => c.id === oldId);
    assert.deepEqual(before?.keys, [news]);

    await kill(demo);
    await expectText(alice1, '#state', 'connecting');
    // Calls made while the server is away: queued, sent once registered again.
    const sports = `sports-${run}`;
    await alice1.bringToFront();
    await alice1.fill('#key-input', sports);
    await click(alice1, '#listen');
    await click(alice1, '#submit');
    const taskid = (await alice1.locator('#task-id').textContent()).trim();
    await alice1.waitForTimeout(300);
    assert.equal(await alice1.locator('#state').textContent(), 'connecting');

    demo = await startDemo(port);
    await expectTrue(alice1, 'a new id is shown', (old) => {
      const id = document.querySelector('#client-id').textContent.trim();
      return id && id !== old && document.querySelector('#state').textContent === 'open';
    }, oldId, RECOVERY);
    const newId = await clientId(alice1);
    assert.notEqual(newId, oldId);
    await expectText(alice1, '#log', `the server forgot ${oldId}`);

    // The task submitted while the server was down ran.
    await expectText(alice1, '#completed', `Completed ${taskid}`);
    // The other tab of the name recovered too, with an id of its own.
    await expectTrue(alice2, 'the other tab has a new id', (ids) => {
      const id = document.querySelector('#client-id').textContent.trim();
      return id && !ids.includes(id) && document.querySelector('#state').textContent === 'open';
    }, [oldId, newId], RECOVERY);

    // Both keys are subscribed under the new id, and their events arrive.
    await expectTrue(alice1, 'the queued listen is confirmed',
      (k) => !!document.querySelector(`#keys li[data-key="${k}"]:not(.pending)`), sports);
    const now = (await listed()).find((c) => c.id === newId);
    assert.ok(now, `the server lists ${newId}`);
    assert.deepEqual([...now.keys].sort(), [news, sports].sort());
    assert.equal(now.name, alice);
    for (const key of [news, sports]) {
      const data = `after the restart ${key}`;
      const res = await admin('POST', `notify/${key}`, data);
      assert.equal(res.json.delivered, 1, `${key} delivered`);
      await expectText(alice1, '#log', data);
    }

    // Every tab got exactly one new id: no double registration.
    await expectTrue(bob, 'bob has a new id', () => document.querySelector('#state').textContent === 'open'
      && document.querySelector('#log').textContent.includes('the server forgot'), undefined, RECOVERY);
    const ids = await Promise.all([alice1, alice2, bob].map(clientId));
    const clients = await listed();
    assert.deepEqual(clients.map((c) => c.id).sort(), [...ids].sort(), 'one client per tab');
    assert.ok(clients.every((c) => c.attached), 'every client has its stream');
  });

  it('(d) Disconnect closes the page and the server forgets the client', async () => {
    await expectText(alice2, '#state', 'open', RECOVERY);
    const id = await clientId(alice1);
    const other = await clientId(alice2);
    assert.ok((await listed()).some((c) => c.id === id));
    await click(alice1, '#disconnect');
    await expectText(alice1, '#state', 'closed');
    const deadline = Date.now() + STEP;
    let clients = await listed();
    while (clients.some((c) => c.id === id) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      clients = await listed();
    }
    assert.ok(!clients.some((c) => c.id === id), `the server still lists ${id}`);
    assert.ok(clients.some((c) => c.id === other), 'the other tab is still listed');
    assert.equal(await alice1.locator('#submit').isDisabled(), true);
  });

  it('(e) SseClient: early calls queue in order, a forgotten id is renewed once', async () => {
    const name = `api-${run}`;
    const [k1, k2, k3] = ['one', 'two', 'three'].map((k) => `${k}-${run}`);
    const early = await withTimeout(bob.evaluate(async ([name, k1, k2, k3]) => {
      const { SseClient } = await import('/sse/client.js');
      const seen = [];
      const newIds = [];
      const c = new SseClient({
        name,
        onKey: { [k1]: () => {} },
        onEvent: (type, data) => seen.push([type, data]),
        onNewId: (from, to) => newIds.push([from, to]),
      });
      Object.assign(window, { api: c, apiSeen: seen, apiNewIds: newIds });
      const state0 = c.state;
      // Before registration: queued, then sent in this order.
      const results = await Promise.all([
        c.listen(k2), c.submitTask('t-early'), c.unlisten(k2), c.listen(k3),
      ]);
      const reserved = await c.listen('progress').then(() => 'accepted', (err) => err.status);
      return { state0, state: c.state, id: c.id, results, reserved, keys: c.keys.sort() };
    }, [name, k1, k2, k3]), STEP, 'the early calls did not resolve');
    assert.equal(early.state0, 'connecting');
    assert.equal(early.state, 'open');
    assert.deepEqual(early.results, [k2, 't-early', k2, k3]);
    assert.equal(early.reserved, 400);
    assert.deepEqual(early.keys, [k1, k3].sort());
    const mine = (await listed()).find((c) => c.id === early.id);
    assert.deepEqual([...mine.keys].sort(), [k1, k3].sort(), 'the server has the same keys');
    await expectTrue(bob, 't-early completed', () =>
      window.apiSeen.some(([t, d]) => t === 'completed' && d.includes('t-early')));

    // The server forgets the id behind the client's back; a call made then still goes through.
    const renewed = await withTimeout(bob.evaluate(async () => {
      const c = window.api;
      const old = c.id;
      await fetch(`/sse/clients/${old}`, { method: 'DELETE' });
      const task = await c.submitTask('t-after');
      await c.whenOpen();
      return { old, id: c.id, task };
    }), RECOVERY, 'the call after the id was forgotten did not go through');
    assert.notEqual(renewed.id, renewed.old);
    assert.equal(renewed.task, 't-after');
    await expectTrue(bob, 't-after completed', () =>
      window.apiSeen.some(([t, d]) => t === 'completed' && d.includes('t-after')));
    assert.deepEqual(await bob.evaluate(() => window.apiNewIds), [[renewed.old, renewed.id]]);
    const named = (await listed()).filter((c) => c.name === name);
    assert.deepEqual(named.map((c) => c.id), [renewed.id], 'one id for the name: renewed once');
    assert.deepEqual([...named[0].keys].sort(), [k1, k3].sort());

    // A call answered 404 while the stream looks fine (the stream's path above did not run):
    // the client renews the id once and sends the call again with the new one.
    let intercepted = 0;
    const tasksRoute = (url) => url.pathname.startsWith('/sse/tasks/');
    await bob.route(tasksRoute, (route) => {
      intercepted += 1;
      if (intercepted === 1) return route.fulfill({ status: 404, body: 'unknown client id' });
      return route.continue();
    });
    try {
      const again = await withTimeout(bob.evaluate(async () => {
        const c = window.api;
        const old = c.id;
        const task = await c.submitTask('t-404');
        return { old, id: c.id, task, newIds: window.apiNewIds.length };
      }), RECOVERY, 'the call answered 404 did not go through');
      assert.equal(intercepted, 2, 'sent twice: answered 404, then with the new id');
      assert.notEqual(again.id, again.old);
      assert.equal(again.newIds, 2);
      await expectTrue(bob, 't-404 completed', () =>
        window.apiSeen.some(([t, d]) => t === 'completed' && d.includes('t-404')));
      const named404 = (await listed()).filter((c) => c.name === name);
      assert.deepEqual(named404.map((c) => c.id), [again.id], 'the old id was let go');
      assert.deepEqual([...named404[0].keys].sort(), [k1, k3].sort());
    } finally {
      await bob.unroute(tasksRoute);
    }

    // Disconnected: closed at once, later calls reject, the server forgets it.
    const closed = await bob.evaluate(async () => {
      const c = window.api;
      await c.disconnect();
      const later = await c.submitTask('t-late').then(() => 'accepted', (err) => err.message);
      return { state: c.state, later };
    });
    assert.equal(closed.state, 'closed');
    assert.match(closed.later, /closed/);
    assert.ok(!(await listed()).some((c) => c.name === name));
    assert.deepEqual(pageErrors, [], 'no uncaught errors in the pages');
  });
  it('(f) the admin page shows tabs connecting and leaving, live', async () => {
    const page = await context.newPage();
    await page.setViewportSize({ width: 1280, height: 1100 });
    page.on('pageerror', (err) => pageErrors.push(`admin: ${err.message}`));
    await page.goto(`${base()}/admin`, { timeout: STEP });
    // A wrong token is refused and says so; the right one opens the console.
    await page.fill('#token', 'not-the-token');
    await click(page, '#sign-in');
    await expectText(page, '#signin-error', 'Wrong token');
    await page.fill('#token', TOKEN);
    await click(page, '#sign-in');
    await expectText(page, '#state', 'live');

    const tagOf = async (id) => (await listed()).find((c) => c.id === id)?.tag;
    const row = (tag) => `#clients tr[data-tag="${tag}"]`;
    const shown = (tag) => page.locator(row(tag)).count().then((n) => n > 0);
    const name = `watched-${run}`;
    const tabs = [await openTab(name), await openTab(name)];
    const ids = await Promise.all(tabs.map(clientId));
    const tags = await Promise.all(ids.map(tagOf));
    assert.ok(tags.every((t) => /^[0-9a-f]{8}$/.test(t)), `tags: ${tags}`);
    const since = Date.now();
    for (const tag of tags) {
      await expectTrue(page, `the admin page lists ${tag}, connected`,
        (sel) => document.querySelector(sel)?.dataset.attached === 'true', row(tag));
    }
    const listedAfter = Date.now() - since;
    // The ids themselves are not on the page, only their tags.
    const html = await page.content();
    for (const id of ids) assert.ok(!html.includes(id), `the admin page shows the id ${id}`);

    await click(tabs[0], '#disconnect');
    await expectText(tabs[0], '#state', 'closed');
    const left = Date.now();
    await expectTrue(page, `the admin page drops ${tags[0]}`,
      (sel) => !document.querySelector(sel), row(tags[0]));
    const droppedAfter = Date.now() - left;
    assert.ok(await shown(tags[1]), 'the other tab is still listed');
    assert.ok(Number(await page.locator('#updates').textContent()) >= 2, 'updates came over SSE');
    await page.bringToFront();
    await page.waitForTimeout(1200); // a sample or two for the charts
    await page.screenshot({ path: path.join(OUTPUT, `admin-${DEMO_RUNTIME}.png`), fullPage: true });
    console.log(`admin page (${DEMO_RUNTIME}): listed two tabs ${listedAfter} ms after they ` +
      `opened, dropped one ${droppedAfter} ms after it disconnected`);
    assert.deepEqual(pageErrors, [], 'no uncaught errors in the pages');
  });
});
