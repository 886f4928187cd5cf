// View: turns the state into DOM and DOM events into calls on `actions`.
//
// The page skeleton is static HTML (index.html); this module fills its lists
// and toggles its parts. User-supplied text only ever reaches the page
// through `textContent`, never as HTML. The view keeps no state of its own
// beyond what it needs to patch the DOM cheaply (which message is which row).

import { NAME_RE, isNarrow, parseMentions, sortedConversations, topicKey, totalUnread, userKey } from './state.js';

const $ = (id) => document.getElementById(id);

/** Builds an element: h('button', {class: 'x', onclick}, 'text', child). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayClock = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

function shortTime(ms) {
  const d = new Date(ms);
  const now = new Date();
  return d.toDateString() === now.toDateString() ? clock.format(d) : dayClock.format(d);
}

function timeEl(ms) {
  return h('time', { datetime: new Date(ms).toISOString(), title: full.format(new Date(ms)) }, shortTime(ms));
}

const CONN_TEXT = {
  offline: 'Offline',
  connecting: 'Connecting…',
  online: 'Connected',
  reconnecting: 'Reconnecting…',
  elsewhere: 'Open in another tab',
};

/**
 * @param {object} actions  what the controller does for each gesture:
 *   login(name), logout(), openUser(name), openTopic(name), back(),
 *   createTopic(name), joinTopic(name), quitTopic(name), deleteTopic(name),
 *   send(text), retry(message), reconnect(), dismissToast()
 */
