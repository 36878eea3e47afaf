// One heatmap on a canvas: a frame coloured through a scale, conv tile
// separators, gate/head groups, zoom and pan (shared between compared
// panels), and a hover read-out of the tensor index and value.

import {colorFrame} from '../model/colors.js';
import {clear, el} from './dom.js';
import {cellAtUnits, cellUnits, describeCell, groupAt, groupSpans, planFrame, separators} from '../model/layout.js';
import {formatValue} from '../model/numbers.js';

const MIN_HEIGHT = 48;
const MAX_HEIGHT = 520;
const GROUP_MARGIN = 16; // px above the image for group names
const MAX_CELL = 40; // px: small tensors stay compact instead of filling the card
const PAD = 2; // px around the image: room for outlines and the hover box

/** Zoom and pan shared by panels shown side by side. */
export class Viewport {
  constructor() {
    this.zoom = 1;
    this.ox = 0;
    this.oy = 0;
    this.listeners = new Set();
    this.hoverListeners = new Set();
    this.hover = null; // the cell under the mouse in any panel: all show it
  }

  setHover(cell) {
    this.hover = cell;
    for (const fn of this.hoverListeners) fn(cell);
  }

  reset() {
    this.zoom = 1;
    this.ox = 0;
    this.oy = 0;
    this.changed();
  }

  /** Zooms about the centre of the panels. */
  zoomBy(factor) {
    const zoom = Math.max(1, Math.min(64, this.zoom * factor));
    const k = zoom / this.zoom;
    this.zoom = zoom;
    this.ox = zoom === 1 ? 0 : this.ox * k;
    this.oy = zoom === 1 ? 0 : this.oy * k;
    this.changed();
  }

  changed() {
    for (const fn of this.listeners) fn();
  }
}

// Theme colours, read once per colour scheme (reading computed style on
// every frame of a playback would force a style recalculation each time).
const themeCache = new Map();
if (typeof matchMedia === 'function') {
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => themeCache.clear());
}

export function cssVar(node, name, fallback) {
  if (!themeCache.has(name)) {
    themeCache.set(name, getComputedStyle(node).getPropertyValue(name).trim() || fallback);
  }
  return themeCache.get(name);
}

