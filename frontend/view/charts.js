// Stats over time: one small SVG line chart per stat, one line per selected
// run, a marker at the current step; clicking a chart moves the step.

import {clear, el, svg} from './dom.js';
import {formatCount, formatTicks, formatValue} from '../model/numbers.js';
import {niceTicks, OUTLIER_FACTOR, robustBound} from '../model/scale.js';
import {labelFor, rmsValues} from '../model/quantities.js';
import {logRange, statPosition, statTicks} from '../model/stat_scale.js';
import {indexAtOrBefore, unionSteps} from '../model/steps.js';

// weightwatcher's range of alpha for well-trained layers (the `alpha`
// finding uses the same bounds: http_api.md, GET /findings).
export const ALPHA_MARKS = [
  {value: 2, side: 'below', title: 'alpha < 2: heavy-tailed spectrum, which weightwatcher reads as a sign of over-fitting or over-training this layer'},
  {value: 6, side: 'above', title: 'alpha > 6: little structure learned yet (random matrices, e.g. every layer at init, have a large alpha)'},
];

// `magnitude`: drawn on a log scale when the quantity shown has one
// (quantities.logApplies); `epsilon`: Adam's ε marked there. `quantity`:
// only for a quantity other than the weights.
export const CHART_STATS = [
  {key: 'rms', label: 'RMS ‖W‖ / √n', quantity: true, magnitude: true, epsilon: true,
    title: 'Root mean square of the entries. Under Adam, a gradient whose RMS is near or below ε takes steps that are no longer scale-free (ε dominates √v̂).'},
  {key: 'l2', label: 'L2 norm ‖W‖', magnitude: true},
  {key: 'std', label: 'std', magnitude: true},
  {key: 'update_ratio', label: 'update ratio ‖ΔW‖ / ‖W_prev‖'},
  {key: 'init_l2', label: 'distance from init ‖W − W₀‖'},
  {key: 'init_cos', label: 'cosine to init'},
  {key: 'nonfinite', label: 'NaN / Inf count', count: true},
  // Spectral stats: shown only for matrices that have them (spectral.py).
  {key: 'sv_max', label: 'spectral norm σ_max', spectral: true},
  {key: 'stable_rank', label: 'stable rank ‖W‖²_F / σ²_max', spectral: true},
  {key: 'alpha', label: 'power-law alpha of the spectrum', spectral: true, marks: ALPHA_MARKS,
    title: 'Exponent of a power law fitted to the tail of the eigenvalues of WᵀW (weightwatcher). About 2–6 for well-trained layers; below 2 heavy-tailed (over-fitting / over-training), above 6 little structure learned yet.'},
  {key: 'alpha_weighted', label: 'alpha weighted α·log₁₀ λ_max', spectral: true},
];

/**
 * The charts worth drawing for these lines: spectral ones only when some run
 * has a value (a matrix), the RMS only for a quantity. Pure.
 */
export function chartStats(lines, quantity = 'weights') {
  return CHART_STATS.filter((stat) => (!stat.quantity || quantity !== 'weights') && (!stat.spectral ||
    lines.some((l) => statValues(l.series, stat.key).some((v) => v !== null && Number.isFinite(v)))));
}

const W = 300;
const H = 140;
const M = {left: 46, right: 8, top: 8, bottom: 20};

/** Values of a stat along a series; `nonfinite` adds the NaN and Inf counts. */
export function statValues(series, key) {
  if (key === 'rms') return rmsValues(series);
  if (key === 'nonfinite') {
    const nan = series.nan || [];
    const inf = series.inf || [];
    return series.steps.map((_, i) => (nan[i] === null && inf[i] === null) ? null : (nan[i] || 0) + (inf[i] || 0));
  }
  return series.steps.map((_, i) => {
    const v = (series[key] || [])[i];
    return v === undefined ? null : v;
  });
}

export class StatCharts {
  constructor(onStep) {
    this.onStep = onStep;
    this.root = el('div', {class: 'charts'});
    this.charts = [];
    this.steps = [];
  }

