import test from 'node:test';
import assert from 'node:assert/strict';
import {tensorIndex, cellInfo, describeCell, separators, groupBrackets, groupLabel, groupSpans, layoutSize, unravel} from '../../frontend/model/layout.js';

// A reference implementation of the layout rule (docs/architecture.md) on a real nested array:
// frame = transpose(W, row_axes + col_axes).reshape(R, C).
function transposeReshape(shape, layout) {
  const axes = [...layout.row_axes, ...layout.col_axes];
  const tshape = axes.map((a) => shape[a]);
  const n = tshape.reduce((a, b) => a * b, 1);
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const out = [];
  for (let i = 0; i < n; i++) {
    const ti = unravel(i, tshape);
    const idx = new Array(shape.length);
    axes.forEach((a, k) => (idx[a] = ti[k]));
    out.push(idx.reduce((s, x, k) => s + x * strides[k], 0)); // flat index into W
  }
  return out;
}

test('conv kernel layout maps every cell to the right tensor index', () => {
  const shape = [3, 2, 4, 5]; // kh, kw, in, out
  const layout = {row_axes: [2, 0], col_axes: [3, 1], block: [1, 1], groups: []};
  const {rows, cols} = layoutSize(shape, layout);
  assert.deepEqual([rows, cols], [12, 10]);
  const flat = transposeReshape(shape, layout);
  const strides = [2 * 4 * 5, 4 * 5, 5, 1];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const idx = tensorIndex(shape, layout, r, c);
      assert.equal(idx.reduce((s, x, k) => s + x * strides[k], 0), flat[r * cols + c]);
    }
  }
  // Cell (row 1*3+2, col 3*2+1) is in-channel 1, kh 2, out 3, kw 1.
  assert.deepEqual(tensorIndex(shape, layout, 5, 7), [2, 1, 1, 3]);
  assert.equal(describeCell('kernel', shape, layout, 5, 7), 'kernel[2, 1, 1, 3]');
});

test('vectors and dense kernels', () => {
  assert.deepEqual(tensorIndex([7], {row_axes: [], col_axes: [0]}, 0, 4), [4]);
  assert.deepEqual(tensorIndex([3, 4], {row_axes: [0], col_axes: [1]}, 2, 1), [2, 1]);
});

test('downsampled cells name the block they average', () => {
  const shape = [10, 7];
  const layout = {row_axes: [0], col_axes: [1], block: [4, 4], groups: []};
  const info = cellInfo(shape, layout, 2, 1); // edge block: rows 8..9, cols 4..6
  assert.equal(info.exact, false);
  assert.deepEqual(info.rows, [8, 9]);
  assert.deepEqual(info.cols, [4, 6]);
  assert.equal(info.count, 6);
  assert.deepEqual(info.first, [8, 4]);
  assert.deepEqual(info.last, [9, 6]);
  assert.match(describeCell('kernel', shape, layout, 2, 1), /^kernel\[8, 4\] … kernel\[9, 6\] \(mean of 2×3 block/);
});

test('separators between conv tiles, none for single axes', () => {
  const conv = separators([3, 3, 2, 4], {row_axes: [2, 0], col_axes: [3, 1], block: [1, 1]});
  assert.deepEqual(conv.rows, [3]);
  assert.deepEqual(conv.cols, [3, 6, 9]);
  assert.deepEqual(separators([5, 6], {row_axes: [0], col_axes: [1]}), {rows: [], cols: []});
  const reduced = separators([3, 3, 2, 4], {row_axes: [2, 0], col_axes: [3, 1], block: [2, 3]});
  assert.deepEqual(reduced.rows, [1.5]);
  assert.deepEqual(reduced.cols, [1, 2, 3]);
});

test('group spans for LSTM gates and attention heads', () => {
  const lstm = groupSpans([8, 12], {row_axes: [0], col_axes: [1], block: [1, 1],
    groups: [{axis: 'cols', size: 3, names: ['i', 'f', 'c', 'o']}]});
  assert.deepEqual(lstm.map((g) => [g.name, g.start, g.end]), [['i', 0, 3], ['f', 3, 6], ['c', 6, 9], ['o', 9, 12]]);
  const heads = groupSpans([16, 2, 4], {row_axes: [0], col_axes: [1, 2], block: [1, 2],
    groups: [{axis: 'cols', size: 4, names: ['head 0', 'head 1']}]});
  assert.deepEqual(heads.map((g) => [g.name, g.start, g.end]), [['head 0', 0, 2], ['head 1', 2, 4]]);
});

test('a wide row of conv tiles wraps into bands of whole tiles, and cells map back', async () => {
  const {planFrame, cellAtUnits, cellUnits} = await import('../../frontend/model/layout.js');
  // A first conv layer: 16 kernels of 3x3 on 1 input channel: a 3 x 48 frame.
  const shape = [3, 3, 1, 16];
  const layout = {row_axes: [2, 0], col_axes: [3, 1], block: [1, 1], groups: []};
  const plan = planFrame(shape, layout, 3, 48, 1000, 520, 40);
  assert.ok(plan.bands.length > 1, JSON.stringify(plan));
  assert.ok(plan.cell > 1000 / 48 * 1.2, 'bigger cells than one long strip');
  for (const b of plan.bands) assert.equal(b.c0 % 3, 0, 'bands start at a tile boundary');
  assert.equal(plan.bands[plan.bands.length - 1].c1, 48);
  // Every cell maps to its place and back.
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 48; c++) {
      const {u, v} = cellUnits(plan, r, c);
      assert.deepEqual(cellAtUnits(plan, 3, u + 0.5, v + 0.5), {r, c});
    }
  }
  // The gap between bands is no cell.
  assert.equal(cellAtUnits(plan, 3, 0.5, 3.2), null);
  // A square-ish conv kernel, a Dense kernel and a block-reduced frame stay one band.
  assert.equal(planFrame([3, 2, 3, 4], layout, 9, 8, 1000, 520, 40).bands.length, 1);
  assert.equal(planFrame([64, 64], {row_axes: [0], col_axes: [1], groups: []}, 64, 64, 1000, 520, 40).bands.length, 1);
  assert.equal(planFrame(shape, {...layout, block: [1, 2]}, 3, 24, 1000, 520, 40).bands.length, 1);
});

