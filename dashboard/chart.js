// Line charts as inline SVG: no library. A chart is redrawn whole on every sample
// (a few hundred points), which is cheaper than it sounds and keeps this small.
const SVG = 'http://www.w3.org/2000/svg';

function el(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmtTick(v) {
  if (Math.abs(v) >= 1000) return `${Math.round(v / 100) / 10}k`;
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(Math.abs(v) < 1 ? 2 : 1);
}

// lineChart({series: [{name, color, points: [[tMs, value|null], ...]}],
//            now, windowMs, yMin, yMax, threshold: {value, label}})
// returns an <svg>. x is time (the last windowMs up to now); gaps (null) break a line.
export function lineChart({ series, now, windowMs, yMin = 0, yMax, threshold }) {
  const W = 360;
  const H = 150;
  const left = 34;
  const right = 8;
  const top = 8;
  const bottom = 18;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img' });
  let hi = yMax;
  if (hi === undefined) {
    hi = 0;
    for (const s of series) for (const [, v] of s.points) if (v !== null && v > hi) hi = v;
    if (threshold && threshold.value > hi) hi = threshold.value;
    hi = niceMax(hi * 1.05);
  }
  let lo = yMin;
  for (const s of series) for (const [, v] of s.points) if (v !== null && v < lo) lo = v;
  if (lo < 0) lo = -niceMax(-lo);
  const t0 = now - windowMs;
  const x = (t) => left + ((t - t0) / windowMs) * (W - left - right);
  const y = (v) => top + (1 - (v - lo) / (hi - lo || 1)) * (H - top - bottom);

  for (const v of [lo, lo + (hi - lo) / 2, hi]) {
    svg.append(el('line', { class: 'grid-line', x1: left, x2: W - right, y1: y(v), y2: y(v) }));
    svg.append(el('text', { x: left - 4, y: y(v) + 3, 'text-anchor': 'end' }, fmtTick(v)));
  }
  const secs = Math.round(windowMs / 1000);
  svg.append(el('text', { x: left, y: H - 4 }, `−${secs >= 120 ? `${Math.round(secs / 60)} min` : `${secs} s`}`));
  svg.append(el('text', { x: W - right, y: H - 4, 'text-anchor': 'end' }, 'now'));

  if (threshold && threshold.value !== null && threshold.value !== undefined) {
    svg.append(el('line', {
      class: 'threshold-line', x1: left, x2: W - right, y1: y(threshold.value), y2: y(threshold.value),
    }));
    if (threshold.label) {
      svg.append(el('text', { x: W - right - 2, y: y(threshold.value) - 3, 'text-anchor': 'end' }, threshold.label));
    }
  }
  for (const s of series) {
    let d = '';
    let pen = false;
    for (const [t, v] of s.points) {
      if (t < t0 || v === null || v === undefined || Number.isNaN(v)) { pen = false; continue; }
      d += `${pen ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    }
    if (d) svg.append(el('path', { class: 'series', d, stroke: s.color, 'data-series': s.name }));
  }
  return svg;
}
