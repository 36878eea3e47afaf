// Canvas helpers shared by the views that paint (the heatmaps, the overview's
// tiles, the dynamics map, the units map): theme colours, sizing for the
// screen's pixel ratio, the offscreen image of one pixel per cell, the step
// line, gate/head group brackets, and a frame painted band by band.

import {groupBrackets, separators} from '../model/layout.js';

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

/**
 * Sizes canvases to `width` × `height` CSS px at the screen's pixel ratio.
 * A canvas already that size is left alone: resizing clears it.
 */
export function sizeCanvases(canvases, width, height) {
  const dpr = window.devicePixelRatio || 1;
  for (const c of canvases) {
    if (c.width !== Math.round(width * dpr) || c.height !== Math.round(height * dpr)) {
      c.width = Math.round(width * dpr);
      c.height = Math.round(height * dpr);
      c.style.height = `${height}px`;
    }
  }
}

/** A canvas's 2-D context drawing in CSS px, cleared over `width` × `height`. */
export function cssContext(canvas, width, height) {
  const dpr = window.devicePixelRatio || 1;
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return ctx;
}

/** An offscreen canvas of one pixel per cell (`canvas`), kept while its size holds. */
export class CellImage {
  constructor() {
    this.canvas = null;
    this.data = null;
  }

  /**
   * Fills cols × rows pixels: `fill(pixels)` writes one RGBA Uint32 per cell
   * (row-major). Returns what `fill` returns.
   */
  paint(cols, rows, fill) {
    if (!this.canvas || this.canvas.width !== cols || this.canvas.height !== rows) {
      this.canvas = document.createElement('canvas');
      this.canvas.width = cols;
      this.canvas.height = rows;
      this.data = new ImageData(cols, rows);
    }
    const result = fill(new Uint32Array(this.data.data.buffer));
    this.canvas.getContext('2d').putImageData(this.data, 0, 0);
    return result;
  }
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

/**
 * Marks gate/head groups along one side of a picture (layout.groupBrackets):
 * a line across the picture between groups, a bracket outside it along each
 * group. Returns the brackets, for the caller to write the names.
 */
export function drawGroupBrackets(ctx, spans, side, box, ink, lineWidth) {
  const brackets = groupBrackets(spans, side, box, lineWidth);
  ctx.strokeStyle = ink;
  ctx.fillStyle = ink;
  ctx.lineWidth = lineWidth;
  for (const b of brackets) {
    if (b.line) {
      ctx.beginPath();
      ctx.moveTo(b.line[0], b.line[1]);
      ctx.lineTo(b.line[2], b.line[3]);
      ctx.stroke();
    }
    ctx.fillRect(...b.bracket);
  }
  return brackets;
}

/**
 * Paints a frame's offscreen image (one pixel per cell) band by band at
 * geometry g ({x0, y0, cell, plan}), with conv tile separators and a thin
 * outline around tiled bands. The heatmaps' and the overview's tiles.
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
