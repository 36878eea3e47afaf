// From a frame cell back to the tensor, by the layout rule of
// docs/architecture.md ("The layout rule"):
//   frame = transpose(W, row_axes + col_axes).reshape(Π rows, Π cols),
//   then block means of block = [br, bc] (edge blocks cover what is left).
// Also separators between conv tiles and the spans of gate/head groups.
// Pure: no DOM, tested by node --test.

function product(xs) {
  return xs.reduce((a, b) => a * b, 1);
}

/** Layout rows and columns (before block reduction) of a tensor. */
export function layoutSize(shape, layout) {
  return {
    rows: product(layout.row_axes.map((a) => shape[a])),
    cols: product(layout.col_axes.map((a) => shape[a])),
  };
}

function block(layout) {
  const b = layout.block || [1, 1];
  return [Math.max(1, b[0] | 0), Math.max(1, b[1] | 0)];
}

/** Row-major (C order) multi-index of flat index i over dims. */
export function unravel(i, dims) {
  const out = new Array(dims.length);
  for (let k = dims.length - 1; k >= 0; k--) {
    out[k] = i % dims[k];
    i = Math.floor(i / dims[k]);
  }
  return out;
}

/** The tensor index of layout cell (lr, lc) (before block reduction). */
export function tensorIndex(shape, layout, lr, lc) {
  const idx = new Array(shape.length).fill(0);
  const ri = unravel(lr, layout.row_axes.map((a) => shape[a]));
  const ci = unravel(lc, layout.col_axes.map((a) => shape[a]));
  layout.row_axes.forEach((a, k) => (idx[a] = ri[k]));
  layout.col_axes.forEach((a, k) => (idx[a] = ci[k]));
  return idx;
}

/**
 * What frame cell (r, c) stands for. Exact frames: {index}. Downsampled
 * frames: the layout block it averages, {rows: [r0, r1], cols: [c0, c1],
 * count, first, last} with first/last the tensor indices of its corners.
 */
export function cellInfo(shape, layout, r, c) {
  const [br, bc] = block(layout);
  const size = layoutSize(shape, layout);
  if (br === 1 && bc === 1) return {index: tensorIndex(shape, layout, r, c), exact: true};
  const r0 = r * br;
  const c0 = c * bc;
  const r1 = Math.min(r0 + br, size.rows) - 1;
  const c1 = Math.min(c0 + bc, size.cols) - 1;
  return {
    exact: false,
    rows: [r0, r1],
    cols: [c0, c1],
    count: (r1 - r0 + 1) * (c1 - c0 + 1),
    first: tensorIndex(shape, layout, r0, c0),
    last: tensorIndex(shape, layout, r1, c1),
  };
}

/** "kernel[1, 2, 0, 5]" */
export function formatIndex(name, index) {
  return `${name}[${index.join(', ')}]`;
}

/** A one-line description of a cell for the hover read-out. */
export function describeCell(name, shape, layout, r, c) {
  const info = cellInfo(shape, layout, r, c);
  if (info.exact) return formatIndex(name, info.index);
  return `${formatIndex(name, info.first)} … ${formatIndex(name, info.last)}` +
      ` (mean of ${info.rows[1] - info.rows[0] + 1}×${info.cols[1] - info.cols[0] + 1} block:` +
      ` layout rows ${info.rows[0]}–${info.rows[1]}, cols ${info.cols[0]}–${info.cols[1]})`;
}

/**
 * Separator positions, in frame cells (may be fractional for reduced
 * frames): every shape[row_axes[-1]] layout rows / shape[col_axes[-1]]
 * layout cols, when the side has more than one axis (conv tiles), strictly
 * inside the layout. Python's layout.separators is the same rule: both pass
 * the cases of tests/fixtures/shared_rules.json.
 */
export function separators(shape, layout) {
  const [br, bc] = block(layout);
  const size = layoutSize(shape, layout);
  const lines = (axes, total, b) => {
    if (axes.length < 2) return [];
    const period = shape[axes[axes.length - 1]];
    const out = [];
    if (!(period > 0)) return out;
    for (let p = period; p < total; p += period) out.push(p / b);
    return out;
  };
  return {
    rows: lines(layout.row_axes, size.rows, br),
    cols: lines(layout.col_axes, size.cols, bc),
  };
}

/**
 * Spans of named groups (LSTM gates, attention heads), in frame cells:
 * [{axis: 'rows'|'cols', start, end, name}], end exclusive.
 */
export function groupSpans(shape, layout) {
  const [br, bc] = block(layout);
  const size = layoutSize(shape, layout);
  const out = [];
  for (const g of layout.groups || []) {
    const rows = g.axis === 'rows';
    const total = rows ? size.rows : size.cols;
    const b = rows ? br : bc;
    if (!(g.size > 0)) continue;
    const names = g.names || [];
    for (let k = 0, start = 0; start < total; k++, start += g.size) {
      out.push({
        axis: rows ? 'rows' : 'cols',
        start: start / b,
        end: Math.min(start + g.size, total) / b,
        name: names[k] !== undefined ? String(names[k]) : String(k),
      });
    }
  }
  return out;
}

