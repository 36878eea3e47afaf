// The panel's controller: state (runs, tensor, step, mode, scale), loading
// through api.js, and keeping the views in step. Live: /runs is polled and
// new steps appear without a reload.

import {FrameCache, fetchRuns, fetchStats, fetchStructure, fetchTags} from './api.js';
import {RunColors} from './colors.js';
import {StatCharts} from './charts.js';
import {StepBar, Toolbar} from './controls.js';
import {subtractFrames} from './decode.js';
import {clear, el, errorBox} from './dom.js';
import {HeatmapPanel, Viewport} from './heatmap.js';
import {renderLegend} from './legend.js';
import {Overview} from './overview.js';
import {boundFields, frameBound, makeScale, robustBound, stepBounds} from './scale.js';
import {formatValue} from './numbers.js';
import {LayerList, RunPicker} from './sidebar.js';
import {indexAtOrBefore, layerRows, tagInRun, unionSteps} from './structure.js';

const POLL_MS = 5000;
const PREFETCH_AHEAD = 24;

/** A message that is not a server failure (e.g. "no previous snapshot"). */
class Note extends Error {}

export class App {
  constructor(root) {
    this.root = root;
    this.runs = []; // [{run, steps, tags}] from /runs
    this.selected = [];
    this.runData = new Map(); // run → {tensors: Map, rows, structure, stats, errors, stepsKey}
    this.colors = new RunColors();
    this.cache = new FrameCache();
    this.viewport = new Viewport();
    this.settings = {
      view: 'tensor', mode: 'values', colorKind: 'diverging', cmapDiverging: 'RdBu_r', cmapSequential: 'viridis',
      scaleMode: 'fixed', clip: false, layerStat: 'update_ratio', speed: '10', runA: null, runB: null,
    };
    this.tag = null;
    this.steps = [];
    this.stepIndex = 0;
    this.playing = false;
    this.drawSeq = 0;
    this.panels = [];
    this.referenceBounds = new Map();
    this.prefetchAhead = PREFETCH_AHEAD;
    this.perf = {framesDrawn: 0, firstPaint: null};
    this.build();
  }

  get step() {
    return this.steps.length ? this.steps[this.stepIndex] : null;
  }

  get cmap() {
    return this.settings.colorKind === 'magnitude' ? this.settings.cmapSequential : this.settings.cmapDiverging;
  }

  // --- building the page ---------------------------------------------------

  build() {
    this.status = el('div', {class: 'status', attrs: {role: 'status'}});
    this.runPicker = new RunPicker({onToggle: (run, on) => this.toggleRun(run, on)});
    this.layerList = new LayerList({
      stat: this.settings.layerStat,
      onSelect: (tag) => this.selectTag(tag),
      onStat: (stat) => {
        this.settings.layerStat = stat;
        this.colourLayers();
      },
    });
    this.toolbar = new Toolbar(this.settings, (key, value) => this.changeSetting(key, value), this.viewport);
    this.stepBar = new StepBar({
      onIndex: (i) => this.setStepIndex(i),
      onPlay: () => (this.playing ? this.pause() : this.play()),
      onSpeed: (speed) => (this.settings.speed = speed),
    }, this.settings.speed);
    this.tensorTitle = el('h2', {class: 'tensor-title'});
    this.panelArea = el('div', {class: 'panels'});
    this.legend = el('div', {class: 'card legend', attrs: {id: 'legend'}});
    this.charts = new StatCharts((step) => this.setStep(step));
    this.overview = new Overview((tag) => {
      this.changeSetting('view', 'tensor');
      this.selectTag(tag);
    });
    this.tensorView = el('div', {class: 'tensor-view'}, [
      el('div', {class: 'tensor-head'}, [this.tensorTitle, this.toolbar.zoom]), this.panelArea, this.legend,
      el('h3', {class: 'section-title', text: 'Stats over time'}), this.charts.root,
    ]);
    this.overviewView = el('div', {class: 'overview-view', attrs: {hidden: true}}, [this.overview.root]);
    const sidebar = el('aside', {class: 'sidebar'}, [this.runPicker.root, this.layerList.root]);
    const main = el('main', {class: 'main'}, [this.status, this.toolbar.root, this.stepBar.root, this.tensorView, this.overviewView]);
    this.root.appendChild(el('div', {class: 'nnviz'}, [sidebar, main]));
    document.addEventListener('keydown', (e) => this.onKey(e));
    window.addEventListener('resize', () => this.panels.forEach((p) => p.panel.redraw()));
  }

