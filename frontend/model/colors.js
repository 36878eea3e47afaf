// Colour mapping of frames, special colours for NaN/±Inf, and run colours.
// Pure: no DOM, tested by node --test.

import {COLORMAPS} from './colormaps.js';

// Non-finite cells get colours no colormap here uses, named in the legend.
export const SPECIAL_COLORS = {
  nan: {css: '#ff00ff', rgb: [255, 0, 255], label: 'NaN'},
  posinf: {css: '#00e676', rgb: [0, 230, 118], label: '+Inf'},
  neginf: {css: '#ffea00', rgb: [255, 234, 0], label: '−Inf'},
};

// TensorBoard's standard run palette (its first seven), then five more
// distinct colours before colours repeat.
export const RUN_PALETTE = [
  '#ff7043', '#0077bb', '#cc3311', '#33bbee', '#ee3377', '#009988',
  '#bbbbbb', '#7e57c2', '#66bb6a', '#ffa726', '#8d6e63', '#26a69a',
];

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Packs r, g, b (0..255) into one opaque RGBA pixel of a Uint32 ImageData view. */
export function packRGB(r, g, b) {
  return LITTLE_ENDIAN ?
      ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0 :
      ((r << 24) | (g << 16) | (b << 8) | 255) >>> 0;
}

const rgbCache = new Map();

/** The 256 [r, g, b] entries of a named colormap (parsed once; do not modify). */
export function colormapRGB(name) {
  let out = rgbCache.get(name);
  if (out) return out;
  const map = COLORMAPS[name];
  if (!map) throw new Error(`unknown colormap ${name}`);
  out = [];
  for (let i = 0; i < 256; i++) {
    const h = map.hex.substr(6 * i, 6);
    out.push([parseInt(h.substr(0, 2), 16), parseInt(h.substr(2, 2), 16), parseInt(h.substr(4, 2), 16)]);
  }
  rgbCache.set(name, out);
  return out;
}

const lutCache = new Map();

/** The colormap as a Uint32Array of 256 packed pixels. */
export function colormapLUT(name) {
  let lut = lutCache.get(name);
  if (!lut) {
    lut = Uint32Array.from(colormapRGB(name), ([r, g, b]) => packRGB(r, g, b));
    lutCache.set(name, lut);
  }
  return lut;
}

/** The names of the colormaps of one kind ('diverging' or 'sequential'). */
export function colormapNames(kind) {
  return Object.keys(COLORMAPS).filter((n) => COLORMAPS[n].kind === kind);
}

/** CSS colour of a colormap at t in [0, 1] (for legends and layer badges). */
export function colormapCSS(name, t) {
  const rgb = colormapRGB(name)[Math.max(0, Math.min(255, Math.floor(t * 256)))];
  return `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;
}

/**
 * Position of a value on a scale, in [0, 1] (clamped).
 * scale: {lo, hi, magnitude}: `magnitude` maps |v| instead of v.
 */
export function scalePosition(v, scale) {
  if (scale.log) {
    const span = Math.log10(scale.hi / scale.lo);
    const t = Math.abs(v) > 0 ? Math.log10(Math.abs(v) / scale.lo) / span : 0;
    return span > 0 ? (t < 0 ? 0 : t > 1 ? 1 : t) : 0;
  }
  const x = scale.magnitude ? Math.abs(v) : v;
  const span = scale.hi - scale.lo;
  if (!(span > 0)) return scale.magnitude ? 0 : 0.5;
  const t = (x - scale.lo) / span;
  return t < 0 ? 0 : t > 1 ? 1 : t;
}

/**
 * Colours a frame into `out` (a Uint32Array view of ImageData, one pixel per
 * cell); NaN and ±Inf get their own colours. Returns counts of the
 * non-finite cells (the legend names them when present). A log scale
 * ({lo, hi, log: true}, lo > 0) colours log |x|; 0 and |x| < lo take the
 * lowest colour.
 */
export function colorFrame(data, scale, cmapName, out) {
  if (scale.log) return colorFrameLog(data, scale, colormapLUT(cmapName), out);
  const lut = colormapLUT(cmapName);
  const nanPx = packRGB(...SPECIAL_COLORS.nan.rgb);
  const posPx = packRGB(...SPECIAL_COLORS.posinf.rgb);
  const negPx = packRGB(...SPECIAL_COLORS.neginf.rgb);
  const span = scale.hi - scale.lo;
  const flat = !(span > 0);
  const k = flat ? 0 : 256 / span;
  const lo = scale.lo;
  const mag = !!scale.magnitude;
  const flatIndex = mag ? 0 : 128;
  let nan = 0;
  let posinf = 0;
  let neginf = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v !== v) {
      out[i] = nanPx;
      nan++;
    } else if (v === Infinity) {
      out[i] = posPx;
      posinf++;
    } else if (v === -Infinity) {
      out[i] = negPx;
      neginf++;
    } else if (flat) {
      out[i] = lut[flatIndex];
    } else {
      // Clamp before truncating: `| 0` of a huge value wraps around.
      const t = (((mag && v < 0) ? -v : v) - lo) * k;
      out[i] = lut[t <= 0 ? 0 : t >= 255 ? 255 : t | 0];
    }
  }
  return {nan, posinf, neginf};
}

function colorFrameLog(data, scale, lut, out) {
  const counts = {nan: 0, posinf: 0, neginf: 0};
  const special = {nan: packRGB(...SPECIAL_COLORS.nan.rgb), posinf: packRGB(...SPECIAL_COLORS.posinf.rgb),
    neginf: packRGB(...SPECIAL_COLORS.neginf.rgb)};
  const span = Math.log2(scale.hi / scale.lo);
  const k = span > 0 ? 256 / span : 0;
  const lo = scale.lo;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    const kind = v !== v ? 'nan' : v === Infinity ? 'posinf' : v === -Infinity ? 'neginf' : null;
    if (kind) {
      out[i] = special[kind];
      counts[kind]++;
      continue;
    }
    const a = v < 0 ? -v : v;
    // log2 is as fast as log10 and only the ratio matters.
    const t = a > lo ? Math.log2(a / lo) * k : 0;
    out[i] = lut[t >= 255 ? 255 : t | 0];
  }
  return counts;
}

/**
 * Assigns each run a palette colour that stays the same while the page
 * lives: existing runs keep theirs, new runs take the first unused one.
 */
export class RunColors {
  constructor(palette = RUN_PALETTE) {
    this.palette = palette;
    this.byRun = new Map();
  }

  /** Registers runs (sorted, so a fresh page gives the same colours). */
  assign(runs) {
    for (const run of [...runs].sort()) {
      if (this.byRun.has(run)) continue;
      const used = new Set(this.byRun.values());
      const free = this.palette.find((c) => !used.has(c));
      this.byRun.set(run, free || this.palette[this.byRun.size % this.palette.length]);
    }
  }

  get(run) {
    if (!this.byRun.has(run)) this.assign([run]);
    return this.byRun.get(run);
  }
}
