// A stand-in for the Rust server, for working on the web client without a
// cargo build: `node dev-server.mjs [port]` serves ../../web and a small,
// in-memory version of the contract (login, users, topics, messages, the
// WebSocket with heartbeat, offline queue, close codes 4001/4002).
// The browser tests run against the real binary; set HUAYI_URL to point them
// at this one instead. No dependencies: Node's http plus a minimal RFC 6455.
//
// With HUAYI_UPSTREAM=http://127.0.0.1:8080 it serves ../../web itself and
// passes /api/* and /healthz (WebSocket included) through to that server:
// a way to try client changes against the real server without rebuilding it.

import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web');
const NAME = /^[a-zA-Z0-9_-]{4,30}$/;
const PONG_EVERY = Number(process.env.PONG_MS || 1000);
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };

const users = new Set();
const sessions = new Map(); // sid -> username
const current = new Map(); // username -> sid
const sockets = new Map(); // username -> socket
const offline = new Map(); // username -> [frame]
const topics = new Map(); // name -> Set(members)
let nextId = 1;

function deliver(user, frame) {
  const s = sockets.get(user);
  if (s) s.sendJson(frame);
  else {
    if (!offline.has(user)) offline.set(user, []);
    offline.get(user).push(frame);
  }
}

const UPSTREAM = process.env.HUAYI_UPSTREAM ? new URL(process.env.HUAYI_UPSTREAM) : null;

function proxy(req, res) {
  const up = http.request(
    { host: UPSTREAM.hostname, port: UPSTREAM.port, method: req.method, path: req.url, headers: req.headers },
    (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    },
  );
  up.on('error', () => {
    res.writeHead(502, { 'content-type': 'application/json' });
    res.end('{"error":"upstream unreachable"}');
  });
  req.pipe(up);
}

function proxyUpgrade(req, sock, head) {
  const up = net.connect(Number(UPSTREAM.port), UPSTREAM.hostname, () => {
    const lines = [`${req.method} ${req.url} HTTP/1.1`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    up.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head && head.length) up.write(head);
    up.pipe(sock);
    sock.pipe(up);
  });
  up.on('error', () => sock.destroy());
  sock.on('error', () => up.destroy());
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  if (UPSTREAM && (url.pathname.startsWith('/api/') || url.pathname === '/healthz')) return proxy(req, res);
  const send = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body ?? {}));
  };
  if (url.pathname === '/healthz' || url.pathname === '/api/healthz') return send(200, {});
  if (!url.pathname.startsWith('/api/')) {
    const file = url.pathname === '/' ? '/index.html' : url.pathname;
    try {
      const data = await readFile(path.join(WEB, path.normalize(file).replace(/^(\.\.[/\\])+/, '')));
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' });
      res.end(data);
    } catch {
      send(404, { error: 'not found' });
    }
    return;
  }
  let body = '';
  for await (const chunk of req) body += chunk;
  let json = null;
  try {
    json = body ? JSON.parse(body) : null;
  } catch {
    return send(400, { error: 'bad json' });
  }
  if (url.pathname === '/api/login' && req.method === 'POST') {
    const name = json && json.username;
    if (!NAME.test(name || '')) return send(400, { error: 'invalid username' });
    const old = current.get(name);
    if (old) {
      sessions.delete(old);
      sockets.get(name)?.closeWith(4001, 'replaced by a newer login');
    }
    const sid = randomBytes(16).toString('hex');
    sessions.set(sid, name);
    current.set(name, sid);
    users.add(name);
    return send(200, { sid, username: name });
  }
  const sid = (req.headers.authorization || '').replace(/^Bearer /, '');
  const me = sessions.get(sid);
  if (!me) return send(401, { error: 'unknown session' });
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (url.pathname === '/api/logout') {
    sessions.delete(sid);
    current.delete(me);
    sockets.get(me)?.closeWith(4002, 'logged out');
    return send(200, {});
  }
  if (url.pathname === '/api/users') {
    let list = [...users].sort();
    if (url.searchParams.get('online') === 'true') list = list.filter((u) => sockets.has(u));
    return send(200, { total: list.length, list: list.map((username) => ({ username })) });
  }
  if (url.pathname === '/api/topics' && req.method === 'GET') {
    const list = [...topics.keys()].sort();
    return send(200, { total: list.length, list: list.map((topic) => ({ topic })) });
  }
  if (url.pathname === '/api/topics' && req.method === 'POST') {
    const t = json && json.topic;
    if (!NAME.test(t || '')) return send(400, { error: 'invalid topic' });
    if (topics.has(t)) return send(409, { error: 'topic exists' });
    topics.set(t, new Set());
    return send(200, {});
  }
  if (parts[0] === 'api' && parts[1] === 'topics' && parts[2]) {
    const t = parts[2];
    const members = topics.get(t);
    if (!members) return send(404, { error: 'topic not found' });
    if (req.method === 'DELETE') {
      topics.delete(t);
      for (const m of members) {
        deliver(m, { 'message-type': 'system', topic: '__topic_is_deleted__', 'content-type': 'application/json', content: { topic: t } });
      }
      return send(200, {});
    }
    if (parts[4] === 'join') members.add(me);
    if (parts[4] === 'quit') members.delete(me);
    return send(200, {});
  }
  if (url.pathname === '/api/messages' && req.method === 'POST') {
    if (!json || json.from !== me) return send(403, { error: 'not you' });
    const frame = { ...json, id: nextId++, 'sent-at': Date.now() };
    if (json.topic) {
      const members = topics.get(json.topic);
      if (!members) {
        sockets.get(me)?.sendJson({
          'message-type': 'system', topic: '__topic_not_found__', 'content-type': 'application/json', content: { topic: json.topic },
        });
        return send(404, { error: 'topic not found' });
      }
      members.add(me);
      for (const u of json.to) members.add(u);
      for (const m of members) if (m !== me) deliver(m, frame);
    } else {
      for (const u of new Set(json.to)) deliver(u, { ...frame, to: [u] });
    }
    return send(200, { id: frame.id, 'sent-at': frame['sent-at'] });
  }
  send(404, { error: 'no such route' });
});