  onKey(e) {
    const t = e.target;
    const tag = t && t.tagName;
    if (tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA' || e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
      this.pause();
      this.setStepIndex(this.stepIndex + (e.key === 'ArrowRight' ? 1 : -1));
    } else if (e.key === 'Home') {
      this.setStepIndex(0);
    } else if (e.key === 'End') {
      this.setStepIndex(this.steps.length - 1);
    } else if (e.key === ' ' && tag !== 'BUTTON') {
      this.playing ? this.pause() : this.play();
    } else {
      return;
    }
    e.preventDefault();
  }

  showStatus(message, error = false) {
    clear(this.status);
    if (message) this.status.appendChild(error ? errorBox(message) : el('div', {class: 'note', text: message}));
  }

  // --- loading ---------------------------------------------------------------

  async start() {
    await this.refreshRuns();
    this.schedulePoll();
  }

  schedulePoll() {
    const ms = Number(new URLSearchParams(location.search).get('nnviz_poll_ms')) || POLL_MS;
    this.pollTimer = setTimeout(async () => {
      if (!document.hidden) await this.refreshRuns();
      this.schedulePoll();
    }, ms);
  }

  /** Fetches /runs; loads new selected runs and runs with new steps. */
  async refreshRuns() {
    let answer;
    try {
      answer = await fetchRuns();
    } catch (e) {
      this.showStatus(`Cannot list runs: ${e.message}`, true);
      return;
    }
    const runs = (answer.runs || []).slice().sort((a, b) => (a.run < b.run ? -1 : a.run > b.run ? 1 : 0));
    this.runs = runs;
    this.colors.assign(runs.map((r) => r.run));
    const names = new Set(runs.map((r) => r.run));
    this.selected = this.selected.filter((r) => names.has(r));
    if (!this.autoSelected && runs.length) {
      // The first run is picked once; after that the choice is the user's.
      this.autoSelected = true;
      if (this.selected.length === 0) this.selected = [runs[0].run];
    }
    this.showStatus(runs.length ? '' :
        'No nnviz data yet. Train with NNVizCallback(log_dir) in model.fit(callbacks=[...]) and point TensorBoard at ' +
        'that directory; this page picks up new runs by itself.');
    // Re-rendered only when something changed: a poll must not take the
    // keyboard focus away from a checkbox.
    const runsKey = JSON.stringify([runs, this.selected]);
    if (runsKey !== this.runsKey) {
      this.runsKey = runsKey;
      this.runPicker.render(runs, this.selected, this.colors);
    }
    if (await this.ensureLoaded()) this.afterDataChange();
  }

  wantedRuns() {
    const runs = new Set(this.selected);
    if (this.settings.mode === 'diff') {
      if (this.settings.runA) runs.add(this.settings.runA);
      if (this.settings.runB) runs.add(this.settings.runB);
    }
    return runs;
  }

  needsLoad(info) {
    if (!this.wantedRuns().has(info.run)) return false;
    const data = this.runData.get(info.run);
    return !data || data.stepsKey !== stepsKey(info);
  }

  /** Loads a run's tags, structure and stats (one request each). */
  async loadRun(info) {
    const [tags, structure, stats] = await Promise.allSettled([
      fetchTags(info.run), fetchStructure(info.run), fetchStats(info.run)]);
    const data = {errors: {}, stepsKey: stepsKey(info), tensors: new Map(), structure: null, stats: null, rows: []};
    if (tags.status === 'fulfilled') {
      for (const t of tags.value.tensors || []) data.tensors.set(t.tag, t);
    } else {
      data.errors.tags = tags.reason.message;
    }
    if (structure.status === 'fulfilled') data.structure = structure.value;
    else data.errors.structure = structure.reason.message;
    if (stats.status === 'fulfilled') data.stats = stats.value;
    else data.errors.stats = stats.reason.message;
    data.rows = layerRows(data.structure, [...data.tensors.values()]);
    this.runData.set(info.run, data);
    this.referenceBounds.clear();
  }

  /** Loads the wanted runs not loaded yet or with new steps; true if any was. */
  async ensureLoaded() {
    const stale = this.runs.filter((r) => this.needsLoad(r));
    if (stale.length) await Promise.all(stale.map((r) => this.loadRun(r)));
    return stale.length > 0;
  }

  // --- state changes ---------------------------------------------------------

