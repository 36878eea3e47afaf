// The panel's controller: the state (runs selected, tensor, step, settings)
// and what follows when it changes. The work is done by one module per
// concern: page.js (the page and its keys), loading.js, playback.js,
// modes.js (mode arithmetic), scale_policy.js and drawing.js.

import {FrameCache} from './data/api.js';
import {RunColors} from './model/colors.js';
import {usesSequential} from './view/controls.js';
import {errorBox} from './view/dom.js';
import {aboutGradient, findingUnits, kindName} from './model/findings.js';
import {TensorDrawing} from './view/drawing.js';
import {Viewport} from './model/viewport.js';
import {mapFields, mapStat, withNonfinite} from './model/map_model.js';
import {layerStatFields} from './view/sidebar.js';
import {boundFields} from './model/scale.js';
import {RunLoader, startPolling} from './data/loading.js';
import {Page} from './view/page.js';
import {Playback} from './data/playback.js';
import {indexAtOrBefore, keptFramesNote, unionSteps} from './model/steps.js';
import {tagInRun} from './model/structure.js';
import {adamEpsilon, gradientQuantity, logApplies, offeredQuantities, RMS_FIELDS, shownQuantity} from './model/quantities.js';

export class App {
  constructor(root) {
    this.root = root;
    this.selected = [];
    this.loader = new RunLoader((what) => this.onArrive(what));
    this.waiting = new Set(); // views drawn without stats still on their way
    this.colors = new RunColors();
    this.cache = new FrameCache();
    this.viewport = new Viewport();
    this.settings = {
      view: 'tensor', mode: 'values', colorKind: 'diverging', cmapDiverging: 'RdBu_r', cmapSequential: 'viridis',
      scaleMode: 'fixed', clip: false, layerStat: 'update_ratio', mapStat: 'update_ratio', unitsStat: 'update', speed: '10', runA: null,
      runB: null,
      // The quantity asked for (weights, grad, m_hat, v_rms, momentum); a
      // tensor without it shows its weights (see `quantity`), and the choice
      // holds for the next tensor that has it. Log scale: grad and v_rms.
      quantity: 'weights', logScale: true,
    };
    // Until the user picks a layer colour, a run with gradients is coloured by their RMS.
    this.layerStatChosen = false;
    this.tag = null;
    this.highlight = null; // units a finding names: {run, tag, units, label}
    this.steps = [];
    this.stepIndex = 0;
    this.playback = new Playback(this);
    this.page = new Page(root, this);
    this.drawing = new TensorDrawing(this, {
      panelArea: this.page.panelArea, legend: this.page.legend, title: this.page.tensorTitle, root,
    });
  }

  // --- state the tests, benchmarks and tools read ------------------------------

  get step() {
    return this.steps.length ? this.steps[this.stepIndex] : null;
  }

  get runs() {
    return this.loader.runs;
  }

  get runData() {
    return this.loader.runData;
  }

  get panels() {
    return this.drawing.panels;
  }

  get playing() {
    return this.playback.playing;
  }

  get stepBar() {
    return this.page.stepBar;
  }

  get cmap() {
    return usesSequential(this.settings, this.quantity) ? this.settings.cmapSequential : this.settings.cmapDiverging;
  }

  /** The quantities the current view can show: of the selected tensor in the runs shown, or (map) of every tensor. */
  offeredQuantities() {
    const tensors = [];
    const runs = this.settings.view === 'map' ? this.selected : this.displayRuns();
    for (const run of runs) {
      const data = this.runData.get(run);
      if (!data) continue;
      if (this.settings.view === 'map') tensors.push(...data.tensors.values());
      else if (data.tensors.has(this.tagOf(run))) tensors.push(data.tensors.get(this.tagOf(run)));
    }
    return offeredQuantities(tensors);
  }

  /** The quantity on screen: the one asked for where recorded, else the weights. */
  get quantity() {
    return shownQuantity(this.settings.quantity, this.offeredQuantities());
  }

  /**
   * How the quantity shown is drawn: {quantity, log, epsilon}. grad and
   * v_rms on a log scale (unless turned off) with Adam's ε marked
   * (quantities.adamEpsilon: the first run shown's, or the framework default).
   */
  quantityScale() {
    const quantity = this.quantity;
    const log = logApplies(quantity) && this.settings.logScale;
    const run = this.displayRuns()[0];
    return {quantity, log, epsilon: log ? adamEpsilon(this.runData.get(run)?.structure) : null};
  }

  /** The quantity the layer list's gradient RMS is read from in `run` (null: none recorded). */
  gradientQuantity(run) {
    const data = this.runData.get(run);
    return data ? gradientQuantity([...data.tensors.values()]) : null;
  }

