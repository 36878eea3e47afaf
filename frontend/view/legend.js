// The colour legend: the colormap bar with value ticks, what the scale is
// fixed to, and the NaN/±Inf colours by name.

import {colormapLUT, SPECIAL_COLORS} from '../model/colors.js';
import {clear, el} from './dom.js';
import {formatTicks} from '../model/numbers.js';
import {niceTicks} from '../model/scale.js';

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

// What each legend node shows now: playback redraws with the same scale
// every frame, and an unchanged legend is not rebuilt.
const shown = new WeakMap();

/**
 * @param {Element} node the legend container.
 * @param {{scale, cmap, note: string, counts: {nan, posinf, neginf}}} legend
 */
export function renderLegend(node, {scale, cmap, note, counts}) {
  const key = JSON.stringify([scale, cmap, note, counts]);
  if (shown.get(node) === key) return;
  shown.set(node, key);
  clear(node);
  const bar = colormapBar(cmap, BAR_WIDTH, 12);
  const ticks = el('div', {class: 'legend-ticks'});
  const span = scale.hi - scale.lo;
  const values = niceTicks(scale.lo, scale.hi, 5);
  const labels = formatTicks(values);
  values.forEach((t, k) => {
    const pos = span > 0 ? (t - scale.lo) / span : 0.5;
    const tick = el('span', {class: 'tick', text: labels[k]});
    tick.style.left = `${(pos * 100).toFixed(2)}%`;
    ticks.appendChild(tick);
  });
  const specials = el('div', {class: 'legend-specials'});
  for (const [key, spec] of Object.entries(SPECIAL_COLORS)) {
    const swatch = el('span', {class: 'swatch'});
    swatch.style.background = spec.css;
    const n = counts ? counts[key] : 0;
    specials.appendChild(el('span', {class: 'special' + (n ? ' present' : ''), title: `${spec.label} cells`},
        [swatch, `${spec.label}${n ? ` (${n})` : ''}`]));
  }
  node.appendChild(el('div', {class: 'legend-scale'}, [bar, ticks]));
  node.appendChild(el('div', {class: 'legend-side'}, [el('div', {class: 'legend-note', text: note}), specials]));
  node.dataset.lo = scale.lo;
  node.dataset.hi = scale.hi;
}
