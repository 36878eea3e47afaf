// Colour scales for stats over many tensors and steps (the dynamics map,
// the units map): log for quantities that span decades, linear otherwise;
// the ends at the 1st and 99th percentiles, so that one exploded value does
// not wash every other cell out. Cells that have no value on the scale get
// named colours. Pure: tested by node --test.

import {packRGB, SPECIAL_COLORS} from './colors.js';
import {formatTicks, formatValue} from './numbers.js';
import {CLIP_PERCENT, MARK_DECADES, niceTicks, scaleTickMarks, tickMarks} from './scale.js';

// What a cell holds (a Uint8Array per map, beside its values).
export const CELL = {VALUE: 0, UNDEFINED: 1, ZERO: 2, NONFINITE: 3, ABSENT: 4};

// Colours of the cells with no value on the scale. NaN/Inf is the heatmap's
// NaN colour; "no value" cells are left transparent (the card shows through).
export const CELL_COLORS = {
  [CELL.ZERO]: {css: '#9e9e9e', rgb: [158, 158, 158], label: '0 (no change)'},
  [CELL.NONFINITE]: {css: SPECIAL_COLORS.nan.css, rgb: SPECIAL_COLORS.nan.rgb, label: 'NaN/Inf in the tensor'},
};

// Percentiles are taken over an evenly strided sample of at most this many
// values: exact for small maps, within a sample's error for large ones, and
// linear in time (a 320 × 1000 map is not sorted on every redraw).
export const SAMPLE_LIMIT = 16384;

/** A value in the space a scale is linear in: log10 for a log scale. */
export function scaleSpace(v, kind) {
  return kind === 'log' ? Math.log10(v) : v;
}

/** A strided sample of the VALUE cells, sorted. */
function sampleOf(values, kinds) {
  let n = 0;
  for (let i = 0; i < kinds.length; i++) if (kinds[i] === CELL.VALUE) n++;
  const stride = Math.max(1, Math.ceil(n / SAMPLE_LIMIT));
  const out = new Float64Array(Math.ceil(n / stride));
  let k = 0;
  let j = 0;
  for (let i = 0; i < kinds.length; i++) {
    if (kinds[i] !== CELL.VALUE) continue;
    if (j++ % stride === 0) out[k++] = values[i];
  }
  return out.subarray(0, k).sort();
}

function quantile(sorted, p) {
  const pos = (p / 100) * (sorted.length - 1);
  const i = Math.floor(pos);
  return i + 1 < sorted.length ? sorted[i] + (pos - i) * (sorted[i + 1] - sorted[i]) : sorted[i];
}

/**
 * A scale for the VALUE cells, whose `values` are in scale space (log10 of
 * the value for a log scale: cells are stored that way so painting needs no
 * logarithms): {kind: 'log'|'linear', lo, hi, a, b, clipped}. lo, hi: the
 * ends in the stat's units; a, b: the same in scale space; clipped: the
 * ends are percentiles and values beyond them saturate. null when no cell
 * has a value. A linear scale of non-negative values starts at 0.
 */
export function statDomain(values, kinds, kind, clip = CLIP_PERCENT) {
  const sample = sampleOf(values, kinds);
  if (sample.length === 0) return null;
  let a = quantile(sample, clip);
  let b = quantile(sample, 100 - clip);
  const clipped = clip > 0 && (a > sample[0] || b < sample[sample.length - 1]);
  if (kind === 'log') {
    if (b <= a) [a, b] = [a - 0.5, b + 0.5];
    return {kind, lo: Math.pow(10, a), hi: Math.pow(10, b), a, b, clipped};
  }
  if (sample[0] >= 0) a = 0;
  if (b <= a) b = a + (Math.abs(a) || 1);
  return {kind, lo: a, hi: b, a, b, clipped};
}

/** Position of a value (in the stat's units) on a scale, in [0, 1] (clamped). */
export function statPosition(domain, v) {
  const t = (scaleSpace(v, domain.kind) - domain.a) / (domain.b - domain.a);
  return t < 0 ? 0 : t > 1 ? 1 : t;
}

/**
 * Colours cells into `out` (packed RGBA, as colors.colorFrame): VALUE cells
 * (values in scale space) through the colormap `lut` (256 packed pixels),
 * ZERO and NONFINITE cells in their own colours, the others transparent.
 */
