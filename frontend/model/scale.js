// Colour scales: fixed across steps (from the stats the server sends) or per
// frame, with optional 1%/99% percentile clipping; legend ticks.
// Pure: no DOM, tested by node --test.
//
// A scale is {lo, hi, magnitude}. Signed scales are symmetric around 0
// (diverging colormaps centre on 0); magnitude scales map |x| from 0.

import {formatTicks} from './numbers.js';

export const CLIP_PERCENT = 1;

/** Finite entries of an array (a copy). */
function finite(values) {
  const out = [];
  for (const v of values) if (v !== null && Number.isFinite(v)) out.push(v);
  return out;
}

/**
 * The p-th percentile (0..100) of the finite entries, linear interpolation
 * between closest ranks (numpy's default); null when there are none.
 */
export function percentile(values, p) {
  const xs = Float64Array.from(finite(values)).sort();
  if (xs.length === 0) return null;
  const pos = (p / 100) * (xs.length - 1);
  const i = Math.floor(pos);
  const frac = pos - i;
  return i + 1 < xs.length ? xs[i] + frac * (xs[i + 1] - xs[i]) : xs[i];
}

/** Largest |x| over finite entries; 0 when there are none. */
export function absMax(values) {
  let m = 0;
  for (const v of values) {
    if (v === null || !Number.isFinite(v)) continue;
    const a = v < 0 ? -v : v;
    if (a > m) m = a;
  }
  return m;
}

/** A scale reaching `bound` (≥ 0): [−bound, bound], or [0, bound] for magnitudes. */
export function makeScale(bound, magnitude) {
  const b = Number.isFinite(bound) && bound > 0 ? bound : 0;
  return {lo: magnitude ? 0 : -b, hi: b, magnitude: !!magnitude};
}

// A reference (Adam's ε) this many decades or fewer below the smallest value
// is taken into a log scale; farther below, it would squeeze the values into
// a sliver (the charts then say it lies far below).
export const MARK_DECADES = 3;

// A log colour scale reaches at most this many decades below its top.
export const LOG_DECADES = 6;
// |x| sampled (evenly strided) for a log scale's bottom: enough for a 1st percentile.
const LOG_SAMPLE = 16384;

/**
 * A log colour scale of |x| up to `bound`: {lo, hi, magnitude, log}. Its
 * bottom is the 1st percentile of the positive |x| of the frames shown,
 * between LOG_DECADES below the top and a tenth of it (gradients and √v̂
 * span decades within a tensor; a linear scale shows only the largest),
 * lowered to `mark` (Adam's ε) when that lies at most MARK_DECADES below.
 */
export function makeLogScale(bound, frames, mark = null) {
  const hi = Number.isFinite(bound) && bound > 0 ? bound : 1;
  const mags = [];
  for (const data of frames) {
    const stride = Math.max(1, Math.ceil(data.length * frames.length / LOG_SAMPLE));
    for (let i = 0; i < data.length; i += stride) {
      const a = Math.abs(data[i]);
      if (a > 0 && a < Infinity) mags.push(a);
    }
  }
  const p = percentile(mags, CLIP_PERCENT) ?? hi / 10;
  let lo = Math.min(hi / 10, Math.max(hi * Math.pow(10, -LOG_DECADES), p));
  if (mark > 0 && mark < lo && Math.log10(lo / mark) <= MARK_DECADES) lo = mark;
  return {lo, hi, magnitude: true, log: true};
}

/** The bound of one frame: its |x| max, or with clipping its 1%/99% percentile. */
export function frameBound(data, {clip = false, magnitude = false} = {}) {
  if (!clip) return absMax(data);
  if (magnitude) {
    const mags = [];
    for (const v of data) if (Number.isFinite(v)) mags.push(Math.abs(v));
    return percentile(mags, 100 - CLIP_PERCENT) ?? 0;
  }
  return Math.max(Math.abs(percentile(data, CLIP_PERCENT) ?? 0),
      Math.abs(percentile(data, 100 - CLIP_PERCENT) ?? 0));
}

