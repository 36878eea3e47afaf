// Per-unit stats (/units) in the units map: which units a column of the
// answer stands for, the gate/head groups they fall in, and the cells of the
// picture (units as rows, steps as columns). Pure: tested by node --test.
//
// A unit is one output channel of a layer: its index is the flattened
// (C-order) index over the layout's `unit_axes`; more than 65,536 units are
// averaged in blocks of `block` consecutive units (one column each).

import {unravel} from './layout.js';
import {CELL} from './stat_scale.js';

export const UNIT_STATS = [['norm', 'norm ‖W[u]‖'], ['update', 'update ‖ΔW[u]‖']];

/** The number of units of a tensor (null when its layout names no unit axes). */
export function unitCount(shape, layout) {
  const axes = layout && layout.unit_axes;
  if (!Array.isArray(axes)) return null;
  return axes.reduce((n, a) => n * shape[a], 1);
}

function sameAxes(a, b) {
  return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Gate/head groups over the units, in units-map rows (columns of the
 * answer): [{start, end, name}], end exclusive. A layout group marks units
 * when it runs along the side the units are: the layout's columns when
 * unit_axes are its col_axes (an LSTM kernel's gates, a query kernel's
 * heads), its rows when they are its row_axes. Otherwise (an attention
 * output kernel's heads are its inputs) there is none.
 */
export function unitGroupSpans(shape, layout, block = 1) {
  const count = unitCount(shape, layout);
  if (count === null) return [];
  const out = [];
  for (const g of layout.groups || []) {
    const side = g.axis === 'rows' ? layout.row_axes : layout.col_axes;
    if (!sameAxes(side, layout.unit_axes) || !(g.size > 0)) continue;
    const names = g.names || [];
    for (let k = 0, start = 0; start < count; k++, start += g.size) {
      out.push({start: start / block, end: Math.min(start + g.size, count) / block,
        name: names[k] !== undefined ? String(names[k]) : String(k)});
    }
  }
  return out;
}

/** The units column `col` stands for: [first, last] (inclusive). */
export function unitsOfColumn(col, block, count) {
  const first = col * block;
  const last = count === null ? first + block - 1 : Math.min(first + block, count) - 1;
  return [first, last];
}

/** The column holding unit `u`. */
export function columnOfUnit(u, block) {
  return Math.floor(u / block);
}

/** "unit 9 [1, 1]" (the index over several unit axes), or "units 0–127" for a block. */
export function unitLabel(shape, layout, col, block) {
  const count = unitCount(shape, layout);
  const [first, last] = unitsOfColumn(col, block, count);
  if (last > first) return `units ${first}–${last} (mean of ${last - first + 1})`;
  const axes = (layout && layout.unit_axes) || [];
  return axes.length > 1 ? `unit ${first} [${unravel(first, axes.map((a) => shape[a])).join(', ')}]` : `unit ${first}`;
}

/**
 * The picture's cells, units as rows and steps as columns (the /units answer
 * transposed): values on a log scale (log10, see stat_scale.statDomain) and
 * what each holds (stat_scale.CELL): NaN is undefined (the first
 * snapshot's update), 0 is ZERO (a unit that did not move, or a zero norm),
 * ±Inf NONFINITE.
 */
export function unitCells(units) {
  const {rows: steps, cols: n, data} = units;
  const values = new Float64Array(steps * n);
  const kinds = new Uint8Array(steps * n);
  for (let s = 0; s < steps; s++) {
    for (let u = 0; u < n; u++) {
      const v = data[s * n + u];
      const j = u * steps + s;
      if (v !== v) kinds[j] = CELL.UNDEFINED;
      else if (!Number.isFinite(v)) kinds[j] = CELL.NONFINITE;
      else if (v <= 0) kinds[j] = CELL.ZERO;
      else {
        values[j] = Math.log10(v);
        kinds[j] = CELL.VALUE;
      }
    }
  }
  return {values, kinds, rows: n, cols: steps};
}

export const UNITS_GEOMETRY = {gutter: 64, maxCellW: 24, maxCellH: 10, minHeight: 40, maxHeight: 360};

/**
 * Where the cells go on a canvas `width` px wide: {x0, y0, cellW, cellH,
 * width, height}. More units than the height has pixels share pixels (the
 * read-out still names the unit under the pointer).
 */
export function unitsLayout(rows, cols, width, g = UNITS_GEOMETRY) {
  const height = Math.max(g.minHeight, Math.min(g.maxHeight, rows * g.maxCellH));
  const cellH = height / Math.max(1, rows);
  const cellW = Math.max(0.05, Math.min(g.maxCellW, (width - g.gutter - 4) / Math.max(1, cols)));
  return {x0: g.gutter, y0: 2, cellW, cellH, width, height: height + 4};
}

/** The cell {row (unit column of the answer), col (step index)} at (x, y) px, or null. */
export function unitCellAt(layout, rows, cols, x, y) {
  const col = Math.floor((x - layout.x0) / layout.cellW);
  const row = Math.floor((y - layout.y0) / layout.cellH);
  return col >= 0 && col < cols && row >= 0 && row < rows ? {row, col} : null;
}
