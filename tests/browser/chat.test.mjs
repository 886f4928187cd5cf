// End-to-end tests of the web client in headless Chromium against the real
// server. Each person is a separate browser context, as if on a separate
// device. Screenshots of the main screens go to ./artifacts/.
//
// Run: ./run.sh   (or `npm test` with HUAYI_BIN or HUAYI_URL set)

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { launchBrowser, person, screenshot, startServer, uniq } from './harness.mjs';

let server;
let browser;
const people = [];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  for (const p of people) await p.close().catch(() => {});
  if (browser) await browser.close();
  if (server) {
    const code = await server.stop();
    if (!server.external) assert.equal(code, 0, 'server exits 0 on SIGTERM (R31)');
  }
});

// ---- page helpers: what a person does ----------------------------------

async function newPerson(opts) {
  const p = await person(browser, server.base, opts);
  p.page.setDefaultTimeout(10000);
  people.push(p);
  return p;
}

async function signIn(p, name) {
  await p.page.getByLabel('Username', { exact: true }).fill(name);
  await p.page.getByRole('button', { name: 'Sign in' }).click();
  await p.page.locator('#me-name', { hasText: name }).waitFor();
  await connected(p);
}

const connected = (p) => p.page.locator('#conn[data-status="online"]').waitFor();

async function openChatWith(p, name) {
  await p.page.getByLabel('Start a chat with username').fill(name);
  await p.page.getByRole('button', { name: 'Chat', exact: true }).click();
  await p.page.locator('#conv-title', { hasText: name }).waitFor();
}

async function openConversation(p, key) {
  await p.page.locator(`.conv-item[data-key="${key}"]`).click();
  await p.page.locator(`#conv-open[data-key="${key}"]`).waitFor();
}

async function say(p, text) {
  const box = p.page.getByLabel('Message', { exact: true });
  await box.fill(text);
  await box.press('Enter');
  // Recorded locally, then confirmed by the server's 200.
  const row = p.page.locator('#messages .msg.mine', { hasText: text }).last();
  await row.waitFor();
  await p.page.waitForFunction(
    (t) => [...document.querySelectorAll('#messages .msg.mine')].some((li) => li.textContent.includes(t) && !/sending|Not sent/.test(li.textContent)),
    text,
  );
}

/**
 * A test whose failure leaves evidence: a screenshot of every page still
 * open, and each page's recorded errors, in artifacts/.
 */
function scenario(name, fn) {
  test(name, async (t) => {
    const mine = people.length;
    try {
      await fn(t);
    } catch (e) {
      const slug = name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40);
      for (const [i, p] of people.slice(mine).entries()) {
        if (p.page.isClosed()) continue;
        await screenshot(p.page, `FAILED-${slug}-${i}`).catch(() => {});
        const storage = await p.page.evaluate(() => Object.entries(localStorage).map(([k, v]) => `${k}=${v.slice(0, 300)}`).join(' | ')).catch(() => '?');
        console.error(`[${slug} #${i}] url=${p.page.url()} storage=[${storage}] errors=${JSON.stringify(p.errors)}`);
      }
      throw e;
    }
  });
}

const message = (p, text) => p.page.locator('#messages .msg', { hasText: text });
const unread = (p, key) => p.page.locator(`.conv-item[data-key="${key}"] .badge`);

/** What every page must be at the end of a scenario. */
async function clean(p) {
  assert.deepEqual(p.foreign, [], 'the client makes no request outside its own server');
  assert.deepEqual(p.errors, [], 'no script errors in the page');
  // Every visible control has an accessible name (label, aria-label or text).
  const unnamed = await p.page.evaluate(() =>
    [...document.querySelectorAll('button, input, textarea')]
      .filter((el) => el.getClientRects().length > 0)
      .filter((el) => {
        const labels = el.labels ? [...el.labels].map((l) => l.textContent).join('') : '';
        const text = el.tagName === 'BUTTON' ? el.textContent : '';
        return !`${el.getAttribute('aria-label') || ''}${labels}${text}`.trim();
      })
      .map((el) => el.outerHTML.slice(0, 100)),
  );
  assert.deepEqual(unnamed, [], 'controls without an accessible name');
}

