import test from 'node:test';
import assert from 'node:assert/strict';
import {poolBounds, referenceFrameBound, referenceSteps, scaleFor, scaleSource} from '../../frontend/model/scale_policy.js';

const settings = (over = {}) => ({mode: 'values', scaleMode: 'fixed', clip: false, colorKind: 'diverging', ...over});
const series = {steps: [0, 1, 2], min: [-1, -3, -2], max: [1, 2, 0.5], p01: [-0.5, -0.9, null], p99: [0.7, 0.6, 0.8],
  init_absmax: [null, 0.1, 0.4], update_absmax: [null, 0.2, 0.05]};

test('exact tensors: fixed over all steps from the stats of every run shown', () => {
  assert.deepEqual(scaleFor({settings: settings(), frames: [], series: [series]}),
      {bound: 3, note: 'fixed over all steps (min/max)'});
  assert.deepEqual(scaleFor({settings: settings({clip: true}), frames: [], series: [series]}),
      {bound: 0.9, note: 'fixed over all steps (1st/99th percentiles)'});
  const other = {steps: [0], min: [-5], max: [4]};
  assert.equal(scaleFor({settings: settings(), frames: [], series: [series, other]}).bound, 5);
  assert.equal(scaleFor({settings: settings({mode: 'delta_prev'}), frames: [], series: [series]}).note,
      'fixed over all steps (max update |Δ|)');
});

test('per frame: the frames on screen now', () => {
  const frames = [Float32Array.of(0.5, -2), Float32Array.of(1)];
  assert.deepEqual(scaleFor({settings: settings({scaleMode: 'frame'}), frames, series: [series]}),
      {bound: 2, note: 'per frame'});
  assert.equal(scaleFor({settings: settings({scaleMode: 'frame'}), frames, downsampled: true}).note,
      'per frame of block means');
});

test('where each scale comes from', () => {
  assert.equal(scaleSource(settings(), false), 'stats');
  assert.equal(scaleSource(settings(), true), 'frames');
  assert.equal(scaleSource(settings({mode: 'diff'}), false), 'frames');
  assert.equal(scaleSource(settings({clip: true, colorKind: 'magnitude'}), false), 'frames');
  assert.equal(scaleSource(settings({scaleMode: 'frame'}), true), 'frame');
  assert.deepEqual(referenceSteps([0, 5, 10], false), [10]);
  assert.equal(referenceSteps(Array.from({length: 50}, (_, i) => i), true).length, 8);
});

test('downsampled tensors: a high percentile of |block mean| over sampled steps, named', () => {
  // Block means span ±0.02; the full-resolution min/max (±0.2) would wash them out.
  const data = new Float32Array(1001);
  for (let i = 0; i < data.length; i++) data[i] = (i - 500) / 25000;
  data[0] = 0.5; // one outlying block
  const b = referenceFrameBound(data, {downsampled: true});
  assert.ok(b > 0.0199 && b < 0.0201, String(b));
  assert.equal(referenceFrameBound(data, {downsampled: false}), 0.5);
  const reference = poolBounds([b, 0.015]);
  const {bound, note} = scaleFor({settings: settings(), frames: [data], series: [{steps: [0], min: [-0.2], max: [0.2]}],
    reference, downsampled: true});
  assert.equal(bound, b);
  assert.equal(note, 'fixed over 2 sampled steps (99.9th percentile of |x| of block means)');
});

test('A − B: from the last step; an empty reference falls back to per frame', () => {
  const frames = [Float32Array.of(0.25, -0.5)];
  assert.deepEqual(scaleFor({settings: settings({mode: 'diff'}), frames, reference: poolBounds([0.75])}),
      {bound: 0.75, note: "fixed: from the last step's frame"});
  assert.deepEqual(scaleFor({settings: settings({mode: 'diff'}), frames, reference: poolBounds([])}),
      {bound: 0.5, note: 'per frame (no fixed range yet)'});
});

test('an exploded step saturates and is said so', () => {
  const exploding = {steps: [0, 5, 10, 15, 20, 25], min: [-0.2, -0.3, -0.6, -1, -2, -4e6], max: [0.2, 0.3, 0.7, 1.1, 2.4, 3e6]};
  const {bound, note} = scaleFor({settings: settings(), frames: [], series: [exploding]});
  assert.equal(bound, 2.4);
  assert.equal(note, 'fixed over all steps (min/max); 1 exploded step (|x| up to 4e6) left out: it saturates');
});
