// The official JavaScript SDK (centrifuge-js) against our server, driven by tests/test_js_sdk.py.
//
// Talks JSON lines: events on stdout ({"event": "subscribed", ...}), commands on stdin
// ({"cmd": "start" | "publish" | "token" | "exit", ...}). Tokens come from pytest: the first ones
// with "start", fresh ones on request ("token_request" -> "token"), which is the SDK's getToken.
// Every frame the SDK sends is reported ("frame"), so the test can check the handshake the JS SDK
// is known for: connect and subscribe in one WebSocket message (docs §11).
import readline from 'node:readline';
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const emit = (event, fields = {}) => process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
const fail = (error) => {
  emit('fatal', { message: String(error && error.stack ? error.stack : error) });
  process.exit(1);
};
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

// Node 20 has no global WebSocket in every mode: hand the SDK the `ws` one, recording sends.
class RecordingWebSocket extends WebSocket {
  send(data, ...rest) {
    emit('frame', { data: String(data) });
    return super.send(data, ...rest);
  }
}

const tokenWaiters = new Map();
let nextTokenRequest = 1;

function askToken(kind, channel) {
  const id = nextTokenRequest++;
  emit('token_request', { id, kind, channel: channel || null });
  return new Promise((resolve, reject) => tokenWaiters.set(id, { resolve, reject }));
}

const errorFields = (error) => ({ code: error && error.code, message: error && error.message });
let centrifuge = null;
let subscription = null;

function start(command) {
  centrifuge = new Centrifuge(command.url, {
    token: command.token,
    getToken: () => askToken('connection'),
    websocket: RecordingWebSocket,
    name: 'js-conformance',
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
    timeout: 5000,
  });
  centrifuge.on('connecting', (ctx) => emit('connecting', { code: ctx.code, reason: ctx.reason }));
  centrifuge.on('connected', (ctx) => emit('connected', { client: ctx.client, transport: ctx.transport }));
  centrifuge.on('disconnected', (ctx) => emit('disconnected', { code: ctx.code, reason: ctx.reason }));
  centrifuge.on('error', (ctx) => emit('client_error', { type: ctx.type, ...errorFields(ctx.error) }));

  subscription = centrifuge.newSubscription(command.channel, {
    token: command.subscriptionToken,
    getToken: (ctx) => askToken('subscription', ctx.channel),
    recoverable: true,
    positioned: true,
  });
  subscription.on('subscribing', (ctx) => emit('subscribing', { code: ctx.code, reason: ctx.reason }));
  subscription.on('subscribed', (ctx) => emit('subscribed', {
    recovered: ctx.recovered, wasRecovering: ctx.wasRecovering, recoverable: ctx.recoverable,
    positioned: ctx.positioned, streamPosition: ctx.streamPosition || null,
  }));
  subscription.on('unsubscribed', (ctx) => emit('unsubscribed', { code: ctx.code, reason: ctx.reason }));
  subscription.on('error', (ctx) => emit('subscription_error', { type: ctx.type, ...errorFields(ctx.error) }));
  subscription.on('publication', (ctx) => emit('publication', {
    data: ctx.data, offset: ctx.offset ?? null, info: ctx.info || null,
  }));
  // Subscribing before connecting makes the SDK send connect + subscribe in one frame.
  subscription.subscribe();
  centrifuge.connect();
  emit('started');
}

async function publish(command) {
  try {
    await subscription.publish(command.data);
    emit('published', { id: command.id });
  } catch (error) {
    emit('publish_failed', { id: command.id, ...errorFields(error) });
  }
}

function answerToken(command) {
  const waiter = tokenWaiters.get(command.id);
  if (!waiter) return;
  tokenWaiters.delete(command.id);
  if (command.token) waiter.resolve(command.token);
  else waiter.reject(new Error(command.error || 'no token'));
}

function exit() {
  if (centrifuge) centrifuge.disconnect();
  emit('exited');
  process.exit(0);
}

const commands = { start, publish, token: answerToken, exit };
const input = readline.createInterface({ input: process.stdin });
input.on('line', (line) => {
  if (!line.trim()) return;
  const command = JSON.parse(line);
  const handler = commands[command.cmd];
  if (!handler) fail(new Error(`unknown command ${line}`));
  else handler(command);
});
input.on('close', exit); // pytest went away: never linger
emit('ready', { node: process.version });
