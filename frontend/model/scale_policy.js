// Scale policy: which bound the shared colour scale of the heatmap panels
// takes, and the legend's note saying so. Pure: the frames and stats it
// weighs are passed in; tested by node --test.
//
// - "per frame": the frames on screen now.
// - Exact tensors, values and Δ modes: fixed over every step, from the
//   full-resolution stats (min/max, p01/p99, init or update |Δ|max), so a
//   colour means the same at every step; exploded steps left out.
// - Downsampled tensors: block means span far less than the full-resolution
//   min/max (the mean of a 5×5 block of independent weights spreads about 5
//   times less than they do), so their scale comes from the frames
//   themselves, at a few steps spread over the run (a high percentile of
//   |block mean|).
// - What the stats cannot give (A − B, clipped magnitudes): the frames at
//   the last step.

import {sampleSteps} from './steps.js';
import {formatValue} from './numbers.js';
import {boundFields, frameBound, percentile, robustBound, stepBounds} from './scale.js';

/** Steps whose frames set the scale of a downsampled tensor. */
export const REDUCED_SAMPLES = 8;
/** Percentile of |block mean| that sets it (a few cells may saturate). */
export const REDUCED_PERCENTILE = 99.9;

/** Where the bound comes from: 'frame' (now), 'stats' or 'frames' (reference steps). */
export function scaleSource(settings, downsampled) {
  const s = settings;
  if (s.scaleMode === 'frame') return 'frame';
  if (downsampled) return 'frames';
  const magnitude = s.colorKind === 'magnitude';
  const fromStats = (s.mode === 'values' && !(s.clip && magnitude)) ||
      ((s.mode === 'delta_first' || s.mode === 'delta_prev') && !s.clip);
  return fromStats ? 'stats' : 'frames';
}

/** The steps whose frames a 'frames' scale reads. */
export function referenceSteps(steps, downsampled) {
  if (!steps.length) return [];
  return downsampled ? sampleSteps(steps, REDUCED_SAMPLES) : [steps[steps.length - 1]];
}

/** The bound one reference frame gives. */
export function referenceFrameBound(data, {clip = false, magnitude = false, downsampled = false} = {}) {
  if (!downsampled || clip) return frameBound(data, {clip, magnitude});
  const mags = new Float64Array(data.length);
  for (let i = 0; i < data.length; i++) mags[i] = Math.abs(data[i]);
  return percentile(mags, REDUCED_PERCENTILE) ?? 0;
}

/** Per-step bounds of reference frames pooled into one: {bound, saturated, peak, steps}. */
export function poolBounds(bounds) {
  return {...robustBound(bounds), steps: bounds.length};
}

/**
 * The shared colour scale's bound and the legend's note.
 * @param {{settings, frames: Array<Float32Array>, series: Array<Object>,
 *   reference: ?{bound, saturated, peak, steps}, downsampled: boolean}} args
 *   frames: the data of the frames on screen; series: the tag's stats
 *   series of every run shown; reference: poolBounds of the reference frames
 *   (needed when scaleSource is 'frames').
 * @return {{bound: number, note: string}}
 */
export function scaleFor({settings, frames, series = [], reference = null, downsampled = false}) {
  const s = settings;
  const magnitude = s.colorKind === 'magnitude';
  const clipNote = s.clip ? ', clipped to 1–99%' : '';
  const blocks = downsampled ? ' of block means' : '';
  const perFrame = () => Math.max(0, ...frames.map((f) => frameBound(f, {clip: s.clip, magnitude})));
  const source = scaleSource(s, downsampled);
  if (source === 'frame') return {bound: perFrame(), note: `per frame${blocks}${clipNote}`};
  let robust;
  let note;
  if (source === 'stats') {
    // One pool of per-step bounds over every run shown: one shared scale,
    // that an exploding run does not wash out (see scale.robustBound).
    const fields = boundFields(s.mode, s.clip);
    robust = robustBound(series.flatMap((x) => stepBounds(x, fields)));
    note = s.mode === 'values' ?
      (s.clip ? 'fixed over all steps (1st/99th percentiles)' : 'fixed over all steps (min/max)') :
      `fixed over all steps (max ${s.mode === 'delta_first' ? 'init' : 'update'} |Δ|)`;
  } else {
    robust = reference || {bound: 0, saturated: 0, peak: 0, steps: 0};
    if (downsampled) {
      const n = robust.steps;
      const what = s.clip ? '1st/99th percentiles' : `${REDUCED_PERCENTILE}th percentile of |x|`;
      note = `fixed over ${n} sampled step${n === 1 ? '' : 's'} (${what} of block means)`;
    } else {
      note = `fixed: from the last step's frame${clipNote}`;
    }
  }
  if (robust.saturated) {
    const n = robust.saturated;
    note += `; ${n} exploded step${n > 1 ? 's' : ''} (|x| up to ${formatValue(robust.peak)}) left out: ` +
        `${n > 1 ? 'they saturate' : 'it saturates'}`;
  }
  if (!(robust.bound > 0)) return {bound: perFrame(), note: `per frame (no fixed range yet)${blocks}${clipNote}`};
  return {bound: robust.bound, note};
}
