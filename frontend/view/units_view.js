// The units map of the tensor view: for each run shown, the selected
// tensor's per-unit norm or update (rows: units, with gate/head groups
// marked; columns: snapshot steps), on one scale shared by the runs. Hover
// reads a unit out; units named by a finding are marked.

import {CellImage, cssContext, cssVar, drawGroupBrackets, drawStepLine, sizeCanvases} from './canvas.js';
import {colormapLUT} from '../model/colors.js';
import {clear, el, errorBox, select} from './dom.js';
import {groupLabel} from '../model/layout.js';
import {legendScale, specialsList} from './legend.js';
import {moveCursor} from '../model/map_model.js';
import {formatValue} from '../model/numbers.js';
import {labelFor} from '../model/quantities.js';
import {CELL, CELL_COLORS, paintCells, statDomain, statTickMarks} from '../model/stat_scale.js';
import {
  columnOfUnit, UNIT_STATS, unitCellAt, unitCells, unitGroupSpans, unitLabel, unitsLayout,
} from '../model/units.js';

const BAR_WIDTH = 200;

export class UnitsView {
  /**
   * @param {{load: function(run, tag, stat, quantity): Promise, stat: string, onStat: function(string)}} options
   *   load: the /units answer of a run's tag (an ApiError when it fails).
   */
  constructor({load, stat, onStat}) {
    this.load = load;
    this.stat = stat;
    this.statSelect = select(UNIT_STATS, stat, (value) => {
      this.stat = value;
      onStat(value);
      if (this.args) this.show(this.args);
    }, {id: 'units-stat', 'aria-label': 'units map stat'});
    this.cards = el('div', {class: 'units-cards'});
    this.legend = el('div', {class: 'map-legend units-legend', attrs: {id: 'units-legend'}});
    this.root = el('div', {class: 'units-view'}, [
      el('div', {class: 'units-head'}, [
        el('h3', {class: 'section-title', text: 'Units over time'}),
        el('label', {class: 'control'}, [el('span', {text: 'show'}), this.statSelect]),
      ]),
      this.cards,
      this.legend,
    ]);
    this.seq = 0;
    this.panels = [];
  }

  /**
   * @param {{runs: Array<{run, color, tensor, steps, tag}>, tag, step, cmap,
   *   highlight: ?{run, tag, units: number[], label}, quantity}} args
   *   steps: the tag's stats steps of that run (the answer's rows); a run's
   *   own tag, when given, names the tensor there (torch's `weight` for `kernel`).
   */
  async show(args) {
    this.args = args;
    const seq = ++this.seq;
    const {runs, tag} = args;
    const quantity = args.quantity || 'weights';
    if (!tag || !runs.length) {
      clear(this.cards);
      clear(this.legend);
      this.panels = [];
      return;
    }
    const results = await Promise.all(runs.map((r) => this.load(r.run, r.tag ?? tag, this.stat, quantity).then(
        (units) => ({...r, units}), (error) => ({...r, error}))));
    if (seq !== this.seq) return;
    for (const r of results) {
      if (r.units && r.units.rows !== r.steps.length) {
        r.error = new Error(`/units answered ${r.units.rows} rows for ${r.steps.length} snapshot steps of ${tag}`);
        delete r.units;
      }
      if (r.units) r.cells = unitCells(r.units);
    }
    // One scale for every run shown.
    const shown = results.filter((r) => r.cells);
    const all = concatCells(shown.map((r) => r.cells));
    this.domain = statDomain(all.values, all.kinds, 'log');
    clear(this.cards);
    this.panels = results.map((r) => {
      const panel = new UnitsPanel(r, tag, this.stat);
      this.cards.appendChild(panel.root);
      return panel;
    });
    for (const panel of this.panels) {
      const h = args.highlight && args.highlight.tag === tag && args.highlight.run === panel.run ? args.highlight : null;
      panel.draw(this.domain, args.cmap, args.step, h);
    }
    this.renderLegend(args.cmap, shown.length > 0, quantity);
    this.root.dataset.shown = `${tag}|${this.stat}`;
    this.root.dataset.quantity = quantity;
  }

  setStep(step) {
    if (this.args) this.args.step = step;
    for (const panel of this.panels) panel.setStep(step);
  }

