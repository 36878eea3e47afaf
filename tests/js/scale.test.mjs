import test from 'node:test';
import assert from 'node:assert/strict';
import {percentile, absMax, makeScale, frameBound, valuesBound, niceTicks, scaleTickMarks} from '../../frontend/model/scale.js';
import {scaleFor} from '../../frontend/model/scale_policy.js';

test('percentile interpolates like numpy and skips non-finite values', () => {
  const xs = [];
  for (let i = 0; i <= 100; i++) xs.push(i);
  assert.equal(percentile(xs, 1), 1);
  assert.equal(percentile(xs, 99), 99);
  assert.equal(percentile([1, 2, 3, 4], 50), 2.5);
  assert.equal(percentile([NaN, 5, Infinity, null], 50), 5);
  assert.equal(percentile([NaN], 50), null);
});

test('absMax ignores NaN and Inf', () => {
  assert.equal(absMax(Float32Array.of(-3, 2, NaN, Infinity)), 3);
  assert.equal(absMax([]), 0);
});

test('makeScale is symmetric around 0, or from 0 for magnitudes', () => {
  assert.deepEqual(makeScale(2, false), {lo: -2, hi: 2, magnitude: false});
  assert.deepEqual(makeScale(2, true), {lo: 0, hi: 2, magnitude: true});
  assert.deepEqual(makeScale(NaN, false), {lo: -0, hi: 0, magnitude: false});
});

test('frameBound clips to the 1%/99% percentiles', () => {
  const xs = new Float32Array(1001);
  for (let i = 0; i < xs.length; i++) xs[i] = i - 500;
  xs[0] = -1e6; // an outlier
  assert.equal(frameBound(xs), 1e6);
  const clipped = frameBound(xs, {clip: true});
  assert.ok(clipped > 480 && clipped < 500, String(clipped));
  const mag = frameBound(xs, {clip: true, magnitude: true});
  assert.ok(mag > 480 && mag < 500, String(mag));
});

test('fixed bounds come from the stats of every step', () => {
  const series = {steps: [0, 1, 2], min: [-1, -3, -2], max: [1, 2, 0.5], p01: [-0.5, -0.9, null], p99: [0.7, 0.6, 0.8],
    init_absmax: [null, 0.1, 0.4], update_absmax: [null, 0.2, 0.05]};
  assert.equal(valuesBound(series), 3);
  assert.equal(valuesBound(series, {clip: true}), 0.9);
  const fixed = (mode) => scaleFor({settings: {mode, scaleMode: 'fixed', clip: false, colorKind: 'diverging'},
    frames: [], series: [series]}).bound;
  assert.equal(fixed('delta_first'), 0.4);
  assert.equal(fixed('delta_prev'), 0.2);
});

test('niceTicks gives round values inside the range', () => {
  assert.deepEqual(niceTicks(-1, 1, 5), [-1, -0.5, 0, 0.5, 1]);
  assert.deepEqual(niceTicks(0, 0.3, 4), [0, 0.1, 0.2, 0.3]);
  const t = niceTicks(-0.0371, 0.0371, 5);
  assert.ok(t.includes(0));
  for (const x of t) assert.ok(x >= -0.0371 && x <= 0.0371);
  assert.deepEqual(niceTicks(2, 2), [2]);
});

test('an exploding step saturates instead of setting the fixed scale', async () => {
  const {robustBound, stepBounds} = await import('../../frontend/model/scale.js');
  // A run whose weights blow up at step 25 and are NaN after (stats null).
  const series = {steps: [0, 5, 10, 15, 20, 25, 30], min: [-0.2, -0.3, -0.6, -1, -2, -4e6, null],
    max: [0.2, 0.3, 0.7, 1.1, 2.4, 3e6, null]};
  assert.deepEqual(stepBounds(series, ['min', 'max']), [0.2, 0.3, 0.7, 1.1, 2.4, 4e6]);
  assert.deepEqual(robustBound(stepBounds(series, ['min', 'max'])), {bound: 2.4, saturated: 1, peak: 4e6});
  assert.equal(valuesBound(series), 2.4);
  // Ordinary growth (×10 over training) is kept whole.
  assert.deepEqual(robustBound([0.1, 0.2, 0.5, 1]), {bound: 1, saturated: 0, peak: 0});
  assert.deepEqual(robustBound([0, 0]), {bound: 0, saturated: 0, peak: 0});
  // Two runs pooled: the tuned run's steps make the typical size.
  const tuned = [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5];
  assert.deepEqual(robustBound([...tuned, 0.2, 0.3, 2.4, 4e6]), {bound: 2.4, saturated: 1, peak: 4e6});
});

test('chart ranges leave exploded values out and start counts at 0', async () => {
  const {chartRange} = await import('../../frontend/view/charts.js');
  const r = chartRange({key: 'l2'}, [[1, 2, 3, 4e6, null]], [0, 10, 20, 30, 40]);
  assert.equal(r.robust.saturated, 1);
  assert.ok(r.hi > 3 && r.hi < 3.2 && r.lo < 1 && r.lo > 0.8, JSON.stringify(r));
  assert.deepEqual([r.x0, r.x1], [0, 40]);
  const c = chartRange({key: 'nonfinite', count: true}, [[0, 0, 3]], [5]);
  assert.deepEqual([c.x0, c.x1, c.lo], [4, 6, 0]);
  assert.ok(c.hi > 3);
  assert.equal(chartRange({key: 'std'}, [[null]], [0, 1]).empty, true);
});

test('a legend\'s ticks are placed along the bar from lo (0) to hi (1)', () => {
  assert.deepEqual(scaleTickMarks({lo: -1, hi: 1}), [
    {label: '-1', at: 0}, {label: '-0.5', at: 0.25}, {label: '0', at: 0.5}, {label: '0.5', at: 0.75}, {label: '1', at: 1}]);
  // A scale of one value: its tick in the middle.
  assert.deepEqual(scaleTickMarks({lo: 2, hi: 2}), [{label: '2', at: 0.5}]);
});
