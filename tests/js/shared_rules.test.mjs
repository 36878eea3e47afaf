// Rules the panel shares with the Python exports, checked against one
// fixture of cases that tests/test_shared_rules.py reads too.
import test from 'node:test';
import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import {groupSpans, separators} from '../../frontend/model/layout.js';
import {robustBound} from '../../frontend/model/scale.js';
import {SPECIAL_COLORS} from '../../frontend/model/colors.js';

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
