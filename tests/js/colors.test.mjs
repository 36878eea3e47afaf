import test from 'node:test';
import assert from 'node:assert/strict';
import {colorFrame, colormapRGB, colormapLUT, packRGB, scalePosition, RunColors, SPECIAL_COLORS, colormapNames} from '../../frontend/model/colors.js';

test('every colormap has 256 RGB entries', () => {
  for (const name of [...colormapNames('diverging'), ...colormapNames('sequential')]) {
    const rgb = colormapRGB(name);
    assert.equal(rgb.length, 256, name);
    for (const c of rgb) assert.ok(c.every((x) => x >= 0 && x <= 255));
  }
  assert.ok(colormapNames('diverging').includes('RdBu_r'));
  assert.ok(colormapNames('sequential').includes('viridis'));
});

test('RdBu_r runs from blue (negative) to red (positive)', () => {
  const rgb = colormapRGB('RdBu_r');
  assert.ok(rgb[0][2] > rgb[0][0], 'low end is blue');
  assert.ok(rgb[255][0] > rgb[255][2], 'high end is red');
});

test('a diverging scale maps 0 to the middle and clamps outside values', () => {
  const scale = {lo: -2, hi: 2, magnitude: false};
  assert.equal(scalePosition(0, scale), 0.5);
  assert.equal(scalePosition(5, scale), 1);
  assert.equal(scalePosition(-5, scale), 0);
  const lut = colormapLUT('RdBu_r');
  const out = new Uint32Array(4);
  colorFrame(Float32Array.of(-2, 0, 2, 1e30), scale, 'RdBu_r', out);
  assert.equal(out[0], lut[0]);
  assert.equal(out[1], lut[128]);
  assert.equal(out[2], lut[255]);
  assert.equal(out[3], lut[255], 'huge values clamp to the top');
});

test('a magnitude scale maps |x|', () => {
  const scale = {lo: 0, hi: 4, magnitude: true};
  const lut = colormapLUT('viridis');
  const out = new Uint32Array(3);
  colorFrame(Float32Array.of(-4, 4, 0), scale, 'viridis', out);
  assert.equal(out[0], lut[255]);
  assert.equal(out[1], lut[255]);
  assert.equal(out[2], lut[0]);
});

test('NaN and ±Inf get their own colours and are counted', () => {
  const out = new Uint32Array(4);
  const counts = colorFrame(Float32Array.of(NaN, Infinity, -Infinity, NaN), {lo: -1, hi: 1}, 'RdBu_r', out);
  assert.deepEqual(counts, {nan: 2, posinf: 1, neginf: 1});
  assert.equal(out[0], packRGB(...SPECIAL_COLORS.nan.rgb));
  assert.equal(out[1], packRGB(...SPECIAL_COLORS.posinf.rgb));
  assert.equal(out[2], packRGB(...SPECIAL_COLORS.neginf.rgb));
  const lutColors = new Set(colormapLUT('RdBu_r'));
  for (const px of out) assert.ok(!lutColors.has(px), 'special colours are not in the colormap');
});

test('a flat scale (all zeros) paints the centre colour', () => {
  const out = new Uint32Array(2);
  colorFrame(Float32Array.of(0, 0), {lo: 0, hi: 0}, 'RdBu_r', out);
  assert.equal(out[0], colormapLUT('RdBu_r')[128]);
});

test('run colours are stable: new runs do not move existing ones', () => {
  const colors = new RunColors();
  colors.assign(['b', 'a']);
  const a = colors.get('a');
  const b = colors.get('b');
  assert.notEqual(a, b);
  colors.assign(['0-new', 'a', 'b']);
  assert.equal(colors.get('a'), a);
  assert.equal(colors.get('b'), b);
  assert.ok(![a, b].includes(colors.get('0-new')));
  const fresh = new RunColors();
  fresh.assign(['a', 'b']);
  assert.equal(fresh.get('a'), a, 'the same runs get the same colours on a fresh page');
});
