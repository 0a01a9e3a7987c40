// The dashboard in real headless Chromium against a real tranche-server and 40
// simulated devices checking in every 200 ms over HTTP.
//
//   node dashboard.test.mjs PATH/TO/tranche-server SCENARIO
//
// SCENARIO is one of
//   progress  the token form; a good rollout progresses on the page (the canary's
//             bar fills, the stage moves on, the rollout completes); the fleet
//             panel and the device view ("why") answer; the audit log fills
//   halt      a bad release (devices report rolled_back for it) halts in its
//             first ring and the page says so, with the gate's verdict, the
//             statistics in one sentence and the failed devices with their
//             reasons; a reload keeps the charts' history (the server's)
//   pause     the pause button pauses a running rollout (checked through the
//             API); an operator's page offers no abort or rollback (admin
//             actions); a viewer's token shows no buttons
//
// Environment: TRANCHE_DASHBOARD_DIR (default: the repo's dashboard/),
// TRANCHE_BROWSER_SCREENSHOTS (default: ./browser-screenshots). A failing
// scenario leaves SCENARIO-failure.png there; `progress` always leaves
// dashboard.png (the healthy dashboard), `halt` leaves halt.png.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  ADMIN, Fleet, client, eventually, fastPlan, launchBrowser, must, release, startRollout, startServer,
} from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const [serverBin, scenario] = process.argv.slice(2);
if (!serverBin || !scenario) {
  console.error('usage: node dashboard.test.mjs PATH/TO/tranche-server progress|halt|pause');
  process.exit(2);
}
const dashboardDir = process.env.TRANCHE_DASHBOARD_DIR ||
  (process.env.TRANCHE_SOURCE_DIR && path.join(process.env.TRANCHE_SOURCE_DIR, 'dashboard')) ||
  path.resolve(here, '../../dashboard');
const shots = path.resolve(process.env.TRANCHE_BROWSER_SCREENSHOTS || 'browser-screenshots');
fs.mkdirSync(shots, { recursive: true });

// One scenario: its own server, fleet and browser, all stopped whatever happens.
async function withWorld(name, body) {
  const server = await startServer({ serverBin, dashboardDir });
  const api = client(server.url);
  const fleet = new Fleet(server.url, 40, 200);
  let browser = null;
  try {
    await fleet.enroll(api);
    fleet.start();
    browser = await launchBrowser();
    await body({ server, api, fleet, browser, page: browser.page });
    assert.deepEqual(browser.consoleErrors, [], 'the page logged no errors');
    assert.deepEqual(fleet.errors.slice(0, 5), [], 'every simulated check-in was answered');
  } catch (e) {
    if (browser) {
      const file = path.join(shots, `${name}-failure.png`);
      await browser.page.screenshot({ path: file, fullPage: true }).catch(() => {});
      console.error(`screenshot of the failure: ${file}`);
      console.error(`page errors: ${JSON.stringify(browser.consoleErrors)}`);
    }
    console.error(`tranche-server stderr (tail):\n${server.stderr().slice(-3000)}`);
    throw e;
  } finally {
    await fleet.stop();
    if (browser) await browser.stop();
    await server.stop();
  }
}

// Opens the dashboard with the token already kept, as a returning operator has it.
async function openWithToken(page, url, token) {
  await page.context().addInitScript((t) => localStorage.setItem('tranche.token', t), token);
  await page.goto(url);
  await page.locator('#main').waitFor({ state: 'visible', timeout: 10000 });
}

const stageState = (page, i) => page.locator(`[data-testid=stage][data-stage-index="${i}"]`).getAttribute('data-stage-state');