  /**
   * @param {Array<{run, color, series}>} lines one per run (series: a tag's /stats entry).
   * @param {number} step the current step.
   * @param {boolean} loading some run's stats are on their way.
   * @param {{quantity, log, epsilon}} scale what the lines are of (app.quantityScale):
   *   a log scale for magnitudes, Adam's ε ({value, text}) marked.
   */
  update(lines, step, loading = false, scale = {quantity: 'weights', log: false, epsilon: null}) {
    clear(this.root);
    this.charts = [];
    this.lines = lines;
    this.scale = scale;
    this.root.dataset.quantity = scale.quantity;
    this.steps = unionSteps(lines.map((l) => l.series.steps));
    if (this.steps.length === 0) {
      this.root.appendChild(el('div', {class: 'note', text: loading ? 'Loading stats…' : 'No stats recorded for this tensor.'}));
      return;
    }
    for (const stat of chartStats(lines, scale.quantity)) this.charts.push(this.buildChart(stat, lines));
    this.setStep(step);
  }

  buildChart(stat, lines) {
    const values = lines.map((l) => statValues(l.series, stat.key));
    const {log, epsilon} = this.scale;
    const range = chartRange(stat, values, this.steps,
        {log: log && stat.magnitude, mark: stat.epsilon && epsilon ? epsilon.value : null});
    const {x0, x1, lo, hi} = range;
    const label = labelFor(stat.label, this.scale.quantity);
    const sx = (s) => M.left + (s - x0) / (x1 - x0) * (W - M.left - M.right);
    const sy = range.log ?
      (v) => H - M.bottom - (v > 0 ? statPosition(range.domain, v) : 0) * (H - M.top - M.bottom) :
      (v) => H - M.bottom - (Math.max(lo, Math.min(hi, v)) - lo) / (hi - lo) * (H - M.top - M.bottom);
    // Focusable: left/right arrows (Home/End) move the step, as a click does.
    const plot = svg('svg', {viewBox: `0 0 ${W} ${H}`, class: range.log ? 'chart log' : 'chart', tabindex: 0, role: 'slider',
      'aria-label': `${label}: step`, 'aria-valuemin': this.steps[0], 'aria-valuemax': this.steps[this.steps.length - 1]});
    plot.dataset.stat = stat.key;
    plot.appendChild(chartAxes(stat, range, sx, sy));
    const marks = range.markShown ? [{value: epsilon.value, side: 'below', label: 'ε', title: epsilon.text +
      '. Below it, Adam\'s step m̂ / (√v̂ + ε) shrinks with the gradient instead of staying scale-free.'}] : stat.marks;
    if (marks && !range.empty) plot.appendChild(chartMarks(marks, range, sy));
    drawLines(plot, lines, values, sx, sy);
    const marker = svg('line', {y1: M.top, y2: H - M.bottom, class: 'marker'});
    plot.appendChild(marker);
    const dots = lines.map((line) => {
      const dot = svg('circle', {r: 3, fill: line.color, class: 'dot'});
      plot.appendChild(dot);
      return dot;
    });
    // One read-out per run, updated in place as the step moves.
    const readouts = lines.map((line) => {
      const swatch = el('span', {class: 'swatch'});
      swatch.style.background = line.color;
      const value = el('span', {class: 'value'});
      return {value, node: el('span', {class: 'chart-value'}, [swatch, el('span', {class: 'run-name', text: line.run}), value])};
    });
    this.bindChart(plot, x0, x1);
    const robust = range.robust;
    const card = el('div', {class: 'card chart-card'}, [
      el('div', {class: 'chart-title', title: stat.title}, [label, range.log ? el('span', {class: 'muted', text: ' · log'}) : null,
        robust.saturated ?
        el('span', {class: 'off-scale', text: ` · off scale: up to ${formatValue(robust.peak)}`,
          title: `${robust.saturated} value${robust.saturated > 1 ? 's' : ''} over ${OUTLIER_FACTOR}× the typical one, drawn at the top`}) : null]),
      plot,
      el('div', {class: 'chart-values'}, readouts.map((r) => r.node)),
    ]);
    if (range.empty) card.appendChild(el('div', {class: 'note', text: 'no values (undefined until a second snapshot)'}));
    if (range.log && stat.epsilon && epsilon && epsilon.value !== null && !range.markShown && !range.empty) {
      card.appendChild(el('div', {class: 'note eps-note', text: `${epsilon.text}: far below these values`}));
    }
    this.root.appendChild(card);
    return {stat, sx, sy, marker, dots, values, readouts, plot};
  }

