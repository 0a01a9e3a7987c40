// What the browser tests stand on: a real tranche-server on a free loopback port,
// a fleet of simulated devices that check in over HTTP from this process, and
// Debian's Chromium driven headless by playwright-core. Every process started here
// is stopped by the returned handles' stop() (the tests call them in `finally`).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

export const ADMIN = 'browser-test-admin-token-0123456789';
export const ENROLL_KEY = 'acme-enrollment-key-0123';

// A plan that moves in seconds: canary (a quarter of the fleet, at least 3
// acknowledgements) baked briefly, then everyone. alpha 0.05: a handful of crashes
// among 40 devices halts it.
export function fastPlan(bake = '2s') {
  return `name: fast
on_failure: rollback
gate:
  alpha: 0.05
  min_acknowledged: 3
  heartbeat_interval: 1s
  silent_after_missed: 5
stages:
  - {name: canary, percent: 25%, bake: ${bake}}
  - {name: all, percent: 100%, bake: 0s}
`;
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Polls f until it returns a truthy value or timeoutMs passes; throws `what` then.
export async function eventually(f, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      last = await f();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

// Starts tranche-server; resolves once it printed its listening line.
export async function startServer({ serverBin, dashboardDir }) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tranche-browser-'));
  const args = ['--port', '0', '--data-dir', dataDir, '--admin-token', ADMIN, '--tick-ms', '100',
    '--batch-ms', '50', '--threads', '2', '--dashboard-dir', dashboardDir];
  const proc = spawn(serverBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr = (stderr + d).slice(-20000); });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`tranche-server did not start in 10 s; stderr:\n${stderr}`)), 10000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/tranche-server listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`tranche-server exited (${code}); stderr:\n${stderr}`)); });
  });
  return {
    url,
    stderr: () => stderr,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// The operator API as the tests use it (admin token unless told otherwise).
export function client(base, token = ADMIN) {
  return async function call(method, p, body) {
    const res = await fetch(base + p, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* left null */ }
    return { status: res.status, json, text };
  };
}

export async function must(promise, status, what) {
  const r = await promise;
  if (r.status !== status) throw new Error(`${what}: expected ${status}, got ${r.status} ${r.text}`);
  return r.json;
}

// Registers channel `content` version v (one target; the bytes do not matter here).
export async function release(api, v) {
  return must(api('POST', '/v1/releases', {
    channel: 'content', version: v,
    targets: [{ path: `content/${v}.bin`, length: 1024, sha256: 'ab'.repeat(32) }],
  }), 201, `register release ${v}`);
}

export async function startRollout(api, v, plan = fastPlan()) {
  return must(api('POST', '/v1/rollouts', { channel: 'content', version: v, plan_yaml: plan }), 201, `start rollout ${v}`);
}

// N devices of tenant acme, each checking in every periodMs and doing what it is
// told — except that a version in `bad` crashes it, as the 2024 content did: the
// device runs it (and says so at its check-ins) for a trial of trialMs while its
// service crash-loops, then its agent falls back to what it ran before by itself
// and reports `rolled_back`.
export class Fleet {
  constructor(base, n, periodMs = 200, trialMs = 600) {
    this.base = base;
    this.n = n;
    this.periodMs = periodMs;
    this.trialMs = trialMs;
    this.devices = [];
    this.bad = new Set();
    this.crashed = 0;
    this.errors = [];
    this.running = false;
  }

  async enroll(api) {
    await must(api('POST', '/v1/tenants', { id: 'acme', enrollment_key: ENROLL_KEY }), 201, 'create tenant');
    for (let i = 0; i < this.n; i++) {
      const id = `dev-${String(i).padStart(2, '0')}`;
      const r = await fetch(`${this.base}/v1/enroll`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ tenant: 'acme', enrollment_key: ENROLL_KEY, device_id: id, tags: { class: i % 4 ? 'laptop' : 'desktop' } }),
      });
      if (r.status !== 201) throw new Error(`enroll ${id}: ${r.status} ${await r.text()}`);
      const { device_token: token } = await r.json();
      this.devices.push({ id, token, version: '0.9', seq: 0, trial: null });
    }
  }

  async post(dev, p, body) {
    const r = await fetch(this.base + p, {
      method: 'POST',
      headers: { Authorization: `Bearer ${dev.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = await r.json();
    if (r.status !== 200) throw new Error(`${dev.id} ${p}: ${r.status} ${JSON.stringify(json)}`);
    return json;
  }

  async checkin(dev) {
    if (dev.trial && Date.now() >= dev.trial.until) {
      // The trial failed: back to last-known-good, and the server is told why.
      this.crashed++;
      await this.post(dev, '/v1/events', {
        events: [{ seq: ++dev.seq, kind: 'rolled_back', channel: 'content', version: dev.version, signal: 11, message: 'content interpreter read field 21' }],
      });
      dev.version = dev.trial.previous;
      dev.trial = null;
    }
    const a = await this.post(dev, '/v1/checkin', { versions: { content: dev.version }, health: { uptime_s: 1 } });
    const c = a.channels.content;
    if (!c || c.action === 'keep' || !c.desired) return;
    if (this.bad.has(c.desired)) {
      dev.trial = { previous: dev.version, until: Date.now() + this.trialMs };
    } else {
      dev.trial = null;
    }
    dev.version = c.desired;
  }

  start() {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const t0 = Date.now();
        await Promise.all(this.devices.map((d) => this.checkin(d).catch((e) => {
          if (this.running) this.errors.push(e.message);
        })));
        await sleep(Math.max(0, this.periodMs - (Date.now() - t0)));
      }
    })();
  }

  async stop() {
    this.running = false;
    await this.loop;
  }
}

// Headless Chromium with a profile of its own, 1280×800.
export async function launchBrowser() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tranche-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.TRANCHE_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 20000,
  });
  const page = context.pages()[0] || (await context.newPage());
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
  // API refusals (a 404 for an unknown device, a 403) are part of the tests and
  // Chromium logs each as "Failed to load resource"; a missing page file is not.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400 && !new URL(r.url()).pathname.startsWith('/v1/')) consoleErrors.push(`${r.status()} ${r.url()}`);
  });
  return {
    context,
    page,
    consoleErrors,
    async stop() {
      await context.close().catch(() => {});
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}