  async toggleRun(run, on) {
    if (on && !this.selected.includes(run)) this.selected.push(run);
    if (!on) this.selected = this.selected.filter((r) => r !== run);
    const order = this.runs.map((r) => r.run);
    this.selected.sort((a, b) => order.indexOf(a) - order.indexOf(b));
    await this.ensureLoaded();
    this.afterDataChange();
  }

  async changeSetting(key, value) {
    if (key === 'cmap') {
      this.settings[this.settings.colorKind === 'magnitude' ? 'cmapSequential' : 'cmapDiverging'] = value;
    } else {
      this.settings[key] = value;
    }
    if (key === 'view') {
      this.tensorView.hidden = value !== 'tensor';
      this.overviewView.hidden = value !== 'overview';
    }
    if (key === 'mode' && value === 'diff' && this.selected.length >= 2) {
      // Entering A − B: compare the first two runs picked.
      [this.settings.runA, this.settings.runB] = this.selected;
    }
    if (key === 'mode' || key === 'runA' || key === 'runB') {
      this.referenceBounds.clear();
      await this.ensureLoaded();
      this.afterDataChange();
      return;
    }
    this.toolbar.update(this.settings, this.runs.map((r) => r.run));
    if (key === 'view') this.afterDataChange();
    else this.draw();
  }

  selectTag(tag) {
    if (tag === this.tag) return;
    const step = this.step;
    this.tag = tag;
    this.viewport.hover = null;
    this.viewport.reset();
    this.afterDataChange(step);
  }

  /** After runs, data, tag or mode changed: recompute steps and redraw all. */
  afterDataChange(keepStep = this.step) {
    this.fixDiffRuns();
    this.toolbar.update(this.settings, this.runs.map((r) => r.run));
    this.runsKey = JSON.stringify([this.runs, this.selected]);
    this.runPicker.render(this.runs, this.selected, this.colors);
    const primary = this.runData.get(this.selected[0]);
    if (!primary) {
      this.layerList.showError(this.selected.length ? 'loading…' : 'Select a run.');
    } else if (primary.errors.tags) {
      this.layerList.showError(primary.errors.tags);
    } else {
      if (!this.tag || !this.anyRunHas(this.tag)) this.tag = defaultTag(primary);
      this.layerList.render(primary.rows, this.tagOf(this.selected[0]), primary.structure?.model?.name, primary.errors.structure);
    }
    const wasAtEnd = this.steps.length === 0 || this.stepIndex === this.steps.length - 1;
    this.steps = unionSteps(this.displayRuns().map((r) => this.runData.get(r)?.tensors.get(this.tagOf(r))?.steps));
    if (this.steps.length) {
      const i = keepStep === null || wasAtEnd ? this.steps.length - 1 : indexAtOrBefore(this.steps, keepStep);
      this.stepIndex = Math.max(0, i);
    } else {
      this.stepIndex = 0;
    }
    this.rebuildPanels();
    this.updateCharts();
    this.onStepChanged();
  }

  fixDiffRuns() {
    const names = this.runs.map((r) => r.run);
    const s = this.settings;
    if (!names.includes(s.runA)) s.runA = this.selected[0] ?? names[0] ?? null;
    if (!names.includes(s.runB) || s.runB === s.runA) {
      s.runB = this.selected.find((r) => r !== s.runA) ?? names.find((r) => r !== s.runA) ?? null;
    }
  }

  anyRunHas(tag) {
    return this.displayRuns().some((r) => {
      const tensors = this.runData.get(r)?.tensors;
      return tensors && tagInRun(tag, tensors) !== null;
    });
  }

  /** The selected tensor's tag in `run` (a torch run names a Keras `kernel` `weight`). */
  tagOf(run) {
    const tensors = this.runData.get(run)?.tensors;
    return (tensors && tagInRun(this.tag, tensors)) ?? this.tag;
  }

  /** Runs whose frames are on screen. */
  displayRuns() {
    if (this.settings.mode === 'diff') return [this.settings.runA, this.settings.runB].filter((r) => r);
    return this.selected;
  }

  setStepIndex(i) {
    if (!this.steps.length) return Promise.resolve();
    const clamped = Math.max(0, Math.min(this.steps.length - 1, i));
    if (clamped === this.stepIndex && this.lastDrawnIndex === clamped) return Promise.resolve();
    this.stepIndex = clamped;
    return this.onStepChanged();
  }

  setStep(step) {
    this.pause();
    return this.setStepIndex(Math.max(0, indexAtOrBefore(this.steps, step)));
  }

