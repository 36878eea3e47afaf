// Quantities: besides a weight, a run may record its gradient and the
// optimizer's state, each a tensor of the weight's shape with the same
// stats (and, if chosen, frames) as the weight (docs/architecture.md,
// "Modules": quantities in the panel). Which of them the panel offers, which
// one it shows, the gradient RMS the layer list is coloured by, and Adam's ε
// the log scales mark.
// Pure: no DOM, tested by node --test.

import {indexAtOrBefore, statAt} from './steps.js';

// In the server's order; `symbol` stands for the tensor in labels.
export const QUANTITIES = [
  {key: 'weights', label: 'weights', symbol: 'W'},
  {key: 'grad', label: 'gradient', symbol: 'g'},
  {key: 'm_hat', label: 'Adam m̂ (1st moment)', symbol: 'm̂'},
  {key: 'v_rms', label: '√v̂ (Adam RMS of g)', symbol: '√v̂'},
  {key: 'momentum', label: 'momentum buffer', symbol: 'μ'},
];

// Magnitudes that span decades and meet Adam's ε: drawn on a log scale.
export const LOG_QUANTITIES = new Set(['grad', 'v_rms']);

/** The quantity's entry (an unknown name from a newer server gets a plain one). */
export function quantityInfo(key) {
  return QUANTITIES.find((q) => q.key === key) || {key, label: key, symbol: key};
}

/** The quantities a /tags entry lists (a server or run without them: weights only). */
export function quantitiesOf(tensor) {
  const listed = tensor && Array.isArray(tensor.quantities) ? tensor.quantities : [];
  return listed.includes('weights') ? listed : ['weights', ...listed];
}

/**
 * Whether a /tags entry has frames of `quantity` (a run may record a
 * quantity's stats alone: `frame_quantities` lists those with frames; a
 * server without it has frames of the weights only). False for no entry.
 */
export function hasFrames(tensor, quantity) {
  if (!tensor) return false;
  return quantity === 'weights' || (Array.isArray(tensor.frame_quantities) && tensor.frame_quantities.includes(quantity));
}

/**
 * The quantities to offer for some /tags entries (the selected tensor in
 * each run shown, or every tensor of a run): their union, in QUANTITIES'
 * order, names this panel does not know last.
 */
export function offeredQuantities(tensors) {
  const seen = new Set(['weights']);
  for (const t of tensors) for (const q of quantitiesOf(t)) seen.add(q);
  const known = QUANTITIES.map((q) => q.key).filter((k) => seen.has(k));
  return [...known, ...[...seen].filter((k) => !known.includes(k))];
}

/** The quantity shown: the one asked for when offered, else the weights. */
export function shownQuantity(wanted, offered) {
  return offered.includes(wanted) ? wanted : 'weights';
}

/** Whether the selector is worth showing: something besides the weights was recorded. */
export function selectorVisible(offered) {
  return offered.some((q) => q !== 'weights');
}

/** The quantity a gradient RMS is read from: `grad`, else `v_rms` (RMS of g as Adam sees it), else null. */
export function gradientQuantity(tensors) {
  const offered = offeredQuantities(tensors);
  if (offered.includes('grad')) return 'grad';
  if (offered.includes('v_rms')) return 'v_rms';
  return null;
}

/**
 * RMS of a tensor's finite entries at snapshot i of its stats series:
 * √(mean² + std²) (std is the population std, so this is ‖x‖ / √n over the
 * finite entries). null when either is undefined.
 */
export function rmsAt(series, i) {
  const mean = (series.mean || [])[i];
  const std = (series.std || [])[i];
  if (mean === null || mean === undefined || std === null || std === undefined) return null;
  return Math.sqrt(mean * mean + std * std);
}

/** The stats fields rmsAt reads. */
export const RMS_FIELDS = ['mean', 'std'];

/** The RMS along a whole series (null where undefined). */
export function rmsValues(series) {
  return series.steps.map((_, i) => rmsAt(series, i));
}

/** The RMS at the snapshot at or before `step` (null if none). */
export function rmsAtStep(series, step) {
  if (!series || !Array.isArray(series.steps)) return null;
  const i = indexAtOrBefore(series.steps, step);
  return i < 0 ? null : rmsAt(series, i);
}

