"""The model's layer tree: weight tags and the structure summary.

A weight's tag is the path of the layer that owns it, from a walk of the
layer tree below the model (the model's own name excluded; each nested model
or sublayer adds its `name`), then `/` and the variable's `name`:
`dense_1/kernel`, `encoder/e1/kernel`, `lstm/lstm_cell/kernel`,
`mha/query/kernel`, `bn/moving_mean`. A variable reached twice (a shared
layer) keeps its first path. `variable.path` is not used: it includes the
root's name for some model kinds and not for others.

The structure document (`GET /structure` in http_api.md):

    {"model": {"name", "class", "params", "trainable_params",
               "optimizer": {"class", "epsilon"}},
     "layers": [{"path", "class", "params", "trainable", "inbound": [path],
                 "output_shape", "weights": [{"name", "tag", "shape", "dtype",
                                              "trainable"}]}]}

A weight's `trainable` says whether the optimizer trains it (the variable
and every layer around it trainable); a layer's says the layer's own flag.

`model.optimizer` (when the model has one) is the optimizer that holds the
slots, through a `LossScaleOptimizer` to its inner optimizer: its class
name and its `epsilon` (null for an optimizer without one, e.g. SGD). The
gradient findings and the panel's ε mark read it (docs/architecture.md,
"Gradients and optimizer state"); runs written before it was recorded
have no `optimizer` and fall back to the framework's default.

`layers` lists every layer of the tree in model order, depth first (a
nested model comes right before its own layers), as `model.layers` does at
each level: a Functional model's InputLayers are rows (with no weights), a
Sequential model's are not. Weightless helpers inside an ordinary layer
(an attention layer's softmax) are left out. A weight the model creates
itself is tagged by its name alone and belongs to no row.

`inbound` holds the paths of the layers feeding a layer inside its
container: from the functional graph for Functional models (so branches and
merges can be drawn), the previous layer for Sequential models, and nothing
for the sublayers of an ordinary layer (an LSTM's cell, an attention
layer's projections) or of a subclassed model, whose wiring lives in Python
code.

Keras is not imported here: only the attributes of the layer objects are
read, so this module stays importable without TensorFlow.
"""

import collections

WeightRef = collections.namedtuple("WeightRef", "tag variable layer_class layer_name")


def _sublayers(layer):
    """The direct sublayers of `layer`, in tracking order."""
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is not None:
        return list(flatten(include_self=False, recursive=False))
    return list(getattr(layer, "_layers", []))


def _direct_variables(layer):
    """Variables created by `layer` itself (not by its sublayers).

    `layer.weights` is the union over sublayers; its own part is the
    trainable + non-trainable variables it tracks directly. Seed-generator
    state and metric variables are not weights and are not in these lists.
    """
    return list(getattr(layer, "_trainable_variables", [])) + list(
        getattr(layer, "_non_trainable_variables", [])
    )


def _walk(model):
    """Yields `(path, layer)` depth first, the model itself excluded."""
    seen = set()

    def visit(layer, prefix):
        path = prefix + layer.name
        if id(layer) in seen:
            return
        seen.add(id(layer))
        yield path, layer
        if _is_model(layer):
            subs = _model_layers(layer)
        else:
            # An ordinary layer's weightless helpers (an attention layer's
            # softmax and dropout) are not worth a row in the structure.
            subs = [s for s in _sublayers(layer) if getattr(s, "weights", None)]
        for sub in subs:
            yield from visit(sub, path + "/")

    for sub in _model_layers(model):
        yield from visit(sub, "")


def _model_layers(container):
    """The direct layers of a model in model order (Sequential: no InputLayer)."""
    subs = _sublayers(container)
    listed = getattr(container, "layers", None)
    if isinstance(listed, list) and _is_model(container):
        # `model.layers` gives Keras's order (functional graph order); add
        # any tracked layer it leaves out so no weight is missed.
        ids = {id(x) for x in listed}
        extra = [s for s in subs if id(s) not in ids and type(s).__name__ != "InputLayer"]
        return list(listed) + extra
    return subs


def _is_model(layer):
    return hasattr(layer, "optimizer") or type(layer).__name__ in (
        "Sequential",
        "Functional",
        "Model",
    )


def weight_refs(model):
    """Every weight of every layer below `model`, with its tag.

    Returns:
      A list of `WeightRef(tag, variable, layer_class, layer_name)`, in model
      order; a variable reached twice keeps its first tag.
    """
    refs = []
    seen = set()
    for path, layer in _walk(model):
        for v in _direct_variables(layer):
            if id(v) in seen:
                continue
            seen.add(id(v))
            refs.append(WeightRef(path + "/" + _var_name(v), v, type(layer).__name__, layer.name))
    # Variables the model creates itself (`self.add_weight` in a subclassed
    # model) are tagged by their name alone; any weight the walk missed (held
    # outside Keras's layer tracking) by its Keras path, so none is lost.
    direct = _direct_variables(model)
    direct_ids = {id(v) for v in direct}
    missed = [v for v in getattr(model, "weights", []) if id(v) not in seen]
    for v in direct + missed:
        if id(v) not in seen:
            seen.add(id(v))
            named = id(v) in direct_ids or not getattr(v, "path", None)
            tag = _var_name(v) if named else str(v.path)
            refs.append(WeightRef(tag, v, type(model).__name__, model.name))
    return _unique_tags(refs)


def _var_name(v):
    name = getattr(v, "name", "variable")
    # Keras 3 names are bare ("kernel"); TF variables carry ":0" and scopes.
    return name.split(":")[0].rsplit("/", 1)[-1]


