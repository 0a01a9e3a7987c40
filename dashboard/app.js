// tranche dashboard. Everything comes from the server's JSON API (docs/api.md) with
// an operator bearer token, asked for once and kept in localStorage. Live updates
// are polling: every POLL_MS the page reads /v1/rollouts, /v1/fleet, the new audit
// entries, the selected rollout, its new history samples (the server keeps each
// rollout's evidence and counts every 5 s, so a reload keeps the charts) and its
// failed devices. The buttons follow the token's role (GET /v1/me). No build step,
// no library.
import { lineChart } from './chart.js';

const POLL_MS = 1000;
const HISTORY_MS = 60 * 60 * 1000;  // what the charts can show (the server keeps an hour)
const AUDIT_KEEP = 500;             // entries kept in the page
const TOKEN_KEY = 'tranche.token';
// Only for a server whose rollouts lack "final", "live" and "stopped" (core's one
// definition of each, sent with every rollout): the same sets, by state.
const FALLBACK_FINAL = new Set(['completed', 'rolled_back', 'aborted']);
const FALLBACK_LIVE = new Set(['running', 'paused', 'halted', 'rolling_back']);
const FALLBACK_STOPPED = new Set(['halted', 'rolling_back', 'rolled_back']);
const ADMIN_ACTIONS = new Set(['abort', 'rollback']);
const ROLE_RANK = { viewer: 0, operator: 1, admin: 2 };
const PALETTE = ['#2f6fde', '#2e8b57', '#c98a00', '#8a4fd1', '#cf3a32', '#0f8b8d', '#b05c1e', '#656d76'];

const state = {
  token: localStorage.getItem(TOKEN_KEY) || '',
  rollouts: [],
  selected: null,          // rollout id picked by the user, or null: follow the newest live one
  detail: null,            // GET /v1/rollouts/{id} of the shown rollout
  fleet: null,
  audit: [],
  auditSeq: 0,
  history: new Map(),      // rollout id -> [{t, log_lr, thr, er, cr, ef, cf, on, target}], from the server
  me: null,                // GET /v1/me: {name, role}
  failed: null,            // GET /v1/rollouts/{id}/devices?state=failed of the shown rollout
  fleetHistory: [],        // [{t, devices, online}]
  device: null,            // {id, version, answer | error}
  actionResult: null,      // {rollout, ok, text}
  actionsKey: '',
  lastOk: 0,
  polling: false,
};

// --- small helpers -------------------------------------------------------------------

