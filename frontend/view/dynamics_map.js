// The dynamics map view: every weight tensor of the selected runs (rows, in
// model order, grouped by layer; runs stacked on one shared scale) against
// every snapshot step (columns), coloured by a chosen stat. Hover or the
// keyboard cursor reads a cell out; a click or Enter opens that tensor at
// that step. The model, scale and geometry are map_model.js's. Each stat
// comes with its own /stats answer (the controller fetches the fields a stat
// reads); a stat shown before is drawn again from what it computed then.

import {CellImage, cssContext, cssVar, drawStepLine, sizeCanvases} from './canvas.js';
import {colormapLUT} from '../model/colors.js';
import {clear, el, select} from './dom.js';
import {legendScale, specialsList} from './legend.js';
import {
  cellAtPoint, cellCenter, cellInfo, gapSummary, MAP_STATS, mapDomain, mapLayout, mapRows, mapStat, mapValues,
  moveCursor, referenceOver, rowLabels,
} from '../model/map_model.js';
import {formatCount, formatValue} from '../model/numbers.js';
import {labelFor, quantityInfo} from '../model/quantities.js';
import {CELL, CELL_COLORS, paintCells, scaleSpace, statTickMarks} from '../model/stat_scale.js';

const BAR_WIDTH = 256;

export class DynamicsMap {
  /**
   * @param {{onOpen: function(string, number), stat: string, onStat: function(string)}} options
   *   onOpen(tag, step): open that tensor at that step; onStat(key): the user
   *   chose another stat (the controller renders the map with its stats).
   */
  constructor({onOpen, stat, onStat}) {
    this.onOpen = onOpen;
    this.stat = mapStat(stat);
    this.statSelect = select(MAP_STATS.map((s) => [s.key, s.label]), this.stat.key, (key) => onStat(key),
        {id: 'map-stat', 'aria-label': 'map colour'});
    this.canvas = el('canvas', {class: 'map-canvas', attrs: {
      'tabindex': 0, 'role': 'application', 'aria-roledescription': 'dynamics map',
      'aria-label': 'dynamics map: arrow keys move between tensors and steps, Enter opens the tensor at that step',
    }});
    this.overlay = el('canvas', {class: 'map-overlay', attrs: {'aria-hidden': 'true'}});
    this.readout = el('div', {class: 'map-readout', attrs: {'aria-live': 'polite'}, text: '\u00a0'});
    this.legend = el('div', {class: 'map-legend', attrs: {id: 'map-legend'}});
    this.note = el('div', {class: 'note map-note'});
    this.root = el('div', {class: 'card map-card'}, [
      el('div', {class: 'map-head'}, [el('h2', {text: 'Dynamics map'}),
        el('label', {class: 'control'}, [el('span', {text: 'colour by'}), this.statSelect])]),
      this.note,
      el('div', {class: 'map-wrap'}, [this.canvas, this.overlay]),
      this.readout,
      this.legend,
    ]);
    this.model = null;
    this.image = new CellImage();
    this.cells = null;
    this.domain = null;
    this.layout = null;
    this.cursor = null; // {row, col}: the mouse's or the keyboard's cell
    this.step = null;
    this.key = null;
    this.bindEvents();
  }

  /**
   * @param {{runs: Array<{run, color, rows, stats, stepsKey, error}>, stat: string, loading: boolean,
   *   cmap: string, step: ?number, quantity: string}} args
   *   quantity: what the stats are of (the weights, grad, v_rms, ...).
   *   stats: the run's /stats answer with the fields of `stat` (null while
   *   loading, or with `error`); loading: some run's answer is on its way.
   */
  render({runs, stat, loading = false, cmap, step, quantity = 'weights'}) {
    this.step = step;
    this.quantity = quantity;
    this.colors = new Map(runs.map((r) => [r.run, r.color]));
    this.cmap = cmap;
    this.stat = mapStat(stat);
    this.statSelect.value = this.stat.key;
    this.canvas.classList.toggle('loading', loading);
    if (loading) {
      this.note.textContent = `Loading ${this.stat.label}…`;
      return;
    }
    const key = JSON.stringify([runs.map((r) => [r.run, r.stepsKey]), cmap, quantity]);
    if (key !== this.key) {
      this.key = key;
      this.byStat = new Map(); // stat key → {answers, model, cells, domain}: switching back recomputes nothing
      this.cursor = null;
    }
    const answers = runs.map((r) => r.stats);
    let entry = this.byStat.get(this.stat.key);
    if (!entry || entry.answers.some((a, i) => a !== answers[i])) {
      entry = {answers, model: mapRows(runs)};
      this.byStat.set(this.stat.key, entry);
    }
    if (entry.model === this.model && this.canvas.dataset.stat === this.stat.key && !this.canvas.hidden) {
      this.drawOverlay();
      return;
    }
    this.model = entry.model;
    this.canvas.dataset.quantity = quantity;
    const failed = runs.find((r) => r.error);
    if (!this.model.rows.length) {
      this.note.textContent = failed ? `stats unavailable: ${failed.error}` :
        runs.length ? 'No weight stats recorded in the selected runs yet.' : 'Select a run.';
      this.canvas.hidden = true;
      this.overlay.hidden = true;
      clear(this.legend);
      this.readout.textContent = '\u00a0';
      return;
    }
    this.canvas.hidden = false;
    this.overlay.hidden = false;
    this.note.textContent = `${this.model.rows.length} tensors × ${this.model.steps.length} snapshots` +
        (runs.length > 1 ? `, ${runs.length} runs stacked on one scale` : '') +
        '. Hover or use the arrow keys to read a cell; click or Enter opens the tensor at that step.' +
        (failed ? ` (stats unavailable for ${failed.run}: ${failed.error})` : '');
    this.redraw();
  }

