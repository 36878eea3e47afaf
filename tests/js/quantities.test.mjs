import test from 'node:test';
import assert from 'node:assert/strict';
import {
  adamEpsilon, gradientQuantity, labelFor, layerPositions, layerValue, logApplies, offeredQuantities, quantitiesOf,
  rmsAt, rmsAtStep, selectorVisible, shownQuantity,
} from '../../frontend/model/quantities.js';
import {colourScaleMarks, logRange} from '../../frontend/model/stat_scale.js';
import {colorFrame, colormapLUT} from '../../frontend/model/colors.js';
import {LOG_DECADES, makeLogScale, MARK_DECADES} from '../../frontend/model/scale.js';
import {CHART_STATS, chartRange, chartStats, statValues} from '../../frontend/view/charts.js';

const tensor = (quantities) => (quantities ? {tag: 't', quantities} : {tag: 't'});

test('the selector offers what /tags lists, in a fixed order, and hides for weights only', () => {
  // A server (or run) before quantities lists none: the weights alone.
  assert.deepEqual(quantitiesOf(tensor()), ['weights']);
  assert.deepEqual(offeredQuantities([tensor(), tensor(['weights'])]), ['weights']);
  assert.equal(selectorVisible(['weights']), false);
  // Two runs shown: the union, in the server's order; an unknown name last.
  const offered = offeredQuantities([tensor(['weights', 'v_rms', 'grad']), tensor(['weights', 'momentum', 'future'])]);
  assert.deepEqual(offered, ['weights', 'grad', 'v_rms', 'momentum', 'future']);
  assert.equal(selectorVisible(offered), true);
  // The choice holds only where recorded; elsewhere the weights show.
  assert.equal(shownQuantity('v_rms', offered), 'v_rms');
  assert.equal(shownQuantity('m_hat', offered), 'weights');
  assert.equal(shownQuantity('m_hat', ['weights']), 'weights');
});

test('the gradient RMS comes from grad, else from v_rms, else nothing', () => {
  assert.equal(gradientQuantity([tensor(['weights', 'v_rms']), tensor(['weights', 'grad', 'v_rms'])]), 'grad');
  assert.equal(gradientQuantity([tensor(['weights', 'm_hat', 'v_rms'])]), 'v_rms');
  assert.equal(gradientQuantity([tensor(['weights', 'momentum']), tensor()]), null);
});

test('RMS is sqrt(mean^2 + std^2): the norm over the root of the entry count', () => {
  // g = [3, -1, 1, 5]: mean 2, population std sqrt(5), RMS sqrt(9) = 3 = ‖g‖ / 2.
  const g = [3, -1, 1, 5];
  const mean = g.reduce((a, b) => a + b) / 4;
  const std = Math.sqrt(g.reduce((a, b) => a + (b - mean) ** 2, 0) / 4);
  const series = {steps: [0, 10, 20], mean: [mean, null, 0], std: [std, 1, 1e-9]};
  assert.ok(Math.abs(rmsAt(series, 0) - 3) < 1e-12);
  assert.equal(rmsAt(series, 1), null);
  assert.equal(rmsAtStep(series, 15), null);
  assert.equal(rmsAtStep(series, 25), 1e-9);
  assert.equal(rmsAtStep(series, -1), null);
  assert.equal(layerValue(series, 'grad_rms', 0), rmsAt(series, 0));
  assert.equal(layerValue({steps: [0], init_cos: [0.25]}, 'init_angle', 0), 0.75);
  assert.equal(layerValue({steps: [0], update_ratio: [1e-3]}, 'update_ratio', 5), 1e-3);
});

test('layers whose gradient RMS spans decades are coloured on a log scale, first layer lowest', () => {
  // An 8-layer sigmoid MLP under Adam: the first layer's gradient RMS ~1e-6 of the last's.
  const rms = [1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, null];
  const {positions, log} = layerPositions(rms);
  assert.equal(log, true);
  assert.equal(positions[0], 0);
  assert.equal(positions[6], 1);
  assert.ok(Math.abs(positions[3] - 0.5) < 1e-12, 'a decade per sixth of the bar');
  assert.equal(positions[7], null);
  // Within 100×: linear, from 0.
  const near = layerPositions([1, 2, 4]);
  assert.equal(near.log, false);
  assert.deepEqual(near.positions, [0.25, 0.5, 1]);
});

