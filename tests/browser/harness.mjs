// Test harness: starts the server binary on a free loopback port with short
// heartbeat settings, launches the system Chromium through playwright-core,
// and gives each simulated person their own browser context (own storage,
// own cookies) with a page signed in to the web client.
//
// Environment:
//   HUAYI_URL  use an already running server instead of starting one
//   HUAYI_BIN  server binary (default: target/release/huayi-im, else target/debug)
//   CHROMIUM   browser executable (default: /usr/bin/chromium)

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
export const ARTIFACTS = path.join(HERE, 'artifacts');

/**
 * Names for people and topics. A server this run started is fresh, so plain
 * names do; a server given by HUAYI_URL may have seen them already, so they
 * get a short suffix unique to this run.
 */
const RUN = Date.now().toString(36).slice(-5);
export const uniq = (base) => (process.env.HUAYI_URL ? `${base}_${RUN}` : base);

export function serverBinary() {
  if (process.env.HUAYI_BIN) return process.env.HUAYI_BIN;
  for (const p of ['target/release/huayi-im', 'target/debug/huayi-im']) {
    if (existsSync(path.join(ROOT, p))) return path.join(ROOT, p);
  }
  throw new Error('no server binary: build it (cargo build --release) or set HUAYI_BIN / HUAYI_URL');
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitHealthy(base, child, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`server exited early with ${child.exitCode}`);
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server at ${base} not healthy within ${timeoutMs} ms`);
}

/**
 * Starts the server (or adopts HUAYI_URL). Settings go in through the
 * environment layer of SPEC R30, so no flag syntax is assumed.
 */
export async function startServer({ port } = {}) {
  if (process.env.HUAYI_URL) {
    const base = process.env.HUAYI_URL.replace(/\/$/, '');
    await waitHealthy(base, null);
    return { base, port: Number(new URL(base).port), stop: async () => null, restart: null, external: true };
  }
  port = port || (await freePort());
  const base = `http://127.0.0.1:${port}`;
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'huayi-browser-'));
  let child = null;
  let log = '';

  async function spawnServer() {
    child = spawn(serverBinary(), [], {
      cwd, // no config.yaml here: defaults plus the variables below
      env: {
        // The server reads every HUAYI_* variable as a setting and refuses
        // unknown ones, so this harness's own (HUAYI_BIN, HUAYI_URL) stay out.
        ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HUAYI_'))),
        HUAYI_LISTEN: `127.0.0.1:${port}`,
        HUAYI_HEARTBEAT__PONG_INTERVAL: '1s',
        HUAYI_HEARTBEAT__IDLE_TIMEOUT: '10s',
        HUAYI_OFFLINE__TTL: '10m',
        RUST_LOG: process.env.RUST_LOG || 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (d) => {
      log = (log + d).slice(-200000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    try {
      await waitHealthy(base, child);
    } catch (e) {
      child.kill('SIGKILL');
      throw new Error(`${e.message}\n--- server log ---\n${log.slice(-5000)}`);
    }
  }

  async function stopServer() {
    if (!child || child.exitCode !== null || child.signalCode) return child ? child.exitCode : null;
    const exited = new Promise((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  }

  // Never leave a server behind, whatever ends this process.
  process.once('exit', () => child && child.exitCode === null && child.kill('SIGKILL'));
  await spawnServer();
  return {
    base,
    port,
    log: () => log,
    /** SIGTERM, then a fresh process on the same port: all sessions are gone. */
    async restart({ downMs = 0 } = {}) {
      const code = await stopServer();
      await new Promise((r) => setTimeout(r, downMs));
      await spawnServer();
      return code;
    },
    async stop() {
      const code = await stopServer();
      mkdirSync(ARTIFACTS, { recursive: true });
      writeFileSync(path.join(ARTIFACTS, 'server.log'), log);
      rmSync(cwd, { recursive: true, force: true });
      return code;
    },
  };
}

export async function launchBrowser() {
  // playwright-core gives every launch a fresh temporary profile
  // (user-data dir), removed again on close.
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage', // containers often have a small /dev/shm
    ],
  });
}

/**
 * A person with their own browser context. Every request that leaves the
 * server's origin is blocked and recorded (the client must make none), and
 * page errors are recorded too; `assertClean()` fails on either.
 */
export async function person(browser, base, { viewport = { width: 1200, height: 780 } } = {}) {
  const context = await browser.newContext({ viewport, locale: 'en-GB', timezoneId: 'UTC' });
  const origin = new URL(base).origin;
  const foreign = [];
  const errors = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(origin) || url.startsWith('data:')) return route.continue();
    foreign.push(url);
    return route.abort();
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 40[14]|WebSocket connection/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  await page.goto(base + '/');
  return {
    context,
    page,
    foreign,
    errors,
    async close() {
      await context.close();
    },
  };
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}