  renderLegend(cmap, any, quantity) {
    clear(this.legend);
    if (!any || !this.domain) return;
    const scale = legendScale(cmap, BAR_WIDTH, 10, statTickMarks(this.domain), 'legend-scale units-scale');
    const specials = specialsList([{css: CELL_COLORS[CELL.ZERO].css, text: '0'},
      {css: CELL_COLORS[CELL.NONFINITE].css, text: '±Inf'}, {css: null, text: 'blank: undefined'}]);
    const label = labelFor(UNIT_STATS.find(([k]) => k === this.stat)[1], quantity);
    const ends = this.domain.clipped ? ', ends at the 1st/99th percentile' : '';
    this.legend.appendChild(scale);
    this.legend.appendChild(el('div', {class: 'legend-side'}, [
      el('div', {class: 'legend-note', text: `per-unit ${label}: log scale${ends}, one scale for the runs shown.`}), specials]));
  }
}

function concatCells(list) {
  const n = list.reduce((a, c) => a + c.values.length, 0);
  const values = new Float64Array(n);
  const kinds = new Uint8Array(n);
  let at = 0;
  for (const c of list) {
    values.set(c.values, at);
    kinds.set(c.kinds, at);
    at += c.values.length;
  }
  return {values, kinds};
}

/** One run's units map. */
class UnitsPanel {
  constructor(result, tag, stat) {
    this.run = result.run;
    this.result = result;
    this.tag = tag;
    this.stat = stat;
    const swatch = el('span', {class: 'swatch'});
    swatch.style.background = result.color;
    this.canvas = el('canvas', {class: 'units-canvas', attrs: {tabindex: 0, 'role': 'application',
      'aria-roledescription': 'units map', 'aria-label': `units of ${tag} in ${result.run}: arrow keys move between units and steps`}});
    this.overlay = el('canvas', {class: 'map-overlay', attrs: {'aria-hidden': 'true'}});
    this.readout = el('div', {class: 'units-readout', attrs: {'aria-live': 'polite'}, text: '\u00a0'});
    this.message = el('div', {class: 'units-message'});
    this.marked = el('div', {class: 'units-marked'});
    this.meta = el('span', {class: 'muted units-meta'});
    this.root = el('div', {class: 'card units-panel', attrs: {'data-run': result.run}}, [
      el('div', {class: 'panel-head'}, [swatch, el('span', {class: 'units-title', text: result.run}), this.meta]),
      this.message,
      el('div', {class: 'map-wrap'}, [this.canvas, this.overlay]),
      this.readout,
      this.marked,
    ]);
    this.cursor = null;
    this.canvas.addEventListener('mousemove', (e) => this.hover(e));
    this.canvas.addEventListener('mouseleave', () => this.showCell(null));
    this.canvas.addEventListener('keydown', (e) => {
      const cells = this.result.cells;
      const next = cells && moveCursor(cells.rows, cells.cols, this.cursor, e.key);
      if (!next) return;
      e.preventDefault();
      e.stopPropagation(); // the page's own arrow keys move the step
      this.showCell(next);
    });
  }

  draw(domain, cmap, step, highlight) {
    const r = this.result;
    this.highlight = highlight;
    this.step = step;
    if (!r.cells) {
      this.canvas.hidden = true;
      this.overlay.hidden = true;
      clear(this.message);
      if (r.error && r.error.status === 404) {
        this.message.appendChild(el('div', {class: 'note', text: 'This run was recorded before per-unit stats: no units map for it.'}));
        this.root.dataset.state = 'no-units';
      } else {
        this.message.appendChild(errorBox(`units unavailable: ${r.error.message}`));
        this.root.dataset.state = 'error';
      }
      return;
    }
    this.root.dataset.state = 'drawn';
    const {units, cells} = r;
    const shape = r.tensor.shape;
    const layout = r.tensor.layout;
    this.groups = unitGroupSpans(shape, layout, units.block);
    this.meta.textContent = `${units.cols} ${units.block > 1 ? `blocks of ${units.block} units` : 'units'} × ${units.rows} snapshots`;
    const image = new CellImage();
    image.paint(cells.cols, cells.rows, (pixels) => paintCells(cells.values, cells.kinds, domain, colormapLUT(cmap), pixels));
    const width = Math.max(200, this.canvas.parentElement.clientWidth || 600);
    const g = unitsLayout(cells.rows, cells.cols, width);
    this.geometry = g;
    sizeCanvases([this.canvas, this.overlay], width, g.height);
    const ctx = cssContext(this.canvas, width, g.height);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(image.canvas, g.x0, g.y0, cells.cols * g.cellW, cells.rows * g.cellH);
    this.drawGroups(ctx, g, cells.cols);
    Object.assign(this.canvas.dataset, {rows: cells.rows, cols: cells.cols, block: units.block, x0: g.x0, y0: g.y0,
      cellW: g.cellW, cellH: g.cellH, groups: this.groups.map((s) => s.name).join(',')});
    if (highlight) {
      const n = highlight.units.length;
      this.canvas.dataset.highlight = highlight.units.join(',');
      this.marked.textContent = n ? `${highlight.label}: ${n} unit${n === 1 ? '' : 's'} marked ◀ ` +
          `(${highlight.units.slice(0, 12).join(', ')}${n > 12 ? ', …' : ''})` : '';
    }
    this.drawOverlay();
  }

