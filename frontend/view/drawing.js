// Drawing the tensor view's heatmaps: one panel per run shown (or one for
// A − B), the current step fetched and decoded for each, coloured on one
// shared scale, and the legend. What a panel shows in each mode comes from
// modes.js, the scale from scale_policy.js.

import {clear, el} from './dom.js';
import {HeatmapPanel} from './heatmap.js';
import {renderLegend} from './legend.js';
import {NothingToShow, panelFrame} from '../model/modes.js';
import {makeLogScale, makeScale} from '../model/scale.js';
import {colourScaleMarks} from '../model/stat_scale.js';
import {hasFrames, quantityInfo} from '../model/quantities.js';
import {poolBounds, referenceFrameBound, referenceSteps, scaleFor, scaleSource} from '../model/scale_policy.js';

export class TensorDrawing {
  /**
   * @param {Object} app the controller (state: tag, step, steps, settings,
   *   selected, displayRuns(), runData, cache, colors, viewport, cmap).
   * @param {{panelArea: Element, legend: Element, title: Element, root: Element}} nodes
   */
  constructor(app, nodes) {
    this.app = app;
    this.nodes = nodes;
    this.panels = []; // [{runs, title, color, panel: HeatmapPanel}]
    this.references = new Map(); // reference-frame bounds, by what they depend on
    this.seq = 0;
    this.perf = {framesDrawn: 0, firstPaint: null};
  }

  /** Forgets reference bounds (new data or a new mode). */
  forgetReferences() {
    this.references.clear();
  }

  /** One panel per run shown, or one A − B panel; the old ones are disposed. */
  rebuild() {
    const app = this.app;
    for (const p of this.panels) p.panel.dispose();
    this.panels = [];
    const area = this.nodes.panelArea;
    clear(area);
    this.nodes.title.textContent = app.tag || '';
    if (!app.tag) {
      area.appendChild(el('div', {class: 'note', text: app.selected.length ? 'No tensors in the selected runs.' : 'Select a run.'}));
      return;
    }
    const s = app.settings;
    if (s.mode === 'diff') {
      if (!s.runA || !s.runB || s.runA === s.runB) {
        area.appendChild(el('div', {class: 'note', text: 'A − B needs two runs: pick run A and run B.'}));
        return;
      }
      this.addPanel({runs: [s.runA, s.runB], title: `${s.runA} − ${s.runB}`, color: null});
    } else {
      for (const run of app.selected) this.addPanel({runs: [run], title: run, color: app.colors.get(run)});
    }
    area.classList.toggle('compare', this.panels.length > 1);
  }

  addPanel(spec) {
    const panel = new HeatmapPanel({title: spec.title, color: spec.color, viewport: this.app.viewport});
    this.nodes.panelArea.appendChild(panel.root);
    this.panels.push({...spec, panel});
  }

  redrawPanels() {
    for (const p of this.panels) p.panel.redraw();
  }

  /** What panel `spec` shows at `step` in the current mode, of the quantity shown. */
  frameAt(spec, step) {
    const app = this.app;
    const quantity = app.quantity;
    const name = quantityInfo(quantity).label;
    const getFrame = (run, tag, s) => {
      const tensor = app.runData.get(run)?.tensors.get(tag);
      if (tensor && !hasFrames(tensor, quantity)) {
        return Promise.reject(new NothingToShow(`${run} recorded the ${name} of ${tag} without frames ` +
            '(its stats are in the charts; frames: quantity_frames= on the recorder)'));
      }
      return app.cache.get(run, tag, s, quantity).catch((e) => {
        // A quantity starts after the weights (Adam has no state before its
        // first step): a step without it is a note, not a failure.
        if (quantity !== 'weights' && e.status === 404) {
          throw new NothingToShow(`no ${name} of ${tag} recorded at or before step ${s} in ${run}`);
        }
        throw e;
      });
    };
    const ctx = {mode: app.settings.mode, tag: app.tag, tagOf: (run) => app.tagOf(run), runData: app.runData, getFrame};
    return panelFrame(ctx, spec.runs, step);
  }

  /** True when a shown tensor is block-reduced (its scale then comes from its frames). */
  downsampled() {
    const app = this.app;
    return app.displayRuns().some((r) => app.runData.get(r)?.tensors.get(app.tagOf(r))?.downsampled);
  }

