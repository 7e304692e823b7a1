/**
 * client.js: the browser client of the sse protocol. A plain ES module, with no build step and
 * no dependency; the server serves it at `{prefix}client.js` (by default `/sse/client.js`).
 *
 *     import { SseClient } from '/sse/client.js';
 *
 *     const client = new SseClient({
 *       name: 'alice',                      // every tab named 'alice' gets the same completions
 *       onRegistered: (id) => console.log('registered as', id),
 *       onProgress: (taskid, p) => console.log(taskid, `${p.step}/${p.of}`),
 *       onCompleted: (taskid, c) => console.log(taskid, 'done at', new Date(c.timestamp)),
 *       onKey: { prices: (data) => console.log('prices:', data) },   // listened to from the start
 *       onEvent: (type, data) => console.log(type, data),            // every event
 *     });
 *     client.listen('news');                // fine before the stream is registered: queued
 *     const taskid = await client.submitTask();
 *     // ...
 *     await client.disconnect();
 *
 * What it takes care of:
 * - Getting an id: `POST {base}clients?name=…` answers the id, then `new EventSource(
 *   {base}events/{id})` opens the stream, whose first event, `registered`, carries the id. The
 *   id is used for every later request and for `disconnect()`.
 * - Nothing can be done for a client before its stream is registered, so `listen`, `unlisten`
 *   and `submitTask` called early are queued, and sent one at a time in call order once
 *   `registered` arrives (later calls go straight out, still in order). Each returns a Promise.
 * - A dropped stream is reopened by the browser itself, which sends `Last-Event-ID`; the server
 *   replays what the client missed, or sends `reset` when it cannot (then `onReset` is called:
 *   reload whatever state the page shows).
 * - A forgotten id (the server restarted, or swept the client): the EventSource is refused (404,
 *   so it ends up CLOSED), or a request answers 404. The client then gets a new id (one POST,
 *   however many things noticed it), opens a new stream, subscribes again to every key it
 *   listens to, calls `onNewId(oldId, newId)`, and sends whatever calls were waiting. While the
 *   server cannot be reached it retries with a backoff of 250 ms doubling up to 5 s. Events sent
 *   to the old id while it was gone are lost; events sent to the name reach the new id.
 *
 * API
 * - `new SseClient(options)`, every option optional:
 *   - `base`: the prefix URL of the routes, default `'/sse/'` (may be absolute, for CORS).
 *   - `name`: the client's name, shared by all the tabs of one user.
 *   - `withCredentials`: send cookies to another origin (EventSource and fetch); the server
 *     must allow it (`Config::cors_credentials`, for origins it lists by name).
 *   - `headers`: headers sent with every request but the stream (which `EventSource` opens
 *     without any), e.g. `{ authorization: 'Bearer …' }` for an admin page listening to the
 *     admin key `admin.clients`.
 *   - `onStateChange(state)`: `state` changed.
 *   - `onOpened()`: the stream is registered and every key is subscribed (`state` is 'open').
 *   - `onRegistered(id)`: a `registered` event (after every (re)connection).
 *   - `onNewId(oldId, newId)`: the server had forgotten `oldId`; `newId` replaces it.
 *   - `onKey`: `{ key: fn(data, event) }`: handlers of key events; these keys are listened to
 *     from the start.
 *   - `onEvent(type, data, event)`: every event, whatever its type (`data` is the text).
 *   - `onMessage(data, event)`: an admin broadcast (`event: message`).
 *   - `onProgress(taskid, data, event)`: a task's progress; `data` is the parsed JSON.
 *   - `onCompleted(taskid, data, event)`: a task's completion; `data` is the parsed JSON
 *     (`{taskid, timestamp}`).
 *   - `onReset(data, event)`: the server could not replay what was missed.
 *   - `onError(state, error)`: something failed; `state` says what happens now: 'connecting'
 *     (retrying by itself) or 'closed' (given up, e.g. the server refused the name).
 *   - `onClosed()`: the client is closed (by `disconnect()`, or after a fatal error).
 * - `client.state`: 'connecting' | 'open' | 'closed'. `client.id`: the current id (or null).
 *   `client.name`, `client.base`, `client.keys` (the keys listened to, an array).
 * - `client.listen(key, handler?)`: subscribe to `key` (and handle its events with `handler`).
 * - `client.unlisten(key)`: unsubscribe.
 * - `client.submitTask(taskid?)`: start a task (a random task id when none is given); resolves
 *   to the task id. Its `progress` and `completed` events go to every tab of the name.
 * - `client.whenOpen()`: resolves when `state` is 'open'.
 * - `client.disconnect()`: closes the stream and tells the server to forget the client; queued
 *   calls are rejected. `state` becomes 'closed' at once, `onClosed` is called; the returned
 *   Promise resolves once the server has answered (or could not be reached).
 *
 * The Promises of `listen`, `unlisten` and `submitTask` reject with an `SseError` (with the HTTP
 * `status`) when the server refuses the call (an invalid key, say), or when the client is
 * disconnected before the call was sent.
 */

