// The dynamics map's model: one row per weight tag (model order, grouped by
// layer; several runs stacked), one column per snapshot step, a value per
// cell of the chosen stat, the scale, the screen geometry and hit testing.
// Built from /stats?run=R&fields=… answers: each stat names the fields it
// reads (`mapFields`), so the map fetches one stat's columns, not the whole
// run's table. Pure: tested by node --test.

import {CELL, statDomain} from './stat_scale.js';
import {rmsAt, RMS_FIELDS} from './quantities.js';

// Columns of a series as Float64Arrays, NaN where undefined (JSON null):
// read once per series and stat, so a redraw reads typed arrays only.
const columns = new WeakMap();

function cached(series, key, build) {
  let byKey = columns.get(series);
  if (!byKey) {
    byKey = new Map();
    columns.set(series, byKey);
  }
  let column = byKey.get(key);
  if (!column) {
    column = build();
    byKey.set(key, column);
  }
  return column;
}

/** One field of a stats series over its snapshots, NaN where undefined. */
export function seriesColumn(series, key) {
  return cached(series, key, () => {
    const list = series[key];
    const out = new Float64Array(series.steps.length);
    for (let i = 0; i < out.length; i++) {
      const v = list ? list[i] : null;
      out[i] = v === null || v === undefined ? NaN : v;
    }
    return out;
  });
}

/** A stat read straight from one field of the stats series. */
export function fieldStat(key, label, scale, extra = {}) {
  return {key, label, scale, fields: [key], column: (series) => seriesColumn(series, key), ...extra};
}

/** nan + inf of one snapshot (NaN when neither was recorded). */
function nonfinite(nan, inf) {
  return nan !== nan && inf !== inf ? NaN : (nan || 0) + (inf || 0);
}

/** nan + inf at snapshot i (NaN when neither was recorded). */
export function nonfiniteAt(series, i) {
  return nonfinite(seriesColumn(series, 'nan')[i], seriesColumn(series, 'inf')[i]);
}

/** nan + inf over the snapshots (as nonfiniteAt at each). */
export function nonfiniteColumn(series) {
  return cached(series, ':nonfinite', () => {
    const inf = seriesColumn(series, 'inf');
    return seriesColumn(series, 'nan').map((n, i) => nonfinite(n, inf[i]));
  });
}

/** ‖W_t − W_0‖ / ‖W_0‖ over the snapshots, ‖W_0‖ the L2 norm at the first one (NaN when it is 0 or unknown). */
export function relativeToInit(series) {
  return cached(series, ':rel_init', () => {
    const d = seriesColumn(series, 'init_l2');
    const w0 = seriesColumn(series, 'l2')[0];
    return Float64Array.from(d, (x) => (w0 > 0 ? x / w0 : NaN));
  });
}

/** ‖x‖ / √n over the snapshots (quantities.rmsAt: from mean and std). */
export function rmsColumn(series) {
  return cached(series, ':rms', () => Float64Array.from(series.steps, (_, i) => rmsAt(series, i) ?? NaN));
}

// The per-step update ratio that is usually healthy (cs231n's rule of thumb).
export const UPDATE_RATIO_REFERENCE = 1e-3;

/**
 * The stats a map can show: `column(series)` gives the values over the
 * series' snapshots (NaN: undefined), read from the stats `fields`. scale 'log' for quantities that span
 * decades (0 gets its own colour), 'linear' otherwise. More can be added
 * with fieldStat.
 */