export function paintCells(values, kinds, domain, lut, out) {
  const zero = packRGB(...CELL_COLORS[CELL.ZERO].rgb);
  const bad = packRGB(...CELL_COLORS[CELL.NONFINITE].rgb);
  const a = domain ? domain.a : 0;
  const k = domain ? 256 / (domain.b - domain.a) : 0;
  for (let i = 0; i < kinds.length; i++) {
    const kind = kinds[i];
    if (kind === CELL.VALUE && domain) {
      const t = (values[i] - a) * k;
      out[i] = lut[t <= 0 ? 0 : t >= 255 ? 255 : t | 0];
    } else if (kind === CELL.ZERO) {
      out[i] = zero;
    } else if (kind === CELL.NONFINITE) {
      out[i] = bad;
    } else {
      out[i] = 0;
    }
  }
}

/**
 * Tick values for a scale: powers of ten on a log scale spanning two
 * decades or more (1, 2, 5 × 10^k within a narrower one), round values on
 * a linear one.
 */
export function statTicks(domain) {
  if (domain.kind !== 'log') return niceTicks(domain.lo, domain.hi, 5);
  const {a, b} = domain;
  const out = [];
  const mantissas = b - a >= 2 ? [1] : b - a >= 0.7 ? [1, 2, 5] : [1, 1.5, 2, 3, 5, 7];
  for (let e = Math.floor(a); e <= Math.ceil(b); e++) {
    for (const m of mantissas) {
      const v = Number((m * Math.pow(10, e)).toPrecision(6));
      if (v >= domain.lo * (1 - 1e-9) && v <= domain.hi * (1 + 1e-9)) out.push(v);
    }
  }
  if (out.length > 7) {
    const every = Math.ceil(out.length / 6);
    return out.filter((_, i) => i % every === 0);
  }
  return out;
}

/** The legend's ticks of a stat scale: [{label, at}], `at` along the bar from 0 to 1. */
export function statTickMarks(domain, format = formatValue) {
  const values = statTicks(domain);
  return tickMarks(values, formatTicks(values, format), (v) => statPosition(domain, v));
}

/** A log scale from lo to hi (> 0) as statDomain gives it; a single value gets a decade around it. */
export function logDomain(lo, hi) {
  let a = Math.log10(lo);
  let b = Math.log10(hi);
  if (!(b > a)) [a, b] = [a - 0.5, b + 0.5];
  return {kind: 'log', lo: Math.pow(10, a), hi: Math.pow(10, b), a, b, clipped: false};
}

/**
 * A log range over the positive finite `values` (up to `limit`: exploded
 * values are left out, as on a linear chart), widened to take in `mark`
 * when it lies at most MARK_DECADES below them (or inside them).
 * @return {?{domain, markShown: boolean, zeros: number}} null when no value
 *   is positive; zeros: values ≤ 0 (drawn at the bottom).
 */
export function logRange(values, {limit = Infinity, mark = null} = {}) {
  let lo = Infinity;
  let hi = -Infinity;
  let zeros = 0;
  for (const v of values) {
    if (v === null || !Number.isFinite(v)) continue;
    if (v <= 0) zeros++;
    else if (v <= limit) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  if (!(hi > 0)) return null;
  const markShown = mark !== null && mark > 0 && mark <= hi && Math.log10(lo / mark) <= MARK_DECADES;
  if (markShown) lo = Math.min(lo, mark);
  if (mark !== null && mark > hi && Math.log10(mark / hi) <= MARK_DECADES) {
    // Every value under ε: the mark above them is what matters.
    return {domain: logDomain(lo, mark), markShown: true, zeros};
  }
  return {domain: logDomain(lo, hi), markShown, zeros};
}

/**
 * The legend's ticks of a heatmap colour scale (scale.js): round values on
 * a linear one, powers of ten on a log one; with `mark` ({value, label})
 * inside a log scale's range, a tick for it too (flagged `mark`).
 */
export function colourScaleMarks(scale, mark = null) {
  if (!scale.log) return scaleTickMarks(scale);
  const domain = logDomain(scale.lo, scale.hi);
  const marks = statTickMarks(domain);
  if (mark && mark.value >= domain.lo && mark.value <= domain.hi) {
    marks.push({label: mark.label, at: statPosition(domain, mark.value), mark: true});
  }
  return marks;
}
