// Decoding the binary answers: /frame and /units are little-endian float32,
// row-major, rows × cols, sizes in the X-NNViz-* headers. Pure: tested by
// node --test.

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export class FrameError extends Error {}

function headerInt(headers, name) {
  const raw = typeof headers.get === 'function' ? headers.get(name) : headers[name];
  const value = Number(raw);
  if (raw === null || raw === undefined || raw === '' || !Number.isInteger(value) || value < 0) {
    throw new FrameError(`frame answer has no valid ${name} header (got ${JSON.stringify(raw)})`);
  }
  return value;
}

/**
 * Decodes one frame.
 * @param {ArrayBuffer} buffer the body.
 * @param {Headers|Object} headers X-NNViz-Rows, X-NNViz-Cols, X-NNViz-Step.
 * @return {{rows: number, cols: number, step: number, data: Float32Array}}
 */
export function decodeFrame(buffer, headers) {
  const rows = headerInt(headers, 'X-NNViz-Rows');
  const cols = headerInt(headers, 'X-NNViz-Cols');
  const step = headerInt(headers, 'X-NNViz-Step');
  return {rows, cols, step, data: float32Cells(buffer, rows, cols, 'frame')};
}

/** rows × cols little-endian float32 cells of a body, checked for length. */
function float32Cells(buffer, rows, cols, what) {
  const expected = rows * cols * 4;
  if (buffer.byteLength !== expected) {
    throw new FrameError(
        `${what} has ${buffer.byteLength} bytes, expected ${expected} for ${rows} × ${cols} float32 cells`);
  }
  if (LITTLE_ENDIAN) return new Float32Array(buffer); // the body's own buffer: no copy
  const view = new DataView(buffer);
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(4 * i, true);
  return data;
}

/**
 * Decodes a /units answer: one row per snapshot step (the steps of the
 * tag's stats, in order), one column per unit, or per `block` consecutive
 * units when X-NNViz-Unit-Block is above 1. NaN cells are undefined (the
 * first snapshot's update).
 * @return {{rows: number, cols: number, block: number, data: Float32Array}}
 */
export function decodeUnits(buffer, headers) {
  const rows = headerInt(headers, 'X-NNViz-Rows');
  const cols = headerInt(headers, 'X-NNViz-Cols');
  const block = headerInt(headers, 'X-NNViz-Unit-Block');
  if (block < 1) throw new FrameError(`units answer has X-NNViz-Unit-Block ${block}; at least 1 expected`);
  return {rows, cols, block, data: float32Cells(buffer, rows, cols, 'units answer')};
}

/**
 * a − b cell by cell (frames of one tag have one size; a mismatch is an error
 * the panel shows rather than a wrong picture).
 */
export function subtractFrames(a, b) {
  if (a.rows !== b.rows || a.cols !== b.cols) {
    throw new FrameError(`cannot subtract a ${b.rows} × ${b.cols} frame from a ${a.rows} × ${a.cols} frame`);
  }
  const out = new Float32Array(a.data.length);
  for (let i = 0; i < out.length; i++) out[i] = a.data[i] - b.data[i];
  return {rows: a.rows, cols: a.cols, step: a.step, data: out};
}
