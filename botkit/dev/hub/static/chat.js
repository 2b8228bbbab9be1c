// The botkit dev chat page. No SDK and no build step: it speaks the Centrifugo v6 JSON client
// protocol (docs/xshathra-realtime.md §1-7) over one WebSocket, the way botkit's Python client
// does, and sends through the chat backend like the seed's web app.
//
// How the page maps to the protocol:
//   login      POST /api/realtime/token {name, room} -> connection + subscription tokens; it is
//              called again before every (re)connect and before the tokens expire.
//   frames     one JSON command per line; a received frame may hold several lines (split on \n).
//   connect    {"id":1,"connect":{"token","name":"chat-page"}}; the reply's ping/pong drive the
//              liveness timer and the pong answers, expires/ttl drive the token refresh.
//   subscribe  {"subscribe":{"channel","token","recoverable":true,"positioned":true}}; after a
//              reconnect also {"recover":true,"epoch","offset"} of the last publication seen.
//              recovered:true -> the reply carries the missed publications; recovered:false -> a
//              gap: a notice, and the recent history is loaded again.
//   history    the recent messages on join and after a gap: {"history":{"channel","limit",
//              "since":{offset,epoch}}}. Messages are kept in stream order and de-duplicated by
//              epoch + offset, so a replay never shows a message twice.
//   presence   {"presence":{"channel"}} after subscribing, then join/leave pushes; the online
//              list shows one entry per user, however many connections (tabs) they have.
//   pushes     pub (messages), join/leave, unsubscribe (code >= 2500: resubscribe), disconnect.
//   ping       the server's {} is answered with {} only when the connect reply had pong:true;
//              no ping for ping + 10 s -> the connection is dead: close it and reconnect.
//   refresh    {"refresh":{"token"}} and {"sub_refresh":{"channel","token"}} before expiry.
//   reconnect  full-jitter backoff; close codes 3500-3999 and 4500-4999 are terminal (shown,
//              never retried), as are connect errors other than 109 / temporary ones.
//   sending    POST /api/chat/send with the connection token; the backend moderates and
//              publishes, and the message comes back through the subscription like any other.
//   senders    the page names the sender the server attests, never just the senderId written in
//              the message: a client publication carries its connection's user in info.user,
//              and one whose senderId differs is a spoof and is not shown; a publication without
//              info came through the server API (the backend's moderated send, or a bot), whose
//              key holders are trusted to name the sender. See attestedSender.

export const WS_PATH = '/realtime/connection/websocket';
export const TOKEN_URL = '/api/realtime/token';
export const SEND_URL = '/api/chat/send';
const HISTORY_LIMIT = 50;

// --- pure protocol helpers (no DOM, no sockets) ---------------------------------------------

/** One WebSocket message carrying the commands, one JSON object per line. */
export function encodeCommands(commands) {
  return commands.map((command) => JSON.stringify(command)).join('\n');
}

/** The replies, pushes and pings in one received WebSocket message. */
export function decodeFrame(text) {
  const trimmed = text.trim();
  return trimmed ? trimmed.split('\n').map((line) => JSON.parse(line)) : [];
}

export const isPing = (message) => Object.keys(message).length === 0;

/**
 * The sender of a message as the server attests it, or null when it can't be trusted.
 * ``info`` is the publication's info: set by the server for a client publication (info.user is
 * the connection's user, whatever the message claims), absent for one published through the
 * server API with its key (the chat backend, which takes the sender from the login token, or a
 * bot, which speaks as itself).
 */
export function attestedSender(data, info) {
  if (!data || typeof data.senderId !== 'string' || !data.senderId) return null;
  if (info === null || info === undefined) return data.senderId;
  return typeof info === 'object' && info.user === data.senderId ? info.user : null;
}

/** Close codes after which reconnecting can't help (bad token, protocol error, ...). */
export function isTerminalClose(code) {
  return (code >= 3500 && code < 4000) || (code >= 4500 && code < 5000);
}