// h('div', {class: 'x', onclick: f}, child, 'text', ...): DOM without innerHTML, so
// reasons and ids from the API are never read as markup.
function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'style' && typeof v === 'object') Object.assign(e.style, v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const $ = (id) => document.getElementById(id);
function replace(target, ...children) { target.replaceChildren(...children.flat(Infinity).filter((c) => c)); }

function fmtTime(ms) {
  if (!ms) return 'never';
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}
function fmtAgo(ms) {
  if (!ms) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}
function fmtDuration(s) {
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${Math.round(s * 10) / 10} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 360) / 10} h`;
}
function fmtNum(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  return Number(v).toFixed(digits);
}
// Failures per device-hour of exposure; null without exposure.
function rate(failures, deviceSeconds) {
  return deviceSeconds > 0 ? failures / (deviceSeconds / 3600) : null;
}
// Completed, rolled back or aborted: nothing leaves the state.
function isFinal(r) {
  return typeof r.final === 'boolean' ? r.final : FALLBACK_FINAL.has(r.status.state);
}
// Running, paused, halted or rolling back: the engine watches it.
function isLive(r) {
  return typeof r.live === 'boolean' ? r.live : FALLBACK_LIVE.has(r.status.state);
}
// Halted, rolling back or rolled back: the gate (or an operator) stopped it.
function isStopped(r) {
  return typeof r.stopped === 'boolean' ? r.stopped : FALLBACK_STOPPED.has(r.status.state);
}
// 0.5 -> "50%", 0.125 -> "12.5%".
function fmtShare(share) {
  return `${Math.round(share * 10000) / 100}%`;
}
function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}
// The failed exposed devices in words: "3 of 10 exposed devices failed". The count
// is gate.exposed_failures, the same the gate table and the halt banner show.
function failedText(g) {
  const of = typeof g.exposed_devices === 'number' ? ` of ${plural(g.exposed_devices, 'exposed device', 'exposed devices')}` : ' exposed';
  return `${g.exposed_failures}${of} failed`;
}
// "fell back 3, crashed 1": failures by cause, those that happened.
function causesText(g) {
  return Object.entries(g.exposed_failures_by_cause || {})
    .filter(([, n]) => n > 0).map(([c, n]) => `${c.replace('_', ' ')} ${n}`).join(', ');
}
// The stage's absolute failure limits in words: "halt above 50% once 3 are exposed;
// max_failures off".
function limitText(l) {
  const share = l.max_failure_rate >= 1 ? 'no share limit (max_failure_rate 100%)'
    : `halt above ${fmtShare(l.max_failure_rate)} once ${l.min_exposed} ${l.min_exposed === 1 ? 'is' : 'are'} exposed`;
  return share + (typeof l.max_failures === 'number'
    ? `, or above ${plural(l.max_failures, 'failed device', 'failed devices')}` : '; max_failures off');
}
function compareVersions(a, b) {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] || 0) - (pb[i] || 0);
    if (d) return d;
  }
  return 0;
}

// --- the API ---------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  // In words, for people: the API's code and message, and what to do about a role.
  describe() {
    let text = `${this.status ? `${this.status} ` : ''}${this.code}: ${this.message}`;
    if (this.status === 403) text += ' — use a token with that role (change token, top right).';
    if (this.status === 409 && this.code === 'invalid_transition') text += ' — the rollout moved on; the buttons now show what it accepts.';
    return text;
  }
}

async function api(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: {
        Authorization: `Bearer ${state.token}`,
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `cannot reach the server (${e.message})`);
  }
  let json = null;
  try { json = await res.json(); } catch { /* not JSON: described below */ }
  if (!res.ok) {
    const err = json && json.error;
    throw new ApiError(res.status, err ? err.code : 'http', err ? err.message : `HTTP ${res.status}`);
  }
  return json;
}

// --- token -----------------------------------------------------------------------------

function showLogin(message) {
  $('main').hidden = true;
  $('login').hidden = false;
  $('forget-token').hidden = true;
  $('login-error').textContent = message || '';
  $('token').focus();
}

function showMain() {
  $('login').hidden = true;
  $('main').hidden = false;
  $('forget-token').hidden = false;
}

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  state.token = $('token').value.trim();
  state.me = null;  // another token, perhaps another role
  state.actionsKey = '';
  localStorage.setItem(TOKEN_KEY, state.token);
  $('token').value = '';
  showMain();
  poll();
});

$('forget-token').addEventListener('click', () => {
  localStorage.removeItem(TOKEN_KEY);
  state.token = '';
  state.me = null;
  showLogin('');
});

// --- polling -----------------------------------------------------------------------------

function sortRollouts(list) {
  return [...list].sort((a, b) => {
    const la = isLive(a) ? 1 : 0;
    const lb = isLive(b) ? 1 : 0;
    return lb - la || b.created_at - a.created_at;
  });
}

function shownRolloutId() {
  if (state.selected && state.rollouts.some((r) => r.id === state.selected)) return state.selected;
  return state.rollouts.length ? state.rollouts[0].id : null;
}

async function fetchAudit() {
  // Pages of up to 1000 from the last seen seq; the first poll reads the whole log.
  for (let i = 0; i < 50; i++) {
    const page = await api('GET', `/v1/audit?after=${state.auditSeq}&limit=1000`);
    for (const e of page.entries) {
      state.audit.push(e);
      state.auditSeq = Math.max(state.auditSeq, e.seq);
    }
    if (page.entries.length < 1000) break;
  }
  if (state.audit.length > AUDIT_KEEP) state.audit.splice(0, state.audit.length - AUDIT_KEEP);
}

// The server's samples of rollout `id` newer than those the page has (all of
// them at the first call: a reload shows the whole recent course).
async function fetchHistory(id) {
  const hist = state.history.get(id) || [];
  const since = hist.length ? hist[hist.length - 1].t : 0;
  const page = await api('GET', `/v1/rollouts/${encodeURIComponent(id)}/history?since=${since}`);
  for (const s of page.samples) {
    hist.push({
      t: s.at,
      log_lr: s.log_lr,
      thr: s.halt_threshold,
      ef: s.exposed_failures,
      cf: s.control_failures,
      er: rate(s.exposed_failures, s.exposed_device_s),
      cr: rate(s.control_failures, s.control_device_s),
      on: s.on_version,
      target: s.target_devices,
    });
  }
  while (hist.length && hist[0].t < Date.now() - HISTORY_MS) hist.shift();
  state.history.set(id, hist);
}

function sample(now) {
  if (state.fleet) {
    state.fleetHistory.push({ t: now, devices: state.fleet.devices, online: state.fleet.online });
    while (state.fleetHistory.length && state.fleetHistory[0].t < now - HISTORY_MS) state.fleetHistory.shift();
  }
}

async function poll() {
  if (state.polling || !state.token) return;
  state.polling = true;
  try {
    const [list, fleet] = await Promise.all([api('GET', '/v1/rollouts'), api('GET', '/v1/fleet'), fetchAudit()]);
    state.rollouts = sortRollouts(list.rollouts);
    state.fleet = fleet;
    if (!state.me) state.me = await api('GET', '/v1/me');
    const id = shownRolloutId();
    state.detail = id ? await api('GET', `/v1/rollouts/${encodeURIComponent(id)}`) : null;
    if (id) {
      await fetchHistory(id);
      state.failed = state.detail.gate.exposed_failures > 0
        ? await api('GET', `/v1/rollouts/${encodeURIComponent(id)}/devices?state=failed&limit=50`) : null;
    }
    if (state.device) await refreshDevice();
    state.lastOk = Date.now();
    sample(state.lastOk);
    render();
    setLive(true, `live · polling every ${POLL_MS / 1000} s · updated ${fmtTime(state.lastOk)}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      showLogin(`The server refused the token: ${e.message}`);
      state.polling = false;
      return;  // no polling until a new token is given
    }
    setLive(false, `${e instanceof ApiError ? e.describe() : e.message} — retrying every ${POLL_MS / 1000} s` +
      (state.lastOk ? ` (last update ${fmtTime(state.lastOk)})` : ''));
    console.error(e);
  }
  state.polling = false;
  schedule();
}

