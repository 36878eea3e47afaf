// Colour legends: the colormap bar with value ticks, what the scale is
// fixed to, and the colours that are not on the scale (NaN, ±Inf, ...) by
// name. The parts are shared by the heatmaps' legend and the maps'.

import {colormapLUT, SPECIAL_COLORS} from '../model/colors.js';
import {clear, el} from './dom.js';

const BAR_WIDTH = 256;

/** A canvas of `width` × `height` px showing a colormap from left to right (one putImageData). */
export function colormapBar(cmap, width, height) {
  const bar = el('canvas', {class: 'legend-bar', attrs: {width, height, 'aria-hidden': 'true'}});
  const lut = colormapLUT(cmap);
  const image = new ImageData(width, height);
  const pixels = new Uint32Array(image.data.buffer);
  for (let x = 0; x < width; x++) {
    const px = lut[Math.floor(x * 256 / width)];
    for (let y = 0; y < height; y++) pixels[y * width + x] = px;
  }
  bar.getContext('2d').putImageData(image, 0, 0);
  return bar;
}

/**
 * The colormap bar with its ticks below it: marks [{label, at}], `at` from 0
 * (left end) to 1 (right end).
 */
export function legendScale(cmap, width, height, marks, className = 'legend-scale') {
  const ticks = el('div', {class: 'legend-ticks'});
  for (const {label, at, mark} of marks) {
    const tick = el('span', {class: mark ? 'tick mark' : 'tick', text: label});
    tick.style.left = `${(at * 100).toFixed(2)}%`;
    ticks.appendChild(tick);
  }
  return el('div', {class: className}, [colormapBar(cmap, width, height), ticks]);
}

/**
 * The colours off the scale, by name: entries [{css, text, title, present}]
 * (css null: a blank swatch, the card showing through).
 */
export function specialsList(entries) {
  const out = el('div', {class: 'legend-specials'});
  for (const {css, text, title, present} of entries) {
    const swatch = el('span', {class: css ? 'swatch' : 'swatch blank'});
    if (css) swatch.style.background = css;
    out.appendChild(el('span', {class: present ? 'special present' : 'special', title}, [swatch, text]));
  }
  return out;
}

// What each legend node shows now: playback redraws with the same scale
// every frame, and an unchanged legend is not rebuilt.
const shown = new WeakMap();

/**
 * @param {Element} node the legend container.
 * @param {{scale, cmap, note: string, counts: {nan, posinf, neginf}, marks}} legend
 *   marks: the ticks along the bar (stat_scale.colourScaleMarks).
 */
export function renderLegend(node, {scale, cmap, note, counts, marks}) {
  const key = JSON.stringify([scale, cmap, note, counts]);
  if (shown.get(node) === key) return;
  shown.set(node, key);
  clear(node);
  const specials = specialsList(Object.entries(SPECIAL_COLORS).map(([kind, spec]) => {
    const n = counts ? counts[kind] : 0;
    return {css: spec.css, text: `${spec.label}${n ? ` (${n})` : ''}`, title: `${spec.label} cells`, present: n > 0};
  }));
  node.appendChild(legendScale(cmap, BAR_WIDTH, 12, marks));
  node.appendChild(el('div', {class: 'legend-side'}, [el('div', {class: 'legend-note', text: note}), specials]));
  node.dataset.lo = scale.lo;
  node.dataset.hi = scale.hi;
  node.dataset.log = scale.log ? 'true' : 'false';
}