  onStepChanged() {
    this.stepBar.update(this.steps, this.stepIndex, this.playing);
    this.charts.setStep(this.step ?? 0);
    this.colourLayers();
    if (this.settings.view === 'overview') this.renderOverview();
    return this.draw();
  }

  colourLayers() {
    const primary = this.runData.get(this.selected[0]);
    if (primary) this.layerList.colour(primary.stats, this.step ?? 0);
  }

  // --- playback --------------------------------------------------------------

  play() {
    if (this.playing || this.steps.length < 2) return;
    if (this.stepIndex >= this.steps.length - 1) this.stepIndex = 0;
    this.playing = true;
    this.stepBar.update(this.steps, this.stepIndex, true);
    this.loop();
  }

  pause() {
    if (!this.playing) return;
    this.playing = false;
    this.stepBar.update(this.steps, this.stepIndex, false);
  }

  async loop() {
    // Steps are due at fixed times (start + k · interval), so the time a
    // frame takes to draw does not add up into a slower playback.
    let due = performance.now();
    while (this.playing) {
      this.prefetch();
      await this.onStepChanged();
      if (!this.playing) break;
      if (this.stepIndex >= this.steps.length - 1) {
        this.pause();
        break;
      }
      const interval = this.settings.speed === 'max' ? 0 : 1000 / Number(this.settings.speed);
      due += interval;
      const now = performance.now();
      if (due < now - interval) due = now; // fell behind: do not rush to catch up
      const wait = due - now;
      // Let the browser paint; wait out the rest of the frame interval.
      await new Promise((resolve) => (wait > 12 ? setTimeout(resolve, wait - 4) : requestAnimationFrame(resolve)));
      if (this.playing) this.stepIndex += 1;
    }
  }

  /** Requests the next frames of what is on screen before they are needed. */
  prefetch() {
    const upcoming = this.steps.slice(this.stepIndex + 1, this.stepIndex + 1 + this.prefetchAhead);
    for (const run of this.displayRuns()) {
      const tensor = this.runData.get(run)?.tensors.get(this.tagOf(run));
      if (!tensor) continue;
      const steps = new Set();
      for (const s of upcoming) {
        const i = indexAtOrBefore(tensor.steps, s);
        if (i >= 0) steps.add(tensor.steps[i]);
        if (i > 0 && this.settings.mode === 'delta_prev') steps.add(tensor.steps[i - 1]);
      }
      this.cache.prefetch(run, this.tagOf(run), steps);
    }
  }

  // --- heatmaps --------------------------------------------------------------

  rebuildPanels() {
    for (const p of this.panels) p.panel.dispose();
    this.panels = [];
    clear(this.panelArea);
    this.tensorTitle.textContent = this.tag || '';
    if (!this.tag) {
      this.panelArea.appendChild(el('div', {class: 'note', text: this.selected.length ? 'No tensors in the selected runs.' : 'Select a run.'}));
      return;
    }
    const s = this.settings;
    if (s.mode === 'diff') {
      if (!s.runA || !s.runB || s.runA === s.runB) {
        this.panelArea.appendChild(el('div', {class: 'note', text: 'A − B needs two runs: pick run A and run B.'}));
        return;
      }
      this.addPanel({runs: [s.runA, s.runB], title: `${s.runA} − ${s.runB}`, color: null});
    } else {
      for (const run of this.selected) this.addPanel({runs: [run], title: run, color: this.colors.get(run)});
    }
    this.panelArea.classList.toggle('compare', this.panels.length > 1);
  }

  addPanel(spec) {
    const panel = new HeatmapPanel({title: spec.title, color: spec.color, viewport: this.viewport});
    this.panelArea.appendChild(panel.root);
    this.panels.push({...spec, panel});
  }

  tensorOf(run) {
    const data = this.runData.get(run);
    if (!data) throw new Note(`run ${run} is loading`);
    if (data.errors.tags) throw new Error(data.errors.tags);
    const tensor = data.tensors.get(this.tagOf(run));
    if (!tensor) throw new Note(`run ${run} has no tensor ${this.tag}`);
    return tensor;
  }

  /** The snapshot of `tensor` at or before `step`: [index, step]. */
  snapshot(run, tensor, step) {
    const i = indexAtOrBefore(tensor.steps, step);
    if (i < 0) throw new Note(`run ${run} has no snapshot of ${this.tag} at or before step ${step}`);
    return [i, tensor.steps[i]];
  }