def _unique_tags(refs):
    """Suffixes `_1`, `_2`… to repeated tags (two variables with one name)."""
    count = collections.Counter()
    out = []
    for r in refs:
        count[r.tag] += 1
        if count[r.tag] > 1:
            r = r._replace(tag="%s_%d" % (r.tag, count[r.tag] - 1))
        out.append(r)
    return out


def _shape(x):
    try:
        return [None if d is None else int(d) for d in x]
    except TypeError:
        return None


def _output_shape(layer):
    try:
        out = layer.output
    except Exception:  # not built symbolically, or called more than once
        return None
    if isinstance(out, (list, tuple)):
        return [_shape(getattr(o, "shape", ())) for o in out]
    return _shape(getattr(out, "shape", ()))


def _count(variables):
    total = 0
    for v in variables:
        n = 1
        for d in v.shape:
            n *= int(d)
        total += n
    return total


def _functional_inbound(container, paths):
    """Maps id(layer) → [paths of the layers feeding it] in a Functional model."""
    nodes = getattr(container, "_nodes", None)
    operations = getattr(container, "_operations", None)
    if nodes is None or operations is None:
        return None

    def key(op, i):
        return "%d_ib-%d" % (id(op), i)  # keras.src.ops.function.make_node_key

    def feeders(node, depth=0):
        out = []
        for parent in node.parent_nodes:
            op = parent.operation
            if id(op) in paths:
                out.append(paths[id(op)])
            elif depth < 64:  # a bare op (keras.ops.add) between two layers
                out.extend(feeders(parent, depth + 1))
        return out

    inbound = {}
    for op in operations:
        found = []
        for i, node in enumerate(op._inbound_nodes):
            if key(op, i) in nodes:
                for p in feeders(node):
                    if p not in found:
                        found.append(p)
        inbound[id(op)] = found
    return inbound


def _inbound_map(model):
    """`(order, inbound)`: the `_walk` of `model` as a list, and
    id(layer) → inbound paths for every container in the tree."""
    order = list(_walk(model))
    paths = {id(layer): path for path, layer in order}
    inbound = {}
    containers = [model] + [layer for _, layer in order if _is_model(layer)]
    for c in containers:
        kind = type(c).__name__
        if kind == "Sequential":
            prev = None
            for layer in _model_layers(c):
                inbound[id(layer)] = [paths[id(prev)]] if prev is not None else []
                prev = layer
            continue
        found = _functional_inbound(c, paths)
        if found:
            inbound.update({k: v for k, v in found.items() if k in paths})
    return order, inbound


def inner_optimizer(optimizer):
    """The optimizer that holds the slots: through any loss-scale wrapper."""
    while hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
    return optimizer


def optimizer_summary(optimizer):
    """`{"class", "epsilon"}` of the optimizer that holds the slots (through
    any loss-scale wrapper), or None without an optimizer. `epsilon` is
    None when the optimizer has none (or not a plain number)."""
    optimizer = inner_optimizer(optimizer)
    if optimizer is None:
        return None
    return {"class": type(optimizer).__name__,
            "epsilon": positive_number(getattr(optimizer, "epsilon", None))}


def positive_number(value):
    """`value` as a float if it is a finite number > 0, else None."""
    try:
        value = float(value)
    except Exception:  # an optimizer's attribute, whatever it holds: never costs a snapshot
        return None
    return value if 0 < value < float("inf") else None


def build_structure(model, refs=None):
    """The structure document of `model` (a JSON-able dict)."""
    refs = weight_refs(model) if refs is None else refs
    by_var = {id(r.variable): r for r in refs}
    learns = _trainable_ids(model, refs)
    order, inbound = _inbound_map(model)
    layers = []
    for path, layer in order:
        own = [by_var[id(v)] for v in _direct_variables(layer) if id(v) in by_var]
        own = [r for r in own if r.tag.rsplit("/", 1)[0] == path]
        layers.append(
            {
                "path": path,
                "class": type(layer).__name__,
                "params": _count(getattr(layer, "weights", [])),
                "trainable": bool(getattr(layer, "trainable", True)),
                "inbound": inbound.get(id(layer), []),
                "output_shape": _output_shape(layer),
                "weights": [
                    {
                        "name": r.tag.rsplit("/", 1)[-1],
                        "tag": r.tag,
                        "shape": _shape(r.variable.shape),
                        "dtype": dtype_name(r.variable),
                        "trainable": id(r.variable) in learns,
                    }
                    for r in own
                ],
            }
        )
    return {
        "model": {
            "name": model.name,
            "class": type(model).__name__,
            "params": _count(r.variable for r in refs),
            "trainable_params": _count(
                r.variable for r in refs if getattr(r.variable, "trainable", True)
            ),
            **_optimizer_entry(getattr(model, "optimizer", None)),
        },
        "layers": layers,
    }


def _optimizer_entry(optimizer):
    summary = optimizer_summary(optimizer)
    return {} if summary is None else {"optimizer": summary}


def _trainable_ids(model, refs):
    """ids of the variables the optimizer trains: Keras's
    `model.trainable_weights` (a variable's own `trainable` and every
    enclosing layer's); without it, each variable's `trainable`."""
    listed = getattr(model, "trainable_weights", None)
    if listed is not None:
        return {id(v) for v in listed}
    return {id(r.variable) for r in refs if getattr(r.variable, "trainable", True)}


def dtype_name(v):
    dtype = getattr(v, "dtype", "float32")
    return getattr(dtype, "name", str(dtype))


def signature(refs):
    """A value that changes when the weights' tags, shapes or identity change."""
    return tuple((r.tag, id(r.variable), tuple(_shape(r.variable.shape) or ())) for r in refs)