export const MAP_STATS = [
  fieldStat('update_ratio', 'update ratio ‖ΔW‖ / ‖W_prev‖', 'log', {reference: UPDATE_RATIO_REFERENCE}),
  {key: 'rel_init', label: 'distance from init ‖W − W₀‖ / ‖W₀‖', scale: 'linear', fields: ['init_l2', 'l2'],
    column: relativeToInit},
  fieldStat('l2', 'L2 norm ‖W‖', 'log'),
  // A gradient's RMS across depth is where vanishing gradients show.
  {key: 'rms', label: 'RMS ‖W‖ / √n', scale: 'log', fields: RMS_FIELDS, column: rmsColumn},
  fieldStat('std', 'std', 'log'),
  // Where and when NaN/Inf appear matters more than how many: any is painted
  // in the NaN colour (the count is read out on hover), none is left blank.
  {key: 'nonfinite', label: 'NaN / Inf count', scale: 'log', fields: ['nan', 'inf'], column: nonfiniteColumn,
    count: true, flag: true},
  // Spectral stats (matrices only; other rows stay blank). σ_max and the
  // stable rank span decades across layers: log. alpha lives in ~1.5–10 and
  // alpha_weighted can be negative (λ_max < 1): linear.
  fieldStat('sv_max', 'spectral norm σ_max', 'log'),
  fieldStat('stable_rank', 'stable rank', 'log'),
  fieldStat('alpha', 'power-law alpha', 'linear'),
  fieldStat('alpha_weighted', 'alpha weighted', 'linear'),
];

export function mapStat(key) {
  return MAP_STATS.find((s) => s.key === key) || MAP_STATS[0];
}

/** `fields` and nan, inf (what paints a cell in the NaN colour), each once. */
export function withNonfinite(fields) {
  return [...new Set([...fields, 'nan', 'inf'])];
}

/** The /stats fields the map of `stat` reads: its own, and nan, inf. */
export function mapFields(stat) {
  return withNonfinite(stat.fields);
}

/**
 * Rows and columns of the map.
 * @param {Array<{run, rows, stats}>} inputs per run: its layer rows
 *   (structure.layerRows: model order) and its /stats answer.
 * @return {{steps: number[], runs: [{run, start, count, groups: [{layer, start, end}]}],
 *   rows: [{run, tag, layer, name, series, cols: Int32Array}]}} cols: the
 *   column of each of the series' snapshots; groups: consecutive rows of
 *   one layer (start, end: row indices, end exclusive).
 */
export function mapRows(inputs) {
  const stepSet = new Set();
  const found = [];
  let added = [];
  for (const {run, rows, stats} of inputs) {
    const tags = [];
    for (const row of rows) {
      for (const w of row.weights) {
        if (!w.recorded) continue;
        const series = stats && stats[w.tag] && Array.isArray(stats[w.tag].steps) ? stats[w.tag] : null;
        // Tags mostly share their steps: a list equal to the last one added adds nothing.
        if (series && !sameSteps(series.steps, added)) {
          for (const s of series.steps) stepSet.add(s);
          added = series.steps;
        }
        tags.push({run, tag: w.tag, layer: row.path, name: w.name, series});
      }
    }
    found.push({run, tags});
  }
  const steps = [...stepSet].sort((a, b) => a - b);
  const column = new Map(steps.map((s, c) => [s, c]));
  const runs = [];
  const rows = [];
  for (const {run, tags} of found) {
    const start = rows.length;
    const groups = [];
    for (const t of tags) {
      const last = groups[groups.length - 1];
      if (last && last.layer === t.layer) last.end += 1;
      else groups.push({layer: t.layer, start: rows.length, end: rows.length + 1});
      const cols = t.series ? columnsOf(t.series.steps, steps, column) : new Int32Array(0);
      rows.push({...t, cols});
    }
    runs.push({run, start, count: rows.length - start, groups});
  }
  return {steps, runs, rows};
}

function sameSteps(a, b) {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The column of each of a series' snapshot steps in `steps` (ascending,
 * holding every one of them; `column`: step → column). Walked side by
 * side while the series' steps ascend, as /stats gives them.
 */
function columnsOf(seriesSteps, steps, column) {
  const cols = new Int32Array(seriesSteps.length);
  let c = 0;
  for (let i = 0; i < seriesSteps.length; i++) {
    const s = seriesSteps[i];
    while (c < steps.length && steps[c] < s) c++;
    if (steps[c] !== s) c = column.get(s);
    cols[i] = c;
  }
  return cols;
}