export function createView(actions) {
  const rows = new WeakMap(); // message object -> <li>
  let state = null;
  let tick = null;
  let pendingDelete = null; // topic awaiting a second click on Delete
  let pendingDeleteTimer = null;
  let lastToastAt = 0;
  let toastTimer = null;

  // ---- static bindings ------------------------------------------------
  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = $('login-username').value.trim();
    if (!NAME_RE.test(name)) {
      showLoginError('A username is 4–30 letters, digits, “_” or “-”.');
      return;
    }
    showLoginError('');
    actions.login(name);
  });
  $('logout-button').addEventListener('click', () => actions.logout());
  $('toast-close').addEventListener('click', () => actions.dismissToast());
  $('back-button').addEventListener('click', () => actions.back());

  $('new-chat-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('new-chat-name');
    const name = input.value.trim().replace(/^@/, '');
    if (!NAME_RE.test(name)) return actions.toast('A username is 4–30 letters, digits, “_” or “-”.');
    if (state && state.session && name === state.session.username) return actions.toast('That is you.');
    input.value = '';
    actions.openUser(name);
  });
  $('new-topic-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('new-topic-name');
    const name = input.value.trim().replace(/^#/, '');
    if (!NAME_RE.test(name)) return actions.toast('A topic name is 4–30 letters, digits, “_” or “-”.');
    actions.createTopic(name).then((ok) => {
      if (ok) input.value = '';
    });
  });

  const input = $('composer-input');
  $('composer').addEventListener('submit', (ev) => {
    ev.preventDefault();
    submitDraft();
  });
  input.addEventListener('keydown', (ev) => {
    // isComposing: Enter that confirms an IME candidate (e.g. pinyin) must not send.
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
      ev.preventDefault();
      submitDraft();
    }
  });
  input.addEventListener('input', () => {
    autosize();
    renderMentions();
  });
  input.addEventListener('click', renderMentions);
  input.addEventListener('keyup', (ev) => {
    if (ev.key.startsWith('Arrow')) renderMentions();
  });

  function submitDraft() {
    const text = input.value;
    if (!text.trim()) return;
    input.value = '';
    autosize();
    renderMentions();
    actions.send(text);
    input.focus();
  }

  function autosize() {
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  }

  function showLoginError(text) {
    const el = $('login-error');
    el.textContent = text;
    el.hidden = !text;
  }

  // ---- render ---------------------------------------------------------
  function render(s) {
    state = s;
    const signedIn = Boolean(s.session);
    $('login-screen').hidden = signedIn;
    $('chat-screen').hidden = !signedIn;
    document.title = signedIn && totalUnread(s) ? `(${totalUnread(s)}) Huayi IM` : 'Huayi IM';
    if (!signedIn) {
      renderLogin(s);
      return;
    }
    $('me-name').textContent = s.session.username;
    renderConn(s);
    renderToast(s);
    $('panes').dataset.pane = s.mobilePane;
    renderConversations(s);
    renderTopics(s);
    renderUsers(s);
    renderConversation(s);
  }

  function renderLogin(s) {
    const notice = $('login-notice');
    notice.textContent = s.loginNotice;
    notice.hidden = !s.loginNotice;
    $('login-button').disabled = false;
    if (document.activeElement === document.body) $('login-username').focus();
  }

  function renderConn(s) {
    const el = $('conn');
    const { status, retryAt } = s.conn;
    el.dataset.status = status;
    if (s.conn.closeCode) el.dataset.closeCode = String(s.conn.closeCode); // why the last socket closed
    let text = CONN_TEXT[status] || status;
    if (status === 'reconnecting' && retryAt > Date.now()) {
      text = `Reconnecting in ${Math.ceil((retryAt - Date.now()) / 1000)} s…`;
      if (s.conn.closeCode === 1001) text = `Server restarting · ${text}`;
    }
    el.replaceChildren(h('span', { class: 'dot', 'aria-hidden': 'true' }), text);
    if (status === 'reconnecting' || status === 'elsewhere') {
      el.append(
        ' ',
        h('button', { type: 'button', class: 'link', onclick: () => actions.reconnect() },
          status === 'elsewhere' ? 'Use here' : 'Retry now'),
      );
    }
    clearInterval(tick);
    tick = status === 'reconnecting' ? setInterval(() => renderConn(state), 1000) : null;
  }

  function renderToast(s) {
    const t = s.toast;
    $('toast').hidden = !t;
    if (!t) return;
    $('toast').dataset.kind = t.kind;
    $('toast-text').textContent = t.text;
    if (t.at !== lastToastAt) {
      lastToastAt = t.at;
      clearTimeout(toastTimer);
      toastTimer = setTimeout(() => actions.dismissToast(t.at), 6000);
    }
  }

  function renderConversations(s) {
    const list = sortedConversations(s);
    $('conv-empty').hidden = list.length > 0;
    const items = list.map((c) => {
      const last = c.messages[c.messages.length - 1];
      let preview = '';
      if (last && (last.system || (c.kind === 'user' && !last.mine))) preview = last.content;
      else if (last) preview = `${last.mine ? 'You' : last.from}: ${last.content}`;
      const label = c.kind === 'topic' ? `#${c.name}` : c.name;
      const online = c.kind === 'user' && s.users.some((u) => u.username === c.name && u.online);
      return h(
        'li',
        {},
        h(
          'button',
          {
            type: 'button',
            class: `conv-item${c.key === s.active ? ' active' : ''}${c.unread ? ' unread' : ''}`,
            'data-key': c.key,
            'aria-current': c.key === s.active ? 'true' : undefined,
            onclick: () => (c.kind === 'topic' ? actions.openTopic(c.name) : actions.openUser(c.name)),
          },
          h('span', { class: `avatar ${c.kind}`, 'aria-hidden': 'true' }, c.kind === 'topic' ? '#' : c.name[0].toUpperCase(),
            online ? h('span', { class: 'presence' }) : null),
          h(
            'span',
            { class: 'conv-main' },
            h('span', { class: 'conv-name' }, label, c.deleted ? h('span', { class: 'tag' }, 'deleted') : null),
            h('span', { class: 'conv-preview' }, preview.slice(0, 80)),
          ),
          h(
            'span',
            { class: 'conv-meta' },
            c.last ? h('span', { class: 'conv-time' }, shortTime(c.last)) : null,
            c.unread ? h('span', { class: 'badge', 'aria-label': `${c.unread} unread` }, String(c.unread)) : null,
          ),
        ),
      );
    });
    $('conv-list').replaceChildren(...items);
  }

  function topicButtons(name, joined) {
    const confirming = pendingDelete === name;
    return [
      joined
        ? h('button', { type: 'button', class: 'small ghost', 'aria-label': `Quit topic ${name}`, onclick: () => actions.quitTopic(name) }, 'Quit')
        : h('button', { type: 'button', class: 'small', 'aria-label': `Join topic ${name}`, onclick: () => actions.joinTopic(name) }, 'Join'),
      h(
        'button',
        {
          type: 'button',
          class: `small danger${confirming ? ' confirming' : ''}`,
          'aria-label': confirming ? `Confirm deleting topic ${name}` : `Delete topic ${name}`,
          onclick: () => {
            if (pendingDelete === name) {
              pendingDelete = null;
              clearTimeout(pendingDeleteTimer);
              actions.deleteTopic(name);
            } else {
              pendingDelete = name;
              clearTimeout(pendingDeleteTimer);
              pendingDeleteTimer = setTimeout(() => {
                pendingDelete = null;
                render(state);
              }, 4000);
              render(state);
            }
          },
        },
        confirming ? 'Sure?' : 'Delete',
      ),
    ];
  }

  function renderTopics(s) {
    $('topic-empty').hidden = s.topics.length > 0;
    const items = s.topics.map((name) => {
      const joined = s.joined.has(name);
      return h(
        'li',
        { class: 'topic-item', 'data-topic': name },
        h(
          'button',
          {
            type: 'button',
            class: `link topic-name${joined ? ' joined' : ''}`,
            'aria-label': `Open topic ${name}`,
            title: joined ? `#${name} · you are a member` : `#${name}`,
            onclick: () => actions.openTopic(name),
          },
          `#${name}`,
        ),
        h('span', { class: 'topic-actions' }, topicButtons(name, joined)),
      );
    });
    $('topic-list').replaceChildren(...items);
  }

  function renderUsers(s) {
    const me = s.session.username;
    // Online people first, each group by name as the server sorts them.
    const users = [...s.users].sort((a, b) => Number(b.online) - Number(a.online));
    const items = users.map((u) =>
      h(
        'li',
        { class: `user-item${u.online ? ' online' : ''}`, 'data-user': u.username },
        h('span', { class: 'dot', 'aria-hidden': 'true' }),
        u.username === me
          ? h('span', { class: 'user-name' }, u.username, h('span', { class: 'muted' }, ' (you)'))
          : h(
              'button',
              { type: 'button', class: 'link user-name', 'aria-label': `Chat with ${u.username}`, onclick: () => actions.openUser(u.username) },
              u.username,
            ),
        h('span', { class: 'visually-hidden' }, u.online ? ' online' : ' offline'),
      ),
    );
    $('user-list').replaceChildren(...items);
  }

  function renderConversation(s) {
    const c = s.active && s.convs.get(s.active);
    $('conv-none').hidden = Boolean(c);
    $('conv-open').hidden = !c;
    if (!c) return;
    $('conv-open').dataset.key = c.key;
    $('back-button').hidden = !isNarrow();

    const user = c.kind === 'user' ? s.users.find((u) => u.username === c.name) : null;
    $('conv-title').textContent = c.kind === 'topic' ? `#${c.name}` : c.name;
    let subtitle;
    if (c.kind === 'topic') {
      if (c.deleted) subtitle = 'This topic was deleted';
      else if (!s.topics.includes(c.name)) subtitle = 'Topic';
      else subtitle = s.joined.has(c.name) ? 'Topic · you are a member' : 'Topic · not joined (sending a message joins)';
    } else {
      subtitle = user ? (user.online ? 'online' : 'offline') : 'offline · messages wait for them';
    }
    $('conv-subtitle').textContent = subtitle;
    $('conv-actions').replaceChildren(...(c.kind === 'topic' && !c.deleted ? topicButtons(c.name, s.joined.has(c.name)) : []));

    // Messages: reuse rows, so a status change does not rebuild the list.
    const ol = $('messages');
    const nearBottom = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 80;
    const switched = ol.dataset.key !== c.key;
    ol.dataset.key = c.key;
    const nodes = c.messages.map((m) => messageRow(m, s));
    const same = nodes.length === ol.children.length && nodes.every((n, i) => ol.children[i] === n);
    if (!same) ol.replaceChildren(...nodes);
    if (switched || nearBottom || (!same && c.messages[c.messages.length - 1]?.mine)) ol.scrollTop = ol.scrollHeight;

    input.placeholder = c.kind === 'topic' ? `Message #${c.name} — @name mentions someone` : `Message ${c.name}`;
    $('composer-hint').textContent =
      c.kind === 'topic' ? 'Enter sends, Shift+Enter adds a line. Type @name to mention someone.' : 'Enter sends, Shift+Enter adds a line.';
    if (switched) {
      renderMentions();
      if (!isNarrow() || s.mobilePane === 'chat') input.focus();
    }
  }

  function messageRow(m, s) {
    let li = rows.get(m);
    const sig = `${m.status || ''}|${m.error || ''}|${m.at}`;
    if (li && li.dataset.sig === sig) return li;
    if (m.system) {
      li = h('li', { class: `msg system ${m.system}`, 'data-system': m.system }, h('span', { class: 'system-text' }, m.content), ' ', timeEl(m.at));
    } else {
      const me = s.session.username;
      const mentions = m.to && m.to.length && s.active && s.active.startsWith('t:') ? m.to : [];
      li = h(
        'li',
        {
          class: `msg${m.mine ? ' mine' : ''}${m.mentionsMe ? ' mention' : ''}${m.status === 'failed' ? ' failed' : ''}`,
          'data-id': m.id || undefined,
          'data-from': m.from,
        },
        h(
          'div',
          { class: 'msg-head' },
          h('span', { class: 'from' }, m.mine ? 'You' : m.from),
          timeEl(m.at),
          m.mentionsMe ? h('span', { class: 'tag mention-tag' }, `@${me}`) : null,
          mentions.length && !m.mentionsMe ? h('span', { class: 'muted to' }, `→ ${mentions.map((n) => `@${n}`).join(' ')}`) : null,
        ),
        h('div', { class: 'content' }, m.content),
        m.status === 'sending' ? h('div', { class: 'status' }, 'sending…') : null,
        m.status === 'failed'
          ? h(
              'div',
              { class: 'status error' },
              `Not sent: ${m.error || 'error'} `,
              h('button', { type: 'button', class: 'link', onclick: () => actions.retry(m) }, 'Retry'),
            )
          : null,
      );
    }
    li.dataset.sig = sig;
    rows.set(m, li);
    return li;
  }

  /** Under the composer: who the draft mentions, and names to complete `@pa…`. */
  function renderMentions() {
    const el = $('mentions');
    const c = state && state.active && state.convs.get(state.active);
    if (!c || c.kind !== 'topic') {
      el.hidden = true;
      return;
    }
    const me = state.session.username;
    const text = input.value;
    const names = parseMentions(text, me);
    const parts = [];
    // Completion for the word being typed, if it starts with "@".
    const before = text.slice(0, input.selectionStart ?? text.length);
    const word = /(?:^|\s)@([a-zA-Z0-9_-]*)$/.exec(before);
    if (word) {
      const prefix = word[1].toLowerCase();
      const options = state.users
        .map((u) => u.username)
        .filter((n) => n !== me && n.toLowerCase().startsWith(prefix) && n.toLowerCase() !== prefix)
        .slice(0, 6);
      for (const n of options) {
        parts.push(
          h(
            'button',
            {
              type: 'button',
              class: 'chip',
              'aria-label': `Mention ${n}`,
              onclick: () => {
                const start = before.length - word[1].length;
                input.value = `${text.slice(0, start)}${n} ${text.slice(before.length)}`;
                const caret = start + n.length + 1;
                input.focus();
                input.setSelectionRange(caret, caret);
                renderMentions();
              },
            },
            `@${n}`,
          ),
        );
      }
    }
    if (names.length) parts.unshift(h('span', { class: 'muted' }, `Mentions: ${names.map((n) => `@${n}`).join(', ')}`));
    el.replaceChildren(...parts);
    el.hidden = parts.length === 0;
  }

  return {
    render,
    loginBusy(busy, error = '') {
      $('login-button').disabled = busy;
      showLoginError(error);
    },
  };
}

export { topicKey, userKey };