  /** Marks the current step (cheap: the overlay only). */
  setStep(step) {
    this.step = step;
    if (this.model) this.drawOverlay();
  }

  /** Values, scale, picture and legend for the current stat. */
  redraw() {
    if (!this.model || !this.model.rows.length) return;
    const started = performance.now();
    const model = this.model;
    const entry = this.byStat.get(this.stat.key);
    if (!entry.cells) {
      entry.cells = mapValues(model, this.stat);
      entry.domain = mapDomain(entry.cells, this.stat);
    }
    ({cells: this.cells, domain: this.domain} = entry);
    this.image.paint(model.steps.length, model.rows.length,
        (pixels) => paintCells(this.cells.values, this.cells.kinds, this.domain, colormapLUT(this.cmap), pixels));
    this.paint();
    if (entry.legendFor !== this.cmap) {
      this.renderLegend();
      entry.legendFor = this.cmap;
      entry.legend = [...this.legend.childNodes];
      entry.legendData = {...this.legend.dataset};
    } else {
      this.legend.replaceChildren(...entry.legend);
      for (const k of Object.keys(this.legend.dataset)) delete this.legend.dataset[k];
      Object.assign(this.legend.dataset, entry.legendData);
    }
    if (this.cursor) this.showCell(this.cursor);
    record('nnviz-map-draw', started);
  }

  /** The picture: run headers, row labels with layer bands, the cells. */
  paint() {
    const wrap = this.canvas.parentElement;
    const width = Math.max(300, wrap.clientWidth || 800);
    const layout = mapLayout(this.model, width);
    this.layout = layout;
    sizeCanvases([this.canvas, this.overlay], width, layout.height);
    const ctx = cssContext(this.canvas, width, layout.height);
    const ink = cssVar(this.root, '--text', '#212121');
    const muted = cssVar(this.root, '--muted', '#616161');
    const band = cssVar(this.root, '--grid', '#e0e0e0');
    const border = cssVar(this.root, '--separator', '#9e9e9e');
    ctx.imageSmoothingEnabled = false;
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    const w = this.model.steps.length * layout.cellW;
    this.model.runs.forEach((run, k) => {
      const top = layout.runTops[k];
      ctx.fillStyle = this.colors.get(run.run) || ink;
      ctx.fillRect(0, top + 5, 10, 10);
      ctx.fillStyle = ink;
      ctx.textAlign = 'left';
      ctx.fillText(`${run.run} · ${run.count} tensors`, 16, top + 10);
      // Every other layer shaded in the label column: groups read even where names do not fit.
      ctx.fillStyle = band;
      run.groups.forEach((g, i) => {
        if (i % 2) ctx.fillRect(0, layout.rowTops[g.start], layout.x0 - 4, (g.end - g.start) * layout.cellH);
      });
      if (run.count) {
        const y = top + layout.headerHeight;
        ctx.drawImage(this.image.canvas, 0, run.start, this.model.steps.length, run.count, layout.x0, y, w, run.count * layout.cellH);
        // The cells' extent, also where most are blank (NaN/Inf: none).
        ctx.strokeStyle = border;
        ctx.lineWidth = 1;
        ctx.strokeRect(Math.round(layout.x0) - 0.5, Math.round(y) - 0.5, Math.round(w) + 1, Math.round(run.count * layout.cellH) + 1);
      }
    });
    ctx.fillStyle = muted;
    ctx.textAlign = 'right';
    for (const label of rowLabels(this.model, layout)) {
      ctx.fillText(fitText(ctx, label.text, layout.x0 - 10), layout.x0 - 6, label.y);
    }
    Object.assign(this.canvas.dataset, {rows: this.model.rows.length, cols: this.model.steps.length,
      stat: this.stat.key, x0: layout.x0, cellW: layout.cellW, cellH: layout.cellH});
    this.drawOverlay();
  }

