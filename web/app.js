// App: the controller. It wires the store (state.js), the HTTP API (api.js),
// the WebSocket (socket.js) and the view (view.js) together, and holds the
// rules that span them: what a 401 or a close code means for the person,
// how a sent message is recorded, when the directory is refreshed.

import { createApi } from './api.js';
import { CLOSE, createConnection } from './socket.js';
import { createStore, parseMentions, topicKey, userKey } from './state.js';
import { createView } from './view.js';

const DIRECTORY_EVERY_MS = 10000;

const store = createStore();
const api = createApi({
  getSid: () => store.state.session && store.state.session.sid,
  onUnauthorized: () => sessionRefused(),
});

/**
 * An HTTP 401. If the socket is open, its close frame (4001 replaced, 4002
 * logged out) usually follows within moments and tells the precise reason,
 * so give it that long before saying something vaguer.
 */
let refusedTimer = null;
function sessionRefused() {
  if (refusedTimer || !store.state.session) return;
  const sid = store.state.session.sid;
  const wait = conn && conn.open ? 1500 : 0;
  refusedTimer = setTimeout(() => {
    refusedTimer = null;
    if (store.state.session && store.state.session.sid === sid) {
      endSession('Your session has ended (signed out, or signed in somewhere else). Please sign in again.');
    }
  }, wait);
}

let conn = null;
let directoryTimer = null;

const view = createView({
  async login(name) {
    view.loginBusy(true);
    try {
      const answer = await api.login(name);
      store.signIn({ sid: answer.sid, username: answer.username || name });
      startSession();
    } catch (e) {
      view.loginBusy(false, `Could not sign in: ${e.message}`);
    }
  },
  async logout() {
    const had = store.state.session;
    stopSession();
    if (had) {
      try {
        await api.logout();
      } catch {
        // Already signed out on the server; nothing to do.
      }
    }
    store.signOut('You signed out.', { forget: true });
  },
  openUser: (name) => store.open(userKey(name)),
  openTopic: (name) => store.open(topicKey(name)),
  back: () => store.back(),
  toast: (text) => store.toast(text),
  dismissToast(at) {
    if (at === undefined || (store.state.toast && store.state.toast.at === at)) store.toast(null);
  },
  async createTopic(name) {
    try {
      await api.createTopic(name);
      await refreshDirectory();
      store.open(topicKey(name));
      return true;
    } catch (e) {
      if (e.status === 409) {
        store.toast(`Topic “${name}” already exists; opened it.`, 'info');
        store.open(topicKey(name));
        return true;
      }
      store.toast(`Could not create topic: ${e.message}`);
      return false;
    }
  },
  async joinTopic(name) {
    try {
      await api.joinTopic(name);
      store.setJoined(name, true);
    } catch (e) {
      topicError(name, 'join', e);
    }
  },
  async quitTopic(name) {
    try {
      await api.quitTopic(name);
      store.setJoined(name, false);
    } catch (e) {
      topicError(name, 'quit', e);
    }
  },
  async deleteTopic(name) {
    try {
      await api.deleteTopic(name);
      // Members hear it from the server (R13); say it here too, once.
      store.notice(topicKey(name), 'deleted', deletedText(name));
    } catch (e) {
      topicError(name, 'delete', e);
    }
    refreshDirectory();
  },
  send: (text) => send(store.state.active, text),
  retry(m) {
    const key = store.state.active;
    store.discard(key, m.localId);
    send(key, m.content);
  },
  reconnect() {
    if (!conn) return;
    if (store.state.conn.status === 'elsewhere') {
      conn.stop();
      conn = null;
      connect();
    } else {
      conn.nudge();
    }
  },
});

store.subscribe(view.render);
view.render(store.state);
if (store.state.session) startSession();

// ---- session lifecycle ------------------------------------------------

function startSession() {
  stopSession();
  connect();
  refreshDirectory();
  directoryTimer = setInterval(refreshDirectory, DIRECTORY_EVERY_MS);
}

function connect() {
  const { sid, username } = store.state.session;
  const c = createConnection({
    sid,
    username,
    onFrame,
    onStatus: (status, retryAt, closeCode) => {
      if (conn === c) store.setConn(status, retryAt, closeCode);
    },
    onEnded: (code) => {
      if (conn === c) socketEnded(code);
    },
    sessionValid: async () => {
      try {
        await api.topics();
        return true;
      } catch (e) {
        if (e.status === 401) return false; // onUnauthorized already acted
        throw e;
      }
    },
  });
  conn = c;
  c.start();
}