// One chain of polls: a poll started by a click replaces the one that was due.
let timer = null;
function schedule() {
  clearTimeout(timer);
  timer = setTimeout(poll, POLL_MS);
}

function setLive(ok, text) {
  const live = $('live');
  live.textContent = text;
  live.classList.toggle('stale', !ok);
}

// --- rendering -----------------------------------------------------------------------------

function render() {
  renderRolloutList();
  renderDetail();
  renderGate();
  renderCharts();
  renderFleet();
  renderDevice();
  renderAudit();
}

function badge(s) {
  return h('span', { class: `badge ${s}`, 'data-testid': 'state' }, s.replace('_', ' '));
}

function renderRolloutList() {
  const shown = shownRolloutId();
  if (!state.rollouts.length) {
    replace($('rollout-list'), h('p', { class: 'muted' }, 'No rollouts yet. Start one with ',
      h('code', {}, 'tranche rollout start -f plan.yaml --channel C --version V'), '.'));
    return;
  }
  replace($('rollout-list'), state.rollouts.map((r) => h('button', {
    type: 'button',
    class: `rollout-row${r.id === shown ? ' selected' : ''}`,
    'data-rollout': r.id,
    onclick: () => { state.selected = r.id; state.actionResult = null; poll(); render(); },
  },
  h('div', { class: 'head' },
    h('span', { class: 'id' }, r.id), badge(r.status.state),
    h('span', { class: 'muted small' }, `${r.channel} ${r.previous ? `${r.previous} → ` : ''}${r.version}`)),
  h('div', { class: 'mini-stages', title: r.stages.map((s) => `${s.name}: ${s.state}`).join(', ') },
    r.stages.map((s) => h('span', { class: `${s.state} ${r.status.state}` }))),
  r.gate && r.gate.exposed_failures > 0 ? h('div', { class: 'row-failures small', 'data-testid': 'row-failures' },
    failedText(r.gate), causesText(r.gate) ? ` (${causesText(r.gate)})` : '') : null)));
}

// How far a stage has got: devices running the version against the stage's target
// (targets are cumulative: a later stage includes the earlier ones' devices).
function stageProgress(r, s, onVersion) {
  if (s.state === 'done') return 1;
  if (s.state === 'waiting') return 0;
  if (r.status.state === 'completed') return 1;
  return s.target_devices > 0 ? Math.min(1, onVersion / s.target_devices) : 0;
}

