// The chat page's protocol client (botkit/dev/hub/static/chat.js, without its DOM part) under Node,
// driven by tests/test_chat_page_client.py. JSON lines: events on stdout, commands on stdin.
//
//   {"cmd":"start","who":"alice","name":"Alice","room":"lobby","baseUrl":…,"wsUrl":…,…}
//   {"cmd":"send","who":"alice","id":1,"text":"hi"}      -> "sent" | "send_failed"
//   {"cmd":"stop","who":"alice"}
//   {"cmd":"call","id":1,"fn":"backoffDelay","args":[…]} -> "result" (pure helpers)
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';

const chat = await import(pathToFileURL(process.env.CHAT_JS).href);
const emit = (event, fields = {}) => process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
const fail = (error) => {
  emit('fatal', { message: String(error && error.stack ? error.stack : error) });
  process.exit(1);
};
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

const clients = new Map();

function start(command) {
  const { who, ...options } = command;
  delete options.cmd;
  const client = new chat.ChatClient({
    ...options,
    WebSocketImpl: WebSocket,
    random: () => 0.5,
    onEvent: (type, detail) => emit(type, { who, ...detail }),
  });
  clients.set(who, client);
  client.start();
}

async function send({ who, id, text }) {
  try {
    const answer = await clients.get(who).send(text);
    emit('sent', { who, id, answer });
  } catch (error) {
    emit('send_failed', { who, id, status: error.status, code: error.code, message: error.message,
      retryAfter: error.retryAfter ?? null });
  }
}

function call({ id, fn, args }) {
  if (fn === 'MessageLog') { // [[epoch, offset], ...] -> the insert results
    const log = new chat.MessageLog();
    emit('result', { id, value: args.map(([epoch, offset]) => log.insert(epoch, offset)) });
  } else if (fn === 'PresenceBook') { // [["join"|"leave", info], ...] -> online()
    const book = new chat.PresenceBook();
    for (const [kind, info] of args) book[kind](info);
    emit('result', { id, value: book.online() });
  } else {
    emit('result', { id, value: chat[fn](...args) });
  }
}

const commands = {
  start,
  send,
  call,
  stop: ({ who }) => clients.get(who).stop(),
  exit: () => process.exit(0),
};
const input = readline.createInterface({ input: process.stdin });
input.on('line', (line) => {
  if (!line.trim()) return;
  const command = JSON.parse(line);
  if (!commands[command.cmd]) fail(new Error(`unknown command ${line}`));
  else commands[command.cmd](command);
});
input.on('close', () => process.exit(0));
emit('ready');
