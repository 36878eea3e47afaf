// Rules the panel shares with the Python exports, checked against one
// fixture of cases that tests/test_shared_rules.py reads too.
import test from 'node:test';
import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import {groupSpans, separators} from '../../frontend/model/layout.js';
import {robustBound} from '../../frontend/model/scale.js';
import {SPECIAL_COLORS} from '../../frontend/model/colors.js';
import {adamEpsilon} from '../../frontend/model/quantities.js';

const RULES = JSON.parse(readFileSync(new URL('../fixtures/shared_rules.json', import.meta.url)));

test('tile separators and group lines', () => {
  for (const c of RULES.tiles.cases) {
    assert.deepEqual(separators(c.shape, c.layout), c.separators, c.name);
    const lines = {rows: [], cols: []};
    for (const g of groupSpans(c.shape, c.layout)) if (g.start > 0) lines[g.axis].push(g.start);
    assert.deepEqual(lines, c.group_lines, c.name);
  }
});

test('exploded steps saturate', () => {
  for (const c of RULES.exploded_steps.cases) {
    assert.deepEqual(robustBound(c.bounds), {bound: c.bound, saturated: c.saturated, peak: c.peak},
        JSON.stringify(c.bounds));
  }
});

test('non-finite colours', () => {
  const colors = {};
  for (const [k, v] of Object.entries(SPECIAL_COLORS)) {
    colors[k] = {css: v.css, label: v.label};
    assert.equal(v.css, '#' + v.rgb.map((x) => x.toString(16).padStart(2, '0')).join(''), k);
  }
  assert.deepEqual(colors, RULES.special_colors.colors);
});

test("the floor a recorded optimizer's eps sets", () => {
  for (const c of RULES.epsilon_floor.cases) {
    const got = adamEpsilon({model: c.model});
    assert.ok(got.recorded, JSON.stringify(c.model));
    if (c.floor === null) assert.equal(got.value, null, JSON.stringify(c.model));
    else assert.ok(Math.abs(got.value - c.floor) <= 1e-12 * c.floor, JSON.stringify(c.model));
  }
});