function renderDetail() {
  const r = state.detail;
  $('detail-title').textContent = r ? r.id : '';
  if (!r) {
    replace($('rollout-detail'), h('p', { class: 'muted' }, 'No rollout to show.'));
    state.actionsKey = '';
    return;
  }
  const onVersion = ((state.fleet && state.fleet.by_version[r.channel]) || {})[r.version] || 0;
  const st = r.status.state;
  const halted = isStopped(r) || r.gate.halted;
  const now = Date.now();
  const stages = r.stages.map((s, i) => {
    const p = stageProgress(r, s, onVersion);
    let sub = `${s.percent} of the fleet (${s.effective_share} after min_devices) · ${s.target_devices} devices` +
      ` · bake ${fmtDuration(s.bake_s)}${s.admits_critical ? ' · admits critical devices' : ''}`;
    if (s.state === 'current' && !isFinal(r)) {
      const baked = (now - r.status.stage_started_at) / 1000;
      // Devices outside the stage may run it already: never "18 of 15".
      const inFleet = onVersion > s.target_devices ? ` (${onVersion} in the fleet)` : '';
      sub = `${Math.min(onVersion, s.target_devices)} of ${s.target_devices} devices run ${r.version}${inFleet} · baked ${fmtDuration(Math.max(0, baked))} of ` +
        `${fmtDuration(s.bake_s)}${s.admits_critical ? ' · admits critical devices' : ''}`;
    }
    return h('div', {
      class: `stage ${s.state} ${s.state === 'current' ? st : ''}`,
      'data-testid': 'stage', 'data-stage-index': i, 'data-stage-state': s.state,
      'data-progress': Math.round(p * 100),
    },
    h('div', { class: 'label' }, h('span', { class: 'name' }, `${i + 1}. ${s.name}`),
      h('span', { class: 'muted' }, s.state === 'current' ? `current · ${Math.round(p * 100)}%` : s.state)),
    h('div', { class: 'bar', role: 'progressbar', 'aria-valuenow': Math.round(p * 100), 'aria-valuemin': 0, 'aria-valuemax': 100 },
      h('div', { class: 'fill', style: { width: `${(p * 100).toFixed(1)}%` } })),
    h('div', { class: 'sub' }, sub));
  });

  const transitions = (r.transitions || []).slice(-6).reverse();
  const content = [
    h('div', { class: 'muted small' },
      `${r.channel}: ${r.previous || '(nothing)'} → ${r.version} · plan “${r.plan}” · on failure: ${r.on_failure} · generation ${r.generation}`),
    h('div', { style: { margin: '6px 0' } }, badge(st), ' ',
      h('span', { 'data-testid': 'current-stage' },
        `stage ${Math.min(r.status.stage + 1, r.stages.length)} of ${r.stages.length}: ${r.stages[Math.min(r.status.stage, r.stages.length - 1)].name}`)),
    halted ? h('div', { class: 'reason halt', 'data-testid': 'halt-banner', 'data-failures': r.gate.exposed_failures },
      `Halted by the health gate${st === 'rolling_back' ? ' — rolling back' : st === 'rolled_back' ? ' — rolled back' : ''}: `,
      h('span', { 'data-testid': 'halt-failures' }, failedText(r.gate)),
      ` — ${r.gate.verdict_reason || r.status.reason}`) : null,
    h('div', { class: 'reason', 'data-testid': 'status-reason' }, `Why: ${r.status.reason || '—'}`),
    stages,
    h('div', { id: 'actions-slot' }),
    h('h3', {}, 'Recent transitions'),
    transitions.length ? h('table', {},
      h('tbody', {}, transitions.map((t) => h('tr', {},
        h('td', { class: 'when' }, fmtTime(t.at)),
        h('td', {}, `${t.event}: ${t.from} → ${t.to}`),
        h('td', {}, t.reason))))) : h('p', { class: 'muted' }, 'None yet.'),
  ];
  // The action bar keeps its reason text and result across polls: rebuilt only when
  // the rollout or what it accepts changes.
  const key = `${r.id}|${r.allowed_actions.join(',')}|${state.me ? state.me.role : ''}`;
  let actions = $('actions');
  if (!actions || state.actionsKey !== key) {
    actions = renderActions(r);
    state.actionsKey = key;
  }
  replace($('rollout-detail'), content);
  $('actions-slot').replaceWith(actions);
  renderActionResult();
}

// What the token's role may do (docs/api.md, Roles): operator pauses, resumes and
// promotes; admin also aborts and rolls back. A viewer sees no buttons.
function roleMay(action) {
  const rank = ROLE_RANK[(state.me && state.me.role) || 'viewer'];
  return rank >= (ADMIN_ACTIONS.has(action) ? ROLE_RANK.admin : ROLE_RANK.operator);
}