  /** The current step's column and the cursor's cell, on the overlay. */
  drawOverlay() {
    const layout = this.layout;
    if (!layout) return;
    const ctx = cssContext(this.overlay, layout.width, layout.height);
    const col = this.step === null ? -1 : this.model.steps.indexOf(this.step);
    if (col >= 0) drawStepLine(ctx, this.root, layout.x0 + (col + 0.5) * layout.cellW, layout.height);
    if (this.cursor) {
      const {x, y} = cellCenter(layout, this.cursor.row, this.cursor.col);
      const cw = Math.max(3, layout.cellW);
      const ch = Math.max(3, layout.cellH);
      ctx.lineWidth = 2;
      ctx.strokeStyle = cssVar(this.root, '--text', '#212121');
      ctx.strokeRect(x - cw / 2 - 1, y - ch / 2 - 1, cw + 2, ch + 2);
      // The row's label column, so the tensor is found from the cell.
      ctx.fillStyle = cssVar(this.root, '--accent', '#f57c00');
      ctx.fillRect(layout.x0 - 4, y - ch / 2, 3, ch);
    }
  }

  renderLegend() {
    clear(this.legend);
    delete this.legend.dataset.reference;
    const domain = this.domain;
    const parts = [];
    if (domain) {
      const scale = legendScale(this.cmap, BAR_WIDTH, 12, statTickMarks(domain, this.stat.count ? formatCount : formatValue));
      const reference = this.referenceMark(domain);
      if (reference) scale.appendChild(reference.mark);
      parts.push(scale);
      const side = [el('div', {class: 'legend-note', text: this.scaleNote(domain)})];
      if (reference) side.push(el('div', {class: 'legend-note map-reference', text: reference.text}));
      parts.push(el('div', {class: 'legend-side'}, [...side, this.specials()]));
    } else {
      const text = this.stat.flag ? `${this.stat.label}: a cell is painted when the tensor holds any NaN or Inf at that ` +
          'step (hover reads out how many).' : `${this.stat.label}: no values yet.`;
      parts.push(el('div', {class: 'legend-side'}, [el('div', {class: 'legend-note', text}), this.specials()]));
    }
    for (const p of parts) this.legend.appendChild(p);
    this.legend.dataset.lo = domain ? domain.lo : '';
    this.legend.dataset.hi = domain ? domain.hi : '';
  }

  scaleNote(domain) {
    const kind = domain.kind === 'log' ? 'log scale' : 'linear scale';
    const ends = domain.clipped ? ', ends at the 1st/99th percentile (beyond: saturated)' : '';
    const of = this.quantity === 'weights' ? '' : ` of the ${quantityInfo(this.quantity).label}`;
    return `${labelFor(this.stat.label, this.quantity)}${of}: ${kind}${ends}, one scale for every tensor${this.model.runs.length > 1 ? ' and run' : ''}.`;
  }

  /** The update ratio's reference on the bar, and how to read it over k steps. */
  referenceMark(domain) {
    // The reference is a weight update's; another quantity's ratio has none.
    if (!this.stat.reference || this.quantity !== 'weights') return null;
    const gaps = gapSummary(this.model);
    if (!gaps) return null;
    const k = gaps.median;
    const ref = referenceOver(k, this.stat.reference);
    const per = formatValue(this.stat.reference);
    const spacing = gaps.min === gaps.max ? `${k} step${k === 1 ? '' : 's'} apart` :
      `${gaps.min}–${gaps.max} steps apart (marked for the median, ${k})`;
    const text = `Reference ▼: ~${per} per step. Snapshots are ${spacing}, so a ratio is over k steps of updates: ` +
        `if they are independent (noise-dominated), ~${per} per step reads as ${per}·√k = ${formatValue(ref.independent)}; ` +
        `if they all point the same way, up to ${per}·k = ${formatValue(ref.aligned)}.`;
    const t = domain.kind === 'log' ? (scaleSpace(ref.independent, 'log') - domain.a) / (domain.b - domain.a) : -1;
    const mark = el('span', {class: 'reference-mark', text: '▼', title: `~${per} per step over ${k} steps: ${formatValue(ref.independent)}`});
    if (t < 0 || t > 1) {
      mark.classList.add('outside');
      mark.textContent = t < 0 ? '◀ ref' : 'ref ▶';
      mark.style.left = t < 0 ? '0%' : '100%';
    } else {
      mark.style.left = `${(t * 100).toFixed(2)}%`;
    }
    this.legend.dataset.reference = ref.independent;
    return {mark, text};
  }

