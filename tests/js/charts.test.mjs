import test from 'node:test';
import assert from 'node:assert/strict';
import {ALPHA_MARKS, CHART_STATS, chartRange, chartStats, statValues} from '../../frontend/view/charts.js';

const stat = (key) => CHART_STATS.find((s) => s.key === key);
const line = (series) => ({run: 'r', color: '#000', series: {steps: [0, 10, 20], ...series}});

test('spectral charts appear only when some run has a value for that metric', () => {
  const bias = line({l2: [1, 1, 1], alpha: [null, null, null], sv_max: [null, null, null]});
  const keys = (lines) => chartStats(lines).map((s) => s.key);
  assert.deepEqual(keys([bias]), ['l2', 'std', 'update_ratio', 'init_l2', 'init_cos', 'nonfinite']);
  // A run recorded before spectral stats answers no columns at all.
  assert.deepEqual(keys([line({l2: [1, 1, 1]})]), keys([bias]));
  // A small matrix: sv_max and stable rank, but too few eigenvalues for alpha.
  const small = line({sv_max: [1, 2, null], stable_rank: [1.5, 1.4, null], alpha: [null, null, null]});
  assert.deepEqual(keys([bias, small]).slice(6), ['sv_max', 'stable_rank']);
  const big = line({sv_max: [1, 2, 3], stable_rank: [5, 4, 3], alpha: [9, null, 3], alpha_weighted: [0, null, 1.4]});
  assert.deepEqual(keys([big]).slice(6), ['sv_max', 'stable_rank', 'alpha', 'alpha_weighted']);
  assert.deepEqual(statValues(big.series, 'alpha'), [9, null, 3]);
});

test("alpha's chart keeps its 2 and 6 marks in view, with their reasons", () => {
  const alpha = stat('alpha');
  assert.deepEqual(alpha.marks.map((m) => [m.value, m.side]), [[2, 'below'], [6, 'above']]);
  assert.match(ALPHA_MARKS[0].title, /over-fitting/);
  assert.match(ALPHA_MARKS[1].title, /little structure/);
  assert.match(alpha.title, /2–6/);
  // Values inside [2, 6] only: the range still reaches both marks.
  const r = chartRange(alpha, [[3.1, 3.4, 3.2]], [0, 10, 20]);
  assert.ok(r.lo < 2 && r.hi > 6, JSON.stringify(r));
  // Far out (random init): the values decide, the marks are inside.
  const wide = chartRange(alpha, [[14, 9, 1.8]], [0, 10, 20]);
  assert.ok(wide.lo < 1.8 && wide.hi > 14 && wide.lo > 1, JSON.stringify(wide));
  // No value at all: no marks forced in.
  const none = chartRange(alpha, [[null, null, null]], [0, 10, 20]);
  assert.ok(none.empty);
  // Other charts are unaffected.
  const l2 = chartRange(stat('l2'), [[3.1, 3.4, 3.2]], [0, 10, 20]);
  assert.ok(l2.lo > 3 && l2.hi < 3.5);
});
