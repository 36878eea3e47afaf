// Loading: the runs list (polled, so new runs and steps appear without a
// reload) and, per run, its tags and structure (before anything is drawn),
// its findings (drawn when they come) and its stats, asked for by what each
// view shows: one tag's stats, or a few stats of every tag (a whole run's
// table is large). Each again when the run gains steps. Requests go through
// api.js.

import {fetchFindings, fetchRuns, fetchStats, fetchStructure, fetchTags, fetchUnits} from './api.js';
import {layerRows} from '../model/structure.js';

export const POLL_MS = 5000;

/** Changes when a run gains tags or steps (its data is loaded again then). */
export function stepsKey(info) {
  return `${info.tags}:${info.steps.length}:${info.steps[info.steps.length - 1]}`;
}

// /stats answers kept (per run state): a few views' stats of every tag, and
// the tags looked at.
const STATS_KEPT = 48;

export class RunLoader {
  /** @param {function(string, string)} onArrive (what, run): findings or stats came for a run. */
  constructor(onArrive = () => {}) {
    this.onArrive = onArrive;
    this.runs = []; // [{run, steps, tags}] from /runs, sorted by name
    // run → {tensors: Map, rows, structure, findings, errors, stepsKey}
    this.runData = new Map();
    this.unitAnswers = new Map(); // [run, tag, stat, quantity, stepsKey] → promise of a /units answer
    this.statsAnswers = new Map(); // [run, stepsKey, tag, fields, quantity] → {promise, value, error, done}
  }

  /**
   * A /stats answer of `run` at its current state: `{tag}` for one tag's
   * series, `{fields}` for those stats of every tag; of the weights or of
   * `quantity`. Requested once; the entry settles to {done: true, value} or
   * {done: true, error}.
   */
  stats(run, {tag = null, fields = null, quantity = 'weights'} = {}, runState = this.runData.get(run)?.stepsKey) {
    const key = JSON.stringify([run, runState, tag, fields, quantity]);
    let entry = this.statsAnswers.get(key);
    if (!entry) {
      entry = {done: false, value: null, error: null};
      entry.promise = fetchStats(run, {tag, fields, quantity}).then(
          (value) => Object.assign(entry, {done: true, value}),
          (error) => Object.assign(entry, {done: true, error}));
      entry.promise.then(() => this.onArrive('stats', run));
      if (this.statsAnswers.size >= STATS_KEPT) this.statsAnswers.delete(this.statsAnswers.keys().next().value);
      this.statsAnswers.set(key, entry);
    }
    return entry;
  }

  /**
   * A tag's /units answer (requested once per run state; a 404, which
   * stands for a run recorded before per-unit stats, is kept too).
   */
  units(run, tag, stat, quantity = 'weights') {
    const key = JSON.stringify([run, tag, stat, quantity, this.runData.get(run)?.stepsKey]);
    if (!this.unitAnswers.has(key)) {
      const answer = fetchUnits(run, tag, stat, quantity);
      answer.catch((e) => {
        if (e.status !== 404 && this.unitAnswers.get(key) === answer) this.unitAnswers.delete(key);
      });
      if (this.unitAnswers.size > 64) this.unitAnswers.delete(this.unitAnswers.keys().next().value);
      this.unitAnswers.set(key, answer);
    }
    return this.unitAnswers.get(key);
  }

  /** Fetches /runs (throws an ApiError when it cannot). */
  async refresh() {
    const answer = await fetchRuns();
    this.runs = (answer.runs || []).slice().sort((a, b) => (a.run < b.run ? -1 : a.run > b.run ? 1 : 0));
    return this.runs;
  }

  needsLoad(info, wanted) {
    if (!wanted.has(info.run)) return false;
    const data = this.runData.get(info.run);
    return !data || data.stepsKey !== stepsKey(info);
  }

  /**
   * Loads one run's tags and structure, and asks for its findings (kept when
   * they come); a failed request is kept as that part's error, the rest is used.
   * `first`: /stats queries the view on screen will ask for, known before
   * the tags come (the map's): asked at once, beside the tags, and the
   * findings once they have come (the server reads the run's stats for
   * whichever comes first, and the view is what the user is waiting for).
   */
  async loadRun(info, first = []) {
    const asked = first.map((query) => this.stats(info.run, query, stepsKey(info)).promise);
    const findings = asked.length ? Promise.allSettled(asked).then(() => fetchFindings(info.run)) :
      fetchFindings(info.run);
    const [tags, structure] = await Promise.allSettled([fetchTags(info.run), fetchStructure(info.run)]);
    const data = {errors: {}, stepsKey: stepsKey(info), tensors: new Map(), structure: null,
      findings: null, rows: []};
    if (tags.status === 'fulfilled') {
      for (const t of tags.value.tensors || []) data.tensors.set(t.tag, t);
    } else {
      data.errors.tags = tags.reason.message;
    }
    if (structure.status === 'fulfilled') data.structure = structure.value;
    else data.errors.structure = structure.reason.message;
    data.rows = layerRows(data.structure, [...data.tensors.values()]);
    this.runData.set(info.run, data);
    findings.then((value) => (data.findings = value),
        // Kept whole: a 404 (a run recorded before findings) reads differently from a failure.
        (error) => (data.errors.findings = error))
        .then(() => {
          if (this.runData.get(info.run) === data) this.onArrive('findings', info.run);
        });
  }

  /**
   * Loads the wanted runs not loaded yet or with new steps; true if any was.
   * `first(run)`: the /stats queries to ask at once for `run` (loadRun).
   */
  async ensureLoaded(wanted, first = () => []) {
    const stale = this.runs.filter((r) => this.needsLoad(r, wanted));
    if (stale.length) await Promise.all(stale.map((r) => this.loadRun(r, first(r.run))));
    return stale.length > 0;
  }
}

/** Calls `refresh` every poll interval (`?nnviz_poll_ms=` overrides it) while the page is visible. */
export function startPolling(refresh) {
  const ms = Number(new URLSearchParams(location.search).get('nnviz_poll_ms')) || POLL_MS;
  const tick = async () => {
    if (!document.hidden) await refresh();
    setTimeout(tick, ms);
  };
  setTimeout(tick, ms);
}
