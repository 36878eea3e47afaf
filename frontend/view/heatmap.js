// One heatmap on a canvas: a frame coloured through a scale, conv tile
// separators, gate/head groups, zoom and pan (shared between compared
// panels), and a hover read-out of the tensor index and value.

import {CellImage, cssContext, cssVar, drawGroupBrackets, paintFrame, sizeCanvases} from './canvas.js';
import {colorFrame} from '../model/colors.js';
import {clear, el} from './dom.js';
import {cellAtUnits, cellUnits, describeCell, groupAt, groupLabel, groupSpans, planFrame} from '../model/layout.js';
import {formatValue} from '../model/numbers.js';

const MIN_HEIGHT = 48;
const MAX_HEIGHT = 520;
const GROUP_MARGIN = 16; // px above the image for group names
const MAX_CELL = 40; // px: small tensors stay compact instead of filling the card
const PAD = 2; // px around the image: room for outlines and the hover box

export class HeatmapPanel {
  /**
   * @param {{title: string, color: ?string, viewport: Viewport}} options
   */
  constructor({title, color = null, viewport}) {
    this.viewport = viewport;
    this.canvas = el('canvas', {class: 'heatmap-canvas', attrs: {tabindex: 0, role: 'img', 'aria-label': `heatmap of ${title}`}});
    this.readout = el('div', {class: 'readout', attrs: {'aria-live': 'polite'}, text: '\u00a0'});
    this.message = el('div', {class: 'panel-message'});
    this.stepLabel = el('span', {class: 'panel-step'});
    const swatch = color ? el('span', {class: 'swatch'}) : null;
    if (swatch) swatch.style.background = color;
    this.titleNode = el('span', {class: 'panel-title', text: title});
    this.root = el('div', {class: 'card heatmap-panel'}, [
      el('div', {class: 'panel-head'}, [swatch, this.titleNode, this.stepLabel]),
      this.message,
      el('div', {class: 'canvas-wrap'}, [this.canvas]),
      this.readout,
    ]);
    this.image = new CellImage();
    this.groups = []; // the frame's gate/head spans (layout.groupSpans)
    this.state = null;
    this.geometry = null;
    this.onViewport = () => this.redraw();
    viewport.listeners.add(this.onViewport);
    this.onHover = (cell) => this.showHover(cell);
    viewport.hoverListeners.add(this.onHover);
    // Listeners outside the panel's own nodes (the window's) would keep a
    // disposed panel and its image alive: they go when it is disposed.
    this.outside = new AbortController();
    this.bindEvents();
  }

  dispose() {
    this.viewport.listeners.delete(this.onViewport);
    this.viewport.hoverListeners.delete(this.onHover);
    this.outside.abort();
  }

  showHover(cell) {
    if (this.state && !this.canvas.hidden) this.redraw();
    if (cell && this.state) {
      this.showCell(cell.r, cell.c);
    } else {
      this.readout.textContent = '\u00a0';
      delete this.readout.dataset.row;
      delete this.readout.dataset.col;
    }
  }

  /** Shows a message (an error in place of the picture when `error`). */
  setMessage(text, error = false) {
    clear(this.message);
    if (text) {
      this.message.appendChild(el('div', {class: error ? 'error' : 'note', text, attrs: error ? {role: 'alert'} : {}}));
    }
    if (error) {
      this.state = null;
      this.canvas.hidden = true;
    }
  }

  /**
   * Draws a frame.
   * @param {{frame, scale, cmap, shape, layout, name, step, parts}} state
   *   parts: [{label, frame}] whose values the read-out also shows (Δ modes).
   * @return {{nan, posinf, neginf}} non-finite counts.
   */
  setFrame(state) {
    const {frame} = state;
    const counts = this.image.paint(frame.cols, frame.rows, (pixels) => colorFrame(frame.data, state.scale, state.cmap, pixels));
    this.state = state;
    this.canvas.hidden = false;
    this.stepLabel.textContent = state.stepText || '';
    this.canvas.dataset.rows = frame.rows;
    this.canvas.dataset.cols = frame.cols;
    this.canvas.dataset.step = frame.step;
    this.groups = groupSpans(state.shape, state.layout);
    this.describeGroups();
    if (this.viewport.hover) this.showHover(this.viewport.hover);
    else this.redraw();
    return counts;
  }