  specials() {
    const shown = this.stat.scale === 'log' && !this.stat.flag ? [CELL.ZERO, CELL.NONFINITE] : [CELL.NONFINITE];
    const none = this.stat.flag ? 'blank: none (or no snapshot)' : 'blank: undefined or no snapshot';
    return specialsList([...shown.map((kind) => ({css: CELL_COLORS[kind].css, text: CELL_COLORS[kind].label})),
      {css: null, text: none}]);
  }

  /** Reads cell {row, col} out (and marks it). */
  showCell(cell) {
    this.cursor = cell;
    const info = cellInfo(this.model, this.cells, this.stat, cell.row, cell.col);
    this.readout.textContent = describe(info, this.stat, this.model.runs.length > 1);
    Object.assign(this.readout.dataset, {tag: info.tag, step: info.step, run: info.run, row: cell.row, col: cell.col});
    this.drawOverlay();
  }

  clearCell() {
    this.cursor = null;
    this.readout.textContent = '\u00a0';
    for (const k of ['tag', 'step', 'run', 'row', 'col']) delete this.readout.dataset[k];
    this.drawOverlay();
  }

  open(cell) {
    const info = cellInfo(this.model, this.cells, this.stat, cell.row, cell.col);
    this.onOpen(info.tag, info.step);
  }

  /** The cell under a mouse event, or null. */
  cellAt(event) {
    if (!this.layout) return null;
    const box = this.canvas.getBoundingClientRect();
    return cellAtPoint(this.model, this.layout, event.clientX - box.left, event.clientY - box.top);
  }

  /** The centre of cell (row, col) in CSS px of the canvas (for the tests). */
  cellCenter(row, col) {
    return cellCenter(this.layout, row, col);
  }

  bindEvents() {
    this.canvas.addEventListener('mousemove', (e) => {
      const started = performance.now();
      const cell = this.cellAt(e);
      const old = this.cursor;
      if (cell && (!old || old.row !== cell.row || old.col !== cell.col)) this.showCell(cell);
      else if (!cell && old) this.clearCell();
      record('nnviz-map-hover', started);
    });
    this.canvas.addEventListener('mouseleave', () => this.clearCell());
    this.canvas.addEventListener('click', (e) => {
      const cell = this.cellAt(e);
      if (cell) this.open(cell);
    });
    this.canvas.addEventListener('focus', () => {
      if (!this.cursor && this.model && this.model.rows.length) this.showCell(moveCursor(this.model.rows.length, this.model.steps.length, null, 'End'));
    });
    this.canvas.addEventListener('keydown', (e) => {
      if (!this.model) return;
      if (e.key === 'Enter' || e.key === ' ') {
        if (this.cursor) this.open(this.cursor);
      } else {
        const next = moveCursor(this.model.rows.length, this.model.steps.length, this.cursor, e.key);
        if (!next) return;
        this.showCell(next);
      }
      e.preventDefault();
      e.stopPropagation(); // the page's own arrow keys move the step
    });
  }
}

/** The read-out of one cell. */
export function describe(info, stat, withRun) {
  const where = `${withRun ? `${info.run} · ` : ''}${info.tag} · step ${info.step}`;
  if (info.kind === CELL.ABSENT) return `${where} · no snapshot at this step`;
  const nonfinite = info.nonfinite > 0 && !stat.count ? ` · ${formatCount(info.nonfinite)} NaN/Inf entries` : '';
  if (info.value === null) {
    const why = nonfinite || (stat.reference && info.gap === null ? ' (first snapshot: no update yet)' : '');
    return `${where} · ${stat.label}: undefined${why}`;
  }
  let text = `${where} · ${stat.label} = ${stat.count ? formatCount(info.value) : formatValue(info.value)}`;
  if (stat.reference && info.gap) {
    text += info.gap === 1 ? ' (over 1 step)' :
      ` (over ${info.gap} steps: ≈ ${formatValue(info.value / Math.sqrt(info.gap))} per step if the updates are independent)`;
  }
  return text + nonfinite;
}

/** `text` cut with an ellipsis to fit `width` px (from the left: a tag's end names it). */
function fitText(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ctx.measureText('…' + text.slice(mid)).width <= width) hi = mid;
    else lo = mid + 1;
  }
  return '…' + text.slice(lo);
}

/** A performance entry for the benchmark (bounded: a tab left open for hours). */
function record(name, started) {
  const counts = record.counts || (record.counts = new Map());
  const n = (counts.get(name) || 0) + 1;
  counts.set(name, n);
  if (n % 5000 === 0) performance.clearMeasures(name);
  performance.measure(name, {start: started, end: performance.now()});
}
