import test from 'node:test';
import assert from 'node:assert/strict';
import {framesFor, NothingToShow, panelFrame} from '../../frontend/model/modes.js';

// Two runs of one 1 × 2 tensor; frame values encode (run, step).
const frames = {a: {0: [1, 2], 10: [3, 5], 20: [6, 9]}, b: {0: [0, 1], 10: [1, 1], 20: [2, 2]}};
const tensor = (steps, shape = [2]) => ({tag: 't', shape, steps});
const runData = new Map([
  ['a', {errors: {}, tensors: new Map([['t', tensor([0, 10, 20])]])}],
  ['b', {errors: {}, tensors: new Map([['t', tensor([0, 10, 20])]])}],
  ['c', {errors: {}, tensors: new Map([['t', tensor([5], [3])]])}],
  ['bad', {errors: {tags: '/tags: boom (HTTP 500)'}, tensors: new Map()}],
]);
const requested = [];
const getFrame = async (run, tag, step) => {
  requested.push([run, step]);
  return {rows: 1, cols: 2, step, data: Float32Array.from(frames[run][step])};
};
const show = (mode, runs, step) => panelFrame({mode, tag: 't', runData, getFrame}, runs, step);

test('values show the snapshot at or before the step', async () => {
  const r = await show('values', ['a'], 15);
  assert.deepEqual([...r.frame.data], [3, 5]);
  assert.equal(r.stepText, 'step 10');
});

test('Δ modes subtract the first or the previous snapshot', async () => {
  const first = await show('delta_first', ['a'], 20);
  assert.deepEqual([...first.frame.data], [5, 7]);
  assert.equal(first.stepText, 'step 20 − step 0');
  assert.deepEqual(first.parts.map((p) => p.label), ['step 20', 'step 0']);
  const prev = await show('delta_prev', ['a'], 20);
  assert.deepEqual([...prev.frame.data], [3, 4]);
  assert.equal(prev.valueLabel, 'Δ =');
});

test('A − B subtracts run B at the same step', async () => {
  const r = await show('diff', ['a', 'b'], 10);
  assert.deepEqual([...r.frame.data], [2, 4]);
  assert.equal(r.stepText, 'step 10');
  assert.equal(r.valueLabel, 'A − B =');
});

test('nothing to show is a note, a failed load an error', async () => {
  await assert.rejects(show('delta_prev', ['a'], 0), (e) => e instanceof NothingToShow && /first snapshot/.test(e.message));
  await assert.rejects(show('values', ['a'], -1), (e) => e instanceof NothingToShow && /at or before step -1/.test(e.message));
  await assert.rejects(show('values', ['nope'], 0), (e) => e instanceof NothingToShow && /loading/.test(e.message));
  await assert.rejects(show('diff', ['a', 'c'], 10), (e) => e instanceof NothingToShow && /shape \[2\] in a but \[3\] in c/.test(e.message));
  await assert.rejects(show('values', ['bad'], 0), (e) => !(e instanceof NothingToShow) && /boom/.test(e.message));
});

test('the frames a mode reads at a step (for prefetching)', () => {
  const steps = [0, 10, 20];
  assert.deepEqual(framesFor('values', steps, 15), [10]);
  assert.deepEqual(framesFor('delta_prev', steps, 20), [20, 10]);
  assert.deepEqual(framesFor('delta_first', steps, 20), [20, 0]);
  assert.deepEqual(framesFor('delta_prev', steps, 0), [0]);
  assert.deepEqual(framesFor('values', steps, -5), []);
});
