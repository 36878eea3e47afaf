import test from 'node:test';
import assert from 'node:assert/strict';
import {aboutGradient, findingUnits, findingWhen, kindName, orderFindings, severityCounts, severityOf} from '../../frontend/model/findings.js';

const answer = {findings: [
  {kind: 'frozen', severity: 'warning', tag: 'b/kernel', first_step: 0, last_step: 90, message: 'never changed'},
  {kind: 'dead_units', severity: 'warning', tag: 'h/kernel', first_step: 40, last_step: 90, message: '16 of 64 units', units: [3, 9, 'x', -1]},
  {kind: 'sparkle', severity: 'notice', tag: 'c/bias', first_step: 5, last_step: 5, message: 'a kind this panel does not know'},
  {kind: 'nonfinite', severity: 'error', tag: 'conv3/kernel', first_step: 1230, last_step: 1500, message: 'NaN'},
  {kind: 'nonfinite', severity: 'error', tag: 'conv1/kernel', first_step: 1200, last_step: 1500, message: 'NaN'},
  {severity: 'error', message: 'malformed: no tag, no kind'},
]};

test('findings are ordered by severity, then first step; malformed ones dropped', () => {
  const ordered = orderFindings(answer);
  assert.deepEqual(ordered.map((f) => f.tag), ['conv1/kernel', 'conv3/kernel', 'b/kernel', 'h/kernel', 'c/bias']);
  assert.deepEqual(orderFindings(null), []);
  assert.deepEqual(orderFindings({findings: 'x'}), []);
});

test('counts per severity; unknown severities and kinds shown generically', () => {
  assert.deepEqual(severityCounts(orderFindings(answer)), {error: 2, warning: 2, info: 0, other: 1});
  assert.equal(severityOf({severity: 'notice'}), 'info');
  assert.equal(kindName('dead_units'), 'dead units');
  assert.equal(kindName('sparkle'), 'sparkle');
  assert.equal(kindName('vanishing_gradients'), 'vanishing gradients');
  // Gradient findings open the tensor showing its gradient.
  assert.equal(aboutGradient({kind: 'exploding_gradients'}), true);
  assert.equal(aboutGradient({kind: 'vanishing_gradients'}), true);
  assert.equal(aboutGradient({kind: 'exploding'}), false);
});

test('when: the first-NaN jump, a span, a step', () => {
  const [first] = orderFindings(answer);
  assert.equal(findingWhen(first), 'first at step 1200');
  assert.equal(findingWhen(answer.findings[1]), 'steps 40–90');
  assert.equal(findingWhen(answer.findings[2]), 'at step 5');
  assert.equal(findingWhen({kind: 'x'}), '');
  assert.deepEqual(findingUnits(answer.findings[1]), [3, 9]);
  assert.deepEqual(findingUnits(answer.findings[0]), []);
});
