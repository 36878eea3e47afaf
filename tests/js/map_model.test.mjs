import test from 'node:test';
import assert from 'node:assert/strict';
import {
  cellAtPoint, cellCenter, cellInfo, fieldStat, gapSummary, MAP_STATS, mapDomain, mapFields, mapLayout, mapRows, mapStat,
  mapValues, moveCursor, referenceOver, relativeToInit, rowLabels,
} from '../../frontend/model/map_model.js';
import {layerRows} from '../../frontend/model/structure.js';
import {CELL} from '../../frontend/model/stat_scale.js';

const structure = {layers: [
  {path: 'conv', weights: [{name: 'kernel', tag: 'conv/kernel', shape: [3, 3, 1, 4]}, {name: 'bias', tag: 'conv/bias', shape: [4]}]},
  {path: 'dense', weights: [{name: 'kernel', tag: 'dense/kernel', shape: [4, 2]}]},
]};
const tensors = [{tag: 'conv/kernel', shape: [3, 3, 1, 4]}, {tag: 'conv/bias', shape: [4]}, {tag: 'dense/kernel', shape: [4, 2]}];
const rows = layerRows(structure, tensors);
const series = (steps, extra) => ({steps, wall_times: steps.map(() => 0), ...extra});
const statsA = {
  'conv/kernel': series([0, 10, 20], {update_ratio: [null, 0.01, 0.002], l2: [2, 2.5, 3], init_l2: [0, 0.5, 1],
    nan: [0, 0, 0], inf: [0, 0, 0], std: [0.1, 0.1, 0.2]}),
  'conv/bias': series([0, 10, 20], {update_ratio: [null, null, 0], l2: [0, 0.1, 0.1], init_l2: [0, 0.1, 0.1],
    nan: [0, 0, 0], inf: [0, 0, 0], std: [0, 0.01, 0.01]}),
  'dense/kernel': series([0, 10, 20], {update_ratio: [null, 0.5, null], l2: [1, 2, null], init_l2: [0, 1.5, null],
    nan: [0, 0, 6], inf: [0, 0, 2], std: [0.3, 0.3, null]}),
};
const statsB = {'conv/kernel': series([0, 5], {update_ratio: [null, 0.02], l2: [1, 1], init_l2: [0, 0.1], nan: [0, 0], inf: [0, 0]})};

test('one row per recorded weight in model order, grouped by layer; runs stacked', () => {
  const model = mapRows([{run: 'a', rows, stats: statsA}, {run: 'b', rows: layerRows(null, [tensors[0]]), stats: statsB}]);
  assert.deepEqual(model.rows.map((r) => `${r.run}:${r.tag}`), ['a:conv/kernel', 'a:conv/bias', 'a:dense/kernel', 'b:conv/kernel']);
  assert.deepEqual(model.steps, [0, 5, 10, 20]);
  assert.deepEqual(model.runs.map((r) => [r.run, r.start, r.count]), [['a', 0, 3], ['b', 3, 1]]);
  assert.deepEqual(model.runs[0].groups, [{layer: 'conv', start: 0, end: 2}, {layer: 'dense', start: 2, end: 3}]);
  assert.deepEqual([...model.rows[3].cols], [0, 1]);
});

test('cell values and kinds of each stat', () => {
  const model = mapRows([{run: 'a', rows, stats: statsA}, {run: 'b', rows: layerRows(null, [tensors[0]]), stats: statsB}]);
  const n = model.steps.length;
  const ratio = mapValues(model, mapStat('update_ratio'));
  // Values are in scale space: log10 for the log stats.
  const at = (cells, r, step) => [cells.kinds[r * n + model.steps.indexOf(step)], cells.values[r * n + model.steps.indexOf(step)]];
  assert.deepEqual(at(ratio, 0, 0), [CELL.UNDEFINED, 0], 'first snapshot');
  assert.deepEqual(at(ratio, 0, 10), [CELL.VALUE, -2]);
  assert.deepEqual(at(ratio, 0, 5), [CELL.ABSENT, 0], 'run a has no snapshot at step 5');
  assert.deepEqual(at(ratio, 1, 20), [CELL.ZERO, 0], 'no change');
  assert.deepEqual(at(ratio, 2, 20), [CELL.NONFINITE, 0], 'undefined because of NaN/Inf');
  assert.deepEqual(at(ratio, 3, 5), [CELL.VALUE, Math.log10(0.02)]);
  const rel = mapValues(model, mapStat('rel_init'));
  assert.deepEqual(at(rel, 0, 20), [CELL.VALUE, 0.5], '‖W − W₀‖ / ‖W₀‖ = 1 / 2');
  assert.deepEqual(at(rel, 0, 0), [CELL.VALUE, 0]);
  assert.deepEqual(at(rel, 1, 10), [CELL.UNDEFINED, 0], '‖W₀‖ = 0');
  // NaN/Inf: painted wherever there is any (the count is read out), blank where none.
  const bad = mapValues(model, mapStat('nonfinite'));
  assert.deepEqual(at(bad, 2, 20), [CELL.NONFINITE, 0]);
  assert.deepEqual(at(bad, 2, 10), [CELL.UNDEFINED, 0]);
  assert.equal(mapDomain(bad, mapStat('nonfinite')), null);
  assert.equal(cellInfo(model, bad, mapStat('nonfinite'), 2, 3).value, 8);
  const domain = mapDomain(ratio, mapStat('update_ratio'));
  assert.equal(domain.kind, 'log');
  assert.ok(domain.lo >= 0.002 * 0.999 && domain.hi <= 0.5 * 1.001, JSON.stringify(domain));
});