  // --- loading -----------------------------------------------------------------

  async start() {
    await this.refreshRuns();
    startPolling(() => this.refreshRuns());
  }

  /** Fetches /runs; loads new selected runs and runs with new steps. */
  async refreshRuns() {
    let runs;
    try {
      runs = await this.loader.refresh();
    } catch (e) {
      this.page.showStatus(`Cannot list runs: ${e.message}`, true);
      return;
    }
    this.colors.assign(runs.map((r) => r.run));
    const names = new Set(runs.map((r) => r.run));
    this.selected = this.selected.filter((r) => names.has(r));
    if (!this.autoSelected && runs.length) {
      // The first run is picked once; after that the choice is the user's.
      this.autoSelected = true;
      if (this.selected.length === 0) this.selected = [runs[0].run];
    }
    this.showRunsNote();
    // Re-rendered only when something changed: a poll must not take the
    // keyboard focus away from a checkbox.
    const runsKey = JSON.stringify([runs, this.selected]);
    if (runsKey !== this.runsKey) {
      this.runsKey = runsKey;
      this.page.runPicker.render(runs, this.selected, this.colors);
    }
    if (await this.ensureLoaded()) this.afterDataChange();
  }

  /** The note above the views: how to get data, or which runs show only some frames. */
  showRunsNote() {
    this.page.showStatus(this.runs.length ? keptFramesNote(this.runs, this.selected) :
        'No nnviz data yet. Train with NNVizCallback(log_dir) in model.fit(callbacks=[...]) and point TensorBoard at ' +
        'that directory; this page picks up new runs by itself.');
  }

  /** The runs whose data is needed: the selected ones and runs A and B. */
  wantedRuns() {
    const runs = new Set(this.selected);
    if (this.settings.mode === 'diff') {
      if (this.settings.runA) runs.add(this.settings.runA);
      if (this.settings.runB) runs.add(this.settings.runB);
    }
    return runs;
  }

  async ensureLoaded() {
    const loaded = await this.loader.ensureLoaded(this.wantedRuns(), (run) => this.firstStats(run));
    if (loaded) this.drawing.forgetReferences();
    return loaded;
  }

  // --- stats, asked for by what each view shows -----------------------------------

  /**
   * The /stats queries of `run` the view on screen asks for that are known
   * before its tags come, asked beside them: the map's, of the weights
   * (another quantity is shown only if the tags offer it).
   */
  firstStats(run) {
    const s = this.settings;
    if (s.view !== 'map' || s.quantity !== 'weights' || !this.selected.includes(run)) return [];
    return [{fields: mapFields(mapStat(s.mapStat)), quantity: 'weights'}];
  }

  /**
   * The /stats answer `view` needs (`query`: {tag} or {fields}), as an entry
   * ({done, value, error}); when not done yet, `view` is drawn again when it comes.
   */
  statsFor(view, run, query) {
    const entry = this.loader.stats(run, query);
    if (!entry.done) this.waiting.add(view);
    return entry;
  }

  /** The selected tensor's stats series in `run`, or null (none, or not here yet). */
  tagSeries(view, run) {
    const tag = this.tagOf(run);
    if (!tag || !this.runData.get(run)?.tensors.has(tag)) return null;
    const entry = this.statsFor(view, run, {tag, quantity: this.quantity});
    return entry.done && entry.value ? entry.value : null;
  }

  /** The selected tensor's stats series in `run` once its request settled (null: none). */
  async tagSeriesSettled(run) {
    const tag = this.tagOf(run);
    if (!tag || !this.runData.get(run)?.tensors.has(tag)) return null;
    const entry = this.loader.stats(run, {tag, quantity: this.quantity});
    await entry.promise;
    return entry.value;
  }

  /** Findings or stats came: the views that waited for them are drawn again. */
  onArrive(what) {
    if (what === 'findings') {
      this.renderFindings();
      return;
    }
    const waiting = this.waiting;
    this.waiting = new Set();
    if (waiting.has('charts')) this.updateCharts();
    if (waiting.has('layers')) this.colourLayers();
    if (waiting.has('units') && this.settings.view === 'tensor') this.updateUnits();
    if (waiting.has('map') && this.settings.view === 'map') this.renderMap();
    if (waiting.has('overview') && this.settings.view === 'overview') this.renderOverview();
  }

  // --- state changes -------------------------------------------------------------

  async toggleRun(run, on) {
    if (on && !this.selected.includes(run)) this.selected.push(run);
    if (!on) this.selected = this.selected.filter((r) => r !== run);
    const order = this.runs.map((r) => r.run);
    this.selected.sort((a, b) => order.indexOf(a) - order.indexOf(b));
    this.showRunsNote();
    await this.ensureLoaded();
    this.afterDataChange();
  }