test("Adam's ε: the run's own when recorded, else the framework's default, said so", () => {
  const recorded = adamEpsilon({model: {framework: 'torch', optimizer: {class: 'Adam', epsilon: 1e-4}}});
  assert.deepEqual(recorded, {value: 1e-4, recorded: true, text: "ε = 0.0001: the run's Adam's"});
  assert.doesNotMatch(recorded.text, /default/);
  assert.equal(adamEpsilon({model: {optimizer: {class: 'Adam', epsilon: 1e-7}}}).value, 1e-7);
  // An optimizer without ε (SGD): nothing to mark, and no default put in its place.
  assert.deepEqual(adamEpsilon({model: {framework: 'torch', optimizer: {class: 'SGD', epsilon: null}}}),
      {value: null, recorded: true, text: "the run's SGD has no ε"});
  const torch = adamEpsilon({model: {framework: 'torch'}});
  assert.equal(torch.value, 1e-8);
  assert.equal(torch.recorded, false);
  assert.match(torch.text, /torch's default/);
  const keras = adamEpsilon({model: {name: 'sequential'}});
  assert.equal(keras.value, 1e-7);
  assert.match(keras.text, /Keras's default.*does not record/);
  assert.equal(adamEpsilon(null).value, 1e-7);
});

test('log scales apply to grad and v_rms; labels name the quantity', () => {
  assert.deepEqual(['weights', 'grad', 'm_hat', 'v_rms', 'momentum'].filter(logApplies), ['grad', 'v_rms']);
  assert.equal(labelFor('update ratio ‖ΔW‖ / ‖W_prev‖', 'grad'), 'update ratio ‖Δg‖ / ‖g_prev‖');
  assert.equal(labelFor('L2 norm ‖W‖', 'v_rms'), 'L2 norm ‖√v̂‖');
  assert.equal(labelFor('norm ‖W[u]‖', 'weights'), 'norm ‖W[u]‖');
});

test('a log range takes in ε when it lies near the values, not when far below', () => {
  const near = logRange([1e-6, 1e-5, 0, null, NaN], {mark: 1e-8});
  assert.equal(near.markShown, true);
  assert.ok(Math.abs(near.domain.a - -8) < 1e-12 && Math.abs(near.domain.b - -5) < 1e-12);
  assert.equal(near.zeros, 1);
  const far = logRange([1e-3, 1e-2], {mark: 1e-8});
  assert.equal(far.markShown, false);
  assert.ok(Math.abs(far.domain.a - -3) < 1e-12, 'ε 5 decades below would squeeze the values');
  assert.ok(MARK_DECADES < 5);
  // Vanished: every value under ε; the range reaches up to ε.
  const under = logRange([1e-11, 1e-10], {mark: 1e-8});
  assert.equal(under.markShown, true);
  assert.ok(Math.abs(under.domain.b - -8) < 1e-12);
  // Exploded values beyond the limit are left out; nothing positive: null.
  assert.ok(Math.abs(logRange([1, 10, 1e9], {limit: 100}).domain.b - 1) < 1e-12);
  assert.equal(logRange([0, null, -1]), null);
});

test('log ticks are powers of ten, with the ε mark placed on the bar', () => {
  const marks = colourScaleMarks({lo: 1e-10, hi: 1e-2, magnitude: true, log: true}, {value: 1e-8, label: 'ε'});
  const ticks = marks.filter((m) => !m.mark);
  assert.ok(ticks.length >= 3);
  for (const t of ticks) assert.ok(Number.isInteger(Math.round(Math.log10(Number(t.label)) * 1e9) / 1e9), t.label);
  const eps = marks.find((m) => m.mark);
  assert.equal(eps.label, 'ε');
  assert.ok(Math.abs(eps.at - 0.25) < 1e-12, 'two of eight decades up');
  // ε outside the scale: no mark; a linear scale: round ticks, no mark.
  assert.equal(colourScaleMarks({lo: 1e-4, hi: 1, log: true}, {value: 1e-8, label: 'ε'}).some((m) => m.mark), false);
  assert.deepEqual(colourScaleMarks({lo: -1, hi: 1}).map((m) => m.label), ['-1', '-0.5', '0', '0.5', '1']);
});

test('a log colour scale colours log |x|, its bottom the 1st percentile of |x| shown', () => {
  const data = new Float32Array(1000);
  for (let i = 0; i < data.length; i++) data[i] = (i % 2 ? -1 : 1) * Math.pow(10, -6 + 5 * i / 999);
  const scale = makeLogScale(0.1, [data]);
  assert.equal(scale.log, true);
  assert.equal(scale.hi, 0.1);
  assert.ok(scale.lo > 1e-6 && scale.lo < 1.2e-6, String(scale.lo));
  // At most LOG_DECADES below the top, at least a decade.
  assert.equal(makeLogScale(1, [new Float32Array(100).fill(1e-30)]).lo, Math.pow(10, -LOG_DECADES));
  assert.equal(makeLogScale(1, [Float32Array.of(1, 1)]).lo, 0.1);
  // ε near the bottom is taken in (so it can be marked); far below, not.
  assert.equal(makeLogScale(0.1, [data], 1e-8).lo, 1e-8);
  assert.equal(makeLogScale(0.1, [data], 1e-10).lo, scale.lo);
  const lut = colormapLUT('viridis');
  const out = new Uint32Array(6);
  const counts = colorFrame(Float32Array.of(0, 1e-3, -1e-3, 1e-1, NaN, -Infinity), {lo: 1e-5, hi: 1e-1, log: true}, 'viridis', out);
  assert.deepEqual(counts, {nan: 1, posinf: 0, neginf: 1});
  assert.equal(out[0], lut[0], '0 takes the lowest colour');
  assert.equal(out[1], out[2], 'the sign does not matter');
  assert.equal(out[1], lut[128], '1e-3 is half way up from 1e-5 to 1e-1');
  assert.equal(out[3], lut[255]);
});

test('charts of a quantity: an RMS chart, magnitudes on a log axis with ε marked', () => {
  const series = {steps: [0, 10, 20], mean: [0, 0, 0], std: [1e-6, 1e-7, 1e-8], l2: [1, 1, 1]};
  const lines = [{run: 'r', color: '#000', series}];
  assert.equal(chartStats(lines, 'weights').some((s) => s.key === 'rms'), false);
  assert.equal(chartStats(lines, 'grad')[0].key, 'rms');
  assert.deepEqual(statValues(series, 'rms'), [1e-6, 1e-7, 1e-8]);
  const rms = CHART_STATS.find((s) => s.key === 'rms');
  const range = chartRange(rms, [statValues(series, 'rms')], series.steps, {log: true, mark: 1e-8});
  assert.equal(range.log, true);
  assert.equal(range.markShown, true);
  assert.ok(Math.abs(range.domain.a - -8) < 1e-12 && Math.abs(range.domain.b - -6) < 1e-12);
  // Without log (the toggle off): the linear range as for the weights.
  assert.equal(chartRange(rms, [statValues(series, 'rms')], series.steps).log, undefined);
});

test('frames of a quantity only where /tags lists them', async () => {
  const {hasFrames} = await import('../../frontend/model/quantities.js');
  const t = {tag: 't', quantities: ['weights', 'grad', 'v_rms'], frame_quantities: ['weights', 'grad']};
  assert.equal(hasFrames(t, 'weights'), true);
  assert.equal(hasFrames(t, 'grad'), true);
  assert.equal(hasFrames(t, 'v_rms'), false, 'stats only');
  assert.equal(hasFrames({tag: 't'}, 'weights'), true, 'a server before quantities');
  assert.equal(hasFrames({tag: 't'}, 'grad'), false);
  assert.equal(hasFrames(undefined, 'weights'), false);
});