  /** The bounds of what the panels show at the reference steps, pooled (cached). */
  async reference(downsampled) {
    const app = this.app;
    const s = app.settings;
    const key = JSON.stringify([app.tag, app.quantity, s.mode, s.clip, s.colorKind, app.displayRuns(), app.steps.length,
      downsampled]);
    if (!this.references.has(key)) {
      const options = {clip: s.clip, magnitude: s.colorKind === 'magnitude', downsampled};
      const bounds = [];
      for (const step of referenceSteps(app.steps, downsampled)) {
        const perPanel = await Promise.all(this.panels.map((p) => this.frameAt(p, step).then(
            (r) => referenceFrameBound(r.frame.data, options), () => null)));
        const known = perPanel.filter((b) => b !== null);
        if (known.length) bounds.push(Math.max(...known));
      }
      this.references.set(key, poolBounds(bounds));
    }
    return this.references.get(key);
  }

  /** Fetches, decodes and draws the current step in every panel. */
  async draw() {
    const app = this.app;
    if (app.settings.view !== 'tensor' || !this.panels.length || app.step === null) {
      if (app.step === null) for (const p of this.panels) p.panel.setMessage('No snapshots yet.', false);
      return;
    }
    const seq = ++this.seq;
    const started = performance.now();
    const step = app.step;
    const index = app.stepIndex;
    const results = await Promise.all(this.panels.map((p) => this.frameAt(p, step).then(
        (r) => ({ok: true, ...r}), (error) => ({ok: false, error}))));
    if (seq !== this.seq) return;
    const downsampled = this.downsampled();
    const reference = scaleSource(app.settings, downsampled) === 'frames' ? await this.reference(downsampled) : null;
    if (seq !== this.seq) return;
    const series = (await Promise.all(app.displayRuns().map((run) => app.tagSeriesSettled(run)))).filter((x) => x);
    if (seq !== this.seq) return;
    const frames = results.filter((r) => r.ok).map((r) => r.frame.data);
    const {log, epsilon} = app.quantityScale();
    // A log scale is of |x|: its top is the magnitude scale's.
    const settings = log ? {...app.settings, colorKind: 'magnitude'} : app.settings;
    const {bound, note} = scaleFor({settings, frames, series, reference, downsampled});
    const scale = log ? makeLogScale(bound, frames, epsilon.value) : makeScale(bound, settings.colorKind === 'magnitude');
    const counts = this.paint(results, scale);
    const what = log ? 'log |x|, bottom at the 1st percentile of |x| shown, or ε when near' :
      settings.colorKind === 'magnitude' ? '|x|' : 'signed, centred on 0';
    const marked = log && epsilon.value !== null;
    const eps = !log ? '' : marked ? `; ε marked: ${epsilon.text}` : `; ${epsilon.text}`;
    this.nodes.legend.hidden = !results.some((r) => r.ok);
    renderLegend(this.nodes.legend, {scale, cmap: app.cmap, note: `Colour scale (${what}): ${note}${eps}.`, counts,
      marks: colourScaleMarks(scale, marked ? {value: epsilon.value, label: 'ε'} : null)});
    app.lastDrawnIndex = index;
    this.record(started, results.some((r) => r.ok), step);
  }

  /** Puts each panel's result on screen; returns the non-finite counts over all. */
  paint(results, scale) {
    const app = this.app;
    const counts = {nan: 0, posinf: 0, neginf: 0};
    this.panels.forEach((p, k) => {
      const r = results[k];
      if (!r.ok) {
        const note = r.error instanceof NothingToShow;
        p.panel.setMessage(r.error.message, !note);
        if (note) p.panel.canvas.hidden = true;
        return;
      }
      p.panel.setMessage('');
      const tag = app.tagOf(p.runs[0]);
      const c = p.panel.setFrame({
        frame: r.frame, scale, cmap: app.cmap, shape: r.tensor.shape, layout: r.tensor.layout,
        name: tag.slice(tag.lastIndexOf('/') + 1), parts: r.parts, stepText: r.stepText, valueLabel: r.valueLabel,
      });
      for (const key of Object.keys(counts)) counts[key] += c[key];
    });
    return counts;
  }

  /** Performance entries and data attributes for the tests and benchmarks. */
  record(started, painted, step) {
    const ended = performance.now();
    // The timeline keeps every entry: bound it for a tab left playing for hours.
    if (this.perf.framesDrawn % 5000 === 4999) performance.clearMeasures('nnviz-frame');
    performance.measure('nnviz-frame', {start: started, end: ended});
    this.perf.framesDrawn += 1;
    if (this.perf.firstPaint === null && painted) {
      this.perf.firstPaint = ended;
      performance.mark('nnviz-first-paint');
    }
    const root = this.nodes.root;
    root.dataset.drawnStep = step;
    root.dataset.drawnMode = this.app.settings.mode;
    root.dataset.framesDrawn = this.perf.framesDrawn;
  }
}
