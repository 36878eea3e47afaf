// Loading: the runs list (polled, so new runs and steps appear without a
// reload) and, per run, its tags, structure, stats and findings (one request
// each, again when the run gains steps). Requests go through api.js.

import {fetchFindings, fetchRuns, fetchStats, fetchStructure, fetchTags, fetchUnits} from './api.js';
import {layerRows} from '../model/structure.js';

export const POLL_MS = 5000;

/** Changes when a run gains tags or steps (its data is loaded again then). */
export function stepsKey(info) {
  return `${info.tags}:${info.steps.length}:${info.steps[info.steps.length - 1]}`;
}

export class RunLoader {
  constructor() {
    this.runs = []; // [{run, steps, tags}] from /runs, sorted by name
    // run → {tensors: Map, rows, structure, stats, findings, errors, stepsKey}
    this.runData = new Map();
    this.unitAnswers = new Map(); // [run, tag, stat, stepsKey] → promise of a /units answer
  }

  /**
   * A tag's /units answer (requested once per run state; a 404, which
   * stands for a run recorded before per-unit stats, is kept too).
   */
  units(run, tag, stat) {
    const key = JSON.stringify([run, tag, stat, this.runData.get(run)?.stepsKey]);
    if (!this.unitAnswers.has(key)) {
      const answer = fetchUnits(run, tag, stat);
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

  /** Loads one run; a failed request is kept as that part's error, the rest is used. */
  async loadRun(info) {
    const [tags, structure, stats, findings] = await Promise.allSettled([
      fetchTags(info.run), fetchStructure(info.run), fetchStats(info.run), fetchFindings(info.run)]);
    const data = {errors: {}, stepsKey: stepsKey(info), tensors: new Map(), structure: null, stats: null,
      findings: null, rows: []};
    if (tags.status === 'fulfilled') {
      for (const t of tags.value.tensors || []) data.tensors.set(t.tag, t);
    } else {
      data.errors.tags = tags.reason.message;
    }
    if (structure.status === 'fulfilled') data.structure = structure.value;
    else data.errors.structure = structure.reason.message;
    if (stats.status === 'fulfilled') data.stats = stats.value;
    else data.errors.stats = stats.reason.message;
    // Kept whole: a 404 (a run recorded before findings) reads differently from a failure.
    if (findings.status === 'fulfilled') data.findings = findings.value;
    else data.errors.findings = findings.reason;
    data.rows = layerRows(data.structure, [...data.tensors.values()]);
    this.runData.set(info.run, data);
  }

  /** Loads the wanted runs not loaded yet or with new steps; true if any was. */
  async ensureLoaded(wanted) {
    const stale = this.runs.filter((r) => this.needsLoad(r, wanted));
    if (stale.length) await Promise.all(stale.map((r) => this.loadRun(r)));
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
