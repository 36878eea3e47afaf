// Snapshot steps: lookups in ascending step lists, unions of several runs'
// steps and evenly spread samples of them. Pure: tested by node --test.

/** Index of the largest step ≤ `step` in an ascending list, or −1. */
export function indexAtOrBefore(steps, step) {
  let lo = 0;
  let hi = steps.length - 1;
  let best = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (steps[mid] <= step) {
      best = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return best;
}

/** A stat of one tag's series at the snapshot at or before `step` (null if none). */
export function statAt(series, stat, step) {
  if (!series || !Array.isArray(series.steps)) return null;
  const i = indexAtOrBefore(series.steps, step);
  if (i < 0) return null;
  const v = (series[stat] || [])[i];
  return v === undefined ? null : v;
}

/** Sorted union of several ascending step lists. */
export function unionSteps(lists) {
  const set = new Set();
  for (const l of lists) for (const s of l || []) set.add(s);
  return [...set].sort((a, b) => a - b);
}

/**
 * At most `n` steps spread evenly over an ascending list, the first and the
 * last always among them (all of them when there are no more than `n`).
 */
export function sampleSteps(steps, n) {
  if (steps.length <= n) return steps.slice();
  if (n <= 1) return n === 1 ? [steps[steps.length - 1]] : [];
  const out = [];
  for (let k = 0; k < n; k++) {
    const s = steps[Math.round(k * (steps.length - 1) / (n - 1))];
    if (out[out.length - 1] !== s) out.push(s);
  }
  return out;
}

/**
 * The note for selected runs whose frames TensorBoard serves from memory
 * (`frame_steps: 'kept'` in /runs: --logdir_spec, a data server, a remote
 * logdir), or '' when every selected run shows every step.
 */
export function keptFramesNote(runs, selected) {
  const kept = runs.filter((r) => r.frame_steps === 'kept' && selected.includes(r.run)).map((r) => r.run);
  if (!kept.length) return '';
  return `${kept.length === 1 ? `Run ${kept[0]}` : `Runs ${kept.join(', ')}`}: only the frames TensorBoard ` +
      'kept in memory can be shown (it is not reading a local --logdir here); the stats cover every step.';
}
