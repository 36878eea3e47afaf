// The layer list: /structure's layers in model order with their nesting,
// branches (an output read by several layers) and merges (several inputs),
// plus any weight tag /tags knows that the structure does not.
// Pure: no DOM, tested by node --test.

function parentPath(path) {
  const i = path.lastIndexOf('/');
  return i < 0 ? null : path.slice(0, i);
}

function lastPart(path) {
  const i = path.lastIndexOf('/');
  return i < 0 ? path : path.slice(i + 1);
}

/** The layer of a weight tag: the tag without its last part. */
export function layerOfTag(tag) {
  return parentPath(tag) ?? '';
}

// The same weight under Keras's and PyTorch's names (a Dense `kernel` is a
// Linear `weight`, a BatchNormalization `moving_mean` a BatchNorm
// `running_mean`), so a Keras run and a torch run compare side by side.
const COUNTERPARTS = [
  ['kernel', 'weight'], ['embeddings', 'weight'], ['gamma', 'weight'], ['beta', 'bias'],
  ['moving_mean', 'running_mean'], ['moving_variance', 'running_var'],
];

/**
 * The tag a run holds for `tag`: `tag` itself, else the same layer's weight
 * under the other framework's name, else null.
 * @param {string} tag
 * @param {{has: function(string): boolean}} tags the run's tags (a Map or Set)
 */
export function tagInRun(tag, tags) {
  if (tag === null || tags.has(tag)) return tag;
  const layer = tag.slice(0, tag.lastIndexOf('/') + 1);
  const name = lastPart(tag);
  for (const [keras, torch] of COUNTERPARTS) {
    const other = name === keras ? torch : name === torch ? keras : null;
    if (other !== null && tags.has(layer + other)) return layer + other;
  }
  return null;
}

/**
 * Rows of the layer list, in model order:
 * [{path, name, depth, class, params, outputShape, inbound, consumers,
 *   merge, branch, synthetic, weights: [{name, tag, shape}]}].
 * @param {?Object} structure the /structure answer (null when unavailable).
 * @param {!Array<Object>} tensors the /tags answer's tensors.
 */
export function layerRows(structure, tensors) {
  const layers = (structure && Array.isArray(structure.layers)) ? structure.layers : [];
  const shapes = new Map(tensors.map((t) => [t.tag, t.shape]));
  const consumers = new Map();
  for (const layer of layers) {
    for (const src of layer.inbound || []) {
      if (!consumers.has(src)) consumers.set(src, []);
      consumers.get(src).push(layer.path);
    }
  }
  const rows = [];
  const seenPaths = new Set();
  const seenTags = new Set();
  const addRow = (row) => {
    // A parent missing from the list (e.g. only its cells own weights) gets
    // a plain row so the nesting still reads right.
    const parent = parentPath(row.path);
    if (parent !== null && !seenPaths.has(parent)) {
      addRow(emptyRow(parent));
    }
    seenPaths.add(row.path);
    rows.push(row);
  };
  for (const layer of layers) {
    if (typeof layer.path !== 'string' || seenPaths.has(layer.path)) continue;
    const weights = (layer.weights || []).map((w) => {
      seenTags.add(w.tag);
      return {name: w.name, tag: w.tag, shape: w.shape || shapes.get(w.tag) || [], recorded: shapes.has(w.tag)};
    });
    const inbound = layer.inbound || [];
    const cons = consumers.get(layer.path) || [];
    addRow({
      path: layer.path,
      name: lastPart(layer.path),
      depth: layer.path.split('/').length - 1,
      class: layer.class || '',
      params: layer.params ?? null,
      outputShape: layer.output_shape ?? null,
      inbound,
      consumers: cons,
      merge: inbound.length > 1,
      branch: cons.length > 1,
      synthetic: false,
      weights,
    });
  }
  // Tags the structure does not list (no structure, or it changed).
  for (const t of tensors) {
    if (seenTags.has(t.tag)) continue;
    const path = t.layer ?? layerOfTag(t.tag);
    let row = rows.find((r) => r.path === path);
    if (!row) {
      row = emptyRow(path);
      addRow(row);
    }
    row.weights.push({name: lastPart(t.tag), tag: t.tag, shape: t.shape, recorded: true});
    seenTags.add(t.tag);
  }
  return rows;
}

function emptyRow(path) {
  return {
    path,
    name: lastPart(path) || '(model)',
    depth: path ? path.split('/').length - 1 : 0,
    class: '',
    params: null,
    outputShape: null,
    inbound: [],
    consumers: [],
    merge: false,
    branch: false,
    synthetic: true,
    weights: [],
  };
}
