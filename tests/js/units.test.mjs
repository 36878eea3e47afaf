import test from 'node:test';
import assert from 'node:assert/strict';
import {decodeUnits, FrameError} from '../../frontend/model/decode.js';
import {CELL} from '../../frontend/model/stat_scale.js';
import {columnOfUnit, unitCellAt, unitCells, unitCount, unitGroupSpans, unitLabel, unitsLayout, unitsOfColumn} from '../../frontend/model/units.js';

const headers = (rows, cols, block) => ({'X-NNViz-Rows': String(rows), 'X-NNViz-Cols': String(cols), 'X-NNViz-Unit-Block': String(block)});

test('a /units answer decodes to steps × units float32, NaN kept', () => {
  const data = Float32Array.of(1, 2, 3, NaN, 0.5, 6);
  const u = decodeUnits(data.buffer, headers(2, 3, 1));
  assert.deepEqual([u.rows, u.cols, u.block], [2, 3, 1]);
  assert.ok(Number.isNaN(u.data[3]));
  assert.equal(u.data[5], 6);
  assert.throws(() => decodeUnits(data.buffer, headers(2, 2, 1)), (e) => e instanceof FrameError && /24 bytes, expected 16/.test(e.message));
  assert.throws(() => decodeUnits(data.buffer, {'X-NNViz-Rows': '2', 'X-NNViz-Cols': '3'}), /X-NNViz-Unit-Block/);
  assert.throws(() => decodeUnits(data.buffer, headers(2, 3, 0)), /at least 1/);
});

test('units are rows, steps columns: the answer transposed, with cell kinds', () => {
  // 2 steps × 3 units: the first step's update is undefined; unit 1 stops.
  const c = unitCells({rows: 2, cols: 3, block: 1, data: Float32Array.of(NaN, NaN, NaN, 0.5, 0, Infinity)});
  assert.deepEqual([c.rows, c.cols], [3, 2]);
  assert.deepEqual([...c.kinds], [CELL.UNDEFINED, CELL.VALUE, CELL.UNDEFINED, CELL.ZERO, CELL.UNDEFINED, CELL.NONFINITE]);
  assert.equal(c.values[1], Math.log10(0.5), 'log10: units are on a log scale');
});

test('gate and head groups follow the layout when the units run along them', () => {
  const lstm = {row_axes: [0], col_axes: [1], unit_axes: [1], block: [1, 1], groups: [{axis: 'cols', size: 4, names: ['i', 'f', 'c', 'o']}]};
  assert.equal(unitCount([3, 16], lstm), 16);
  assert.deepEqual(unitGroupSpans([3, 16], lstm).map((g) => [g.start, g.end, g.name]), [[0, 4, 'i'], [4, 8, 'f'], [8, 12, 'c'], [12, 16, 'o']]);
  assert.deepEqual(unitGroupSpans([3, 16], lstm, 2).map((g) => [g.start, g.end]), [[0, 2], [2, 4], [4, 6], [6, 8]]);
  const query = {row_axes: [0], col_axes: [1, 2], unit_axes: [1, 2], block: [1, 1], groups: [{axis: 'cols', size: 3, names: ['head 0', 'head 1']}]};
  assert.deepEqual(unitGroupSpans([4, 2, 3], query).map((g) => g.name), ['head 0', 'head 1']);
  assert.equal(unitLabel([4, 2, 3], query, 4, 1), 'unit 4 [1, 1]');
  // An attention output kernel (heads, hd, d): its heads are its inputs, not its units.
  const output = {row_axes: [0, 1], col_axes: [2], unit_axes: [2], block: [1, 1], groups: [{axis: 'rows', size: 3, names: ['head 0', 'head 1']}]};
  assert.deepEqual(unitGroupSpans([2, 3, 4], output), []);
  assert.equal(unitCount([4], {row_axes: [], col_axes: [0], block: [1, 1]}), null, 'a layout without unit axes');
});

test('blocks of units, hit testing', () => {
  assert.deepEqual(unitsOfColumn(2, 128, 300), [256, 299]);
  assert.equal(columnOfUnit(300, 128), 2);
  assert.equal(unitLabel([100000], {row_axes: [], col_axes: [0], unit_axes: [0]}, 1, 4), 'units 4–7 (mean of 4)');
  const g = unitsLayout(16, 7, 400);
  assert.equal(g.cellH, 10);
  assert.deepEqual(unitCellAt(g, 16, 7, g.x0 + 2.5 * g.cellW, g.y0 + 15.5 * g.cellH), {row: 15, col: 2});
  assert.equal(unitCellAt(g, 16, 7, 2, 20), null);
  const many = unitsLayout(4096, 7, 400);
  assert.ok(many.cellH < 1 && many.height <= 364);
});
