// The only module that talks to the server: the plugin's routes, relative to
// this module (TensorBoard serves it under /data/plugin/nnviz/), and a frame
// cache with prefetch for smooth playback.

import {decodeFrame, decodeUnits} from '../model/decode.js';

const BASE = new URL('../', import.meta.url);

/** An error answer from the server, with its own message. */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

function routeURL(route, params = {}) {
  const url = new URL(route, BASE);
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
  }
  return url;
}

async function request(route, params) {
  let response;
  try {
    response = await fetch(routeURL(route, params));
  } catch (e) {
    throw new ApiError(`cannot reach TensorBoard (${route}): ${e.message}`, 0);
  }
  if (!response.ok) {
    let detail = '';
    try {
      const text = await response.text();
      try {
        detail = JSON.parse(text).error || text;
      } catch (_) {
        detail = text;
      }
    } catch (_) {
      // The status alone has to do.
    }
    throw new ApiError(`${route}: ${detail || response.statusText} (HTTP ${response.status})`, response.status);
  }
  return response;
}

async function getJSON(route, params) {
  const response = await request(route, params);
  try {
    return await response.json();
  } catch (e) {
    throw new ApiError(`${route}: the answer is not valid JSON (${e.message})`, response.status);
  }
}

export function fetchRuns() {
  return getJSON('runs');
}

export function fetchStructure(run) {
  return getJSON('structure', {run});
}

export function fetchTags(run) {
  return getJSON('tags', {run});
}

// `quantity=` is sent only for a quantity other than the weights, so a
// server that predates quantities is asked exactly what it was before.
function quantityParam(quantity) {
  return quantity && quantity !== 'weights' ? quantity : null;
}

/**
 * Stats of a run: with `tag`, that tag's {steps, wall_times, <stat>: [...]};
 * without, {tag: {...}} for every tag. With `fields` (a list of stat names),
 * only those stats (and steps, wall_times): a whole run's table is large.
 * `quantity`: the weights' (default) or a recorded quantity's (grad, v_rms, ...).
 */
export function fetchStats(run, {tag = null, fields = null, quantity = 'weights'} = {}) {
  return getJSON('stats', {run, tag, fields: fields ? fields.join(',') : null, quantity: quantityParam(quantity)});
}

/** A binary answer decoded by `decode(buffer, headers)`; `what` names it in errors. */
async function getBinary(route, params, decode, what) {
  const response = await request(route, params);
  const buffer = await response.arrayBuffer();
  try {
    return decode(buffer, response.headers);
  } catch (e) {
    throw new ApiError(`${what}: ${e.message}`, response.status);
  }
}

/** One frame of a tag's weights or of a recorded quantity: {rows, cols, step, data: Float32Array}. */
export function fetchFrame(run, tag, step, quantity = 'weights') {
  const what = quantityParam(quantity) ? `${quantity} frame ${tag}` : `frame ${tag}`;
  return getBinary('frame', {run, tag, step, quantity: quantityParam(quantity)}, decodeFrame, `${what} at step ${step}`);
}

/**
 * Per-unit stats of one tag: {rows, cols, block, data}, one row per step of
 * its stats series (stat: 'norm' or 'update').
 */
export function fetchUnits(run, tag, stat, quantity = 'weights') {
  return getBinary('units', {run, tag, stat, quantity: quantityParam(quantity)}, decodeUnits, `units of ${tag}`);
}

/** Findings of a run: {findings: [{kind, severity, tag, first_step, last_step, message, units?, value?}]}. */
export function fetchFindings(run) {
  return getJSON('findings', {run});
}

/**
 * Frames by (run, tag, step, quantity), kept up to `maxBytes` (least recently used
 * dropped first). A snapshot never changes once written, so a cached frame
 * stays right; failed requests are not kept.
 */
export class FrameCache {
  constructor(maxBytes = 256 * 1024 * 1024, fetcher = fetchFrame) {
    this.maxBytes = maxBytes;
    this.fetcher = fetcher;
    this.entries = new Map(); // key → {promise, frame, bytes}
    this.bytes = 0;
  }

  static key(run, tag, step, quantity = 'weights') {
    return JSON.stringify([run, tag, step, quantity]);
  }

  /** The frame if it has arrived already (no request), else null. */
  peek(run, tag, step, quantity = 'weights') {
    const entry = this.entries.get(FrameCache.key(run, tag, step, quantity));
    return entry && entry.frame ? entry.frame : null;
  }

  /** A promise of the frame; requested once however often it is asked for. */
  get(run, tag, step, quantity = 'weights') {
    const key = FrameCache.key(run, tag, step, quantity);
    let entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key); // re-insert: most recently used last
      this.entries.set(key, entry);
      return entry.promise;
    }
    entry = {frame: null, bytes: 0, promise: null};
    entry.promise = this.fetcher(run, tag, step, quantity).then(
        (frame) => {
          entry.frame = frame;
          entry.bytes = frame.data.byteLength;
          this.bytes += entry.bytes;
          this.evict();
          return frame;
        },
        (error) => {
          if (this.entries.get(key) === entry) this.entries.delete(key);
          throw error;
        });
    this.entries.set(key, entry);
    return entry.promise;
  }

  /** Starts requests for frames that will be wanted soon; errors surface when they are drawn. */
  prefetch(run, tag, steps, quantity = 'weights') {
    for (const step of steps) this.get(run, tag, step, quantity).catch(() => {});
  }

  evict() {
    for (const [key, entry] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      if (!entry.frame) continue;
      this.entries.delete(key);
      this.bytes -= entry.bytes;
    }
  }
}