function stopSession() {
  clearInterval(directoryTimer);
  directoryTimer = null;
  if (conn) {
    const c = conn;
    conn = null;
    c.stop();
  }
}

/** Leaves the chat for the login screen, saying why. */
function endSession(notice, opts) {
  if (!store.state.session) return;
  stopSession();
  store.signOut(notice, opts);
}

async function socketEnded(code) {
  if (code === CLOSE.LOGGED_OUT) {
    endSession('You were signed out.');
    return;
  }
  // 4001: a newer login took the session, or another tab of this browser
  // opened a socket with the same session. Only the first revokes the sid.
  const sid = store.state.session && store.state.session.sid;
  const valid = await fetch('api/topics', { headers: { Authorization: `Bearer ${sid}` }, cache: 'no-store' })
    .then((r) => r.status !== 401)
    .catch(() => false);
  if (!store.state.session || store.state.session.sid !== sid) return;
  if (valid) {
    store.setConn('elsewhere');
  } else {
    endSession('You were signed in elsewhere, so this window was signed out.');
  }
}

// ---- frames from the server ---------------------------------------------

function onFrame(frame) {
  if (frame['message-type'] === 'message') {
    store.receive(frame);
    return;
  }
  // System frames carry the topic name as JSON content (R13, R17).
  let content = frame.content;
  if (typeof content === 'string') {
    try {
      content = JSON.parse(content);
    } catch {
      content = {};
    }
  }
  const name = content && typeof content.topic === 'string' ? content.topic : '';
  if (!name) return;
  if (frame.topic === '__topic_is_deleted__') {
    store.notice(topicKey(name), 'deleted', deletedText(name));
    refreshDirectory();
  } else if (frame.topic === '__topic_not_found__') {
    store.notice(topicKey(name), 'notfound', notFoundText(name));
  }
}

// ---- actions ------------------------------------------------------------

async function send(key, text) {
  const { session } = store.state;
  if (!session || !key) return;
  const isTopic = key.startsWith('t:');
  const name = key.slice(2);
  const to = isTopic ? parseMentions(text, session.username) : [name];
  const localId = store.sending(key, text, to);
  try {
    const answer = isTopic
      ? await api.sendTopic(session.username, name, to, text)
      : await api.sendDirect(session.username, to, text);
    store.sent(key, localId, answer);
  } catch (e) {
    if (!store.state.session) return;
    store.failed(key, localId, e.message);
    if (isTopic && e.status === 404) store.notice(key, 'notfound', notFoundText(name));
  }
}

async function refreshDirectory() {
  if (!store.state.session) return;
  try {
    const [users, topics] = await Promise.all([api.users(), api.topics()]);
    if (!store.state.session) return;
    store.setUsers(users.all, users.online);
    store.setTopics(topics);
  } catch (e) {
    if (e.status !== 401) console.warn('directory refresh failed:', e.message);
  }
}

function topicError(name, what, e) {
  if (e.status === 404) {
    store.toast(`Topic “${name}” does not exist any more.`);
    refreshDirectory();
  } else if (e.status !== 401) {
    store.toast(`Could not ${what} topic “${name}”: ${e.message}`);
  }
}

const deletedText = (name) => `Topic #${name} was deleted. Its messages are gone for everyone.`;
const notFoundText = (name) => `Topic #${name} does not exist (it may have been deleted). Create it again to keep talking.`;

// ---- the page around us -----------------------------------------------------

// History is saved a moment after each change; a reload must not lose it.
window.addEventListener('pagehide', () => store.flush());

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState !== 'visible') {
    store.flush();
    return;
  }
  store.markActiveRead();
  if (conn && store.state.conn.status === 'reconnecting') conn.nudge();
  refreshDirectory();
});
window.addEventListener('online', () => conn && conn.nudge());
window.addEventListener('resize', () => store.state.session && view.render(store.state));

// Another tab signed out or in as someone else: follow it.
window.addEventListener('storage', (ev) => {
  if (ev.key !== 'huayi.session') return;
  const next = ev.newValue ? safeParse(ev.newValue) : null;
  const cur = store.state.session;
  if (!next) {
    if (cur) endSession('You signed out in another tab.');
  } else if (!cur || next.sid !== cur.sid) {
    stopSession();
    store.signIn(next);
    startSession();
  }
});

function safeParse(s) {
  try {
    return JSON.parse(s);
  } catch {
    return null;
  }
}