  /** Names the gate/head groups for screen readers (the picture marks them). */
  describeGroups() {
    const spans = this.groups;
    const label = `heatmap of ${this.titleNode.textContent}`;
    if (!spans.length) {
      this.canvas.setAttribute('aria-label', label);
      delete this.canvas.dataset.groups;
      return;
    }
    const names = spans.map((g) => g.name);
    const axis = spans[0].axis === 'rows' ? 'row' : 'column';
    this.canvas.dataset.groups = names.join(',');
    this.canvas.setAttribute('aria-label', `${label}; ${axis} groups: ${names.map(groupLabel).join(', ')}`);
  }

  /**
   * Canvas geometry, in CSS pixels of the canvas box: the plan (bands of
   * frame columns, see layout.planFrame) scaled by the zoom and placed.
   */
  layoutGeometry(width, height) {
    const {frame, shape, layout} = this.state;
    const {top, left} = this.margins();
    const availW = width - left - PAD;
    const availH = height - top - PAD;
    const plan = planFrame(shape, layout, frame.rows, frame.cols, availW, Math.min(availH, MAX_HEIGHT - top), MAX_CELL);
    const cell = plan.cell * this.viewport.zoom;
    const w = plan.wu * cell;
    const h = plan.hu * cell;
    const x0 = left + (availW - w) / 2 + this.viewport.ox;
    const y0 = top + (availH - h) / 2 + this.viewport.oy;
    return {x0, y0, cell, w, h, top, left, plan};
  }

  /** Room left of and above the image: padding, plus the group names' margin. */
  margins() {
    const margin = (axis) => (this.groups.some((g) => g.axis === axis) ? GROUP_MARGIN : 0) + PAD;
    return {top: margin('cols'), left: margin('rows')};
  }

  /** The natural height of the canvas for a width (before zoom). */
  naturalHeight(width) {
    const {frame, shape, layout} = this.state;
    const {top, left} = this.margins();
    const plan = planFrame(shape, layout, frame.rows, frame.cols, width - left - PAD, MAX_HEIGHT - top - PAD, MAX_CELL);
    return plan.hu * plan.cell + top + PAD;
  }

  redraw() {
    if (!this.state || this.canvas.hidden) return;
    const {shape, layout} = this.state;
    const wrap = this.canvas.parentElement;
    const width = Math.max(60, wrap.clientWidth);
    const height = Math.round(Math.max(MIN_HEIGHT, Math.min(MAX_HEIGHT, this.naturalHeight(width))));
    sizeCanvases([this.canvas], width, height);
    const ctx = cssContext(this.canvas, width, height);
    const g = this.layoutGeometry(width, height);
    this.geometry = g;
    paintFrame(ctx, this.image.canvas, g, shape, layout, cssVar(this.root, '--separator', '#8c8c8c'));
    if (g.plan.bands.length === 1) this.drawGroups(ctx, g, width);
    this.drawHover(ctx, g);
    Object.assign(this.canvas.dataset, {x0: g.x0, y0: g.y0, cell: g.cell, bands: g.plan.bands.length});
  }

  /** A box around the hovered cell (in every panel: they share the hover). */
  drawHover(ctx, g) {
    const cell = this.viewport.hover;
    const {frame} = this.state;
    if (!cell || cell.r >= frame.rows || cell.c >= frame.cols || g.cell < 4) return;
    const {x, y} = this.cellCenter(cell.r, cell.c);
    const half = g.cell / 2;
    ctx.lineWidth = 2;
    ctx.strokeStyle = cssVar(this.root, '--text', '#212121');
    ctx.strokeRect(x - half - 1, y - half - 1, g.cell + 2, g.cell + 2);
  }