const scenarios = {
  async progress() {
    await withWorld('progress', async ({ server, api, page }) => {
      // The first visit asks for the token.
      await page.goto(server.url);
      await page.locator('#login').waitFor({ state: 'visible', timeout: 10000 });
      await page.fill('#token', ADMIN);
      await page.click('#login-form button[type=submit]');
      await page.locator('#main').waitFor({ state: 'visible' });
      await eventually(async () => (await page.textContent('#live')).includes('polling every 1 s'), 5000, 'the live line');

      await release(api, '1.0');
      const r = await startRollout(api, '1.0', fastPlan('3s'));
      await page.locator(`[data-rollout="${r.id}"]`).waitFor({ timeout: 5000 });
      assert.equal(await stageState(page, 0), 'current');

      // The canary's bar moves while it fills, then the stage moves on and the
      // rollout completes: each seen on the page.
      const seen = new Set();
      await eventually(async () => {
        const p = Number(await page.locator('[data-testid=stage][data-stage-index="0"]').getAttribute('data-progress'));
        if (await stageState(page, 0) === 'current') seen.add(p);
        return (await stageState(page, 0)) === 'done';
      }, 30000, 'the canary stage to be done on the page');
      assert.ok([...seen].some((p) => p > 0), `the canary bar moved (progress seen: ${[...seen]})`);
      await eventually(async () => (await page.locator(`[data-rollout="${r.id}"] [data-testid=state]`).textContent()) === 'completed',
        30000, 'the rollout to show completed');
      const onPage = await page.locator('[data-testid=stage][data-stage-index="1"]').getAttribute('data-progress');
      assert.equal(onPage, '100');

      // Fleet: every device, all on 1.0 once the fleet has caught up.
      await eventually(async () => (await page.textContent('[data-testid=fleet-devices]')) === '40', 5000, 'the fleet count');
      await eventually(async () => (await page.locator('[data-testid=fleet-channel-content] [data-version="1.0"]').textContent()) === '1.0: 40',
        10000, 'the fleet by version to show 40 devices on 1.0');

      // The device view: why dev-03 has 1.0.
      await page.fill('#device-id', 'dev-03');
      await page.fill('#device-version', '1.0');
      await page.click('#device-form button[type=submit]');
      const why = await page.locator('[data-testid=device-why]').textContent({ timeout: 5000 });
      assert.match(why, /1\.0/);
      await page.locator('[data-testid=device] tr[data-channel=content]').waitFor();

      // The audit log shows the engine's promotion.
      await page.locator('[data-testid=audit] tr[data-action="rollout.promote"]').first().waitFor({ timeout: 5000 });
      // An unknown device is answered in words.
      await page.fill('#device-id', 'no-such-device');
      await page.click('#device-form button[type=submit]');
      assert.match(await page.locator('[data-testid=device-error]').textContent({ timeout: 5000 }), /404 not_found/);
      await page.fill('#device-id', 'dev-03');
      await page.click('#device-form button[type=submit]');
      await page.locator('[data-testid=device-why]').waitFor();

      await page.waitForTimeout(1500);  // a few more samples on the charts
      await page.screenshot({ path: path.join(shots, 'dashboard.png'), fullPage: true });
    });
  },

  async halt() {
    await withWorld('halt', async ({ server, api, fleet, page }) => {
      await openWithToken(page, server.url, ADMIN);
      await release(api, '1.0');
      const good = await startRollout(api, '1.0', fastPlan('1s'));
      await eventually(async () => (await api('GET', `/v1/rollouts/${good.id}`)).json.status.state === 'completed',
        30000, 'the good release to complete');

      await release(api, '2.0');
      fleet.bad.add('2.0');
      // The canary bakes long enough for its first crash reports to arrive.
      const bad = await startRollout(api, '2.0', fastPlan('5s'));
      await page.locator('[data-testid=halt-banner]').waitFor({ timeout: 30000 });
      const banner = await page.textContent('[data-testid=halt-banner]');
      assert.match(banner, /Halted by the health gate/);
      const state = await page.locator(`[data-rollout="${bad.id}"] [data-testid=state]`).textContent();
      assert.ok(['halted', 'rolling back', 'rolled back'].includes(state), `state on the page: ${state}`);
      assert.equal(await page.textContent('[data-testid=current-stage]'), 'stage 1 of 2: canary', 'halted in the first ring');
      const verdict = await page.textContent('[data-testid=verdict]');
      assert.notEqual(verdict, 'Verdict: no verdict yet');

      // The failed devices, where people look: the banner, the gate table and the
      // failures line show one count (gate.exposed_failures), read from one render.
      const shown = await page.evaluate(() => {
        const q = (s) => document.querySelector(s);
        return {
          banner: q('[data-testid=halt-banner]').dataset.failures,
          bannerText: q('[data-testid=halt-failures]').textContent,
          table: q('[data-testid=gate-exposed] td:nth-child(2)').textContent,
          failures: q('[data-testid=failures]').dataset.failures,
          failuresText: q('[data-testid=failures]').textContent,
          limit: q('[data-testid=failure-limit]').textContent,
          crossed: q('[data-testid=failure-limit]').dataset.crossed,
          lr: Number(q('[data-testid=lr-bar]').dataset.fraction),
        };
      });
      const failed = Number(shown.failures);
      assert.ok(failed > 0, `failures on the page after the halt: ${JSON.stringify(shown)}`);
      assert.equal(shown.banner, shown.failures, 'the banner counts the failures the gate panel shows');
      assert.equal(shown.table, shown.failures, 'the gate table counts the failures the failures line shows');
      assert.match(shown.bannerText, new RegExp(`^${failed} of \\d+ exposed devices? failed$`));
      assert.match(shown.failuresText, new RegExp(`^${failed} of \\d+ exposed devices? failed \\(.*fell back \\d+`));
      assert.match(shown.limit, /^halt above 50% once 3 are exposed; max_failures off$/, 'the default limit, in words');
      // The halt came from the failure limit or from the sequential test.
      if (shown.crossed !== 'true') assert.equal(shown.lr, 1, 'the evidence bar reached the halt threshold');

      const r = (await api('GET', `/v1/rollouts/${bad.id}`)).json;
      assert.ok(['halted', 'rolling_back', 'rolled_back'].includes(r.status.state), r.status.state);
      assert.equal(r.stopped, true, 'the API says stopped');
      assert.equal(r.gate.limit_crossed, shown.crossed === 'true', 'the page and the API agree on the limit');
      // Late reports may still arrive: the page catches up with the API's count.
      await eventually(async () => {
        const apiFailed = (await api('GET', `/v1/rollouts/${bad.id}`)).json.gate.exposed_failures;
        return Number(await page.locator('[data-testid=failures]').getAttribute('data-failures')) === apiFailed;
      }, 10000, 'the failures on the page to equal the API\'s exposed_failures');
      assert.ok(fleet.crashed > 0 && fleet.crashed < 20, `crashed devices: ${fleet.crashed}`);
      await page.locator('[data-testid=audit] tr[data-action="rollout.halt"]').first().waitFor({ timeout: 5000 });

      // The statistics in plain words, and each failed device with its reason.
      await eventually(async () => /→ stopped$/.test(await page.textContent('[data-testid=plain-words]')),
        5000, 'the plain-words line to say stopped');
      assert.match(await page.textContent('[data-testid=plain-words]'),
        /^\d+ of \d+ devices? that got 2\.0 failed; \d+ of \d+ on 1\.0 did → stopped$/);
      await page.locator('[data-testid=failed-devices] tr[data-device]').first().waitFor({ timeout: 10000 });
      const rows = await page.locator('[data-testid=failed-devices] tr[data-device]').allTextContents();
      assert.ok(rows.length > 0 && rows.every((t) => /field 21|signal 11/.test(t)),
        `every failed device with its reason: ${JSON.stringify(rows)}`);
      await page.screenshot({ path: path.join(shots, 'halt.png'), fullPage: true });

      // A reload keeps the charts: their history is the server's, from before it
      // (the server samples every 5 s, and once more when a rollout ends).
      await eventually(async () => Number(await page.locator('#charts').getAttribute('data-samples')) >= 1,
        15000, 'a history sample');
      await page.waitForTimeout(1000);
      const before = Number(await page.locator('#charts').getAttribute('data-samples'));
      const reloadedAt = Date.now();
      await page.reload();
      await page.locator('#main').waitFor({ state: 'visible', timeout: 10000 });
      await eventually(async () => Number(await page.locator('#charts').getAttribute('data-samples')) >= before,
        5000, `the ${before} history samples back after the reload`);
      const first = Number(await page.locator('#charts').getAttribute('data-first'));
      assert.ok(first < reloadedAt - 500, `the charts start before the reload (first ${first}, reload ${reloadedAt})`);
    });
  },

  async pause() {
    await withWorld('pause', async ({ server, api, page }) => {
      const ops = await must(api('POST', '/v1/tokens', { name: 'ops', role: 'operator' }), 201, 'operator token');
      await openWithToken(page, server.url, ops.token);
      await release(api, '1.0');
      // A canary that bakes for an hour: the rollout stays running.
      const r = await startRollout(api, '1.0', fastPlan('1h'));
      const pause = page.locator('#actions button[data-action=pause]');
      await pause.waitFor({ timeout: 5000 });
      await page.fill('#action-reason', 'looking at crash reports');
      await pause.click();
      await eventually(async () => (await api('GET', `/v1/rollouts/${r.id}`)).json.status.state === 'paused',
        5000, 'the API to say paused');
      const detail = (await api('GET', `/v1/rollouts/${r.id}`)).json;
      assert.equal(detail.transitions.at(-1).reason, 'looking at crash reports');
      await page.locator('#actions button[data-action=resume]').waitFor({ timeout: 5000 });
      assert.match(await page.textContent('[data-testid=action-result]'), /pause: now paused/);

      // Abort and rollback need an admin: an operator's page does not offer them
      // (the rollout accepts both while paused).
      assert.deepEqual(detail.allowed_actions.filter((a) => a === 'abort' || a === 'rollback').sort(), ['abort', 'rollback']);
      assert.equal(await page.locator('#actions button[data-action=rollback]').count(), 0, 'no rollback for an operator');
      assert.equal(await page.locator('#actions button[data-action=abort]').count(), 0, 'no abort for an operator');

      // A viewer's token: the same rollout, no buttons, and a line that says why.
      const viewer = await must(api('POST', '/v1/tokens', { name: 'watcher', role: 'viewer' }), 201, 'viewer token');
      await page.click('#forget-token');
      await page.fill('#token', viewer.token);
      await page.click('#login-form button[type=submit]');
      await page.locator('[data-testid=no-actions]').waitFor({ timeout: 5000 });
      assert.equal(await page.locator('#actions button').count(), 0, 'a viewer sees no action buttons');
      assert.match(await page.textContent('[data-testid=no-actions]'), /role viewer\) cannot act/);
    });
  },
};

if (!scenarios[scenario]) {
  console.error(`unknown scenario '${scenario}' (progress, halt or pause)`);
  process.exit(2);
}
test(`dashboard ${scenario}`, { timeout: 90000 }, scenarios[scenario]);
