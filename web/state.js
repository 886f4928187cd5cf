// State: everything the client knows, and the only code that changes it.
//
// The store is a plain object plus a list of listeners. Mutations go through
// the named functions below, each of which calls `changed()` once; the view
// re-renders from the state and never keeps a second copy of it. Nothing in
// this module touches the DOM, the network or the socket.

/** Usernames and topic names, as the server checks them (SPEC R1). */
export const NAME_RE = /^[a-zA-Z0-9_-]{4,30}$/;

/** How many messages of one conversation are kept in this browser. */
const KEEP_PER_CONVERSATION = 300;
const SESSION_KEY = 'huayi.session';
const dataKey = (username) => `huayi.data.${username}`;

/** Conversation keys: `u:<name>` for one-to-one, `t:<topic>` for topics. */
export const userKey = (name) => `u:${name}`;
export const topicKey = (topic) => `t:${topic}`;

export function createStore(storage = window.localStorage) {
  const listeners = new Set();
  const state = {
    session: readJson(storage, SESSION_KEY), // {sid, username} | null
    loginNotice: '', // shown on the login screen (why we are there)
    conn: { status: 'offline', retryAt: 0 }, // offline|connecting|online|reconnecting|elsewhere
    convs: new Map(), // key -> Conversation
    active: null, // key of the open conversation
    mobilePane: 'list', // on a narrow screen: 'list' or 'chat'
    users: [], // [{username, online}]
    topics: [], // [name]
    joined: new Set(), // topics this user is (as far as we know) a member of
    toast: null, // {text, kind, at}
  };
  let nextLocalId = -1;
  let saveTimer = null;

  const changed = () => {
    for (const fn of listeners) fn(state);
    scheduleSave();
  };

  function scheduleSave() {
    if (!state.session || saveTimer) return;
    saveTimer = setTimeout(() => {
      saveTimer = null;
      saveHistory();
    }, 250);
  }

  function saveHistory() {
    if (!state.session) return;
    const convs = [...state.convs.values()].map((c) => ({
      ...c,
      messages: c.messages.slice(-KEEP_PER_CONVERSATION).map((m) =>
        m.status === 'sending' ? { ...m, status: 'failed', error: 'not sent (page closed)' } : m,
      ),
      seen: undefined,
    }));
    writeJson(storage, dataKey(state.session.username), {
      convs,
      joined: [...state.joined],
      active: state.active,
    });
  }

  function loadHistory(username) {
    state.convs = new Map();
    state.joined = new Set();
    state.active = null;
    const data = readJson(storage, dataKey(username));
    if (!data) return;
    for (const c of data.convs || []) {
      c.seen = new Set(c.messages.filter((m) => m.id > 0).map((m) => m.id));
      state.convs.set(c.key, c);
      for (const m of c.messages) if (m.localId <= nextLocalId) nextLocalId = m.localId - 1;
    }
    state.joined = new Set(data.joined || []);
    state.active = state.convs.has(data.active) ? data.active : null;
  }

  if (state.session) loadHistory(state.session.username);

  function conv(key, create = true) {
    let c = state.convs.get(key);
    if (!c && create) {
      const kind = key.startsWith('t:') ? 'topic' : 'user';
      c = { key, kind, name: key.slice(2), messages: [], unread: 0, last: 0, deleted: false, seen: new Set() };
      state.convs.set(key, c);
    }
    return c;
  }

  function isVisible(key) {
    return (
      state.active === key &&
      (state.mobilePane === 'chat' || !isNarrow()) &&
      (typeof document === 'undefined' || document.visibilityState === 'visible')
    );
  }

  function push(c, m) {
    c.messages.push(m);
    if (c.messages.length > KEEP_PER_CONVERSATION * 2) c.messages.splice(0, c.messages.length - KEEP_PER_CONVERSATION);
    c.last = Math.max(c.last, m.at || Date.now());
  }

  return {
    state,
    /** Writes pending history now (the page is going away). */
    flush() {
      if (!saveTimer) return;
      clearTimeout(saveTimer);
      saveTimer = null;
      saveHistory();
    },
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },

    // ---- session -------------------------------------------------------
    signIn(session) {
      state.session = session;
      state.loginNotice = '';
      writeJson(storage, SESSION_KEY, session);
      loadHistory(session.username);
      changed();
    },
    /** Leaves the chat screen. `forget` also drops this user's history. */
    signOut(notice = '', { forget = false } = {}) {
      if (state.session) {
        saveHistory();
        if (forget) storage.removeItem(dataKey(state.session.username));
      }
      clearTimeout(saveTimer);
      saveTimer = null;
      state.session = null;
      state.loginNotice = notice;
      state.conn = { status: 'offline', retryAt: 0 };
      state.convs = new Map();
      state.joined = new Set();
      state.active = null;
      state.mobilePane = 'list';
      storage.removeItem(SESSION_KEY);
      changed();
    },
    setConn(status, retryAt = 0, closeCode = state.conn.closeCode) {
      state.conn = { status, retryAt, closeCode };
      changed();
    },
    toast(text, kind = 'error') {
      state.toast = text ? { text, kind, at: Date.now() } : null;
      changed();
    },

    // ---- navigation ----------------------------------------------------
    open(key) {
      const c = conv(key);
      state.active = key;
      state.mobilePane = 'chat';
      c.unread = 0;
      changed();
    },
    back() {
      state.mobilePane = 'list';
      changed();
    },
    /** The open conversation became visible again (tab shown, pane switched). */
    markActiveRead() {
      const c = state.active && state.convs.get(state.active);
      if (c && c.unread && isVisible(c.key)) {
        c.unread = 0;
        changed();
      }
    },

    // ---- directory -----------------------------------------------------
    setUsers(all, online) {
      const on = new Set(online);
      state.users = all.map((username) => ({ username, online: on.has(username) }));
      changed();
    },
    setTopics(names) {
      state.topics = names;
      // A topic that exists again (re-created) is no longer marked deleted.
      for (const name of names) {
        const c = state.convs.get(topicKey(name));
        if (c && c.deleted) c.deleted = false;
      }
      changed();
    },
    setJoined(topic, joined) {
      if (joined) state.joined.add(topic);
      else state.joined.delete(topic);
      changed();
    },

    // ---- messages ------------------------------------------------------
    /** A chat message from the socket. Returns false for a duplicate. */
    receive(frame) {
      const me = state.session && state.session.username;
      const key = frame.topic ? topicKey(frame.topic) : userKey(frame.from);
      const c = conv(key);
      if (typeof frame.id === 'number' && c.seen.has(frame.id)) return false;
      if (typeof frame.id === 'number') c.seen.add(frame.id);
      const to = Array.isArray(frame.to) ? frame.to : [];
      push(c, {
        id: typeof frame.id === 'number' ? frame.id : 0,
        from: frame.from,
        to,
        content: String(frame.content ?? ''),
        at: typeof frame['sent-at'] === 'number' ? frame['sent-at'] : Date.now(),
        mine: false,
        mentionsMe: Boolean(frame.topic && me && to.includes(me)),
      });
      if (frame.topic) {
        state.joined.add(frame.topic); // we only get topic messages as a member (R18)
        c.deleted = false;
        // It exists, even if the directory has not been refreshed since.
        if (!state.topics.includes(frame.topic)) state.topics = [...state.topics, frame.topic].sort();
      }
      if (!isVisible(key)) c.unread += 1;
      changed();
      return true;
    },
    /** Records a message this user is sending; returns its local id. */
    sending(key, content, to) {
      const c = conv(key);
      const localId = nextLocalId--;
      push(c, {
        id: 0,
        localId,
        from: state.session.username,
        to,
        content,
        at: Date.now(),
        mine: true,
        status: 'sending',
      });
      changed();
      return localId;
    },
    sent(key, localId, answer) {
      const m = findLocal(conv(key), localId);
      if (!m) return;
      m.status = 'sent';
      if (answer && typeof answer.id === 'number') m.id = answer.id;
      if (answer && typeof answer['sent-at'] === 'number') m.at = answer['sent-at'];
      const c = conv(key);
      if (c.kind === 'topic') {
        state.joined.add(c.name); // sending to a topic joins it (R18)
        c.deleted = false;
        if (!state.topics.includes(c.name)) state.topics = [...state.topics, c.name].sort();
      }
      changed();
    },
    failed(key, localId, error) {
      const m = findLocal(conv(key), localId);
      if (!m) return;
      m.status = 'failed';
      m.error = error;
      changed();
    },
    /** Removes a failed message (before it is sent again). */
    discard(key, localId) {
      const c = conv(key);
      c.messages = c.messages.filter((m) => m.localId !== localId);
      changed();
    },
    /**
     * A system notice inside a conversation. The same notice within a few
     * seconds is shown once (e.g. our own 404 and the server's system frame).
     */
    notice(key, kind, text) {
      const c = conv(key);
      const prev = c.messages[c.messages.length - 1];
      if (prev && prev.system === kind && Date.now() - prev.at < 5000) return;
      push(c, { id: 0, system: kind, content: text, at: Date.now(), from: '', to: [] });
      if (kind === 'deleted') {
        c.deleted = true;
        state.joined.delete(c.name);
      }
      if (!isVisible(key)) c.unread += 1;
      changed();
    },
  };
}

/** Conversations, most recent first. */
export function sortedConversations(state) {
  return [...state.convs.values()].sort((a, b) => b.last - a.last || a.key.localeCompare(b.key));
}

export function totalUnread(state) {
  let n = 0;
  for (const c of state.convs.values()) n += c.unread;
  return n;
}

/** `@name` mentions in a draft, without duplicates and without oneself. */
export function parseMentions(text, me) {
  const out = [];
  const re = /(?:^|[^a-zA-Z0-9_@-])@([a-zA-Z0-9_-]{4,30})(?![a-zA-Z0-9_-])/g;
  for (const match of text.matchAll(re)) {
    const name = match[1];
    if (name !== me && !out.includes(name)) out.push(name);
  }
  return out;
}

export function isNarrow() {
  return typeof window !== 'undefined' && window.matchMedia && window.matchMedia('(max-width: 720px)').matches;
}

function findLocal(c, localId) {
  return c.messages.find((m) => m.localId === localId);
}

function readJson(storage, key) {
  try {
    const raw = storage.getItem(key);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

function writeJson(storage, key, value) {
  try {
    storage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or disabled: the chat still works, history is not kept.
  }
}
