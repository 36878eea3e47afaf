import test from 'node:test';
import assert from 'node:assert/strict';
import {colormapLUT, packRGB} from '../../frontend/model/colors.js';
import {CELL, CELL_COLORS, paintCells, SAMPLE_LIMIT, scaleSpace, statDomain, statPosition, statTickMarks, statTicks} from '../../frontend/model/stat_scale.js';

// Cells hold values in scale space (log10 for a log scale).
const cells = (values, kind = 'log') => ({values: Float64Array.from(values, (v) => scaleSpace(v, kind)),
  kinds: new Uint8Array(values.length)});

test('a log scale spans the 1st to 99th percentile of the positive values', () => {
  const values = [];
  for (let i = 0; i <= 100; i++) values.push(Math.pow(10, -5 + 4 * i / 100)); // 1e-5 … 1e-1
  values.push(1e6); // an explosion
  const {values: v, kinds} = cells(values);
  const d = statDomain(v, kinds, 'log');
  assert.equal(d.kind, 'log');
  assert.ok(d.lo > 1e-5 && d.lo < 1.2e-5, String(d.lo));
  assert.ok(d.hi < 1e-1 * 1.1 && d.hi > 0.09, String(d.hi));
  assert.equal(d.clipped, true);
  assert.equal(statPosition(d, 1e6), 1);
  assert.equal(statPosition(d, 1e-9), 0);
  assert.ok(Math.abs(statPosition(d, Math.sqrt(d.lo * d.hi)) - 0.5) < 1e-9, 'log: the geometric mean is the middle');
});

test('only VALUE cells count; a linear scale of non-negative values starts at 0', () => {
  const {values, kinds} = cells([0.1, 0.2, 0.3, 5, 0], 'linear');
  kinds[3] = CELL.NONFINITE;
  kinds[4] = CELL.ZERO;
  const d = statDomain(values, kinds, 'linear', 0);
  assert.deepEqual(d, {kind: 'linear', lo: 0, hi: 0.3, a: 0, b: 0.3, clipped: false});
  assert.equal(statDomain(values, new Uint8Array(5).fill(CELL.UNDEFINED), 'log'), null);
  const flat = statDomain(Float64Array.of(Math.log10(2), Math.log10(2)), new Uint8Array(2), 'log');
  assert.ok(flat.lo < 2 && flat.hi > 2);
});

test('large maps take their percentiles from a strided sample', () => {
  const n = 320 * 1000;
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = 1 + (i * 7919) % n; // a permutation of 1 … n
  const d = statDomain(values, new Uint8Array(n), 'linear');
  assert.equal(d.a, 0);
  assert.ok(n > SAMPLE_LIMIT);
  assert.ok(Math.abs(d.hi - 0.99 * n) < 0.01 * n, String(d.hi));
});

test('cells are painted through the colormap, specials in their colours', () => {
  const lut = colormapLUT('viridis');
  const values = Float64Array.of(-4, -2, 0, 0, 0, 0, 0); // log10 of 1e-4, 1e-2, 1
  const kinds = Uint8Array.of(CELL.VALUE, CELL.VALUE, CELL.VALUE, CELL.ZERO, CELL.NONFINITE, CELL.UNDEFINED, CELL.ABSENT);
  const out = new Uint32Array(values.length);
  paintCells(values, kinds, {kind: 'log', lo: 1e-4, hi: 1, a: -4, b: 0}, lut, out);
  assert.equal(out[0], lut[0]);
  assert.equal(out[1], lut[128]);
  assert.equal(out[2], lut[255]);
  assert.equal(out[3], packRGB(...CELL_COLORS[CELL.ZERO].rgb));
  assert.equal(out[4], packRGB(255, 0, 255));
  assert.equal(out[5], 0, 'transparent');
  assert.equal(out[6], 0, 'transparent');
});

test('log ticks are powers of ten, or 1-2-5 steps within a decade or two', () => {
  const log = (lo, hi) => ({kind: 'log', lo, hi, a: Math.log10(lo), b: Math.log10(hi)});
  assert.deepEqual(statTicks(log(1.5e-5, 0.2)), [1e-4, 1e-3, 1e-2, 1e-1]);
  assert.deepEqual(statTicks(log(0.011, 0.3)), [0.02, 0.05, 0.1, 0.2]);
  assert.deepEqual(statTicks({kind: 'linear', lo: 0, hi: 1}), [0, 0.25, 0.5, 0.75, 1]);
});

test('a log scale\'s legend ticks sit where their values are on the bar', () => {
  const domain = {kind: 'log', lo: 1e-4, hi: 1e-1, a: -4, b: -1};
  const marks = statTickMarks(domain);
  assert.deepEqual(marks.map((m) => m.label), ['1e-4', '0.001', '0.01', '0.1']);
  assert.deepEqual(marks.map((m) => Number(m.at.toFixed(6))), [0, 1 / 3, 2 / 3, 1].map((x) => Number(x.toFixed(6))));
  // Counts format as counts.
  const counts = statTickMarks({kind: 'linear', lo: 0, hi: 2000, a: 0, b: 2000}, (n) => `${n / 1000}k`);
  assert.deepEqual(counts.map((m) => m.label), ['0k', '0.5k', '1k', '1.5k', '2k']);
  assert.deepEqual(counts.map((m) => m.at), [0, 0.25, 0.5, 0.75, 1]);
});
