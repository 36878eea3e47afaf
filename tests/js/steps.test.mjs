import test from 'node:test';
import assert from 'node:assert/strict';
import {indexAtOrBefore, keptFramesNote, sampleSteps, statAt, unionSteps} from '../../frontend/model/steps.js';

test('stat lookup uses the snapshot at or before the step', () => {
  assert.equal(indexAtOrBefore([0, 10, 20], 15), 1);
  assert.equal(indexAtOrBefore([0, 10, 20], 20), 2);
  assert.equal(indexAtOrBefore([5, 10], 4), -1);
  const series = {steps: [0, 10, 20], update_ratio: [null, 0.5, 0.25]};
  assert.equal(statAt(series, 'update_ratio', 19), 0.5);
  assert.equal(statAt(series, 'update_ratio', 0), null);
  assert.equal(statAt(series, 'nope', 10), null);
  assert.deepEqual(unionSteps([[0, 10], [5, 10, 20]]), [0, 5, 10, 20]);
});

test('sampled steps spread over the run, first and last included', () => {
  assert.deepEqual(sampleSteps([0, 2, 4], 8), [0, 2, 4]);
  const steps = Array.from({length: 101}, (_, i) => 10 * i);
  assert.deepEqual(sampleSteps(steps, 5), [0, 250, 500, 750, 1000]);
  assert.equal(sampleSteps(steps, 8).length, 8);
  assert.deepEqual(sampleSteps(steps, 1), [1000]);
  assert.deepEqual(sampleSteps([], 4), []);
});

test('a note names the selected runs whose frames are only the kept ones', () => {
  const runs = [{run: 'a', frame_steps: 'all'}, {run: 'b', frame_steps: 'kept'}, {run: 'c', frame_steps: 'kept'},
    {run: 'old'}];
  assert.equal(keptFramesNote(runs, ['a', 'old']), '');
  assert.match(keptFramesNote(runs, ['a', 'b']), /^Run b: only the frames TensorBoard kept/);
  assert.match(keptFramesNote(runs, ['b', 'c']), /^Runs b, c: /);
});