function renderActions(r) {
  const reason = h('input', { id: 'action-reason', placeholder: 'reason (recorded in the audit log)', maxlength: 512 });
  const buttons = ['pause', 'resume', 'promote', 'abort', 'rollback'].map((a) => {
    if (!r.allowed_actions.includes(a) || !roleMay(a)) return null;
    const b = h('button', {
      type: 'button', 'data-action': a,
      class: ADMIN_ACTIONS.has(a) ? 'danger' : '',
      title: ADMIN_ACTIONS.has(a) ? `${a} needs role admin` : `${a} needs role operator`,
    }, a);
    b.addEventListener('click', () => {
      // Abort and rollback act on the whole fleet: a second click confirms.
      if (ADMIN_ACTIONS.has(a) && !b.classList.contains('confirm')) {
        b.classList.add('confirm');
        b.textContent = `confirm ${a}`;
        setTimeout(() => { b.classList.remove('confirm'); b.textContent = a; }, 4000);
        return;
      }
      act(r.id, a, reason.value.trim(), b);
    });
    return b;
  });
  const role = (state.me && state.me.role) || 'viewer';
  const none = r.allowed_actions.some((a) => !roleMay(a))
    ? `Your token (${state.me ? `“${state.me.name}”, ` : ''}role ${role}) cannot act on rollouts here.`
    : 'No operator action applies in this state.';
  return h('div', { id: 'actions', 'data-role': role },
    h('div', { class: 'actions' },
      buttons.some((b) => b) ? buttons : h('span', { class: 'muted small', 'data-testid': 'no-actions' }, none),
      buttons.some((b) => b) ? reason : null),
    h('div', { id: 'action-result', class: 'action-result', role: 'status', 'data-testid': 'action-result' }));
}

function renderActionResult() {
  const el = $('action-result');
  if (!el) return;
  const res = state.actionResult;
  const mine = res && state.detail && res.rollout === state.detail.id;
  el.textContent = mine ? res.text : '';
  el.className = `action-result ${mine ? (res.ok ? 'ok' : 'error') : ''}`;
}

async function act(id, action, reason, button) {
  button.disabled = true;
  try {
    const r = await api('POST', `/v1/rollouts/${encodeURIComponent(id)}/${action}`, reason ? { reason } : {});
    state.actionResult = { rollout: id, ok: true, text: `${action}: now ${r.status.state} (generation ${r.generation})` };
  } catch (e) {
    state.actionResult = { rollout: id, ok: false, text: `${action} refused — ${e instanceof ApiError ? e.describe() : e.message}` };
  }
  button.disabled = false;
  renderActionResult();
  poll();
}