test('groupAt names the gate or head of a cell', async () => {
  const {groupAt} = await import('../../frontend/model/layout.js');
  const lstm = {row_axes: [0], col_axes: [1], block: [1, 1], groups: [{axis: 'cols', size: 4, names: ['i', 'f', 'c', 'o']}]};
  assert.deepEqual([0, 3, 4, 9, 15].map((c) => groupAt([3, 16], lstm, 1, c)), [['i'], ['i'], ['f'], ['c'], ['o']]);
  // A reduced cell covering two gates names both.
  assert.deepEqual(groupAt([3, 16], {...lstm, block: [1, 3]}, 0, 1), ['i', 'f']);
  const out = {row_axes: [0, 1], col_axes: [2], block: [1, 1], groups: [{axis: 'rows', size: 3, names: ['head 0', 'head 1']}]};
  assert.deepEqual(groupAt([2, 3, 6], out, 4, 0), ['head 1']);
  assert.equal(groupAt([4, 3], {row_axes: [0], col_axes: [1], groups: []}, 0, 0), null);
});

test('gates are named "gate x", heads by their name', () => {
  assert.equal(groupLabel('f'), 'gate f');
  assert.equal(groupLabel('head 1'), 'head 1');
});

test('group brackets: a line between groups across the picture, a bracket outside along each', () => {
  const spans = [{start: 0, end: 4, name: 'i'}, {start: 4, end: 8, name: 'f'}];
  const box = {x0: 20, y0: 30, w: 80, h: 50, cellW: 10, cellH: 5};
  // Column groups (an LSTM kernel's gates): brackets above the picture, lines down it.
  const cols = groupBrackets(spans, 'cols', box, 2);
  assert.deepEqual(cols.map((b) => [b.name, b.a, b.b]), [['i', 20, 60], ['f', 60, 100]]);
  assert.equal(cols[0].line, null, 'no line before the first group');
  assert.deepEqual(cols[1].line, [60, 30, 60, 80]);
  assert.deepEqual(cols[1].bracket, [61, 26, 38, 2]);
  // Row groups, a 1 px line: on a half pixel (sharp), across the picture; brackets left of it.
  const rows = groupBrackets(spans, 'rows', box, 1);
  assert.deepEqual(rows.map((b) => [b.a, b.b]), [[30, 50], [50, 70]]);
  assert.deepEqual(rows[1].line, [20, 50.5, 100, 50.5]);
  assert.deepEqual(rows[0].bracket, [16, 31, 2, 18]);
  // A group narrower than the bracket's insets still gets one pixel.
  assert.equal(groupBrackets([{start: 0, end: 0.1, name: 'x'}], 'cols', box, 2)[0].bracket[2], 1);
});