  async changeSetting(key, value) {
    const s = this.settings;
    if (key === 'cmap') {
      s[usesSequential(s, this.quantity) ? 'cmapSequential' : 'cmapDiverging'] = value;
    } else {
      s[key] = value;
    }
    if (key === 'view') this.page.showView(value);
    if (key === 'mode' && value === 'diff' && this.selected.length >= 2) {
      // Entering A − B: compare the first two runs picked.
      [s.runA, s.runB] = this.selected;
    }
    if (key === 'layerStat') {
      this.layerStatChosen = true;
      this.colourLayers();
      return;
    }
    if (key === 'mode' || key === 'runA' || key === 'runB' || key === 'quantity' || key === 'logScale') {
      this.drawing.forgetReferences();
      await this.ensureLoaded();
      this.afterDataChange();
      return;
    }
    this.page.toolbar.update(s, this.runs.map((r) => r.run), this.offeredQuantities(), this.quantity);
    if (key === 'view') this.afterDataChange();
    else if (s.view === 'map') this.renderMap();
    else this.drawing.draw();
  }

  selectTag(tag) {
    if (tag === this.tag) return;
    const step = this.step;
    this.tag = tag;
    if (this.highlight && this.highlight.tag !== tag) this.highlight = null;
    this.viewport.hover = null;
    this.viewport.reset();
    this.afterDataChange(step);
  }

  /** Opens a tensor in the tensor view, at `step` when given. */
  async openTensor(tag, step = null) {
    if (this.settings.view !== 'tensor') await this.changeSetting('view', 'tensor');
    this.selectTag(tag);
    if (step !== null) await this.setStep(step);
  }

  /** Opens the tensor of a finding at its first step, with the units it names marked. */
  async openFinding(run, finding) {
    this.highlight = {run, tag: finding.tag, units: findingUnits(finding), label: kindName(finding.kind)};
    // A gradient finding is read off the gradient (grad, else v_rms): show that.
    const gradient = aboutGradient(finding) ? this.gradientQuantity(run) : null;
    if (gradient && gradient !== this.settings.quantity) {
      this.settings.quantity = gradient;
      this.drawing.forgetReferences();
      if (this.tag === finding.tag) this.afterDataChange();
    }
    if (this.tag === finding.tag) this.updateUnits();
    await this.openTensor(finding.tag, Number.isFinite(finding.first_step) ? finding.first_step : null);
  }

  /** After runs, data, tag or mode changed: recompute steps and redraw all. */
  afterDataChange(keepStep = this.step) {
    const page = this.page;
    this.fixDiffRuns();
    this.pickLayerStat();
    this.runsKey = JSON.stringify([this.runs, this.selected]);
    page.runPicker.render(this.runs, this.selected, this.colors);
    const primary = this.runData.get(this.selected[0]);
    if (!primary) {
      page.layerList.showError(this.selected.length ? 'loading…' : 'Select a run.');
    } else if (primary.errors.tags) {
      page.layerList.showError(primary.errors.tags);
    } else {
      if (!this.tag || !this.anyRunHas(this.tag)) this.tag = defaultTag(primary);
      page.layerList.render(primary.rows, this.tagOf(this.selected[0]), primary.structure?.model?.name, primary.errors.structure);
    }
    // After the tag is known: the quantities offered are the selected tensor's.
    page.toolbar.update(this.settings, this.runs.map((r) => r.run), this.offeredQuantities(), this.quantity);
    const wasAtEnd = this.steps.length === 0 || this.stepIndex === this.steps.length - 1;
    this.steps = unionSteps(this.displayRuns().map((r) => this.runData.get(r)?.tensors.get(this.tagOf(r))?.steps));
    if (this.steps.length) {
      const i = keepStep === null || wasAtEnd ? this.steps.length - 1 : indexAtOrBefore(this.steps, keepStep);
      this.stepIndex = Math.max(0, i);
    } else {
      this.stepIndex = 0;
    }
    this.drawing.rebuild();
    this.updateCharts();
    this.renderFindings();
    if (this.settings.view === 'tensor') this.updateUnits();
    if (this.settings.view === 'map') this.renderMap();
    this.onStepChanged();
  }

  /** The layer list's colour: gradient RMS for a run that has it, until the user picks another. */
  pickLayerStat() {
    const gradient = this.gradientQuantity(this.selected[0]) !== null;
    const s = this.settings;
    if (!this.layerStatChosen) s.layerStat = gradient ? 'grad_rms' : 'update_ratio';
    else if (s.layerStat === 'grad_rms' && !gradient) s.layerStat = 'update_ratio';
    this.page.layerList.offerGradient(gradient, s.layerStat);
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
    this.playback.pause();
    return this.setStepIndex(Math.max(0, indexAtOrBefore(this.steps, step)));
  }

