// Socket: the WebSocket half of the contract (SPEC R21-R25).
//
// One `Connection` per signed-in session. It keeps the heartbeat (a ping
// every 5 s, an ack for every server pong), reports its status, hands chat
// and system frames to `onFrame`, and reconnects with exponential backoff
// unless the server said the session is over (4001 replaced, 4002 logged
// out). It knows nothing about the DOM or the store.

export const PING_EVERY_MS = 5000;
/** No ack for our pings for this long: the link is dead even if TCP is not. */
const SILENT_LIMIT_MS = 3 * PING_EVERY_MS + 1000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;

export const CLOSE = {
  GOING_AWAY: 1001,
  REPLACED: 4001,
  LOGGED_OUT: 4002,
  IDLE: 4003,
  SLOW: 4004,
};

/**
 * @param {object} o
 * @param {string} o.sid
 * @param {string} o.username
 * @param {(frame: object) => void} o.onFrame  chat and system frames
 * @param {(status: string, retryAt?: number, closeCode?: number) => void} o.onStatus
 * @param {(code: number) => void} o.onEnded  the server ended the session (4001/4002)
 * @param {() => Promise<boolean>} o.sessionValid  asked before reconnecting after a failure
 */
export function createConnection({ sid, username, onFrame, onStatus, onEnded, sessionValid }) {
  let ws = null;
  let stopped = false;
  let attempt = 0;
  let pingId = 0;
  let pingTimer = null;
  let retryTimer = null;
  let lastHeard = 0;

  function url() {
    const u = new URL('api/ws', document.baseURI);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    u.searchParams.set('sid', sid);
    return u.toString();
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (stopped || ws) return;
    onStatus('connecting');
    let sock;
    try {
      sock = new WebSocket(url());
    } catch {
      scheduleReconnect(0);
      return;
    }
    ws = sock;
    sock.onopen = () => {
      if (ws !== sock) return;
      lastHeard = Date.now();
      onStatus('online');
      ping();
      pingTimer = setInterval(ping, PING_EVERY_MS);
    };
    sock.onmessage = (ev) => {
      if (ws !== sock) return;
      lastHeard = Date.now();
      attempt = 0; // the server talks to us: the link is healthy
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return; // not ours to understand
      }
      if (!frame || typeof frame !== 'object') return;
      switch (frame['message-type']) {
        case 'pong':
          send({ 'message-type': 'ack', 'ack-id': frame['message-id'] });
          break;
        case 'ack':
          break; // answer to our ping; lastHeard is all we need
        case 'message':
        case 'system':
          onFrame(frame);
          break;
        default:
          break;
      }
    };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      cleanup();
      if (stopped) return;
      if (ev.code === CLOSE.REPLACED || ev.code === CLOSE.LOGGED_OUT) {
        stopped = true;
        onEnded(ev.code);
        return;
      }
      // 4004: we fell behind; what we missed waits offline, come back at once.
      scheduleReconnect(ev.code === CLOSE.SLOW ? 100 : undefined, ev.code);
    };
    sock.onerror = () => {
      // onclose follows and decides.
    };
  }

  function ping() {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - lastHeard > SILENT_LIMIT_MS) {
      // Nothing heard for three pings: drop this socket and dial again.
      const dead = ws;
      cleanup();
      try {
        dead.close(4000, 'heartbeat lost');
      } catch {
        /* already closing */
      }
      scheduleReconnect(0);
      return;
    }
    pingId += 1;
    send({ 'message-type': 'ping', 'message-id': pingId, from: username });
  }

  function send(frame) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
  }

  function cleanup() {
    clearInterval(pingTimer);
    pingTimer = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    }
    ws = null;
  }

  function scheduleReconnect(delay, code) {
    if (stopped) return;
    if (delay === undefined) {
      const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
      delay = base / 2 + Math.random() * (base / 2);
    }
    attempt += 1;
    const retryAt = Date.now() + delay;
    onStatus('reconnecting', retryAt, code);
    retryTimer = setTimeout(async () => {
      retryTimer = null;
      if (stopped) return;
      // A handshake refused with 401 looks like any other failure (1006) to
      // a browser, so after a failure ask over HTTP whether the sid lives.
      if (code === 1006 || attempt > 1) {
        let ok = true;
        try {
          ok = await sessionValid();
        } catch {
          ok = true; // server unreachable: keep trying the socket
        }
        if (!ok || stopped) return;
      }
      connect();
    }, delay);
  }

  return {
    start: connect,
    /** Try now instead of waiting for the backoff (network back, tab shown). */
    nudge() {
      if (stopped || ws) return;
      attempt = 0;
      connect();
    },
    get open() {
      return Boolean(ws && ws.readyState === WebSocket.OPEN);
    },
    stop() {
      stopped = true;
      clearTimeout(retryTimer);
      const sock = ws;
      cleanup();
      if (sock) {
        try {
          sock.close(1000, 'bye');
        } catch {
          /* already closed */
        }
      }
      onStatus('offline');
    },
  };
}