function renderGate() {
  const r = state.detail;
  if (!r) { replace($('gate'), h('p', { class: 'muted' }, 'No rollout to show.')); return; }
  const g = r.gate;
  const er = rate(g.exposed_failures, g.exposed_device_s);
  const cr = rate(g.control_failures, g.control_device_s);
  const evaluated = g.log_lr !== null && g.halt_threshold !== null;
  const frac = evaluated && g.halt_threshold > 0 ? Math.max(0, Math.min(1, g.log_lr / g.halt_threshold)) : 0;
  const cls = !evaluated ? '' : g.log_lr >= g.halt_threshold ? 'over' : frac >= 0.6 ? 'near' : '';
  const causes = causesText(g);
  // In the last stage a running (or paused) rollout completes once enough of the
  // online devices it targets run the release healthily.
  const lastStage = r.status.stage + 1 >= r.stages.length;
  const completion = g.completion && lastStage && isLive(r) && !isStopped(r) ? g.completion : null;
  replace($('gate'),
    h('p', { class: `plain ${g.halted || isStopped(r) ? 'halt' : ''}`, 'data-testid': 'plain-words' }, plainWords(r)),
    h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'group'), h('th', { class: 'num' }, 'failures'),
        h('th', { class: 'num' }, 'device-hours'), h('th', { class: 'num' }, 'per device-hour'))),
      h('tbody', {},
        h('tr', { 'data-testid': 'gate-exposed' }, h('td', { title: 'devices offered the release (or seen running it)' }, 'exposed'),
          h('td', { class: 'num' }, g.exposed_failures), h('td', { class: 'num' }, fmtNum(g.exposed_device_s / 3600, 3)),
          h('td', { class: 'num' }, fmtNum(er))),
        h('tr', { 'data-testid': 'gate-control' }, h('td', { title: 'devices not offered the release' }, 'control'),
          h('td', { class: 'num' }, g.control_failures), h('td', { class: 'num' }, fmtNum(g.control_device_s / 3600, 3)),
          h('td', { class: 'num' }, fmtNum(cr))))),
    h('p', { class: 'muted small' },
      'Failures: failed devices, each counted once — install failures, crashes, fallbacks on the device and silence (heartbeats missed without a goodbye).'),
    h('table', { class: 'failures' }, h('tbody', {},
      h('tr', {}, h('th', {}, 'failed devices'),
        h('td', {
          class: g.exposed_failures > 0 ? 'error' : '', 'data-testid': 'failures',
          'data-failures': g.exposed_failures, 'data-exposed': g.exposed_devices,
        }, failedText(g), causes ? ` (${causes})` : '')),
      g.limits ? h('tr', {}, h('th', {}, g.limit_crossed ? 'failure limit — crossed' : 'failure limit'),
        h('td', {
          class: g.limit_crossed ? 'error' : '', 'data-testid': 'failure-limit',
          'data-crossed': g.limit_crossed ? 'true' : 'false',
        }, limitText(g.limits))) : null,
      h('tr', {}, h('th', {}, 'acknowledged devices'),
        h('td', { 'data-testid': 'acknowledged' },
          typeof g.min_acknowledged === 'number' ? `${g.acknowledged} of ${g.min_acknowledged} needed` : g.acknowledged)),
      completion ? h('tr', {}, h('th', {}, 'completion'),
        h('td', { 'data-testid': 'completion' },
          `completes when ${completion.share} of ${plural(completion.target, 'online device', 'online devices')} ` +
          `run it: ${completion.running} ${completion.running === 1 ? 'does' : 'do'}`)) : null)),
    h('h3', {}, 'Evidence of harm against the halt threshold'),
    h('div', { class: `lr-bar ${cls}`, 'data-testid': 'lr-bar', 'data-fraction': frac.toFixed(3) },
      h('div', { class: 'fill', style: { width: `${(frac * 100).toFixed(1)}%` } }), h('div', { class: 'threshold' })),
    h('div', { class: 'lr-legend' },
      h('span', {}, evaluated ? `log LR ${fmtNum(g.log_lr)}` : 'not evaluated yet'),
      h('span', {}, evaluated ? `halt at ${fmtNum(g.halt_threshold)} = log(1/α)` : '')),
    h('table', { style: { marginTop: '8px' } }, h('tbody', {},
      h('tr', {}, h('th', {}, 'rate ratio, estimate'), h('td', { class: 'num' },
        g.control_failures === 0 && g.exposed_failures > 0 ? 'no control failures to compare' : fmtNum(g.ratio_estimate))),
      h('tr', {}, h('th', {}, 'rate ratio, upper bound'), h('td', { class: 'num' }, g.ratio_upper === null ? 'unbounded' : fmtNum(g.ratio_upper))),
      h('tr', {}, h('th', {}, 'halted'), h('td', { class: 'num' }, g.halted ? 'yes' : 'no')))),
    h('div', { class: `reason ${g.halted ? 'halt' : ''}`, 'data-testid': 'verdict' },
      `Verdict: ${g.verdict_reason || 'no verdict yet'}`),
    failedDevicesTable(r));
}

// The statistics in one sentence: "5 of 5 devices that got 2.0 failed; 0 of 25
// on 1.0 did → stopped". The others are the fleet's devices not exposed (the
// control group); their failures are the gate's control failures.
function plainWords(r) {
  const g = r.gate;
  const others = Math.max(0, ((state.fleet && state.fleet.devices) || 0) - g.exposed_devices);
  const outcome = isStopped(r) || g.halted ? 'stopped'
    : r.status.state === 'completed' ? 'completed'
      : r.status.state === 'paused' ? 'paused'
        : isFinal(r) ? r.status.state.replace('_', ' ') : 'still watching';
  return `${g.exposed_failures} of ${plural(g.exposed_devices, 'device', 'devices')} that got ${r.version} failed; ` +
    `${g.control_failures} of ${others} on ${r.previous || 'other versions'} did → ${outcome}`;
}