  /** Interaction: a click, or arrow/Home/End keys, on a chart moves the step. */
  bindChart(plot, x0, x1) {
    plot.addEventListener('click', (e) => {
      const ctm = plot.getScreenCTM();
      if (!ctm) return;
      const p = new DOMPoint(e.clientX, e.clientY).matrixTransform(ctm.inverse());
      const s = x0 + (p.x - M.left) / (W - M.left - M.right) * (x1 - x0);
      this.onStep(this.nearestStep(s));
    });
    plot.addEventListener('keydown', (e) => {
      const step = this.keyStep(e.key);
      if (step === null) return;
      e.preventDefault();
      e.stopPropagation(); // the page's own arrow keys would step twice
      this.onStep(step);
    });
  }

  /** The step an arrow/Home/End key on a chart moves to, or null for other keys. */
  keyStep(key) {
    const i = indexAtOrBefore(this.steps, this.current ?? this.steps[0]);
    const last = this.steps.length - 1;
    if (key === 'ArrowRight' || key === 'ArrowUp') return this.steps[Math.min(last, i + 1)];
    if (key === 'ArrowLeft' || key === 'ArrowDown') return this.steps[Math.max(0, i - 1)];
    if (key === 'Home') return this.steps[0];
    if (key === 'End') return this.steps[last];
    return null;
  }

  nearestStep(s) {
    let best = this.steps[0];
    for (const step of this.steps) if (Math.abs(step - s) < Math.abs(best - s)) best = step;
    return best;
  }

  /** Moves the markers (cheap: no rebuild). */
  setStep(step) {
    this.current = step;
    for (const chart of this.charts) {
      const x = chart.sx(step);
      chart.marker.setAttribute('x1', x);
      chart.marker.setAttribute('x2', x);
      chart.plot.setAttribute('aria-valuenow', step);
      const said = this.lines.map((line, k) => {
        const i = indexAtOrBefore(line.series.steps, step);
        const v = i < 0 ? null : chart.values[k][i];
        const dot = chart.dots[k];
        if (v === null || !Number.isFinite(v)) {
          dot.setAttribute('visibility', 'hidden');
        } else {
          dot.setAttribute('visibility', 'visible');
          dot.setAttribute('cx', chart.sx(line.series.steps[i]));
          dot.setAttribute('cy', chart.sy(v));
        }
        const text = chart.stat.count ? formatCount(v) : formatValue(v);
        chart.readouts[k].value.textContent = text;
        return `${line.run} ${text}`;
      });
      chart.plot.setAttribute('aria-valuetext', `step ${step}: ${said.join(', ')}`);
    }
  }
}

/**
 * The ranges a chart shows: steps x0…x1, values lo…hi (padded), with
 * exploded values (a learning rate too high) left out of the range: they
 * would flatten every other line to the axis, and are drawn clamped at the
 * top instead (robust.saturated of them). Counts start at 0. Pure.
 * @return {{x0, x1, lo, hi, robust, empty}}
 */
