// Mode arithmetic: what one heatmap panel shows at a step in each mode
// (values, Δ from the first snapshot, Δ from the previous one, run A − run
// B), and which frames that takes. No DOM: frames come from `getFrame`
// (the frame cache in the panel, a table in the node tests).

import {subtractFrames} from './decode.js';
import {indexAtOrBefore} from './steps.js';

/**
 * Why a panel has nothing to draw that is not a failure ("run B has no
 * tensor dense/kernel", "step 0 is the first snapshot"): shown as a note,
 * not as an error.
 */
export class NothingToShow extends Error {}

/** The /tags entry of `tag` in a loaded run (runData: run → {tensors: Map, errors}). */
export function tensorOf(runData, run, tag) {
  const data = runData.get(run);
  if (!data) throw new NothingToShow(`run ${run} is loading`);
  if (data.errors.tags) throw new Error(data.errors.tags);
  const tensor = data.tensors.get(tag);
  if (!tensor) throw new NothingToShow(`run ${run} has no tensor ${tag}`);
  return tensor;
}

/** The snapshot of `tensor` at or before `step`: [index, step]. */
export function snapshotAt(run, tensor, step) {
  const i = indexAtOrBefore(tensor.steps, step);
  if (i < 0) throw new NothingToShow(`run ${run} has no snapshot of ${tensor.tag} at or before step ${step}`);
  return [i, tensor.steps[i]];
}

/**
 * The snapshot steps of one tensor that `mode` reads to show `step`: the
 * snapshot at or before it, and the one it is compared with (Δ modes).
 * Empty when there is none (for prefetching: errors surface when drawn).
 */
export function framesFor(mode, steps, step) {
  const i = indexAtOrBefore(steps, step);
  if (i < 0) return [];
  if (mode === 'delta_first') return i > 0 ? [steps[i], steps[0]] : [steps[i]];
  if (mode === 'delta_prev') return i > 0 ? [steps[i], steps[i - 1]] : [steps[i]];
  return [steps[i]];
}

/**
 * What one panel shows at `step`.
 * @param {{mode, tag, runData: Map, getFrame: function(run, tag, step): Promise, tagOf}} ctx
 *   tagOf(run): the tensor's tag in `run` (a torch run names a Keras `kernel`
 *   `weight`); `tag` in every run when absent.
 * @param {Array<string>} runs the panel's run, or runs A and B in `diff` mode.
 * @return {Promise<{frame, tensor, parts, stepText, valueLabel}>} parts: the
 *   frames a Δ is taken between, for the hover read-out.
 */
export async function panelFrame({mode, tag, runData, getFrame, tagOf = () => tag}, runs, step) {
  if (mode === 'diff') {
    const [a, b] = runs;
    const ta = tensorOf(runData, a, tagOf(a));
    const tb = tensorOf(runData, b, tagOf(b));
    if (String(ta.shape) !== String(tb.shape)) {
      throw new NothingToShow(`${tag} has shape [${ta.shape}] in ${a} but [${tb.shape}] in ${b}`);
    }
    const [, sa] = snapshotAt(a, ta, step);
    const [, sb] = snapshotAt(b, tb, step);
    const [fa, fb] = await Promise.all([getFrame(a, tagOf(a), sa), getFrame(b, tagOf(b), sb)]);
    return {frame: subtractFrames(fa, fb), tensor: ta, valueLabel: 'A − B =',
      parts: [{label: `A (step ${sa})`, frame: fa}, {label: `B (step ${sb})`, frame: fb}],
      stepText: sa === sb ? `step ${sa}` : `A step ${sa}, B step ${sb}`};
  }
  const run = runs[0];
  tag = tagOf(run);
  const tensor = tensorOf(runData, run, tag);
  const [i, s] = snapshotAt(run, tensor, step);
  if (mode === 'values') {
    return {frame: await getFrame(run, tag, s), tensor, parts: [], stepText: `step ${s}`};
  }
  const j = mode === 'delta_first' ? 0 : i - 1;
  if (j < 0) throw new NothingToShow(`step ${s} is the first snapshot: there is no previous one to compare with`);
  const base = tensor.steps[j];
  const [f, f0] = await Promise.all([getFrame(run, tag, s), getFrame(run, tag, base)]);
  return {frame: subtractFrames(f, f0), tensor, valueLabel: 'Δ =',
    parts: [{label: `step ${s}`, frame: f}, {label: `step ${base}`, frame: f0}],
    stepText: `step ${s} − step ${base}`};
}