// Each failed device of the shown rollout with its reason (the crash signal, the
// install failure's message, silence), from GET /v1/rollouts/{id}/devices.
function failedDevicesTable(r) {
  const f = state.failed;
  if (!f || f.rollout !== r.id || !f.devices.length) return null;
  return h('div', { 'data-testid': 'failed-devices' },
    h('h3', {}, `Failed devices (${f.devices.length}${f.next ? '+' : ''})`),
    h('table', { class: 'failed-devices' },
      h('thead', {}, h('tr', {}, ['device', 'tenant', 'cause', 'reason', 'failed at'].map((t) => h('th', {}, t)))),
      h('tbody', {}, f.devices.map((d) => h('tr', { 'data-device': d.device, 'data-tenant': d.tenant },
        h('td', { class: 'mono' }, d.device), h('td', {}, d.tenant), h('td', {}, d.cause), h('td', {}, d.reason),
        h('td', { class: 'when' }, fmtTime(d.failed_at)))))));
}

function renderCharts() {
  const r = state.detail;
  const now = Date.now();
  const hist = (r && state.history.get(r.id)) || [];
  const first = Math.min(hist.length ? hist[0].t : now, state.fleetHistory.length ? state.fleetHistory[0].t : now);
  const windowMs = Math.min(HISTORY_MS, Math.max(30000, now - first));
  const pts = (f) => hist.map((s) => [s.t, f(s)]);
  const thr = hist.length ? hist[hist.length - 1].thr : null;
  // For tests and the curious: how much history the charts hold, from when.
  $('charts').dataset.samples = hist.length;
  $('charts').dataset.first = hist.length ? hist[0].t : '';
  const chart = (title, series, opts = {}) => h('div', { class: 'chart' },
    h('h3', {}, title),
    lineChart({ series, now, windowMs, ...opts }),
    h('div', { class: 'legend' }, series.map((s) => h('span', {}, h('i', { style: { background: s.color } }), s.name)),
      opts.threshold ? h('span', {}, h('i', { style: { background: '#cf3a32' } }), opts.threshold.label) : null));
  replace($('charts'), h('div', { class: 'chart-row' },
    chart('Gate: log likelihood ratio', [{ name: 'log LR', color: PALETTE[0], points: pts((s) => s.log_lr) }],
      { threshold: thr !== null ? { value: thr, label: 'halt threshold' } : undefined }),
    chart('Failures per device-hour', [
      { name: 'exposed', color: PALETTE[4], points: pts((s) => s.er) },
      { name: 'control', color: PALETTE[7], points: pts((s) => s.cr) }]),
    chart(r ? `Devices on ${r.version}` : 'Devices', [
      { name: r ? `run ${r.version}` : 'on version', color: PALETTE[1], points: pts((s) => s.on) },
      { name: 'stage target', color: PALETTE[0], points: pts((s) => s.target) },
      { name: 'online', color: PALETTE[7], points: state.fleetHistory.map((s) => [s.t, s.online]) }])));
}

function versionColors(versions) {
  const sorted = [...versions].sort(compareVersions);
  return new Map(sorted.map((v, i) => [v, PALETTE[i % PALETTE.length]]));
}

function renderFleet() {
  const f = state.fleet;
  if (!f) return;
  const channels = Object.keys(f.by_version).sort();
  const byVersion = channels.map((ch) => {
    const counts = f.by_version[ch];
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const colors = versionColors(Object.keys(counts));
    const versions = [...colors.keys()];
    return h('div', { 'data-testid': `fleet-channel-${ch}` },
      h('h3', {}, `channel ${ch}`),
      h('div', { class: 'stack' }, versions.map((v) => h('span', {
        title: `${v}: ${counts[v]}`, style: { width: `${(100 * counts[v]) / (total || 1)}%`, background: colors.get(v) },
      }))),
      h('div', { class: 'kv' }, versions.map((v) => h('span', { 'data-version': v },
        h('i', { style: { background: colors.get(v) } }), `${v}: ${counts[v]}`))));
  });
  const stages = Object.entries(f.by_stage).map(([id, counts]) => {
    const r = state.rollouts.find((x) => x.id === id);
    const order = r ? [...r.stages.map((s) => s.name), 'not yet'] : Object.keys(counts);
    return h('div', {},
      h('h3', {}, `by stage of ${id}`),
      h('table', {}, h('tbody', {}, order.filter((n) => n in counts).map((n) =>
        h('tr', {}, h('td', {}, n === 'not yet' ? 'not yet admitted' : `first admitted in ${n}`),
          h('td', { class: 'num' }, counts[n]))))));
  });
  replace($('fleet'),
    h('div', { class: 'totals' },
      h('div', {}, h('b', { 'data-testid': 'fleet-devices' }, f.devices), 'devices'),
      h('div', {}, h('b', { 'data-testid': 'fleet-online' }, f.online), 'online (3 min)'),
      h('div', {}, h('b', {}, Object.keys(f.by_tenant).length), 'tenants')),
    byVersion.length ? byVersion : h('p', { class: 'muted' }, 'No device has reported a version yet.'),
    stages,
    Object.keys(f.by_tenant).length ? h('div', {}, h('h3', {}, 'by tenant'),
      h('div', { class: 'kv' }, Object.entries(f.by_tenant).map(([t, n]) => h('span', {}, `${t}: ${n}`)))) : null);
}

