// Overview: small multiples of every tensor of a run at the current step,
// grouped by top-level layer (collapsible, for models with many layers);
// each opens its full view.

import {CellImage, cssContext, cssVar, paintFrame, sizeCanvases} from './canvas.js';
import {colorFrame} from '../model/colors.js';
import {clear, el} from './dom.js';
import {planFrame} from '../model/layout.js';
import {formatShape} from '../model/numbers.js';
import {makeScale, valuesBound, frameBound} from '../model/scale.js';
import {referenceFrameBound} from '../model/scale_policy.js';
import {indexAtOrBefore} from '../model/steps.js';

const TILE_W = 200;
const TILE_H = 128;
const MAX_CELL = 20;

export class Overview {
  constructor(onOpen) {
    this.onOpen = onOpen;
    this.root = el('div', {class: 'overview'});
    this.token = 0;
  }

  /**
   * @param {{run, rows, tensors: Map, stats: ?Object, step, cache, cmap, magnitude}} args
   */
  render({run, rows, tensors, stats, step, cache, cmap, magnitude}) {
    const token = ++this.token;
    clear(this.root);
    const groups = new Map();
    for (const row of rows) {
      for (const w of row.weights) {
        if (!tensors.has(w.tag)) continue;
        const top = row.path.split('/')[0];
        if (!groups.has(top)) groups.set(top, []);
        groups.get(top).push(w.tag);
      }
    }
    this.root.appendChild(el('div', {class: 'note',
      text: `Every tensor of ${run} at step ${step}, each on its own scale fixed over all steps ` +
          '(downsampled ones: the 99.9th percentile of their block means at this step). Open one for its full view.'}));
    if (groups.size === 0) {
      this.root.appendChild(el('div', {class: 'note', text: 'No tensors recorded in this run yet.'}));
      return;
    }
    for (const [top, tags] of groups) {
      const grid = el('div', {class: 'tiles'});
      const section = el('details', {class: 'card overview-group', attrs: {open: true}}, [
        el('summary', {}, [el('span', {class: 'layer-name', text: top}), el('span', {class: 'muted', text: ` ${tags.length} tensor${tags.length > 1 ? 's' : ''}`})]),
        grid,
      ]);
      this.root.appendChild(section);
      for (const tag of tags) grid.appendChild(this.tile(token, run, tensors.get(tag), stats && stats[tag], step, cache, cmap, magnitude));
    }
  }

  tile(token, run, tensor, series, step, cache, cmap, magnitude) {
    const canvas = el('canvas', {class: 'tile-canvas', attrs: {'aria-hidden': 'true'}});
    const status = el('div', {class: 'tile-status muted'});
    const button = el('button', {class: 'tile', title: `open ${tensor.tag}`, attrs: {type: 'button', 'data-tag': tensor.tag},
      on: {click: () => this.onOpen(tensor.tag)}}, [
      el('div', {class: 'tile-picture'}, [canvas]),
      el('div', {class: 'tile-label', text: tensor.tag}),
      el('div', {class: 'tile-shape muted', text: formatShape(tensor.shape)}),
      status,
    ]);
    const i = indexAtOrBefore(tensor.steps, step);
    if (i < 0) {
      status.textContent = 'no snapshot yet';
      return button;
    }
    // Same placement as the full view (wide conv kernels wrap into a grid of tiles).
    const plan = planFrame(tensor.shape, tensor.layout, tensor.rows, tensor.cols, TILE_W, TILE_H, MAX_CELL);
    const w = Math.max(1, Math.round(plan.wu * plan.cell));
    const h = Math.max(2, Math.round(plan.hu * plan.cell));
    // A pixel of margin for the outline of tiled kernels.
    canvas.style.width = `${w + 2}px`;
    canvas.style.height = `${h + 2}px`;
    cache.get(run, tensor.tag, tensor.steps[i]).then((frame) => {
      if (token !== this.token) return;
      // Block means of a downsampled tensor: scaled from the frame itself (see scale_policy).
      const bound = tensor.downsampled ? referenceFrameBound(frame.data, {downsampled: true}) :
        series ? valuesBound(series) : frameBound(frame.data);
      const image = new CellImage();
      image.paint(frame.cols, frame.rows, (pixels) => colorFrame(frame.data, makeScale(bound, magnitude), cmap, pixels));
      sizeCanvases([canvas], w + 2, h + 2);
      const ctx = cssContext(canvas, w + 2, h + 2);
      const cell = Math.min(w / plan.wu, h / plan.hu);
      paintFrame(ctx, image.canvas, {x0: 1, y0: 1, cell, plan}, tensor.shape, tensor.layout, cssVar(this.root, '--separator', '#8c8c8c'));
      canvas.dataset.drawn = 'true';
    }, (error) => {
      if (token !== this.token) return;
      status.textContent = error.message;
      status.className = 'tile-status error';
    });
    return button;
  }
}