/** Whether a connect/subscribe error reply may pass: 109 (token expired) needs a new token. */
export function isRetryableError(error) {
  return error.code < 100 || error.code === 109 || error.temporary === true;
}

/** Full-jitter backoff in ms, as in botkit's Python client: min + U(0, min(max, min * 2^n)). */
export function backoffDelay(attempt, minMs, maxMs, random = Math.random) {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 31));
  return Math.min(maxMs, minMs + random() * ceiling);
}

/** When to refresh a token that lives `ttl` more seconds: a margin early, never too late. */
export function refreshDelayMs(ttl) {
  return Math.max(1, ttl - Math.min(30, ttl / 5)) * 1000;
}

/** The subscribe request, recovering from `position` ({epoch, offset}) when there is one. */
export function subscribeRequest(channel, token, position) {
  const request = { channel, token, recoverable: true, positioned: true };
  if (position) Object.assign(request, { recover: true, epoch: position.epoch, offset: position.offset });
  return request;
}

/** Messages in stream order, each once: keyed by epoch and offset. */
export class MessageLog {
  constructor() { this.epochs = []; this.keys = []; }

  /** Where a publication goes (an index into the log), or -1 when it is already there. */
  insert(epoch, offset) {
    if (!this.epochs.includes(epoch)) this.epochs.push(epoch); // a new stream sorts after the old
    const key = [this.epochs.indexOf(epoch), offset || Number.MAX_SAFE_INTEGER];
    let low = 0;
    let high = this.keys.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      const other = this.keys[mid];
      if (other[0] < key[0] || (other[0] === key[0] && other[1] < key[1])) low = mid + 1;
      else high = mid;
    }
    const found = this.keys[low];
    if (offset && found && found[0] === key[0] && found[1] === key[1]) return -1;
    this.keys.splice(low, 0, key);
    return low;
  }
}

/** Who is online: connections by client id, shown one entry per user. */
export class PresenceBook {
  constructor() { this.clients = new Map(); this.names = new Map(); }

  reset(presence) {
    this.clients.clear();
    for (const info of Object.values(presence || {})) this.join(info);
  }

  join(info) {
    const name = info.conn_info && typeof info.conn_info.name === 'string' ? info.conn_info.name : '';
    this.clients.set(info.client, { user: info.user, name });
    if (name) this.names.set(info.user, name);
  }

  leave(info) { this.clients.delete(info.client); }

  nameOf(userId) { return this.names.get(userId) || userId; }

  online() {
    const users = new Map();
    for (const { user, name } of this.clients.values()) {
      const entry = users.get(user) || { user, name: name || this.nameOf(user), connections: 0 };
      entry.connections += 1;
      users.set(user, entry);
    }
    return [...users.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
}

export class ReplyError extends Error {
  constructor(error) {
    super(`${error.message || 'error'} (${error.code})`);
    this.code = error.code;
    this.temporary = Boolean(error.temporary);
  }
}

export class SendError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || `sending failed (${status})`);
    Object.assign(this, { status, code, retryAfter });
  }
}

class Terminal extends Error {}

// --- the connection: protocol state machine over one WebSocket at a time --------------------

export class ChatClient {
  constructor({ name, room, onEvent = () => {}, baseUrl = '', wsUrl = null, WebSocketImpl = globalThis.WebSocket,
    fetchImpl = (...args) => globalThis.fetch(...args), minReconnectDelay = 300, maxReconnectDelay = 20000,
    pingGrace = 10000, timeout = 10000, random = Math.random }) {
    Object.assign(this, { name, room, onEvent, baseUrl, wsUrl, WebSocketImpl, fetchImpl, minReconnectDelay,
      maxReconnectDelay, pingGrace, timeout, random });
    this.state = 'idle';
    this.tokens = null;
    this.position = null; // {epoch, offset} of the last publication seen: what recovery starts from
    this.presence = new PresenceBook();
    this._ws = null;
    this._stopped = false;
    this._wake = null;
    this._loginPromise = null;
  }