test('the stat list is extensible and read by key', () => {
  assert.deepEqual(MAP_STATS.map((s) => s.key), ['update_ratio', 'rel_init', 'l2', 'rms', 'std', 'nonfinite',
    'sv_max', 'stable_rank', 'alpha', 'alpha_weighted']);
  const svMax = fieldStat('sv_max', 'σ_max', 'log');
  const s = {steps: [0, 1], sv_max: [null, 3]};
  assert.ok(Number.isNaN(svMax.column(s)[0]));
  assert.equal(svMax.column(s)[1], 3);
  assert.ok(Number.isNaN(svMax.column({steps: [0]})[0]));
  assert.equal(mapStat('nope').key, 'update_ratio');
  assert.deepEqual([...relativeToInit({steps: [0, 1], init_l2: [0, 2], l2: [4, 5]})], [0, 0.5]);
  // RMS from mean and std: √(mean² + std²), NaN where either is undefined.
  const rms = mapStat('rms');
  assert.deepEqual(rms.fields, ['mean', 'std']);
  const col = rms.column({steps: [0, 1, 2], mean: [3, 0, null], std: [4, 2, 1]});
  assert.deepEqual([...col.slice(0, 2)], [5, 2]);
  assert.ok(Number.isNaN(col[2]));
});

test('update ratios over k steps: the reference and the gaps', () => {
  const model = mapRows([{run: 'a', rows, stats: statsA}]);
  assert.deepEqual(gapSummary(model), {min: 10, median: 10, max: 10});
  const ref = referenceOver(100);
  assert.ok(Math.abs(ref.independent - 1e-2) < 1e-12 && Math.abs(ref.aligned - 0.1) < 1e-12);
  const cells = mapValues(model, mapStat('update_ratio'));
  const info = cellInfo(model, cells, mapStat('update_ratio'), 0, 2);
  assert.deepEqual(info, {run: 'a', tag: 'conv/kernel', layer: 'conv', step: 20, kind: CELL.VALUE, value: 0.002, gap: 10, nonfinite: 0});
});

test('geometry: hit testing inverts cell centres, over stacked runs', () => {
  const model = mapRows([{run: 'a', rows, stats: statsA}, {run: 'b', rows: layerRows(null, [tensors[0]]), stats: statsB}]);
  const layout = mapLayout(model, 700);
  assert.equal(layout.cellH, 14);
  assert.ok(layout.rowTops[3] > layout.rowTops[2] + layout.cellH, 'a run header between the runs');
  for (let row = 0; row < 4; row++) {
    for (let col = 0; col < 4; col++) {
      const {x, y} = cellCenter(layout, row, col);
      assert.deepEqual(cellAtPoint(model, layout, x, y), {row, col});
    }
  }
  assert.equal(cellAtPoint(model, layout, 5, layout.rowTops[0] + 2), null, 'the label column');
  assert.equal(cellAtPoint(model, layout, layout.x0 + 1, layout.runTops[1] + 2), null, 'a run header');
  // ResNet50-sized: 320 rows shrink to the minimum height; 1000 columns to under a pixel each.
  const big = {steps: Array.from({length: 1000}, (_, i) => i), runs: [{run: 'r', start: 0, count: 320, groups: []}],
    rows: Array.from({length: 320}, () => ({}))};
  const bl = mapLayout(big, 1000);
  assert.equal(bl.cellH, 3);
  assert.ok(bl.cellW < 1);
  assert.deepEqual(cellAtPoint(big, bl, bl.x0 + 999.5 * bl.cellW, bl.rowTops[319] + 1), {row: 319, col: 999});
});

test('row labels: every tag when rows are tall, else non-overlapping layer names', () => {
  const model = mapRows([{run: 'a', rows, stats: statsA}]);
  assert.deepEqual(rowLabels(model, mapLayout(model, 700)).map((l) => l.text), ['conv/kernel', 'conv/bias', 'dense/kernel']);
  const short = {...mapLayout(model, 700), cellH: 4, rowTops: Float64Array.of(20, 24, 28)};
  assert.deepEqual(rowLabels(model, short).map((l) => l.text), ['conv']);
});