/**
 * Values of a stat in every cell, row-major (rows × steps), in the scale's
 * space (log10 for a log stat: see stat_scale.statDomain), with what each
 * cell holds (stat_scale.CELL): a value; ZERO on a log scale; NONFINITE when
 * the value is undefined because the tensor holds NaN/Inf (for a `flag`
 * stat: whenever it does); UNDEFINED (e.g. the first snapshot's update
 * ratio; a flag stat's "none"); ABSENT where a run has no snapshot.
 */
export function mapValues(model, stat) {
  const nCols = model.steps.length;
  const values = new Float64Array(model.rows.length * nCols);
  const kinds = new Uint8Array(values.length).fill(CELL.ABSENT);
  const log = stat.scale === 'log';
  model.rows.forEach((row, r) => {
    if (!row.series) return;
    const column = stat.column(row.series);
    const bad = nonfiniteColumn(row.series);
    const base = r * nCols;
    for (let i = 0; i < row.cols.length; i++) {
      const j = base + row.cols[i];
      const v = column[i];
      if (v !== v || stat.flag) {
        kinds[j] = bad[i] > 0 ? CELL.NONFINITE : CELL.UNDEFINED;
      } else if (log && v <= 0) {
        kinds[j] = CELL.ZERO;
      } else {
        values[j] = log ? Math.log10(v) : v;
        kinds[j] = CELL.VALUE;
      }
    }
  });
  return {values, kinds};
}

/** The shared scale of one or more runs' cells (null when none has a value). */
export function mapDomain(cells, stat) {
  return statDomain(cells.values, cells.kinds, stat.scale);
}

/**
 * The steps between a row's snapshot i and the one before it (what an
 * update is measured over), or null at its first snapshot.
 */
export function stepGap(row, i) {
  return i > 0 && row.series ? row.series.steps[i] - row.series.steps[i - 1] : null;
}

/** Smallest, median and largest step gap between snapshots over the map's rows (null: < 2 snapshots). */
export function gapSummary(model) {
  // Gaps take few distinct values: counted, not sorted.
  const counts = new Map();
  let n = 0;
  for (const row of model.rows) {
    if (!row.series) continue;
    const steps = row.series.steps;
    for (let i = 1; i < steps.length; i++) counts.set(steps[i] - steps[i - 1], (counts.get(steps[i] - steps[i - 1]) || 0) + 1);
    n += Math.max(0, steps.length - 1);
  }
  if (!n) return null;
  const gaps = [...counts.keys()].sort((a, b) => a - b);
  let seen = 0;
  let median = gaps[0];
  for (const g of gaps) {
    seen += counts.get(g);
    if (seen > (n - 1) / 2) {
      median = g;
      break;
    }
  }
  return {min: gaps[0], median, max: gaps[gaps.length - 1]};
}

/**
 * The update-ratio reference over `k` steps: per-step updates of ratio r
 * that are independent (noise-dominated, as SGD's are near a minimum) add up
 * like a random walk, to r·√k over k steps; updates that all point the same
 * way add up to r·k. The map marks r·√k and names r·k.
 */
export function referenceOver(k, perStep = UPDATE_RATIO_REFERENCE) {
  return {independent: perStep * Math.sqrt(k), aligned: perStep * k};
}

// --- geometry -------------------------------------------------------------------

export const GEOMETRY = {
  labelWidth: 170, // px of row labels left of the cells
  headerHeight: 20, // px of a run's name above its rows
  runGap: 8, // px between stacked runs
  maxCellW: 24,
  maxCellH: 14,
  minCellH: 3,
  targetHeight: 640, // px the rows aim to fill before cells shrink to minCellH
};

/**
 * Where cells go on a canvas `width` px wide.
 * @return {{x0, cellW, cellH, width, height, runTops: number[], rowTops: Float64Array}}
 *   runTops: the top of each run's header; rowTops: the top of each row.
 */