// A step whose bound is this many times the typical (median) step's is an
// explosion (a learning rate too high): it saturates instead of washing
// every other step, and every other run, out to the colour of 0.
export const OUTLIER_FACTOR = 100;

/** The largest |x| at each step over some stat fields (steps with none left out). */
export function stepBounds(series, fields) {
  const out = [];
  const n = (series && series.steps) ? series.steps.length : 0;
  for (let i = 0; i < n; i++) {
    let m = null;
    for (const f of fields) {
      const v = ((series[f] || [])[i]);
      if (v !== null && v !== undefined && Number.isFinite(v)) m = Math.max(m ?? 0, Math.abs(v));
    }
    if (m !== null) out.push(m);
  }
  return out;
}

/**
 * A bound over per-step bounds (of one or more runs) that ignores
 * explosions: steps above OUTLIER_FACTOR × the median positive step bound
 * (the lower median: a bound that occurred). Exports use the same rule
 * (render.robust_limit); both pass tests/fixtures/shared_rules.json.
 * @return {{bound: number, saturated: number, peak: number}} saturated: how
 *   many steps were left out, peak: the largest of them.
 */
export function robustBound(bounds) {
  const positive = Float64Array.from(bounds.filter((b) => b > 0)).sort();
  if (positive.length === 0) return {bound: 0, saturated: 0, peak: 0};
  const median = positive[Math.floor((positive.length - 1) / 2)];
  const limit = median * OUTLIER_FACTOR;
  let bound = 0;
  let saturated = 0;
  let peak = 0;
  for (const b of positive) {
    if (b > limit) {
      saturated += 1;
      peak = Math.max(peak, b);
    } else {
      bound = Math.max(bound, b);
    }
  }
  return {bound, saturated, peak};
}

/** The stat fields a fixed scale of a mode is taken from. */
export function boundFields(mode, clip = false) {
  if (mode === 'delta_first') return ['init_absmax'];
  if (mode === 'delta_prev') return ['update_absmax'];
  return clip ? ['p01', 'p99'] : ['min', 'max'];
}

/**
 * The bound of a tag's values over every step, from its stats series
 * ({min: [...], max: [...], p01: [...], p99: [...]}): so a frame's colours
 * mean the same at every step. Clipping uses p01/p99 (the server's 1%/99%).
 * Exploded steps are left out (see robustBound).
 */
export function valuesBound(series, {clip = false} = {}) {
  return robustBound(stepBounds(series, boundFields('values', clip))).bound;
}

/** Nice round numbers for a step between ticks (1, 2, 2.5, 5 × 10^k). */
function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * p;
}

/** About `count` round tick values within [lo, hi] (inclusive). */
export function niceTicks(lo, hi, count = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) return [lo];
  const step = niceStep((hi - lo) / Math.max(1, count - 1));
  const first = Math.ceil(lo / step - 1e-9);
  const last = Math.floor(hi / step + 1e-9);
  const ticks = [];
  for (let i = first; i <= last; i++) {
    // Multiplying an integer keeps 0.1-ish steps free of 0.30000000000000004.
    const t = Number((i * step).toPrecision(12));
    ticks.push(Object.is(t, -0) ? 0 : t);
  }
  return ticks;
}

/** Ticks along a legend's bar: [{label, at}], `at` = position(value) from 0 to 1. */
export function tickMarks(values, labels, position) {
  return values.map((v, k) => ({label: labels[k], at: position(v)}));
}

/** The legend's ticks of a scale {lo, hi}: [{label, at}] (a scale of one value: its tick in the middle). */
export function scaleTickMarks(scale, count = 5) {
  const span = scale.hi - scale.lo;
  const values = niceTicks(scale.lo, scale.hi, count);
  return tickMarks(values, formatTicks(values), (v) => (span > 0 ? (v - scale.lo) / span : 0.5));
}