  /** What one panel shows at `step`: {frame, tensor, parts, stepText}. */
  async panelFrame(spec, step) {
    const mode = this.settings.mode;
    if (mode === 'diff') {
      const [a, b] = spec.runs;
      const ta = this.tensorOf(a);
      const tb = this.tensorOf(b);
      if (String(ta.shape) !== String(tb.shape)) {
        throw new Note(`${this.tag} has shape [${ta.shape}] in ${a} but [${tb.shape}] in ${b}`);
      }
      const [, sa] = this.snapshot(a, ta, step);
      const [, sb] = this.snapshot(b, tb, step);
      const [fa, fb] = await Promise.all([this.cache.get(a, this.tagOf(a), sa), this.cache.get(b, this.tagOf(b), sb)]);
      return {frame: subtractFrames(fa, fb), tensor: ta, valueLabel: 'A − B =',
        parts: [{label: `A (step ${sa})`, frame: fa}, {label: `B (step ${sb})`, frame: fb}],
        stepText: sa === sb ? `step ${sa}` : `A step ${sa}, B step ${sb}`};
    }
    const run = spec.runs[0];
    const tensor = this.tensorOf(run);
    const [i, s] = this.snapshot(run, tensor, step);
    if (mode === 'values') {
      return {frame: await this.cache.get(run, this.tagOf(run), s), tensor, parts: [], stepText: `step ${s}`};
    }
    const j = mode === 'delta_first' ? 0 : i - 1;
    if (j < 0) throw new Note(`step ${s} is the first snapshot: there is no previous one to compare with`);
    const base = tensor.steps[j];
    const tag = this.tagOf(run);
    const [f, f0] = await Promise.all([this.cache.get(run, tag, s), this.cache.get(run, tag, base)]);
    return {frame: subtractFrames(f, f0), tensor, valueLabel: 'Δ =',
      parts: [{label: `step ${s}`, frame: f}, {label: `step ${base}`, frame: f0}],
      stepText: `step ${s} − step ${base}`};
  }

  /** The shared colour scale of the panels and the legend's note. */
  async scaleFor(results) {
    const s = this.settings;
    const magnitude = s.colorKind === 'magnitude';
    const frames = results.filter((r) => r.ok).map((r) => r.frame);
    const perFrame = () => Math.max(0, ...frames.map((f) => frameBound(f.data, {clip: s.clip, magnitude})));
    const clipNote = s.clip ? ', clipped to 1–99%' : '';
    if (s.scaleMode === 'frame') return {bound: perFrame(), note: `per frame${clipNote}`};
    let bound = 0;
    let note;
    const fromStats = (s.mode === 'values' && !(s.clip && magnitude)) ||
        ((s.mode === 'delta_first' || s.mode === 'delta_prev') && !s.clip);
    if (fromStats) {
      // One pool of per-step bounds over every run shown: one shared scale,
      // that an exploding run does not wash out (see scale.robustBound).
      const fields = boundFields(s.mode, s.clip);
      const pool = [];
      for (const run of this.displayRuns()) {
        const series = this.runData.get(run)?.stats?.[this.tagOf(run)];
        if (series) pool.push(...stepBounds(series, fields));
      }
      const robust = robustBound(pool);
      bound = robust.bound;
      note = s.mode === 'values' ?
        (s.clip ? 'fixed over all steps (1st/99th percentiles)' : 'fixed over all steps (min/max)') :
        `fixed over all steps (max ${s.mode === 'delta_first' ? 'init' : 'update'} |Δ|)`;
      if (robust.saturated) {
        note += `; ${robust.saturated} exploded step${robust.saturated > 1 ? 's' : ''} ` +
            `(|x| up to ${formatValue(robust.peak)}) left out: ${robust.saturated > 1 ? 'they saturate' : 'it saturates'}`;
      }
    } else {
      bound = await this.referenceBound();
      note = `fixed: from the last step's frame${clipNote}`;
    }
    if (!(bound > 0)) return {bound: perFrame(), note: `per frame (no fixed range yet)${clipNote}`};
    return {bound, note};
  }