const MIN_DELAY = 250;
const MAX_DELAY = 5000;
const REQUEST_TIMEOUT = 10000;
/** Event names the protocol uses, which therefore cannot be keys. */
export const RESERVED = ['registered', 'completed', 'progress', 'reset', 'message'];

/** A failed call: `status` is the HTTP status, or 0 when there was no answer. */
export class SseError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.name = 'SseError';
    this.status = status;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const enc = encodeURIComponent;

function randomTaskId() {
  const bytes = new Uint8Array(6);
  crypto.getRandomValues(bytes);
  return 't-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export class SseClient {
  #options;
  #state = 'connecting';
  #id = null;
  /** The id of the last registration (for onNewId). */
  #registeredId = null;
  /** The id whose subscriptions are known to be in place on the server. */
  #restoredFor = null;
  #es = null;
  /** Event types with a listener on `#es`. */
  #types = new Set();
  /** Keys listened to: what to subscribe again with a new id. */
  #keys = new Set();
  #handlers = new Map();
  /** Calls waiting to be sent, in order: `{ method, path(id), resolve, reject, ... }`. */
  #queue = [];
  #registered = false;
  /** Changes with every registration, so that stale async work can tell it is stale. */
  #registration = null;
  #renewing = false;
  /** True from a renewal until the next registration: a further renewal waits first. */
  #unstable = false;
  #pumping = false;
  #closed = false;
  #delay = MIN_DELAY;
  #openWaiters = [];

  constructor(options = {}) {
    this.#options = options;
    let base = options.base ?? '/sse/';
    if (!base.endsWith('/')) base += '/';
    this.base = base;
    this.name = options.name || null;
    for (const [key, handler] of Object.entries(options.onKey ?? {})) {
      if (RESERVED.includes(key)) throw new SseError(`"${key}" is an event name of the protocol`);
      this.#handlers.set(key, handler);
      this.#keys.add(key);
    }
    this.#renew(null);
  }

  /** 'connecting' | 'open' | 'closed'. */
  get state() {
    return this.#state;
  }

  /** The current client id, or null before the first one. */
  get id() {
    return this.#id;
  }

  /** The keys listened to. */
  get keys() {
    return [...this.#keys];
  }

  /** Subscribes to `key`; `handler(data, event)` handles its events, if given. */
  listen(key, handler) {
    key = String(key);
    if (RESERVED.includes(key)) {
      return Promise.reject(new SseError(`"${key}" is an event name of the protocol`, 400));
    }
    if (this.#closed) return Promise.reject(new SseError('the client is closed'));
    if (handler) this.#handlers.set(key, handler);
    this.#keys.add(key);
    if (this.#es) this.#listenTo(this.#es, key);
    return this.#enqueue('PUT', (id) => `listen/${enc(id)}/${enc(key)}`, {
      result: key,
      // A key the server refuses (invalid, too many) is not one to subscribe again.
      refused: () => this.#keys.delete(key),
    });
  }

  /** Unsubscribes from `key`. */
  unlisten(key) {
    key = String(key);
    this.#keys.delete(key);
    return this.#enqueue('DELETE', (id) => `listen/${enc(id)}/${enc(key)}`, { result: key });
  }

  /** Starts a task; resolves to its id once the server has accepted it. */
  submitTask(taskid = randomTaskId()) {
    taskid = String(taskid);
    return this.#enqueue('PUT', (id) => `tasks/${enc(id)}/${enc(taskid)}`, { result: taskid });
  }

  /** Resolves when the client is open (at once if it is); rejects if it is closed. */
  whenOpen() {
    if (this.#state === 'open') return Promise.resolve(this.#id);
    if (this.#closed) return Promise.reject(new SseError('the client is closed'));
    return new Promise((resolve, reject) => this.#openWaiters.push({ resolve, reject }));
  }

  /** Closes the stream and tells the server to forget the client. */
  async disconnect() {
    if (this.#closed) return;
    const id = this.#id;
    this.#close(new SseError('the client disconnected'), false);
    if (id) {
      try {
        await this.#fetch('DELETE', `clients/${enc(id)}`, { keepalive: true });
      } catch {
        // The server is gone: it has forgotten the client anyway, or will sweep it.
      }
    }
  }

  // --- the stream -------------------------------------------------------------------------

  /**
   * Gets a new id and opens its stream. `staleId` is the id found forgotten (null at the start):
   * a renewal for an id that is no longer the current one, or while one runs, does nothing, so
   * that however many things notice a forgotten id, it is replaced once.
   */
  async #renew(staleId) {
    if (this.#closed || this.#renewing || staleId !== this.#id) return;
    this.#renewing = true;
    this.#registered = false;
    this.#registration = null;
    this.#closeStream();
    this.#setState('connecting');
    if (staleId) this.#forget(staleId);
    try {
      // A renewal that follows a renewal which never reached registration waits first, so
      // that a server that refuses every stream is not asked in a tight loop.
      if (this.#unstable) await sleep(this.#nextDelay());
      this.#unstable = true;
      let id = null;
      while (id === null) {
        if (this.#closed) return;
        const query = this.name ? `?name=${enc(this.name)}` : '';
        let failure;
        try {
          const res = await this.#fetch('POST', `clients${query}`);
          const text = (await res.text()).trim();
          if (res.ok) {
            id = text;
            break;
          }
          failure = new SseError(`could not get a client id: ${res.status} ${text}`, res.status);
          // The request itself is wrong (a name too long, say): retrying will not help.
          if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
            this.#close(failure, true);
            return;
          }
        } catch (err) {
          failure = new SseError(`could not reach the server: ${err.message ?? err}`);
        }
        this.#emit('onError', 'connecting', failure);
        await sleep(this.#nextDelay());
      }
      if (this.#closed) {
        this.#forget(id);
        return;
      }
      this.#id = id;
      this.#open(id);
    } finally {
      this.#renewing = false;
    }
  }

  #open(id) {
    const es = new EventSource(`${this.base}events/${enc(id)}`, {
      withCredentials: !!this.#options.withCredentials,
    });
    this.#es = es;
    this.#types = new Set();
    const on = (type, fn) => {
      this.#types.add(type);
      es.addEventListener(type, (event) => {
        if (this.#es === es && !this.#closed) fn(event);
      });
    };
    on('registered', (event) => {
      this.#emit('onEvent', 'registered', event.data, event);
      this.#registered = false;
      this.#onRegistered(es, event.data || id);
    });
    on('progress', (event) => this.#task('onProgress', 'progress', event));
    on('completed', (event) => this.#task('onCompleted', 'completed', event));
    on('reset', (event) => {
      this.#emit('onReset', event.data, event);
      this.#emit('onEvent', 'reset', event.data, event);
    });
    on('message', (event) => {
      this.#emit('onMessage', event.data, event);
      this.#emit('onEvent', 'message', event.data, event);
    });
    for (const key of new Set([...this.#keys, ...this.#handlers.keys()])) this.#listenTo(es, key);
    es.onerror = () => {
      if (this.#es !== es || this.#closed) return;
      this.#registered = false;
      this.#registration = null;
      if (es.readyState === EventSource.CLOSED) {
        // The server refused the stream (a 404: it has forgotten the id), so the browser will
        // not retry it: get a new id.
        this.#emit('onError', 'connecting', new SseError('the stream was refused; renewing the id'));
        this.#renew(id);
      } else {
        // The browser reconnects by itself, with Last-Event-ID.
        this.#setState('connecting');
        this.#emit('onError', 'connecting', new SseError('the stream dropped; reconnecting'));
      }
    };
  }

  /** Adds the listener of a key's events to `es` (EventSource has no catch-all listener). */
  #listenTo(es, key) {
    if (es !== this.#es || this.#types.has(key)) return;
    this.#types.add(key);
    es.addEventListener(key, (event) => {
      if (this.#es !== es || this.#closed) return;
      const handler = this.#handlers.get(key);
      if (handler) this.#call(handler, event.data, event);
      this.#emit('onEvent', key, event.data, event);
    });
  }

  #task(callback, type, event) {
    const data = parseJson(event.data);
    this.#emit(callback, data?.taskid ?? null, data, event);
    this.#emit('onEvent', type, event.data, event);
  }

  /** The stream is registered: subscribe again if the id is new, then open and send. */
  async #onRegistered(es, id) {
    const registration = {};
    this.#registration = registration;
    const current = () => this.#registration === registration && this.#es === es && !this.#closed;
    if (this.#restoredFor !== id) {
      for (const key of [...this.#keys]) {
        let res;
        try {
          res = await this.#fetch('PUT', `listen/${enc(id)}/${enc(key)}`);
        } catch {
          if (!current()) return;
          // No answer: try the whole registration again in a while (unless the stream drops
          // meanwhile, in which case its next `registered` does).
          setTimeout(() => current() && this.#onRegistered(es, id), this.#nextDelay());
          return;
        }
        if (!current()) return;
        if (res.status === 404) {
          this.#renew(id);
          return;
        }
        // A key refused for good (invalid, too many keys): its own call reports it.
        if (!res.ok) this.#keys.delete(key);
      }
      this.#restoredFor = id;
    }
    this.#registered = true;
    this.#unstable = false;
    this.#delay = MIN_DELAY;
    const previous = this.#registeredId;
    this.#registeredId = id;
    if (previous && previous !== id) this.#emit('onNewId', previous, id);
    this.#emit('onRegistered', id);
    this.#setState('open');
    if (!current()) return;
    this.#emit('onOpened');
    for (const waiter of this.#openWaiters.splice(0)) waiter.resolve(id);
    this.#pump();
  }

  // --- calls ------------------------------------------------------------------------------

  #enqueue(method, path, extra = {}) {
    if (this.#closed) return Promise.reject(new SseError('the client is closed'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ method, path, resolve, reject, renewals: 0, ...extra });
      this.#pump();
    });
  }

  /** Sends the queued calls one at a time, in order, while the stream is registered. */
  async #pump() {
    if (this.#pumping) return;
    this.#pumping = true;
    let delay = MIN_DELAY;
    try {
      while (this.#registered && !this.#closed && this.#queue.length > 0) {
        const op = this.#queue[0];
        const id = this.#id;
        let res;
        let text;
        try {
          res = await this.#fetch(op.method, op.path(id));
          text = await res.text();
        } catch {
          // No answer: the server is down or restarting. The stream notices that too; until
          // it is registered again the loop stops, and this call stays first in line.
          await sleep(delay);
          delay = Math.min(delay * 2, MAX_DELAY);
          continue;
        }
        if (this.#queue[0] !== op) continue; // disconnected meanwhile: already rejected
        if (res.status === 404 && op.renewals < 2) {
          // The id is forgotten: keep the call, get a new id, send it with that one. (Twice at
          // most, in case the 404 is about something else.)
          if (id === this.#id) {
            op.renewals += 1;
            this.#renew(id);
          }
          continue;
        }
        this.#queue.shift();
        if (res.ok) {
          op.resolve(op.result);
        } else {
          op.refused?.();
          op.reject(new SseError(`${op.method} ${op.path(id)}: ${res.status} ${text}`, res.status));
        }
        delay = MIN_DELAY;
      }
    } finally {
      this.#pumping = false;
    }
  }

  // --- helpers ----------------------------------------------------------------------------

  #fetch(method, path, init = {}) {
    const timeout = typeof AbortSignal.timeout === 'function' ? AbortSignal.timeout(REQUEST_TIMEOUT) : undefined;
    return fetch(this.base + path, {
      method,
      headers: this.#options.headers ?? {},
      cache: 'no-store',
      credentials: this.#options.withCredentials ? 'include' : 'same-origin',
      signal: timeout,
      ...init,
    });
  }

  /** Tells the server to forget an id we no longer use (best effort: it may not know it). */
  #forget(id) {
    this.#fetch('DELETE', `clients/${enc(id)}`, { keepalive: true }).catch(() => {});
  }

  #nextDelay() {
    const delay = this.#delay;
    this.#delay = Math.min(this.#delay * 2, MAX_DELAY);
    return delay;
  }

  #closeStream() {
    if (this.#es) {
      this.#es.onerror = null;
      this.#es.close();
      this.#es = null;
    }
  }

  /** Closes for good: after `disconnect()`, or an error that retrying cannot fix (`fatal`). */
  #close(error, fatal) {
    if (this.#closed) return;
    this.#closed = true;
    this.#registered = false;
    this.#registration = null;
    this.#closeStream();
    for (const op of this.#queue.splice(0)) op.reject(error);
    for (const waiter of this.#openWaiters.splice(0)) waiter.reject(error);
    this.#setState('closed');
    if (fatal) this.#emit('onError', 'closed', error);
    this.#emit('onClosed');
  }

  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    this.#emit('onStateChange', state);
  }

  #emit(name, ...args) {
    const callback = this.#options[name];
    if (typeof callback === 'function') this.#call(callback, ...args);
  }

  #call(fn, ...args) {
    try {
      fn(...args);
    } catch (err) {
      // A callback's error must not break the client; report it without stopping.
      setTimeout(() => {
        throw err;
      });
    }
  }
}
