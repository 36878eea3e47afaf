// Findings (/findings): their order, counts per severity and the words of
// the sidebar's list. Kinds this panel does not know are shown by their
// message alone. Pure: tested by node --test.

export const SEVERITIES = ['error', 'warning', 'info'];

const KIND_NAMES = {
  nonfinite: 'NaN/Inf',
  exploding: 'exploding',
  frozen: 'frozen',
  dead_units: 'dead units',
  vanishing_gradients: 'vanishing gradients',
  exploding_gradients: 'exploding gradients',
};

// Findings read from the gradient's stats: opening one shows the gradient.
const GRADIENT_KINDS = new Set(['vanishing_gradients', 'exploding_gradients']);

/** Whether a finding is about the gradient (its tensor opens showing the gradient quantity). */
export function aboutGradient(finding) {
  return GRADIENT_KINDS.has(finding.kind);
}

function rank(severity) {
  const i = SEVERITIES.indexOf(severity);
  return i < 0 ? SEVERITIES.length : i;
}

/** Well-formed findings of an answer (an entry needs a tag, a kind and a message), in severity then step order. */
export function orderFindings(answer) {
  const list = (answer && Array.isArray(answer.findings)) ? answer.findings : [];
  const ok = list.filter((f) => f && typeof f.tag === 'string' && typeof f.kind === 'string');
  const step = (f) => (Number.isFinite(f.first_step) ? f.first_step : Infinity);
  return ok.map((f, i) => [f, i])
      .sort(([a, i], [b, j]) => rank(a.severity) - rank(b.severity) || step(a) - step(b) || i - j)
      .map(([f]) => f);
}

/** {error, warning, info, other}: how many findings of each severity. */
export function severityCounts(findings) {
  const counts = {error: 0, warning: 0, info: 0, other: 0};
  for (const f of findings) counts[SEVERITIES.includes(f.severity) ? f.severity : 'other'] += 1;
  return counts;
}

/** The severity a finding is shown with ('info' for one this panel does not know). */
export function severityOf(finding) {
  return SEVERITIES.includes(finding.severity) ? finding.severity : 'info';
}

/** The name of a finding's kind ("dead units"), the kind itself when unknown. */
export function kindName(kind) {
  return KIND_NAMES[kind] || kind;
}

/** Where the finding sits in time: "first at step 1,230", "steps 40–90", "at step 40". */
export function findingWhen(f) {
  if (!Number.isFinite(f.first_step)) return '';
  if (f.kind === 'nonfinite') return `first at step ${f.first_step}`;
  if (Number.isFinite(f.last_step) && f.last_step !== f.first_step) return `steps ${f.first_step}–${f.last_step}`;
  return `at step ${f.first_step}`;
}

/** Unit indices a finding names (integers only), or []. */
export function findingUnits(f) {
  return Array.isArray(f.units) ? f.units.filter((u) => Number.isInteger(u) && u >= 0) : [];
}