server.on('upgrade', (req, sock, head) => {
  if (UPSTREAM) return proxyUpgrade(req, sock, head);
  const url = new URL(req.url, 'http://x');
  const me = sessions.get(url.searchParams.get('sid'));
  if (url.pathname !== '/api/ws' || !me) {
    sock.end('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n');
    return;
  }
  const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  const frame = (op, payload) => {
    const len = payload.length;
    const head = len < 126 ? Buffer.from([0x80 | op, len]) : len < 65536 ? Buffer.from([0x80 | op, 126, len >> 8, len & 255]) : null;
    if (!head) {
      const b = Buffer.alloc(10);
      b[0] = 0x80 | op;
      b[1] = 127;
      b.writeBigUInt64BE(BigInt(len), 2);
      return Buffer.concat([b, payload]);
    }
    return Buffer.concat([head, payload]);
  };
  let closed = false;
  sock.sendJson = (obj) => !closed && sock.write(frame(1, Buffer.from(JSON.stringify(obj))));
  sock.closeWith = (code, reason) => {
    if (closed) return;
    const p = Buffer.alloc(2 + Buffer.byteLength(reason));
    p.writeUInt16BE(code, 0);
    p.write(reason, 2);
    sock.write(frame(8, p));
    finish();
    setTimeout(() => sock.end(), 50);
  };
  function finish() {
    closed = true;
    clearInterval(pong);
    if (sockets.get(me) === sock) sockets.delete(me);
  }
  sockets.get(me)?.closeWith(4001, 'replaced');
  sockets.set(me, sock);
  for (const f of offline.get(me) || []) sock.sendJson(f);
  offline.delete(me);
  let pongId = 0;
  const pong = setInterval(() => sock.sendJson({ 'message-type': 'pong', to: me, 'message-id': ++pongId }), PONG_EVERY);
  let buf = Buffer.alloc(0);
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2) {
      const op = buf[0] & 15;
      let len = buf[1] & 127;
      let off = 2;
      if (len === 126) {
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      if (buf.length < off + 4 + len) return;
      const mask = buf.subarray(off, off + 4);
      const data = Buffer.from(buf.subarray(off + 4, off + 4 + len));
      for (let i = 0; i < data.length; i++) data[i] ^= mask[i % 4];
      buf = buf.subarray(off + 4 + len);
      if (op === 8) {
        if (!closed) sock.write(frame(8, data.subarray(0, 2)));
        finish();
        sock.end();
        return;
      }
      if (op === 1) {
        try {
          const msg = JSON.parse(data.toString());
          if (msg['message-type'] === 'ping') sock.sendJson({ 'message-type': 'ack', 'ack-id': msg['message-id'] });
        } catch {
          /* ignored, as R24 says */
        }
      }
    }
  });
  sock.on('close', finish);
  sock.on('error', finish);
});

process.on('SIGTERM', () => {
  for (const s of sockets.values()) s.closeWith(1001, 'server shutting down');
  server.close();
  setTimeout(() => process.exit(0), 200);
});

const listen = process.env.HUAYI_LISTEN || `127.0.0.1:${process.argv[2] || 18081}`;
const port = Number(listen.split(':').pop());
server.listen(port, '127.0.0.1', () => console.log(`dev server on http://127.0.0.1:${port}/`));
