import test from 'node:test';
import assert from 'node:assert/strict';
import {decodeFrame, subtractFrames, FrameError} from '../../frontend/model/decode.js';

function le32(values) {
  const buf = new ArrayBuffer(values.length * 4);
  const view = new DataView(buf);
  values.forEach((v, i) => view.setFloat32(4 * i, v, true));
  return buf;
}

test('decodes little-endian float32 row-major with its headers', () => {
  const headers = new Headers({'X-NNViz-Rows': '2', 'X-NNViz-Cols': '3', 'X-NNViz-Step': '40'});
  const f = decodeFrame(le32([1, 2, 3, 4, NaN, -Infinity]), headers);
  assert.equal(f.rows, 2);
  assert.equal(f.cols, 3);
  assert.equal(f.step, 40);
  assert.equal(f.data[0 * 3 + 2], 3);
  assert.equal(f.data[1 * 3 + 0], 4);
  assert.ok(Number.isNaN(f.data[4]));
  assert.equal(f.data[5], -Infinity);
});

test('rejects a body whose length does not match the headers', () => {
  const headers = {'X-NNViz-Rows': '2', 'X-NNViz-Cols': '2', 'X-NNViz-Step': '0'};
  assert.throws(() => decodeFrame(le32([1, 2, 3]), headers), (e) => e instanceof FrameError && /12 bytes, expected 16/.test(e.message));
});

test('rejects missing or malformed size headers', () => {
  assert.throws(() => decodeFrame(le32([1]), {'X-NNViz-Cols': '1', 'X-NNViz-Step': '0'}), /X-NNViz-Rows/);
  assert.throws(() => decodeFrame(le32([1]), {'X-NNViz-Rows': '1.5', 'X-NNViz-Cols': '1', 'X-NNViz-Step': '0'}), /X-NNViz-Rows/);
});

test('subtracts frames of one size and refuses different sizes', () => {
  const a = {rows: 1, cols: 2, step: 5, data: Float32Array.of(3, 1)};
  const b = {rows: 1, cols: 2, step: 4, data: Float32Array.of(1, 4)};
  assert.deepEqual([...subtractFrames(a, b).data], [2, -3]);
  assert.equal(subtractFrames(a, b).step, 5);
  assert.throws(() => subtractFrames(a, {rows: 2, cols: 1, step: 0, data: Float32Array.of(0, 0)}), FrameError);
});