  /** The bound of what the panels show at the last step (for scales the stats do not carry). */
  async referenceBound() {
    const s = this.settings;
    const key = JSON.stringify([this.tag, s.mode, s.clip, s.colorKind, this.displayRuns(), this.steps.length]);
    if (!this.referenceBounds.has(key)) {
      const last = this.steps[this.steps.length - 1];
      const bounds = await Promise.all(this.panels.map((p) => this.panelFrame(p, last).then(
          (r) => frameBound(r.frame.data, {clip: s.clip, magnitude: s.colorKind === 'magnitude'}), () => 0)));
      this.referenceBounds.set(key, Math.max(0, ...bounds));
    }
    return this.referenceBounds.get(key);
  }

  /** Fetches, decodes and draws the current step in every panel. */
  async draw() {
    if (this.settings.view !== 'tensor' || !this.panels.length || this.step === null) {
      if (this.step === null) for (const p of this.panels) p.panel.setMessage('No snapshots yet.', false);
      return;
    }
    const seq = ++this.drawSeq;
    const started = performance.now();
    const step = this.step;
    const index = this.stepIndex;
    const results = await Promise.all(this.panels.map((p) => this.panelFrame(p, step).then(
        (r) => ({ok: true, ...r}), (error) => ({ok: false, error}))));
    if (seq !== this.drawSeq) return;
    const {bound, note} = await this.scaleFor(results);
    if (seq !== this.drawSeq) return;
    const scale = makeScale(bound, this.settings.colorKind === 'magnitude');
    const counts = {nan: 0, posinf: 0, neginf: 0};
    this.panels.forEach((p, k) => {
      const r = results[k];
      if (!r.ok) {
        p.panel.setMessage(r.error.message, !(r.error instanceof Note));
        if (r.error instanceof Note) p.panel.canvas.hidden = true;
        return;
      }
      p.panel.setMessage('');
      const tag = this.tagOf(p.runs[0]);
      const c = p.panel.setFrame({
        frame: r.frame, scale, cmap: this.cmap, shape: r.tensor.shape, layout: r.tensor.layout,
        name: tag.slice(tag.lastIndexOf('/') + 1), parts: r.parts, stepText: r.stepText, valueLabel: r.valueLabel,
      });
      for (const key of Object.keys(counts)) counts[key] += c[key];
    });
    const what = this.settings.colorKind === 'magnitude' ? '|x|' : 'signed, centred on 0';
    this.legend.hidden = !results.some((r) => r.ok);
    renderLegend(this.legend, {scale, cmap: this.cmap, note: `Colour scale (${what}): ${note}.`, counts});
    this.lastDrawnIndex = index;
    const ended = performance.now();
    // The timeline keeps every entry: bound it for a tab left playing for hours.
    if (this.perf.framesDrawn % 5000 === 4999) performance.clearMeasures('nnviz-frame');
    performance.measure('nnviz-frame', {start: started, end: ended});
    this.perf.framesDrawn += 1;
    if (this.perf.firstPaint === null && results.some((r) => r.ok)) {
      this.perf.firstPaint = ended;
      performance.mark('nnviz-first-paint');
    }
    this.root.dataset.drawnStep = step;
    this.root.dataset.drawnMode = this.settings.mode;
    this.root.dataset.framesDrawn = this.perf.framesDrawn;
  }

  // --- charts and overview ---------------------------------------------------

  updateCharts() {
    const lines = [];
    for (const run of this.displayRuns()) {
      const data = this.runData.get(run);
      const series = data?.stats?.[this.tagOf(run)];
      if (series) lines.push({run, color: this.colors.get(run), series});
    }
    this.charts.update(lines, this.step ?? 0);
    const errors = this.displayRuns().map((r) => this.runData.get(r)?.errors.stats).filter((e) => e);
    if (errors.length) this.charts.root.prepend(errorBox(`stats unavailable: ${errors[0]}`));
  }

  renderOverview() {
    const run = this.selected[0];
    const data = this.runData.get(run);
    if (!data) return;
    this.overview.render({
      run, rows: data.rows, tensors: data.tensors, stats: data.stats, step: this.step ?? 0, cache: this.cache,
      cmap: this.cmap, magnitude: this.settings.colorKind === 'magnitude',
    });
  }
}

function stepsKey(info) {
  return `${info.tags}:${info.steps.length}:${info.steps[info.steps.length - 1]}`;
}

/** The tensor shown first: the first recorded kernel in model order, else the first tensor. */
function defaultTag(data) {
  const recorded = [];
  for (const row of data.rows) for (const w of row.weights) if (data.tensors.has(w.tag)) recorded.push(w.tag);
  return recorded.find((t) => /kernel$/.test(t)) ?? recorded[0] ?? null;
}