// --- device view -----------------------------------------------------------------------------

$('device-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  state.device = { id: $('device-id').value.trim(), tenant: $('device-tenant').value.trim(), version: $('device-version').value.trim() };
  await refreshDevice();
  renderDevice();
});

async function refreshDevice() {
  const d = state.device;
  if (!d || !d.id) return;
  const params = [];
  if (d.tenant) params.push(`tenant=${encodeURIComponent(d.tenant)}`);
  if (d.version) params.push(`version=${encodeURIComponent(d.version)}`);
  const q = params.length ? `?${params.join('&')}` : '';
  try {
    d.answer = await api('GET', `/v1/devices/${encodeURIComponent(d.id)}${q}`);
    d.error = null;
  } catch (e) {
    if (e.status === 401) throw e;
    d.answer = null;
    d.error = e instanceof ApiError ? e.describe() : e.message;
  }
}

function renderDevice() {
  const d = state.device;
  if (!d) {
    replace($('device'), h('p', { class: 'muted' },
      'Give a device id (and a version): the answer says which rollout and stage it is in, and why it has, or has not, got that version.'));
    return;
  }
  if (d.error) { replace($('device'), h('p', { class: 'error', 'data-testid': 'device-error' }, d.error)); return; }
  const a = d.answer;
  if (!a) return;
  const failed = Object.entries(a.failed || {}).filter(([, v]) => v.length);
  replace($('device'),
    a.why ? h('div', { class: 'why', 'data-testid': 'device-why' }, a.why) : null,
    h('div', { class: 'muted small' },
      `tenant ${a.tenant} · tags ${Object.entries(a.tags).map(([k, v]) => `${k}=${v}`).join(', ') || 'none'} · ` +
      `last seen ${fmtAgo(a.last_seen)}${a.said_goodbye ? ' (said goodbye)' : ''} · enrolled ${fmtTime(a.enrolled_at)}`),
    failed.length ? h('div', { class: 'small error' }, `failed here (never offered again): ${failed.map(([c, v]) => `${c} ${v.join(', ')}`).join('; ')}`) : null,
    h('table', { style: { marginTop: '6px' } },
      h('thead', {}, h('tr', {}, ['channel', 'runs', 'should run', 'action', 'why'].map((t) => h('th', {}, t)))),
      h('tbody', {}, Object.entries(a.channels).map(([ch, c]) => h('tr', { 'data-channel': ch },
        h('td', {}, ch), h('td', {}, c.current || '—'), h('td', {}, c.desired || '(keep)'), h('td', {}, c.action),
        h('td', {}, h('span', {}, c.reason), h('br'), h('span', { class: 'muted mono' },
          `${c.code}${c.rollout ? ` · ${c.rollout}, stage ${c.stage}` : ''}`)))))));
}

// --- audit -------------------------------------------------------------------------------------

function renderAudit() {
  const rows = state.audit.slice(-100).reverse();
  if (!rows.length) { replace($('audit'), h('p', { class: 'muted' }, 'Nothing recorded yet.')); return; }
  const scroll = $('audit').querySelector('.audit-scroll');
  const top = scroll ? scroll.scrollTop : 0;
  replace($('audit'), h('div', { class: 'audit-scroll' }, h('table', {},
    h('thead', {}, h('tr', {}, ['#', 'time', 'actor', 'action', 'target', 'reason'].map((t) => h('th', {}, t)))),
    h('tbody', {}, rows.map((e) => h('tr', { 'data-seq': e.seq, 'data-action': e.action },
      h('td', { class: 'num muted' }, e.seq), h('td', { class: 'when' }, fmtTime(e.at)),
      h('td', { class: 'actor' }, e.actor), h('td', { class: 'mono' }, e.action), h('td', {}, e.target),
      h('td', {}, e.reason)))))));
  $('audit').querySelector('.audit-scroll').scrollTop = top;
}

// --- start ---------------------------------------------------------------------------------------

if (state.token) {
  showMain();
  render();
  poll();
} else {
  showLogin('');
}