/** "gate f" for a one-letter gate name, else the name ("head 1"). */
export function groupLabel(name) {
  return name.length <= 2 ? `gate ${name}` : name;
}

/**
 * Where gate/head group marks go on a picture at box {x0, y0, w, h, cellW,
 * cellH} (CSS px), for spans [{start, end, name}] in cells along `side`
 * ('cols': along the top, 'rows': down the left). Per span: its pixel extent
 * [a, b] along the side, the `line` [x1, y1, x2, y2] across the picture
 * where it starts (none for the first), and the `bracket` [x, y, w, h]
 * outside the picture along it. Lines of odd `lineWidth` sit on half pixels
 * so that they stay sharp.
 */
export function groupBrackets(spans, side, box, lineWidth) {
  const cols = side === 'cols';
  const origin = cols ? box.x0 : box.y0;
  const cell = cols ? box.cellW : box.cellH;
  const snap = (p) => Math.round(p) + (lineWidth % 2 ? 0.5 : 0);
  return spans.map((s) => {
    const a = origin + s.start * cell;
    const b = origin + s.end * cell;
    const length = Math.max(1, b - a - 2);
    let line = null;
    if (s.start > 0) {
      line = cols ? [snap(a), box.y0, snap(a), box.y0 + box.h] : [box.x0, snap(a), box.x0 + box.w, snap(a)];
    }
    const bracket = cols ? [a + 1, box.y0 - 4, length, 2] : [box.x0 - 4, a + 1, 2, length];
    return {name: s.name, a, b, line, bracket};
  });
}

/** The name of the gate/head group a layout column or row belongs to, or null. */
export function groupAt(shape, layout, r, c) {
  const names = [];
  for (const g of groupSpans(shape, layout)) {
    const x = g.axis === 'rows' ? r : c;
    // Spans are in frame cells; a reduced cell may straddle two groups.
    if (x + 1 > g.start && x < g.end && !names.includes(g.name)) names.push(g.name);
  }
  return names.length ? names : null;
}

const BAND_GAP = 0.6; // between wrapped bands of tiles, in cells

/**
 * Where the cells of a rows × cols frame go on screen, fitting width ×
 * height (px) with cells of at most maxCell px. A wide conv frame (one row
 * of kh × kw tiles, e.g. a first layer's kernels) is wrapped into bands of
 * whole tiles when that makes the cells clearly bigger; everything else is
 * one band. Positions are in cells: band b shows frame columns [c0, c1)
 * with its top-left cell at (xu, yu).
 * @return {{cell, wu, hu, bands: Array<{c0, c1, xu, yu}>}}
 */
export function planFrame(shape, layout, rows, cols, width, height, maxCell) {
  const fit = (wu, hu) => Math.min(width / wu, height / hu, maxCell);
  const whole = {cell: fit(cols, rows), k: 0};
  const [br, bc] = block(layout);
  const axes = layout.col_axes || [];
  const period = axes.length >= 2 ? shape[axes[axes.length - 1]] : 0;
  let choice = whole;
  if (br === 1 && bc === 1 && period > 0 && cols % period === 0 && !(layout.groups || []).length) {
    const tiles = cols / period;
    const options = [];
    for (let k = 1; k < tiles; k++) {
      const n = Math.ceil(tiles / k);
      options.push({k, n, even: tiles % k === 0, cell: fit(k * period, n * rows + (n - 1) * BAND_GAP)});
    }
    const top = Math.max(0, ...options.map((o) => o.cell));
    if (top > whole.cell * 1.2) {
      // Near-best sizes: whole bands first, then fewer bands.
      const near = options.filter((o) => o.cell >= top * 0.7);
      near.sort((a, b) => (b.even - a.even) || (b.k - a.k));
      choice = near[0];
    }
  }
  if (!choice.k) return {cell: whole.cell, wu: cols, hu: rows, bands: [{c0: 0, c1: cols, xu: 0, yu: 0}]};
  const span = choice.k * period;
  const bands = [];
  for (let b = 0; b < choice.n; b++) {
    bands.push({c0: b * span, c1: Math.min(cols, (b + 1) * span), xu: 0, yu: b * (rows + BAND_GAP)});
  }
  return {cell: choice.cell, wu: span, hu: choice.n * rows + (choice.n - 1) * BAND_GAP, bands};
}

/** The frame cell at (u, v) cells from a plan's top-left corner, or null. */
export function cellAtUnits(plan, rows, u, v) {
  for (const b of plan.bands) {
    const r = Math.floor(v - b.yu);
    const c = b.c0 + Math.floor(u - b.xu);
    if (r >= 0 && r < rows && u >= b.xu && c < b.c1) return {r, c};
  }
  return null;
}

/** The top-left corner of frame cell (r, c), in cells from the plan's origin. */
export function cellUnits(plan, r, c) {
  const b = plan.bands.find((band) => c >= band.c0 && c < band.c1) || plan.bands[0];
  return {u: b.xu + c - b.c0, v: b.yu + r};
}