  start() { this._run(); }

  stop() {
    this._stopped = true;
    if (this._wake) this._wake();
    if (this._ws) this._ws.abandon(1000, 'left');
    this._setState('closed', { code: 1000, reason: 'left' });
  }

  _emit(type, detail) {
    try { this.onEvent(type, detail); } catch (error) { console.error(error); }
  }

  _setState(state, detail = {}) {
    this.state = state;
    this._emit('state', { state, ...detail });
  }

  _sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this._wake = () => { clearTimeout(timer); resolve(); };
    });
  }

  async _run() {
    let attempt = 0;
    while (!this._stopped) {
      this._setState('connecting');
      let closed;
      try {
        closed = await this._connectOnce(() => { attempt = 0; });
      } catch (error) {
        if (this._stopped) return;
        if (error instanceof Terminal) {
          this._setState('closed', { reason: error.message, terminal: true });
          return;
        }
        closed = { code: 0, reason: error.message };
      }
      if (this._stopped) return;
      if (isTerminalClose(closed.code)) {
        this._setState('closed', { ...closed, terminal: true });
        return;
      }
      const delay = backoffDelay(attempt, this.minReconnectDelay, this.maxReconnectDelay, this.random);
      attempt += 1;
      this._setState('reconnecting', { ...closed, delay });
      await this._sleep(delay);
    }
  }

  /** Get fresh tokens (one request at a time). Refusals of the login itself are terminal. */
  login() {
    if (!this._loginPromise) {
      this._loginPromise = (async () => {
        const response = await this.fetchImpl(`${this.baseUrl}${TOKEN_URL}`, {
          method: 'POST', headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ name: this.name, room: this.room }),
        });
        const body = await response.json().catch(() => ({}));
        if (response.status >= 400 && response.status < 500 && response.status !== 429) {
          throw new Terminal(body.message || `login refused (${response.status})`);
        }
        if (!response.ok) throw new Error(`login failed (${response.status})`);
        this.tokens = body;
        this._emit('session', { userId: body.userId, name: body.name, channel: body.channel });
        return body;
      })().finally(() => { this._loginPromise = null; });
    }
    return this._loginPromise;
  }

  /** One connection, from login to close; resolves with the close {code, reason}. */
  async _connectOnce(onHealthy) {
    const tokens = await this.login();
    if (this._stopped) throw new Terminal('left');
    const url = this.wsUrl || `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${WS_PATH}`;
    const ws = new Socket(this.WebSocketImpl, url, this.timeout, (message) => this._onMessage(ws, message));
    this._ws = ws;
    try {
      await ws.opened;
      const reply = await ws.call({ connect: { token: tokens.token, name: 'chat-page' } });
      ws.pong = reply.pong === true;
      ws.pingMs = (reply.ping || 0) * 1000;
      this._watch(ws);
      this._setState('connected', { client: reply.client });
      if (reply.expires) this._scheduleRefresh(ws, reply.ttl);
      await this._subscribe(ws);
      onHealthy();
    } catch (error) {
      if (error instanceof Terminal) {
        ws.abandon(1000, error.message);
        throw error;
      }
      if (error instanceof ReplyError && !isRetryableError(error)) {
        ws.abandon(1000, 'connect refused');
        throw new Terminal(`the server refused to connect: ${error.message}`);
      }
      // A timeout, a temporary error, an expired token (109) or a close: reconnect with new
      // tokens. When the server closed the socket, ws.closed holds its code.
      ws.abandon(4002, error.message);
    }
    return ws.closed;
  }

  async _subscribe(ws) {
    const channel = this.tokens.channel;
    let reply;
    try {
      reply = await ws.call({ subscribe: subscribeRequest(channel, this.tokens.subscriptionToken, this.position) });
    } catch (error) {
      if (error instanceof ReplyError && !isRetryableError(error)) {
        this._emit('error', { message: `cannot join the room: ${error.message}`, terminal: true });
        return;
      }
      throw error; // temporary or 109: reconnect with fresh tokens
    }
    const wasRecovering = this.position !== null;
    if (wasRecovering && reply.recovered) {
      for (const publication of reply.publications || []) this._onPublication(publication, true);
    } else {
      if (wasRecovering) this._emit('gap', { reason: 'some messages sent while you were away are no longer on the server' });
      this.position = { epoch: reply.epoch || '', offset: reply.offset || 0 };
      this._loadHistory(ws, channel, { ...this.position }); // a copy: live publications move the original
    }
    ws.subExpires = Boolean(reply.expires);
    if (reply.expires) this._scheduleRefresh(ws, reply.ttl);
    this._emit('subscribed', { recovered: Boolean(reply.recovered), wasRecovering, ...this.position });
    await this._loadPresence(ws, channel);
  }

  async _loadHistory(ws, channel, top) {
    if (!top.offset) return;
    try {
      const since = { offset: Math.max(0, top.offset - HISTORY_LIMIT), epoch: top.epoch };
      const reply = await ws.call({ history: { channel, limit: HISTORY_LIMIT, since } });
      for (const publication of reply.publications || []) {
        if (publication.offset <= top.offset) this._deliver(publication, reply.epoch || top.epoch, 'history');
      }
    } catch (error) {
      console.debug('history not loaded:', error.message); // a nicety: the live stream goes on
    }
  }

  async _loadPresence(ws, channel) {
    ws.presencePending = [];
    try {
      const reply = await ws.call({ presence: { channel } });
      this.presence.reset(reply.presence);
      for (const [kind, info] of ws.presencePending) this.presence[kind](info);
    } catch (error) {
      console.debug('presence not loaded:', error.message);
    } finally {
      ws.presencePending = null;
    }
    this._emit('presence', { online: this.presence.online() });
  }

  _onMessage(ws, message) {
    if (isPing(message)) {
      if (ws.pong) ws.send([{}]);
      this._watch(ws);
      return;
    }
    const push = message.push;
    if (!push) return;
    if (push.channel !== this.tokens.channel) {
      if (push.disconnect) ws.abandon(push.disconnect.code, push.disconnect.reason);
      return;
    }
    if (push.pub) this._onPublication(push.pub, false);
    else if (push.join || push.leave) {
      const kind = push.join ? 'join' : 'leave';
      if (ws.presencePending) ws.presencePending.push([kind, push[kind].info]);
      this.presence[kind](push[kind].info);
      this._emit('presence', { online: this.presence.online(), [kind]: push[kind].info });
    } else if (push.unsubscribe) {
      if (push.unsubscribe.code >= 2500) this._resubscribe(ws);
      else this._emit('error', { message: `removed from the room: ${push.unsubscribe.reason}`, terminal: true });
    }
  }

  _onPublication(publication, recovered) {
    const position = this.position;
    if (publication.offset) {
      if (position && publication.offset <= position.offset) return; // already seen: a replay
      if (position) position.offset = publication.offset;
    }
    this._deliver(publication, position ? position.epoch : '', recovered ? 'recovered' : 'live');
  }

  _deliver(publication, epoch, source) {
    this._emit('publication', { data: publication.data, offset: publication.offset || 0, epoch,
      info: publication.info || null, source });
  }

  async _resubscribe(ws) {
    try {
      await this.login();
      await this._subscribe(ws);
    } catch (error) {
      if (error instanceof Terminal) this._emit('error', { message: error.message, terminal: true });
      ws.abandon(4003, 'resubscribe failed');
    }
  }

  /** Liveness: a server that sends no ping for ping + grace is dead (a half-open TCP link). */
  _watch(ws) {
    clearTimeout(ws.watchdog);
    if (ws.pingMs > 0) ws.watchdog = setTimeout(() => ws.abandon(4001, 'no ping'), ws.pingMs + this.pingGrace);
  }

  _scheduleRefresh(ws, ttl) {
    clearTimeout(ws.refreshTimer);
    const due = Math.min(refreshDelayMs(ttl), ws.refreshDue ? ws.refreshDue - Date.now() : Infinity);
    ws.refreshDue = Date.now() + due;
    ws.refreshTimer = setTimeout(() => this._refresh(ws), due);
  }

  async _refresh(ws) {
    ws.refreshDue = null;
    try {
      const tokens = await this.login();
      const calls = [ws.call({ refresh: { token: tokens.token } })];
      if (ws.subExpires) calls.push(ws.call({ sub_refresh: { channel: tokens.channel, token: tokens.subscriptionToken } }));
      const results = await Promise.all(calls);
      this._emit('refreshed', { count: results.length });
      for (const result of results) if (result.expires) this._scheduleRefresh(ws, result.ttl);
    } catch (error) {
      if (error instanceof Terminal) ws.abandon(1000, error.message);
      else if (ws.isOpen()) ws.refreshTimer = setTimeout(() => this._refresh(ws), 5000);
    }
  }

  /** Send a message through the backend; retried with the same clientMessageId (idempotent). */
  async send(text) {
    const clientMessageId = `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      let response;
      try {
        response = await this.fetchImpl(`${this.baseUrl}${SEND_URL}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${this.tokens.token}` },
          body: JSON.stringify({ roomId: this.room, text, clientMessageId }),
        });
      } catch (error) {
        await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
        continue;
      }
      const body = await response.json().catch(() => ({}));
      if (response.ok) return body;
      if (response.status === 401 && attempt === 0) { await this.login(); continue; }
      if (response.status >= 500 && attempt < 2) {
        await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
        continue;
      }
      throw new SendError(response.status, body.error, body.message, body.retryAfter);
    }
    throw new SendError(0, 'network', 'the chat backend could not be reached; try again');
  }
}

/** One WebSocket: commands matched to replies by id, every wait bounded, closing once. */
class Socket {
  constructor(WebSocketImpl, url, timeout, onMessage) {
    this.timeout = timeout;
    this.nextId = 1;
    this.pending = new Map();
    this.ws = new WebSocketImpl(url);
    let opened;
    let failed;
    this.opened = new Promise((resolve, reject) => { opened = resolve; failed = reject; });
    this.closed = new Promise((resolve) => { this._resolveClosed = resolve; });
    const openTimer = setTimeout(() => { failed(new Error('timed out opening the connection')); this.abandon(4004, 'open timeout'); }, timeout);
    this.ws.onopen = () => { clearTimeout(openTimer); opened(); };
    this.ws.onclose = (event) => { clearTimeout(openTimer); failed(new Error('closed')); this._finish(event.code, event.reason); };
    this.ws.onerror = () => {}; // a close event follows with the code
    this.ws.onmessage = (event) => {
      if (this.done) return;
      let messages;
      try {
        messages = decodeFrame(String(event.data));
      } catch (error) {
        this.abandon(4002, 'unreadable frame');
        return;
      }
      for (const message of messages) {
        const waiter = message.id ? this.pending.get(message.id) : null;
        if (waiter) {
          this.pending.delete(message.id);
          waiter(message);
        } else if (!message.id) onMessage(message);
      }
    };
  }

  isOpen() { return !this.done; }

  send(commands) {
    if (!this.done) this.ws.send(encodeCommands(commands));
  }

  /** Send one command; resolve with its result, reject with a ReplyError or a timeout. */
  call(command) {
    const id = this.nextId++;
    const [method] = Object.keys(command);
    return new Promise((resolve, reject) => {
      if (this.done) { reject(new Error('not connected')); return; }
      const timer = setTimeout(() => { this.pending.delete(id); reject(new Error(`no reply to ${method}`)); }, this.timeout);
      this.pending.set(id, (reply) => {
        clearTimeout(timer);
        if (reply === null) reject(new Error('connection closed'));
        else if (reply.error) reject(new ReplyError(reply.error));
        else resolve(reply[method] || {});
      });
      this.send([{ id, ...command }]);
    });
  }

  /** Give up on this socket now (we don't wait for a dead peer's close handshake). */
  abandon(code, reason) {
    if (this.done) return;
    try { this.ws.close(code >= 3000 || code === 1000 ? code : 1000, reason.slice(0, 100)); } catch (error) { /* closing */ }
    this._finish(code, reason);
  }

  _finish(code, reason) {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.watchdog);
    clearTimeout(this.refreshTimer);
    for (const waiter of this.pending.values()) waiter(null);
    this.pending.clear();
    this._resolveClosed({ code, reason });
  }
}

// --- the page -------------------------------------------------------------------------------

const STATUS_TEXT = {
  idle: () => 'Not connected',
  connecting: () => 'Connecting…',
  connected: () => 'Connected',
  reconnecting: (d) => `Connection lost${d.reason ? ` (${d.reason})` : ''}; reconnecting in ${Math.ceil(d.delay / 1000)} s…`,
  closed: (d) => (d.terminal ? `Disconnected: ${d.reason || 'refused'}${d.code ? ` (${d.code})` : ''}` : 'Not connected'),
};

function main() {
  const $ = (id) => document.getElementById(id);
  const [joinForm, chat, list, online, status] = ['join-form', 'chat', 'messages', 'online', 'status'].map($);
  const [sendForm, textInput, sendButton, sendError] = ['send-form', 'text', 'send', 'send-error'].map($);
  let client = null;
  let log = null;
  let items = []; // message elements, in the order of `log`
  let me = null;

  const params = new URLSearchParams(location.search);
  $('name').value = localStorage.getItem('botkit.chat.name') || '';
  $('room').value = params.get('room') || localStorage.getItem('botkit.chat.room') || 'lobby';

  function setStatus(detail) {
    status.textContent = STATUS_TEXT[detail.state](detail);
    status.dataset.state = detail.state === 'closed' && detail.terminal ? 'error' : detail.state;
    const usable = detail.state === 'connected';
    textInput.disabled = !usable;
    sendButton.disabled = !usable;
  }

  function nearBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 48;
  }

  function notice(text, kind = 'info') {
    const stick = nearBottom();
    const item = document.createElement('li');
    item.className = `notice notice-${kind}`;
    item.dataset.testid = 'notice';
    item.setAttribute('role', kind === 'error' ? 'alert' : 'note');
    item.textContent = text;
    list.append(item);
    if (stick) list.scrollTop = list.scrollHeight;
  }

  function senderName(senderId) {
    if (me && senderId === me.userId) return me.name;
    return client.presence.nameOf(senderId);
  }

  function showMessage(detail) {
    const envelope = detail.data;
    if (!envelope || envelope.type !== 'chat.message' || typeof envelope.text !== 'string'
        || typeof envelope.senderId !== 'string') return; // other envelope types are for bots
    const senderId = attestedSender(envelope, detail.info);
    if (senderId === null) { // someone posting as someone else (a bot, say): never shown
      console.warn(`dropped a message claiming to be from ${envelope.senderId} but published by `
        + `${detail.info && detail.info.user}`);
      return;
    }
    const index = log.insert(detail.epoch, detail.offset);
    if (index < 0) return; // shown already (a history page overlapping a replay)
    const stick = nearBottom() || (me && senderId === me.userId);
    const item = document.createElement('li');
    const isBot = senderId.startsWith('bot_');
    item.className = `message${isBot ? ' bot' : ''}${me && senderId === me.userId ? ' own' : ''}`;
    item.dataset.testid = 'message';
    item.dataset.senderId = senderId;
    item.dataset.offset = String(detail.offset);
    if (envelope.replyTo) item.dataset.replyTo = envelope.replyTo;
    const meta = document.createElement('div');
    meta.className = 'meta';
    const sender = document.createElement('span');
    sender.className = 'sender';
    sender.dataset.testid = 'sender';
    sender.textContent = senderName(senderId);
    meta.append(sender);
    if (isBot) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = 'bot';
      meta.append(' ', badge);
    }
    const sentAt = new Date(envelope.sentAt);
    if (!Number.isNaN(sentAt.getTime())) {
      const time = document.createElement('time');
      time.dataset.testid = 'time';
      time.dateTime = envelope.sentAt;
      time.title = sentAt.toLocaleString();
      time.textContent = sentAt.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      meta.append(' ', time);
    }
    const text = document.createElement('p');
    text.className = 'text';
    text.dataset.testid = 'text';
    text.textContent = envelope.text; // never innerHTML: texts come from other people
    item.append(meta, text);
    list.insertBefore(item, items[index] || null);
    items.splice(index, 0, item);
    if (stick) list.scrollTop = list.scrollHeight;
  }

  function showOnline(users) {
    online.replaceChildren(...users.map((user) => {
      const item = document.createElement('li');
      item.dataset.testid = 'online-user';
      item.dataset.userId = user.user;
      item.textContent = user.name;
      if (user.user.startsWith('bot_')) item.classList.add('bot');
      if (me && user.user === me.userId) item.append(' (you)');
      if (user.connections > 1) {
        const count = document.createElement('span');
        count.className = 'connections';
        count.textContent = ` ×${user.connections}`;
        count.setAttribute('aria-label', `${user.connections} connections`);
        item.append(count);
      }
      return item;
    }));
    $('online-count').textContent = `(${users.length})`;
    // Names learned from presence replace the ids shown for messages sent before.
    for (const item of items) {
      item.querySelector('[data-testid=sender]').textContent = senderName(item.dataset.senderId);
    }
  }

  function onEvent(type, detail) {
    if (type === 'state') setStatus(detail);
    else if (type === 'session') { me = detail; $('whoami').textContent = `as ${detail.name}`; }
    else if (type === 'publication') showMessage(detail);
    else if (type === 'presence') showOnline(detail.online);
    else if (type === 'gap') notice(`Reconnected, but ${detail.reason}.`, 'warning');
    else if (type === 'error') notice(detail.message, 'error');
    if (type === 'state' && detail.state === 'closed' && detail.terminal) notice(status.textContent, 'error');
  }

  joinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = $('name').value.trim();
    const room = $('room').value.trim();
    if (!name || !room) return;
    localStorage.setItem('botkit.chat.name', name);
    localStorage.setItem('botkit.chat.room', room);
    log = new MessageLog();
    items = [];
    me = null;
    list.replaceChildren();
    online.replaceChildren();
    $('room-name').textContent = room;
    joinForm.hidden = true;
    chat.hidden = false;
    client = new ChatClient({ name, room, onEvent });
    client.start();
    textInput.focus();
  });

  $('leave').addEventListener('click', () => {
    if (client) client.stop();
    client = null;
    chat.hidden = true;
    joinForm.hidden = false;
    $('join').focus();
  });

  async function submit() {
    const text = textInput.value.trim();
    if (!text || !client || sendButton.disabled) return;
    sendButton.disabled = true;
    sendError.hidden = true;
    try {
      await client.send(text);
      textInput.value = '';
    } catch (error) {
      const wait = error.retryAfter ? ` (try again in ${Math.ceil(error.retryAfter)} s)` : '';
      sendError.textContent = `Not sent: ${error.message}${wait}`;
      sendError.hidden = false;
    } finally {
      sendButton.disabled = !client || client.state !== 'connected';
      textInput.focus();
    }
  }

  sendForm.addEventListener('submit', (event) => { event.preventDefault(); submit(); });
  textInput.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  setStatus({ state: 'idle' });
}

// The page runs main(); Node (a test) can import the protocol helpers above without a DOM.
if (typeof document !== 'undefined') main();