// Optimizers that divide by √(v + ε), by framework ('keras' when the
// structure names none): ε's floor on v_rms is then √ε (findings.EPS_UNDER_SQRT,
// the same rule; tests/fixtures/shared_rules.json, "epsilon_floor").
const EPS_UNDER_SQRT = new Set(['keras/RMSprop', 'keras/Adagrad', 'keras/Adadelta', 'torch/Adadelta']);

// Adam's ε where the run does not say: the frameworks' defaults
// (torch.optim.Adam eps=1e-8; keras.optimizers.Adam epsilon=1e-7).
export const EPSILON_DEFAULTS = {torch: 1e-8, keras: 1e-7};

/**
 * Adam's ε for a run: {value, recorded, text}. Read from the structure's
 * `model.optimizer` when a recorder wrote it (docs/architecture.md,
 * "Gradients and optimizer state"): its `epsilon` (√ε for EPS_UNDER_SQRT),
 * or value null when that optimizer has none (SGD: nothing to mark). Otherwise, for runs written
 * before the optimizer was recorded, the framework's default
 * (`model.framework` 'torch', else Keras), said so in `text`.
 */
export function adamEpsilon(structure) {
  const model = (structure && structure.model) || {};
  const optimizer = model.optimizer;
  if (optimizer && typeof optimizer === 'object') {
    const name = typeof optimizer.class === 'string' ? optimizer.class : 'optimizer';
    const eps = optimizer.epsilon;
    if (!(typeof eps === 'number' && eps > 0 && eps < Infinity)) return {value: null, recorded: true, text: `the run's ${name} has no ε`};
    if (!EPS_UNDER_SQRT.has(`${model.framework || 'keras'}/${name}`)) return {value: eps, recorded: true, text: `ε = ${eps}: the run's ${name}'s`};
    const floor = Math.sqrt(eps);
    return {value: floor, recorded: true, text: `√ε = ${floor}: the run's ${name} adds its ε = ${eps} under the square root`};
  }
  const torch = model.framework === 'torch';
  const value = torch ? EPSILON_DEFAULTS.torch : EPSILON_DEFAULTS.keras;
  return {value, recorded: false,
    text: `ε = ${value}: ${torch ? 'torch' : 'Keras'}'s default for Adam (the run does not record its optimizer's ε)`};
}

/** Whether a log scale applies to a quantity (the weights and signed moments stay linear). */
export function logApplies(quantity) {
  return LOG_QUANTITIES.has(quantity);
}

/**
 * The value a layer-list stat gives at `step` from a tag's series:
 * `grad_rms` the RMS (the series being the gradient quantity's),
 * `init_angle` 1 − cos to init, else the field itself. null when none.
 */
export function layerValue(series, stat, step) {
  if (stat === 'grad_rms') return rmsAtStep(series, step);
  if (stat === 'init_angle') {
    const cos = statAt(series, 'init_cos', step);
    return cos === null ? null : 1 - cos;
  }
  return statAt(series, stat, step);
}

/**
 * Where each layer's value falls on the list's colour bar, from 0 to 1
 * (null: no value). Values spanning more than 100× (update sizes, gradient
 * RMS across depth) compare on a log scale; non-negative values on a
 * linear one are measured from 0, so two similar values look similar.
 * @return {{positions: Array<?number>, log: boolean}}
 */
export function layerPositions(values) {
  const finite = values.filter((v) => v !== null && Number.isFinite(v));
  const positive = finite.filter((v) => v > 0);
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  const log = positive.length === finite.length && finite.length > 1 && hi / lo > 100;
  if (!log && lo >= 0) lo = 0;
  const f = log ? Math.log10 : (x) => x;
  lo = f(lo);
  hi = f(hi);
  const positions = values.map((v) => (v === null || !Number.isFinite(v) ? null : hi > lo ? (f(v) - lo) / (hi - lo) : 1));
  return {positions, log};
}

/** A label about the weights (‖W‖, ‖ΔW‖, W[u]) said of `quantity` (‖g‖, ‖Δg‖, g[u]). */
export function labelFor(text, quantity) {
  return quantity === 'weights' ? text : text.replace(/W/g, quantityInfo(quantity).symbol);
}