export function mapLayout(model, width, g = GEOMETRY) {
  const nCols = Math.max(1, model.steps.length);
  const total = Math.max(1, model.rows.length);
  const cellW = Math.max(0.05, Math.min(g.maxCellW, (width - g.labelWidth - 4) / nCols));
  const cellH = Math.max(g.minCellH, Math.min(g.maxCellH, Math.floor(g.targetHeight / total)));
  const rowTops = new Float64Array(model.rows.length);
  const runTops = [];
  let y = 0;
  for (const run of model.runs) {
    runTops.push(y);
    y += g.headerHeight;
    for (let r = 0; r < run.count; r++) rowTops[run.start + r] = y + r * cellH;
    y += run.count * cellH + g.runGap;
  }
  return {x0: g.labelWidth, cellW, cellH, width, height: Math.max(y - g.runGap, g.headerHeight) + 2,
    runTops, rowTops, headerHeight: g.headerHeight};
}

/** The cell {row, col} at (x, y) px of the canvas, or null. */
export function cellAtPoint(model, layout, x, y) {
  const col = Math.floor((x - layout.x0) / layout.cellW);
  if (col < 0 || col >= model.steps.length) return null;
  for (let k = 0; k < model.runs.length; k++) {
    const run = model.runs[k];
    const top = layout.runTops[k] + layout.headerHeight;
    const r = Math.floor((y - top) / layout.cellH);
    if (y >= top && r < run.count) return {row: run.start + r, col};
  }
  return null;
}

/** The centre of cell (row, col) in px of the canvas. */
export function cellCenter(layout, row, col) {
  return {x: layout.x0 + (col + 0.5) * layout.cellW, y: layout.rowTops[row] + layout.cellH / 2};
}

/**
 * Row labels that fit: every tag when rows are tall enough to read, else the
 * layer of each group, skipping those that would overlap the one above.
 * @return {Array<{text, y, row}>} y: the label's middle.
 */
export function rowLabels(model, layout, lineHeight = 11) {
  const out = [];
  if (layout.cellH >= lineHeight) {
    model.rows.forEach((row, r) => out.push({text: row.tag, y: layout.rowTops[r] + layout.cellH / 2, row: r}));
    return out;
  }
  for (const run of model.runs) {
    let last = -Infinity;
    for (const g of run.groups) {
      const y = layout.rowTops[g.start] + (g.end - g.start) * layout.cellH / 2;
      if (y - last < lineHeight) continue;
      out.push({text: g.layer, y, row: g.start});
      last = y;
    }
  }
  return out;
}

/**
 * A cursor {row, col} on a rows × cols grid moved by a key (arrows,
 * Home/End along the row, PageUp/PageDown ten rows), or null for other keys.
 * With no cursor yet, the key starts it at the first row's last column.
 */
export function moveCursor(rows, cols, cursor, key) {
  if (!rows || !cols) return null;
  const at = cursor || {row: 0, col: cols - 1};
  const clamp = (row, col) => ({row: Math.max(0, Math.min(rows - 1, row)), col: Math.max(0, Math.min(cols - 1, col))});
  switch (key) {
    case 'ArrowLeft': return clamp(at.row, at.col - 1);
    case 'ArrowRight': return clamp(at.row, at.col + 1);
    case 'ArrowUp': return clamp(at.row - 1, at.col);
    case 'ArrowDown': return clamp(at.row + 1, at.col);
    case 'Home': return clamp(at.row, 0);
    case 'End': return clamp(at.row, cols - 1);
    case 'PageUp': return clamp(at.row - 10, at.col);
    case 'PageDown': return clamp(at.row + 10, at.col);
    default: return null;
  }
}

/**
 * What cell (row, col) holds, for the read-out: {run, tag, layer, step,
 * value, kind, gap, nonfinite} (value: the stat, null when undefined; gap:
 * steps since the row's previous snapshot).
 */
export function cellInfo(model, cells, stat, row, col) {
  const r = model.rows[row];
  const step = model.steps[col];
  const base = {run: r.run, tag: r.tag, layer: r.layer, step, kind: cells.kinds[row * model.steps.length + col]};
  const i = r.series ? r.series.steps.indexOf(step) : -1;
  if (i < 0) return {...base, value: null, gap: null, nonfinite: null};
  const value = stat.column(r.series)[i];
  const nonfinite = nonfiniteAt(r.series, i);
  return {...base, value: value === value ? value : null, gap: stepGap(r, i), nonfinite: nonfinite === nonfinite ? nonfinite : null};
}