export function chartRange(stat, values, steps, {log = false, mark = null} = {}) {
  let x0 = steps[0];
  let x1 = steps[steps.length - 1];
  if (x1 === x0) {
    x0 -= 1;
    x1 += 1;
  }
  const all = [];
  for (const vs of values) for (const v of vs) if (v !== null && Number.isFinite(v)) all.push(v);
  const robust = stat.count ? {saturated: 0} : robustBound(all.map(Math.abs));
  const limit = robust.saturated ? robust.bound : Infinity;
  if (log) {
    // Magnitudes over decades (a gradient's RMS): log10, ε taken in when near.
    const r = logRange(all, {limit, mark});
    if (r) return {x0, x1, lo: r.domain.lo, hi: r.domain.hi, robust, empty: false, log: true, domain: r.domain, markShown: r.markShown};
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of all) if (Math.abs(v) <= limit) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const empty = lo > hi;
  if (empty) { lo = 0; hi = 1; }
  // Reference marks (alpha's 2 and 6) stay in view: a value reads against them.
  if (!empty) for (const m of stat.marks || []) { lo = Math.min(lo, m.value); hi = Math.max(hi, m.value); }
  if (stat.count) {
    // Counts start at 0 and never go below it.
    lo = 0;
    hi = Math.max(1, hi);
  } else if (hi === lo) {
    lo -= Math.abs(lo) * 0.1 || 1;
    hi += Math.abs(hi) * 0.1 || 1;
  }
  const pad = (hi - lo) * 0.05;
  lo -= stat.count ? 0 : pad;
  hi += pad;
  return {x0, x1, lo, hi, robust, empty};
}

/** Grid lines and tick labels of a chart (counts get integer ticks only). */
function chartAxes(stat, {x0, x1, lo, hi, log, domain}, sx, sy) {
  const grid = svg('g', {class: 'axis'});
  const yTicks = log ? statTicks(domain) : niceTicks(lo, hi, 4).filter((t) => !stat.count || Number.isInteger(t));
  const yLabels = formatTicks(yTicks, stat.count ? formatCount : formatValue);
  yTicks.forEach((t, k) => {
    grid.appendChild(svg('line', {x1: M.left, x2: W - M.right, y1: sy(t), y2: sy(t), class: 'gridline'}));
    const label = svg('text', {x: M.left - 4, y: sy(t) + 3, 'text-anchor': 'end'});
    label.textContent = yLabels[k];
    grid.appendChild(label);
  });
  for (const t of niceTicks(x0, x1, 4)) {
    if (!Number.isInteger(t)) continue;
    const label = svg('text', {x: sx(t), y: H - 6, 'text-anchor': 'middle'});
    label.textContent = formatCount(t);
    grid.appendChild(label);
  }
  return grid;
}

/**
 * Reference marks on a chart's value axis: a dashed line and label at each
 * mark, and the band beyond it shaded, each with its reason as a tooltip.
 */
function chartMarks(marks, {lo, hi}, sy) {
  const group = svg('g', {class: 'marks'});
  for (const m of marks) {
    const y = sy(m.value);
    const edge = sy(m.side === 'below' ? lo : hi);
    const band = svg('rect', {x: M.left, width: W - M.left - M.right, y: Math.min(y, edge),
      height: Math.abs(edge - y), class: 'mark-band'});
    const line = svg('line', {x1: M.left, x2: W - M.right, y1: y, y2: y, class: 'mark-line'});
    // A named mark (ε, often the bottom of a log axis) is labelled above its line.
    const label = svg('text', {x: W - M.right - 2, y: y + (m.side === 'below' && !m.label ? 10 : -3),
      'text-anchor': 'end', class: 'mark-label'});
    label.textContent = m.label ?? `${m.side === 'below' ? '<' : '>'} ${m.value}`;
    // The <title> of the group is the tooltip of all three.
    const title = svg('title');
    title.textContent = m.title;
    group.appendChild(svg('g', {class: 'mark'}, [title, band, line, label]));
  }
  return group;
}

/** One path per run, broken where a value is undefined; a lone snapshot as a dot. */
function drawLines(plot, lines, values, sx, sy) {
  lines.forEach((line, k) => {
    let d = '';
    let pen = false;
    line.series.steps.forEach((s, i) => {
      const v = values[k][i];
      if (v === null || !Number.isFinite(v)) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${sx(s).toFixed(1)},${sy(v).toFixed(1)}`;
      pen = true;
    });
    plot.appendChild(svg('path', {d: d || 'M0,0', class: 'line', stroke: line.color}));
    // Lone points (a single snapshot) would be invisible as a path.
    if (line.series.steps.length === 1 && values[k][0] !== null) {
      plot.appendChild(svg('circle', {cx: sx(line.series.steps[0]), cy: sy(values[k][0]), r: 2.5, fill: line.color}));
    }
  });
}