  onStepChanged() {
    this.page.stepBar.update(this.steps, this.stepIndex, this.playing);
    this.page.charts.setStep(this.step ?? 0);
    this.colourLayers();
    if (this.settings.view === 'overview') this.renderOverview();
    if (this.settings.view === 'map') this.page.dynamicsMap.setStep(this.step);
    this.page.unitsView.setStep(this.step);
    return this.drawing.draw();
  }

  colourLayers() {
    const run = this.selected[0];
    if (!this.runData.get(run)) return;
    // The same request as the map's for that stat (nan, inf too): opening
    // the map after the panel is up then reads what the layer list has.
    const stat = this.settings.layerStat;
    const query = stat === 'grad_rms' ?
      {fields: withNonfinite(RMS_FIELDS), quantity: this.gradientQuantity(run) ?? 'weights'} :
      {fields: withNonfinite(layerStatFields(stat))};
    const entry = this.statsFor('layers', run, query);
    this.page.layerList.colour(entry.done ? entry.value : null, this.step ?? 0);
    // For the tests: whose stats the colours are (none while they load).
    this.page.layerList.body.dataset.colouredRun = entry.done ? run : '';
  }

  // --- charts and overview -------------------------------------------------------

  updateCharts() {
    const lines = [];
    const errors = [];
    let loading = false;
    for (const run of this.displayRuns()) {
      const tag = this.tagOf(run);
      if (!tag || !this.runData.get(run)?.tensors.has(tag)) continue;
      const entry = this.statsFor('charts', run, {tag, quantity: this.quantity});
      if (!entry.done) loading = true;
      else if (entry.value) lines.push({run, color: this.colors.get(run), series: entry.value});
      else if (entry.error.status !== 404) errors.push(entry.error.message); // 404: no stats for it
    }
    const charts = this.page.charts;
    charts.update(lines, this.step ?? 0, loading, this.quantityScale());
    if (errors.length) charts.root.prepend(errorBox(`stats unavailable: ${errors[0]}`));
  }

  /** The selected tensor's units map, per run shown. */
  updateUnits() {
    const runs = [];
    for (const run of this.displayRuns()) {
      const tensor = this.runData.get(run)?.tensors.get(this.tagOf(run));
      const series = this.tagSeries('units', run);
      if (tensor && series && Array.isArray(series.steps)) {
        runs.push({run, color: this.colors.get(run), tensor, steps: series.steps, tag: this.tagOf(run)});
      }
    }
    this.page.unitsView.show({runs, tag: this.tag, step: this.step, cmap: this.settings.cmapSequential,
      highlight: this.highlight, quantity: this.quantity});
  }

  /** The findings of the selected runs in the sidebar. */
  renderFindings() {
    this.page.findings.render(this.selected.map((run) => {
      const data = this.runData.get(run);
      return {run, color: this.colors.get(run), findings: data?.findings ?? null, error: data?.errors.findings ?? null};
    }));
  }

  /** The dynamics map of the selected runs, from the stats of the one stat it shows. */
  renderMap() {
    const stat = mapStat(this.settings.mapStat);
    const runs = [];
    let loading = false;
    for (const run of this.selected) {
      const data = this.runData.get(run);
      if (!data) continue;
      const entry = this.statsFor('map', run, {fields: mapFields(stat), quantity: this.quantity});
      loading = loading || !entry.done;
      runs.push({run, color: this.colors.get(run), rows: data.rows, stats: entry.value, stepsKey: data.stepsKey,
        error: entry.error?.message});
    }
    this.page.dynamicsMap.render({runs, stat: stat.key, loading, cmap: this.settings.cmapSequential, step: this.step,
      quantity: this.quantity});
  }

  renderOverview() {
    const run = this.selected[0];
    const data = this.runData.get(run);
    if (!data) return;
    // Each tile's scale: its values' bound over every step (scale.valuesBound).
    const entry = this.statsFor('overview', run, {fields: boundFields('values')});
    if (!entry.done) return;
    this.page.overview.render({
      run, rows: data.rows, tensors: data.tensors, stats: entry.value, step: this.step ?? 0, cache: this.cache,
      cmap: this.cmap, magnitude: this.settings.colorKind === 'magnitude',
    });
  }
}

/** The tensor shown first: the first recorded kernel in model order, else the first tensor. */
function defaultTag(data) {
  const recorded = [];
  for (const row of data.rows) for (const w of row.weights) if (data.tensors.has(w.tag)) recorded.push(w.tag);
  return recorded.find((t) => /kernel$/.test(t)) ?? recorded[0] ?? null;
}