  /** Lines between gate/head groups across the cells, each group's name in the gutter. */
  drawGroups(ctx, g, cols) {
    if (!this.groups.length) return;
    const box = {x0: g.x0, y0: g.y0, w: cols * g.cellW, h: g.height, cellW: g.cellW, cellH: g.cellH};
    const brackets = drawGroupBrackets(ctx, this.groups, 'rows', box, cssVar(this.root, '--text', '#212121'), 1);
    ctx.font = '11px system-ui, sans-serif';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const {name, a, b} of brackets) {
      if (b - a >= 10) ctx.fillText(groupLabel(name), g.x0 - 8, (a + b) / 2);
    }
  }

  setStep(step) {
    this.step = step;
    this.drawOverlay();
  }

  /** The current step's column, highlighted units and the hovered cell. */
  drawOverlay() {
    const g = this.geometry;
    const r = this.result;
    if (!g || !r.cells) return;
    const ctx = cssContext(this.overlay, g.width, g.height);
    const accent = cssVar(this.root, '--accent', '#f57c00');
    const col = r.steps.indexOf(this.step);
    if (col >= 0) drawStepLine(ctx, this.root, g.x0 + (col + 0.5) * g.cellW, g.height);
    const right = g.x0 + r.cells.cols * g.cellW;
    if (this.highlight) {
      ctx.fillStyle = accent;
      for (const u of this.highlight.units) {
        const y = g.y0 + (columnOfUnit(u, r.units.block) + 0.5) * g.cellH;
        ctx.beginPath();
        ctx.moveTo(right + 2, y);
        ctx.lineTo(right + 8, y - 4);
        ctx.lineTo(right + 8, y + 4);
        ctx.fill();
      }
    }
    if (this.cursor) {
      const {row, col: c} = this.cursor;
      ctx.strokeStyle = cssVar(this.root, '--text', '#212121');
      ctx.lineWidth = 2;
      ctx.strokeRect(g.x0 + c * g.cellW - 1, g.y0 + row * g.cellH - 1, Math.max(3, g.cellW) + 2, Math.max(3, g.cellH) + 2);
    }
  }

  hover(e) {
    const r = this.result;
    if (!this.geometry || !r.cells) return;
    const box = this.canvas.getBoundingClientRect();
    const cell = unitCellAt(this.geometry, r.cells.rows, r.cells.cols, e.clientX - box.left, e.clientY - box.top);
    if (cell) this.showCell(cell);
  }

  /** Reads out one unit at one step (null: none). */
  showCell(cell) {
    const r = this.result;
    this.cursor = cell;
    if (!cell || !r.cells) {
      this.readout.textContent = '\u00a0';
      delete this.readout.dataset.unit;
      delete this.readout.dataset.step;
    } else {
      const v = r.units.data[cell.col * r.units.cols + cell.row];
      const label = unitLabel(r.tensor.shape, r.tensor.layout, cell.row, r.units.block);
      const group = this.groups.find((s) => cell.row + 1 > s.start && cell.row < s.end);
      const undefinedText = this.stat === 'update' && cell.col === 0 ? 'undefined (first snapshot)' : 'undefined';
      this.readout.textContent = `${label}${group ? ` · ${groupLabel(group.name)}` : ''} · step ${r.steps[cell.col]} · ` +
          `${this.stat} = ${v !== v ? undefinedText : formatValue(v)}`;
      Object.assign(this.readout.dataset, {unit: cell.row, step: r.steps[cell.col]});
    }
    this.drawOverlay();
  }

  /** The centre of the cell of unit column `row` at step index `col` (for the tests). */
  cellCenter(row, col) {
    const g = this.geometry;
    return {x: g.x0 + (col + 0.5) * g.cellW, y: g.y0 + (row + 0.5) * g.cellH};
  }
}
