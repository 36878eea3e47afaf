// Zoom, pan and the hovered cell, shared by the heatmaps shown side by side:
// state and listeners only (the panels paint). Pure: tested by node --test.

export const MAX_ZOOM = 64;

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
    const zoom = clampZoom(this.zoom * factor);
    const k = zoom / this.zoom;
    this.zoom = zoom;
    this.ox = zoom === 1 ? 0 : this.ox * k;
    this.oy = zoom === 1 ? 0 : this.oy * k;
    this.changed();
  }

  /**
   * Zooms by `factor` keeping the point (x, y) of a panel in place: g is the
   * panel's geometry ({x0, y0, cell, left, top, plan: {wu, hu}}, the picture
   * centred in the width × height px right of `left` and below `top`).
   */
  zoomAt(factor, x, y, g, width, height) {
    const zoom = clampZoom(this.zoom * factor);
    const u = (x - g.x0) / g.cell;
    const v = (y - g.y0) / g.cell;
    const cell = g.cell / this.zoom * zoom;
    this.zoom = zoom;
    this.ox = zoom === 1 ? 0 : (x - u * cell) - g.left - (width - g.left - g.plan.wu * cell) / 2;
    this.oy = zoom === 1 ? 0 : (y - v * cell) - g.top - (height - g.top - g.plan.hu * cell) / 2;
    this.changed();
  }

  changed() {
    for (const fn of this.listeners) fn();
  }
}

/** A zoom factor within 1 (the whole picture) and MAX_ZOOM. */
export function clampZoom(zoom) {
  return Math.max(1, Math.min(MAX_ZOOM, zoom));
}