  /** Lines between gate/head groups, a bracket and the name of each: above the image or, for row groups, left of it. */
  drawGroups(ctx, g, width) {
    if (!this.groups.length) return;
    const ink = cssVar(this.root, '--text', '#212121');
    const box = {x0: g.x0, y0: g.y0, w: g.w, h: g.h, cellW: g.cell, cellH: g.cell};
    ctx.font = '11px system-ui, sans-serif';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'bottom';
    for (const side of ['cols', 'rows']) {
      const spans = this.groups.filter((grp) => grp.axis === side);
      for (const {name, a, b} of drawGroupBrackets(ctx, spans, side, box, ink, 2)) {
        const mid = (a + b) / 2;
        if (b - a <= 12) continue;
        if (side === 'cols') {
          if (mid > 0 && mid < width) ctx.fillText(name, mid, g.y0 - 5);
        } else {
          // Written upwards.
          ctx.save();
          ctx.translate(g.x0 - 5, mid);
          ctx.rotate(-Math.PI / 2);
          ctx.fillText(name, 0, 0);
          ctx.restore();
        }
      }
    }
  }

  /** The frame cell under a mouse event, or null. */
  cellAt(event) {
    if (!this.state || !this.geometry) return null;
    const box = this.canvas.getBoundingClientRect();
    const g = this.geometry;
    const u = (event.clientX - box.left - g.x0) / g.cell;
    const v = (event.clientY - box.top - g.y0) / g.cell;
    return cellAtUnits(g.plan, this.state.frame.rows, u, v);
  }

  /** The centre of frame cell (r, c) in CSS pixels of the canvas box (for tests and tools). */
  cellCenter(r, c) {
    const g = this.geometry;
    const {u, v} = cellUnits(g.plan, r, c);
    return {x: g.x0 + (u + 0.5) * g.cell, y: g.y0 + (v + 0.5) * g.cell};
  }

  showCell(r, c) {
    const {frame, shape, layout, name, parts, valueLabel} = this.state;
    if (r >= frame.rows || c >= frame.cols) {
      this.showHover(null);
      return;
    }
    const i = r * frame.cols + c;
    const where = describeCell(name, shape, layout, r, c);
    const groups = groupAt(shape, layout, r, c);
    let text = `${where} ${valueLabel || '='} ${formatValue(frame.data[i])}`;
    for (const part of parts || []) {
      text += ` · ${part.label}: ${formatValue(part.frame.data[i])}`;
    }
    if (groups) text += ` · ${groups.map(groupLabel).join(' / ')}`;
    this.readout.textContent = text;
    this.readout.dataset.row = r;
    this.readout.dataset.col = c;
  }

  bindEvents() {
    const vp = this.viewport;
    this.canvas.addEventListener('mousemove', (e) => {
      if (this.drag) {
        vp.ox = this.drag.ox + e.clientX - this.drag.x;
        vp.oy = this.drag.oy + e.clientY - this.drag.y;
        vp.changed();
        return;
      }
      const cell = this.cellAt(e);
      const old = vp.hover;
      if (cell ? !old || old.r !== cell.r || old.c !== cell.c : old) vp.setHover(cell);
    });
    this.canvas.addEventListener('mouseleave', () => {
      this.drag = null;
      vp.setHover(null);
    });
    this.canvas.addEventListener('mousedown', (e) => {
      if (vp.zoom > 1 || vp.ox || vp.oy) this.drag = {x: e.clientX, y: e.clientY, ox: vp.ox, oy: vp.oy};
    });
    window.addEventListener('mouseup', () => (this.drag = null), {signal: this.outside.signal});
    this.canvas.addEventListener('wheel', (e) => {
      if (!(e.ctrlKey || e.metaKey || vp.zoom > 1)) return; // plain wheel scrolls the page
      e.preventDefault();
      const box = this.canvas.getBoundingClientRect();
      this.zoomAt(e.deltaY < 0 ? 1.25 : 0.8, e.clientX - box.left, e.clientY - box.top);
    }, {passive: false});
    this.canvas.addEventListener('dblclick', () => vp.reset());
    this.canvas.addEventListener('keydown', (e) => {
      const w = this.canvas.clientWidth / 2;
      const h = this.canvas.clientHeight / 2;
      if (e.key === '+' || e.key === '=') this.zoomAt(1.25, w, h);
      else if (e.key === '-') this.zoomAt(0.8, w, h);
      else if (e.key === '0') vp.reset();
      else return;
      e.preventDefault();
    });
  }

  /** Zooms by `factor` keeping the point (x, y) of the canvas in place. */
  zoomAt(factor, x, y) {
    if (this.geometry) this.viewport.zoomAt(factor, x, y, this.geometry, this.canvas.clientWidth, this.canvas.clientHeight);
  }
}