/** The current step's column on a map's overlay: a dashed vertical line at x (CSS px). */
export function drawStepLine(ctx, node, x, height) {
  ctx.strokeStyle = cssVar(node, '--accent', '#f57c00');
  ctx.lineWidth = 1;
  ctx.setLineDash([3, 2]);
  const px = Math.round(x) + 0.5;
  ctx.beginPath();
  ctx.moveTo(px, 0);
  ctx.lineTo(px, height);
  ctx.stroke();
  ctx.setLineDash([]);
}

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
    this.image = null; // offscreen canvas, one pixel per cell
    this.groups = []; // the frame's gate/head spans (layout.groupSpans)
    this.imageData = null;
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
    if (!this.image || this.image.width !== frame.cols || this.image.height !== frame.rows) {
      this.image = document.createElement('canvas');
      this.image.width = frame.cols;
      this.image.height = frame.rows;
      this.imageData = new ImageData(frame.cols, frame.rows);
    }
    const pixels = new Uint32Array(this.imageData.data.buffer);
    const counts = colorFrame(frame.data, state.scale, state.cmap, pixels);
    this.image.getContext('2d').putImageData(this.imageData, 0, 0);
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
    const dpr = window.devicePixelRatio || 1;
    if (this.canvas.width !== Math.round(width * dpr) || this.canvas.height !== Math.round(height * dpr)) {
      this.canvas.width = Math.round(width * dpr);
      this.canvas.height = Math.round(height * dpr);
      this.canvas.style.height = `${height}px`;
    }
    const ctx = this.canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const g = this.layoutGeometry(width, height);
    this.geometry = g;
    paintFrame(ctx, this.image, g, shape, layout, cssVar(this.root, '--separator', '#8c8c8c'));
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

  drawGroups(ctx, g, width) {
    if (!this.groups.length) return;
    const ink = cssVar(this.root, '--text', '#212121');
    ctx.strokeStyle = ink;
    ctx.fillStyle = ink;
    ctx.lineWidth = 2;
    ctx.font = '11px system-ui, sans-serif';
    for (const grp of this.groups) {
      if (grp.axis === 'cols') {
        const xa = g.x0 + grp.start * g.cell;
        const xb = g.x0 + grp.end * g.cell;
        if (grp.start > 0) {
          ctx.beginPath();
          ctx.moveTo(Math.round(xa), g.y0);
          ctx.lineTo(Math.round(xa), g.y0 + g.h);
          ctx.stroke();
        }
        // A bracket and the name above the image.
        ctx.fillRect(xa + 1, g.y0 - 4, Math.max(1, xb - xa - 2), 2);
        ctx.textAlign = 'center';
        ctx.textBaseline = 'bottom';
        if (xb - xa > 12 && (xa + xb) / 2 > 0 && (xa + xb) / 2 < width) {
          ctx.fillText(grp.name, (xa + xb) / 2, g.y0 - 5);
        }
      } else {
        const ya = g.y0 + grp.start * g.cell;
        const yb = g.y0 + grp.end * g.cell;
        if (grp.start > 0) {
          ctx.beginPath();
          ctx.moveTo(g.x0, Math.round(ya));
          ctx.lineTo(g.x0 + g.w, Math.round(ya));
          ctx.stroke();
        }
        // A bracket and the name left of the image, written upwards.
        ctx.fillRect(g.x0 - 4, ya + 1, 2, Math.max(1, yb - ya - 2));
        if (yb - ya > 12) {
          ctx.save();
          ctx.translate(g.x0 - 5, (ya + yb) / 2);
          ctx.rotate(-Math.PI / 2);
          ctx.textAlign = 'center';
          ctx.textBaseline = 'bottom';
          ctx.fillText(grp.name, 0, 0);
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
    const vp = this.viewport;
    if (!this.geometry) return;
    const zoom = Math.max(1, Math.min(64, vp.zoom * factor));
    const g = this.geometry;
    const u = (x - g.x0) / g.cell;
    const v = (y - g.y0) / g.cell;
    const cell = g.cell / vp.zoom * zoom;
    const width = this.canvas.clientWidth - g.left;
    const height = this.canvas.clientHeight - g.top;
    vp.zoom = zoom;
    vp.ox = zoom === 1 ? 0 : (x - u * cell) - g.left - (width - g.plan.wu * cell) / 2;
    vp.oy = zoom === 1 ? 0 : (y - v * cell) - g.top - (height - g.plan.hu * cell) / 2;
    vp.changed();
  }
}

/** "gate f" for a one-letter gate name, else the name ("head 1"). */
export function groupLabel(name) {
  return name.length <= 2 ? `gate ${name}` : name;
}

/**
 * Paints a frame's offscreen image (one pixel per cell) band by band at
 * geometry g ({x0, y0, cell, plan}), with conv tile separators and a thin
 * outline around tiled bands. Shared with the overview's small multiples.
 */
export function paintFrame(ctx, image, g, shape, layout, ink) {
  ctx.imageSmoothingEnabled = false;
  const rows = image.height;
  const sep = separators(shape, layout);
  const tiled = sep.rows.length > 0 || sep.cols.length > 0;
  // Lines between tiles smaller than this would hide the picture under a grid.
  const spaced = (lines) => lines.length > 0 && lines[0] * g.cell >= 10;
  const lw = g.cell >= 24 ? 2 : 1;
  const snap = (p) => Math.round(p) + (lw === 1 ? 0.5 : 0);
  ctx.strokeStyle = ink;
  ctx.lineWidth = lw;
  for (const b of g.plan.bands) {
    const x = g.x0 + b.xu * g.cell;
    const y = g.y0 + b.yu * g.cell;
    const w = (b.c1 - b.c0) * g.cell;
    const h = rows * g.cell;
    ctx.drawImage(image, b.c0, 0, b.c1 - b.c0, rows, x, y, w, h);
    if (!tiled) continue;
    ctx.beginPath();
    if (spaced(sep.cols)) {
      for (const c of sep.cols) {
        if (c <= b.c0 || c >= b.c1) continue;
        const px = snap(x + (c - b.c0) * g.cell);
        ctx.moveTo(px, y);
        ctx.lineTo(px, y + h);
      }
    }
    if (spaced(sep.rows)) {
      for (const r of sep.rows) {
        const py = snap(y + r * g.cell);
        ctx.moveTo(x, py);
        ctx.lineTo(x + w, py);
      }
    }
    ctx.stroke();
    if (spaced(sep.cols) || spaced(sep.rows)) {
      ctx.lineWidth = 1;
      ctx.strokeRect(Math.round(x) - 0.5, Math.round(y) - 0.5, Math.round(w) + 1, Math.round(h) + 1);
      ctx.lineWidth = lw;
    }
  }
}