// ---- scenarios -------------------------------------------------------------

describe('web client', () => {
  scenario('the login screen explains itself and refuses a bad name', async () => {
    const p = await newPerson();
    await p.page.getByRole('heading', { name: /Huayi IM/ }).waitFor();
    await screenshot(p.page, '01-login');
    await p.page.getByLabel('Username', { exact: true }).fill('ab');
    await p.page.getByRole('button', { name: 'Sign in' }).click();
    await p.page.locator('#login-error', { hasText: '4–30' }).waitFor();
    assert.equal(await p.page.locator('#chat-screen').isVisible(), false);
    await clean(p);
    await p.close();
  });

  scenario('two people chat one-to-one', async () => {
    const alice = uniq('alice');
    const bruno = uniq('bruno');
    const a = await newPerson();
    const b = await newPerson();
    await signIn(a, alice);
    await signIn(b, bruno);

    await openChatWith(a, bruno);
    await say(a, 'Hello Bruno, lunch at noon?');

    // Bruno gets a new conversation with an unread counter, then reads it.
    await unread(b, `u:${alice}`).filter({ hasText: '1' }).waitFor();
    await openConversation(b, `u:${alice}`);
    const got = message(b, 'Hello Bruno, lunch at noon?');
    await got.waitFor();
    assert.match(await got.locator('.from').textContent(), new RegExp(alice));
    assert.ok(await got.locator('time').getAttribute('datetime'), 'shows the time sent');
    assert.equal(await unread(b, `u:${alice}`).count(), 0, 'reading clears the counter');

    await say(b, 'Sure — see you there.');
    await message(a, 'Sure — see you there.').waitFor();
    // The sender's own copy is kept locally, once (the server does not echo it).
    assert.equal(await message(a, 'Hello Bruno, lunch at noon?').count(), 1);

    // People list shows both online.
    await a.page.locator(`.user-item.online[data-user="${bruno}"]`).waitFor();
    await screenshot(a.page, '02-one-to-one-alice');
    await screenshot(b.page, '02-one-to-one-bruno');

    // Text is text: markup in a message is not interpreted.
    await say(a, '<b>not bold</b> <img src=x onerror=alert(1)>');
    await message(b, '<b>not bold</b>').waitFor();
    assert.equal(await b.page.locator('#messages b, #messages img').count(), 0);

    await clean(a);
    await clean(b);
    await a.close();
    await b.close();
  });

  scenario('three people in a topic, one mentioned', async () => {
    const topic = uniq('rustaceans');
    const carol = uniq('carol');
    const dan = uniq('daniel');
    const erin = uniq('erin');
    const c = await newPerson();
    const d = await newPerson();
    const e = await newPerson();
    await signIn(c, carol);
    await signIn(d, dan);
    await signIn(e, erin);

    // Carol creates the topic; it opens. Dan joins from the topic list.
    await c.page.getByLabel('New topic name').fill(topic);
    await c.page.getByRole('button', { name: 'Create', exact: true }).click();
    await c.page.locator('#conv-title', { hasText: `#${topic}` }).waitFor();
    await d.page.getByRole('button', { name: `Join topic ${topic}` }).first().click({ timeout: 20000 }); // the topic list refreshes every 10 s
    await d.page.getByRole('button', { name: `Quit topic ${topic}` }).first().waitFor();

    // Erin is not a member: Carol's mention brings her in (R18).
    await say(c, `Welcome! @${erin} you should see this too`);
    await c.page.locator('#mentions').waitFor({ state: 'hidden' });

    await unread(d, `t:${topic}`).filter({ hasText: '1' }).waitFor();
    await openConversation(d, `t:${topic}`);
    const atDan = message(d, 'Welcome!');
    await atDan.waitFor();
    assert.equal(await atDan.locator('.mention-tag').count(), 0, 'Dan was not mentioned');

    await unread(e, `t:${topic}`).waitFor();
    await openConversation(e, `t:${topic}`);
    const atErin = message(e, 'Welcome!');
    await atErin.locator('.mention-tag', { hasText: `@${erin}` }).waitFor();
    assert.match(await atErin.getAttribute('class'), /\bmention\b/);

    // Dan answers with a mention typed through the suggestion chips.
    const box = d.page.getByLabel('Message', { exact: true });
    await box.fill(`thanks @${carol.slice(0, 3)}`);
    await d.page.getByRole('button', { name: `Mention ${carol}` }).click();
    assert.equal(await box.inputValue(), `thanks @${carol} `);
    await d.page.locator('#mentions', { hasText: `Mentions: @${carol}` }).waitFor();
    await box.press('Enter');
    await message(c, 'thanks').locator('.mention-tag').waitFor();
    await message(e, 'thanks').waitFor();

    await screenshot(c.page, '03-topic-carol');
    await screenshot(e.page, '03-topic-mentioned-erin');
    for (const p of [c, d, e]) await clean(p);
    for (const p of [c, d, e]) await p.close();
  });

  scenario('conversations are ordered by the latest message', async () => {
    const topic = uniq('weekend-hike');
    const paula = uniq('paula');
    const quinn = uniq('quinn');
    const rosa = uniq('rosa');
    const p = await newPerson();
    const q = await newPerson();
    const r = await newPerson();
    await signIn(p, paula);
    await signIn(q, quinn);
    await signIn(r, rosa);

    await p.page.getByLabel('New topic name').fill(topic);
    await p.page.getByRole('button', { name: 'Create', exact: true }).click();
    for (const x of [q, r]) {
      await x.page.getByRole('button', { name: `Join topic ${topic}` }).first().click({ timeout: 20000 }); // the topic list refreshes every 10 s
    }
    await say(p, "Who's in for Saturday? Thinking of the ridge trail, 9 am at the station.");
    await openConversation(q, `t:${topic}`);
    await say(q, `Count me in. @${rosa} are you coming?`);
    await openConversation(r, `t:${topic}`);
    await message(r, 'Count me in').waitFor();
    await say(r, "Yes! I'll bring snacks.\nAnd the good map.");
    await message(p, 'bring snacks').waitFor();
    await openChatWith(r, paula);
    await say(r, 'Can I borrow your spare poles?');

    const order = () => p.page.locator('.conv-item').evaluateAll((els) => els.map((e) => e.dataset.key));
    await unread(p, `u:${rosa}`).waitFor();
    assert.deepEqual(await order(), [`u:${rosa}`, `t:${topic}`], 'newest first');
    await p.page.locator(`.user-item.online[data-user="${rosa}"]`).waitFor();
    await screenshot(p.page, '00-overview');

    await openConversation(r, `t:${topic}`);
    await say(r, 'See you all at 9!');
    await p.page.waitForFunction(
      (key) => document.querySelector('.conv-item')?.dataset.key === key,
      `t:${topic}`,
    );
    for (const x of [p, q, r]) await clean(x);
    for (const x of [p, q, r]) await x.close();
  });

  scenario('a person who was offline gets the backlog on signing in', async () => {
    const fay = uniq('faye');
    const gus = uniq('gustav');
    const f = await newPerson();
    await signIn(f, fay);
    await f.page.getByRole('button', { name: 'Sign out' }).click();
    await f.page.locator('#login-notice', { hasText: 'signed out' }).waitFor();

    const g = await newPerson();
    await signIn(g, gus);
    // Fay is offline now.
    await g.page.locator(`.user-item[data-user="${fay}"]:not(.online)`).waitFor();
    await openChatWith(g, fay);
    await g.page.locator('#conv-subtitle', { hasText: 'offline' }).waitFor();
    for (const text of ['first while you were away', 'second while you were away', 'third while you were away']) {
      await say(g, text);
    }

    await signIn(f, fay);
    await unread(f, `u:${gus}`).filter({ hasText: '3' }).waitFor();
    await openConversation(f, `u:${gus}`);
    const texts = await f.page.locator('#messages .msg .content').allTextContents();
    assert.deepEqual(texts, ['first while you were away', 'second while you were away', 'third while you were away'], 'oldest first');
    await screenshot(f.page, '04-offline-backlog');

    // The session survives a reload; the history is kept in this browser.
    await f.page.reload();
    await connected(f);
    await f.page.locator(`.conv-item[data-key="u:${gus}"]`).waitFor();
    await clean(f);
    await clean(g);
    await f.close();
    await g.close();
  });

  scenario('signing in elsewhere signs this window out, and it says so', async () => {
    const hal = uniq('hallie');
    const first = await newPerson();
    const second = await newPerson();
    await signIn(first, hal);
    await signIn(second, hal);

    await first.page.locator('#login-screen').waitFor();
    await first.page.locator('#login-notice', { hasText: 'signed in elsewhere' }).waitFor();
    await screenshot(first.page, '05-signed-in-elsewhere');
    // The newer session is the one that works.
    await connected(second);
    assert.equal(await second.page.locator('#chat-screen').isVisible(), true);
    await clean(first);
    await clean(second);
    await first.close();
    await second.close();
  });

  scenario('deleting a topic shows the notice to its members', async () => {
    const topic = uniq('book-club');
    const ivy = uniq('ivan');
    const jon = uniq('jonas');
    const i = await newPerson();
    const j = await newPerson();
    await signIn(i, ivy);
    await signIn(j, jon);

    await i.page.getByLabel('New topic name').fill(topic);
    await i.page.getByRole('button', { name: 'Create', exact: true }).click();
    await say(i, `hello @${jon}`);
    await unread(j, `t:${topic}`).waitFor();
    await openConversation(j, `t:${topic}`);
    await message(j, 'hello').waitFor();

    // Delete needs a second click to confirm.
    const del = j.page.locator('#conv-actions').getByRole('button', { name: `Delete topic ${topic}` });
    await del.click();
    await j.page.locator('#conv-actions').getByRole('button', { name: `Confirm deleting topic ${topic}` }).click();

    await j.page.locator('#messages .msg.system.deleted', { hasText: `#${topic} was deleted` }).waitFor();
    // Ivy is in another conversation or this one: either way she sees it.
    await i.page.locator('#messages .msg.system.deleted', { hasText: `#${topic} was deleted` }).waitFor();
    await i.page.locator(`.topic-item[data-topic="${topic}"]`).waitFor({ state: 'detached', timeout: 15000 });
    await screenshot(i.page, '06-topic-deleted');

    // Writing to it now says it does not exist (R17).
    const box = i.page.getByLabel('Message', { exact: true });
    await box.fill('anyone here?');
    await box.press('Enter');
    await i.page.locator('#messages .msg.system.notfound').waitFor();
    await i.page.locator('#messages .msg.failed', { hasText: 'anyone here?' }).waitFor();
    await clean(i);
    await clean(j);
    await i.close();
    await j.close();
  });

  scenario('the heartbeat: pings every 5 s, an ack for every pong, online past the idle timeout', async () => {
    // Server settings in this run: pong every 1 s, idle after 10 s (R22, R23).
    const kim = uniq('kimi');
    const k = await newPerson();
    const up = [];
    const down = [];
    const parse = (payload) => {
      try {
        return JSON.parse(String(payload));
      } catch {
        return null;
      }
    };
    k.page.on('websocket', (ws) => {
      ws.on('framesent', (f) => up.push(parse(f.payload)));
      ws.on('framereceived', (f) => down.push(parse(f.payload)));
    });
    await signIn(k, kim);
    await k.page.waitForTimeout(12500);
    assert.equal(await k.page.locator('#conn').getAttribute('data-status'), 'online');

    const pings = up.filter((f) => f && f['message-type'] === 'ping');
    const acksUp = new Set(up.filter((f) => f && f['message-type'] === 'ack').map((f) => f['ack-id']));
    const pongs = down.filter((f) => f && f['message-type'] === 'pong');
    const acksDown = new Set(down.filter((f) => f && f['message-type'] === 'ack').map((f) => f['ack-id']));
    assert.ok(pings.length >= 2 && pings.length <= 4, `a ping every 5 s (${pings.length} in 12.5 s)`);
    assert.ok(pings.every((f, i) => f.from === kim && f['message-id'] === i + 1), 'pings count up from 1, from me');
    assert.ok(pings.slice(0, -1).every((f) => acksDown.has(f['message-id'])), 'the server acks each ping');
    if (!server.external) assert.ok(pongs.length >= 8, `a pong every second (${pongs.length})`);
    for (const f of pongs.slice(0, -1)) {
      assert.equal(f.to, kim);
      assert.ok(acksUp.has(f['message-id']), `pong ${f['message-id']} acked`);
    }

    // Still online as far as the server is concerned.
    const sid = await k.page.evaluate(() => JSON.parse(localStorage.getItem('huayi.session')).sid);
    const r = await fetch(`${server.base}/api/users?online=true`, { headers: { Authorization: `Bearer ${sid}` } });
    assert.ok((await r.json()).list.some((u) => u.username === kim), 'still listed online');
    await clean(k);
    await k.close();
  });

  scenario('on a phone-sized screen one pane shows at a time', async () => {
    const lee = uniq('leon');
    const mia = uniq('mila');
    const m = await newPerson();
    await signIn(m, mia);
    const l = await newPerson({ viewport: { width: 390, height: 780 } });
    await signIn(l, lee);
    await openChatWith(m, lee);
    await say(m, 'Can you read this on your phone?');
    await unread(l, `u:${mia}`).waitFor();
    await screenshot(l.page, '07-phone-list');
    await openConversation(l, `u:${mia}`);
    assert.equal(await l.page.locator('.sidebar').isVisible(), false, 'the list gives way to the conversation');
    await say(l, 'Yes, perfectly.');
    await message(m, 'Yes, perfectly.').waitFor();
    await screenshot(l.page, '07-phone-chat');
    await l.page.getByRole('button', { name: 'Back to conversations' }).click();
    await l.page.locator('.sidebar').waitFor();
    await clean(l);
    await clean(m);
    await l.close();
    await m.close();
  });

  // Last: it restarts the server under everyone.
  scenario('a server restart is shown, and the lost session asks to sign in again', async (t) => {
    if (!server.restart) return t.skip('server not started by this run (HUAYI_URL)');
    const nora = uniq('nora');
    const n = await newPerson();
    await signIn(n, nora);
    // Shutdown closes sockets with 1001 (R31); the client says so and redials.
    const seenReconnecting = n.page
      .locator('#conn[data-status="reconnecting"][data-close-code="1001"]', { hasText: 'Server restarting' })
      .waitFor({ timeout: 20000 });
    const code = await server.restart({ downMs: 1500 });
    assert.equal(code, 0, 'SIGTERM ends the server with 0 (R31)');
    await seenReconnecting;
    // Sessions live in memory: the new process does not know this sid.
    await n.page.locator('#login-notice', { hasText: 'session has ended' }).waitFor({ timeout: 30000 });
    await screenshot(n.page, '08-session-ended');
    await signIn(n, nora);
    assert.deepEqual(n.errors.filter((e) => e.startsWith('pageerror')), []);
    await n.close();
  });
});