test('the keyboard cursor stays on the grid', () => {
  assert.deepEqual(moveCursor(3, 4, null, 'ArrowDown'), {row: 1, col: 3});
  assert.deepEqual(moveCursor(3, 4, {row: 0, col: 0}, 'ArrowLeft'), {row: 0, col: 0});
  assert.deepEqual(moveCursor(3, 4, {row: 1, col: 1}, 'End'), {row: 1, col: 3});
  assert.deepEqual(moveCursor(30, 4, {row: 25, col: 1}, 'PageDown'), {row: 29, col: 1});
  assert.equal(moveCursor(3, 4, {row: 1, col: 1}, 'x'), null);
  assert.equal(moveCursor(0, 4, null, 'ArrowDown'), null);
});

test('spectral stats on the map: log σ_max and stable rank, linear alpha; non-matrices and budget gaps blank', () => {
  assert.deepEqual(['sv_max', 'stable_rank', 'alpha', 'alpha_weighted'].map((k) => mapStat(k).scale),
    ['log', 'log', 'linear', 'linear']);
  const spectral = {
    'conv/kernel': series([0, 10, 20], {alpha: [8.5, null, 3.2], alpha_weighted: [-1.5, null, 0.4], sv_max: [0.5, 2, 4],
      nan: [0, 0, 0], inf: [0, 0, 0]}),
    'conv/bias': series([0, 10, 20], {alpha: [null, null, null], sv_max: [null, null, null], nan: [0, 0, 0], inf: [0, 0, 0]}),
  };
  const model = mapRows([{run: 'a', rows, stats: spectral}]);
  const n = model.steps.length;
  const at = (cells, r, i) => [cells.kinds[r * n + i], cells.values[r * n + i]];
  const alpha = mapValues(model, mapStat('alpha'));
  assert.deepEqual(at(alpha, 0, 0), [CELL.VALUE, 8.5], 'linear: the value itself');
  assert.deepEqual(at(alpha, 0, 1), [CELL.UNDEFINED, 0], 'skipped by the budget');
  assert.deepEqual(at(alpha, 1, 2), [CELL.UNDEFINED, 0], 'a bias is not a matrix');
  assert.deepEqual(at(mapValues(model, mapStat('alpha_weighted')), 0, 0), [CELL.VALUE, -1.5], 'negative is a value');
  assert.deepEqual(at(mapValues(model, mapStat('sv_max')), 0, 2), [CELL.VALUE, Math.log10(4)]);
  const domain = mapDomain(alpha, mapStat('alpha'));
  assert.equal(domain.kind, 'linear');
  assert.ok(domain.hi >= 3.2 && domain.hi <= 8.5 + 1e-9, JSON.stringify(domain));
});

test('each stat names the /stats fields it reads; the map asks for those and nan, inf only', () => {
  assert.deepEqual(mapFields(mapStat('update_ratio')), ['update_ratio', 'nan', 'inf']);
  assert.deepEqual(mapFields(mapStat('rel_init')), ['init_l2', 'l2', 'nan', 'inf']);
  assert.deepEqual(mapFields(mapStat('nonfinite')), ['nan', 'inf']);
  for (const stat of MAP_STATS) {
    // Built from an answer holding only those fields, every stat's cells equal the full answer's.
    const only = Object.fromEntries(Object.entries(statsA).map(([tag, s]) => [tag, Object.fromEntries(
        ['steps', 'wall_times', ...mapFields(stat)].map((k) => [k, s[k] ?? s.steps.map(() => null)]))]));
    const full = mapValues(mapRows([{run: 'a', rows, stats: statsA}]), stat);
    const part = mapValues(mapRows([{run: 'a', rows, stats: only}]), stat);
    assert.deepEqual([...part.kinds], [...full.kinds], stat.key);
    assert.deepEqual([...part.values], [...full.values], stat.key);
  }
});

test('each snapshot in its step\'s column, whether tags share their steps or not', () => {
  const shared = [0, 10, 20];
  const stats = {
    'conv/kernel': series(shared, {update_ratio: [null, 1, 2]}),
    'conv/bias': series(shared, {update_ratio: [null, 3, 4]}), // the same list: adds no step
    'dense/kernel': series([5, 20, 25], {update_ratio: [null, 5, 6]}), // steps of its own
  };
  const other = {'conv/kernel': series([20, 0, 15], {update_ratio: [7, null, 8]})}; // not ascending
  const model = mapRows([{run: 'a', rows, stats}, {run: 'b', rows: layerRows(null, [tensors[0]]), stats: other}]);
  assert.deepEqual(model.steps, [0, 5, 10, 15, 20, 25]);
  assert.deepEqual(model.rows.map((r) => [...r.cols]), [[0, 2, 4], [0, 2, 4], [1, 4, 5], [4, 0, 3]]);
  const n = model.steps.length;
  const values = mapValues(model, mapStat('update_ratio')).values;
  assert.equal(values[2 * n + 5], Math.log10(6));
  assert.equal(values[3 * n + 3], Math.log10(8));
});
