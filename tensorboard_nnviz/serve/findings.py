"""Findings: where a run's training went wrong, from its stats (pure).

`compute(columns, structure, units)` turns a run's full-resolution stats
(`/stats?run=R`'s columns per weight tag), its model structure and the
per-unit updates of some tags into findings, ordered by severity (error,
warning, info), then first step, then model order. `needs_units(columns,
structure)` names the tags whose per-unit series `compute` needs (those
whose `units_still` stat says some unit stood still over the last half of
the run), so a reader loads only those.

A finding is `{"kind", "severity", "tag", "first_step", "last_step",
"message"}` with `units` (unit indices) for `dead_units` and `value` where
a number says how bad it is. The kinds and thresholds (and why each) are
documented in http_api.md, "GET /findings"; the constants are here.

This module imports neither Keras nor TensorFlow, and reads nothing (numpy only).
"""

import numpy as np

ERROR = "error"
WARNING = "warning"
INFO = "info"
SEVERITIES = (ERROR, WARNING, INFO)

NONFINITE = "nonfinite"
EXPLODING = "exploding"
FROZEN = "frozen"
DEAD_UNITS = "dead_units"
ALPHA = "alpha"
VANISHING_GRADIENTS = "vanishing_gradients"
EXPLODING_GRADIENTS = "exploding_gradients"

# ||W|| past this multiple of its first value is exploding.
GROWTH_LIMIT = 100.0
# So is one snapshot-to-snapshot update larger than ||W_prev|| (JUMP_LIMIT)
# that also multiplied ||W|| by JUMP_GROWTH: with snapshots far apart, a
# healthy update can exceed the weights but does not double them
# (http_api.md, /findings: the runs these limits were checked on).
JUMP_LIMIT = 1.0
JUMP_GROWTH = 2.0
# weightwatcher's range of power-law alpha for well-trained layers: below
# ALPHA_LOW a heavy-tailed spectrum (its sign of over-fitting / over-
# training), above ALPHA_HIGH little correlated structure (random matrices,
# e.g. every layer at init, have large alpha). Only the last ALPHA_WINDOW of
# the run (by step) counts, with at least MIN_ALPHA_VALUES values there, all
# on one side: an untrained layer starts above 6 in every healthy run.
ALPHA_LOW = 2.0
ALPHA_HIGH = 6.0
ALPHA_WINDOW = 0.25
MIN_ALPHA_VALUES = 2
# vanishing_gradients: a tensor's gradient level (the median RMS over the
# last half of the run, >= MIN_STILL_SNAPSHOTS snapshots) more than
# VANISH_ORDERS orders of magnitude below the model's (the
# VANISH_REFERENCE quantile of the tensors' levels, so neither the largest
# tensor nor the vanishing ones set it), or below the optimizer's eps: then
# eps dominates Adam's denominator and its step is no longer scale-free
# (http_api.md, /findings: the runs these limits were checked on). The eps
# is the run's (the structure's `model.optimizer.epsilon`); ADAM_EPS,
# torch's default, for runs that did not record their optimizer.
VANISH_ORDERS = 3.0
VANISH_REFERENCE = 0.75
ADAM_EPS = 1e-8
# exploding_gradients: a snapshot's gradient RMS more than GRAD_JUMP times
# the tensor's running level (the median of its GRAD_HISTORY..GRAD_WINDOW
# snapshots before).
GRAD_JUMP = 20.0
GRAD_HISTORY = 3
GRAD_WINDOW = 8
# The quantities that measure a gradient, the first a run has is used.
GRADIENT_QUANTITIES = ("grad", "v_rms")
# `frozen` and `dead_units` need at least this many snapshots of stillness.
MIN_STILL_SNAPSHOTS = 2
# Weights the optimizer does not train, by name, for runs whose structure
# predates per-weight `trainable` (format version 1).
NON_TRAINABLE_NAMES = frozenset(
    {"moving_mean", "moving_variance", "running_mean", "running_var", "num_batches_tracked"}
)


# --- what the structure says about each tag ------------------------------------


def weight_info(structure):
    """{tag: {"rank", "trainable", "layer_class"}} from a structure document
    (None: no structure). `trainable` is the weight's own flag, else (format
    version 1) its layer's flag unless the name is a known non-trainable
    statistic."""
    info = {}
    for layer in (structure or {}).get("layers") or []:
        for w in layer.get("weights") or []:
            tag = w.get("tag")
            if not isinstance(tag, str) or tag in info:
                continue
            trainable = w.get("trainable")
            if not isinstance(trainable, bool):
                trainable = (bool(layer.get("trainable", True))
                             and tag.rsplit("/", 1)[-1] not in NON_TRAINABLE_NAMES)
            info[tag] = {"rank": len(info), "trainable": trainable,
                         "layer_class": str(layer.get("class") or "")}
    return info


def is_embedding(meta):
    # An embedding's rows are tokens (or positions): rows no batch used get
    # no gradient at all, which says nothing about training.
    return "Embedding" in meta.get("layer_class", "")


# --- helpers ------------------------------------------------------------------------


def _step(s):
    return "{:,}".format(int(s))


def _num(v):
    return "%.3g" % v


def _values(columns, name):
    values = columns.get(name)
    steps = columns.get("steps") or []
    if not isinstance(values, list) or len(values) != len(steps):
        return [None] * len(steps)
    return values


def _usable(columns):
    return isinstance(columns, dict) and "error" not in columns and bool(columns.get("steps"))


def _finding(kind, severity, tag, first_step, last_step, message, **extra):
    out = {"kind": kind, "severity": severity, "tag": tag, "first_step": int(first_step),
           "last_step": int(last_step), "message": message}
    out.update(extra)
    return out


# --- the kinds -------------------------------------------------------------------------


def _nonfinite(tag, columns):
    steps = columns["steps"]
    bad = [(s, (nan or 0.0), (inf or 0.0)) for s, nan, inf in
           zip(steps, _values(columns, "nan"), _values(columns, "inf")) if (nan or 0) + (inf or 0) > 0]
    if not bad:
        return None
    return nonfinite_finding(tag, bad[0], bad[-1][0])


def nonfinite_finding(tag, first, last_step):
    """`first`: (step, NaN count, Inf count) where the weight first held any."""
    first, nan, inf = first
    what = "NaN and Inf" if nan and inf else ("NaN" if nan else "Inf")
    count = int(nan + inf)
    message = "%s: %s at step %s (%s %s)" % (
        tag, what, _step(first), "{:,}".format(count), "entry" if count == 1 else "entries")
    return _finding(NONFINITE, ERROR, tag, first, last_step, message, value=float(count))


def _exploding(tag, columns):
    steps = columns["steps"]
    l2 = _values(columns, "l2")
    ratio = _values(columns, "update_ratio")
    first_l2 = next((v for v in l2 if v is not None), None)
    if not first_l2:  # no finite norm, or a weight that starts at zero
        return None
    hits = []
    for i, s in enumerate(steps):
        grew = l2[i] is not None and l2[i] > GROWTH_LIMIT * first_l2
        jumped = (i > 0 and ratio[i] is not None and ratio[i] > JUMP_LIMIT
                  and l2[i] is not None and l2[i - 1] and l2[i] > JUMP_GROWTH * l2[i - 1])
        if grew or jumped:
            hits.append((i, grew, jumped))
    if not hits:
        return None
    i, grew, jumped = hits[0]
    hit = {"step": steps[i], "jumped": jumped, "ratio": ratio[i], "l2": l2[i],
           "prev_l2": l2[i - 1] if i > 0 else None, "prev_step": steps[i - 1] if i > 0 else None}
    return exploding_finding(tag, hit, first_l2, steps[hits[-1][0]])


def exploding_finding(tag, hit, first_l2, last_step):
    """`hit`: the first snapshot that exploded, {"step", "jumped", "ratio",
    "l2", "prev_l2", "prev_step"} (the last two: the snapshot before it)."""
    if hit["jumped"]:
        value = hit["ratio"]
        message = ("%s: one update (step %s to %s) was %s× the weights' norm before it, "
                   "and the norm grew %s×" % (tag, _step(hit["prev_step"]), _step(hit["step"]),
                                              _num(value), _num(hit["l2"] / hit["prev_l2"])))
    else:
        value = hit["l2"] / first_l2
        message = "%s: the weights' norm grew to %s× its first value by step %s" % (
            tag, _num(value), _step(hit["step"]))
    return _finding(EXPLODING, WARNING, tag, hit["step"], last_step, message, value=float(value))


def _still(columns):
    """True / False: the weight never changed after its first snapshot (over
    at least MIN_STILL_SNAPSHOTS), or did; None: too few snapshots to say."""
    updates = [u for u in _values(columns, "update_l2")[1:] if u is not None]
    if any(u > 0 for u in updates):
        return False
    return True if len(updates) >= MIN_STILL_SNAPSHOTS else None


def _frozen(tag, span, severity):
    """`span`: (first step, last step, snapshots) of the weight."""
    first, last, n = span
    message = "%s: trainable, but never changed over %d snapshots (steps %s to %s)" % (
        tag, n, _step(first), _step(last))
    if severity == ERROR:
        message += "; no trainable weight of the run changed: nothing learns"
    return _finding(FROZEN, severity, tag, first, last, message)


def _dead_window(columns):
    """Indices of the snapshots in the last half of the run (by step) that
    have an update, or None when fewer than MIN_STILL_SNAPSHOTS."""
    steps = columns["steps"]
    middle = (steps[0] + steps[-1]) / 2.0
    window = [i for i in range(1, len(steps)) if steps[i] > middle]
    return window if len(window) >= MIN_STILL_SNAPSHOTS else None


def _maybe_dead(columns):
    """Whether some unit may have been still over the whole last half: the
    `units_still` count is positive at every snapshot of it."""
    window = _dead_window(columns)
    if window is None:
        return False
    still = _values(columns, "units_still")
    return all(still[i] is not None and still[i] > 0 for i in window)


def _dead_units(tag, columns, series):
    """`series`: {"steps": [int], "update": [row per step], "block": int,
    "units": int} (per-unit updates, one row per step, NaN where unknown)."""
    steps = columns["steps"]
    rows = dict(zip(series["steps"], series["update"]))
    window = _dead_window(columns)
    if window is None or any(steps[i] not in rows for i in window):
        return None
    cols = len(rows[steps[-1]])
    known = [i for i in range(1, len(steps))
             if steps[i] in rows and len(rows[steps[i]]) == cols]
    updates = np.array([rows[steps[i]] for i in known], dtype=np.float64).reshape(len(known), cols)
    # The last step at which each column moved (or was unknown: not provably
    # still); the first step if it never did.
    moved = ~(updates == 0)
    ever = moved.any(axis=0)
    last = len(known) - 1 - np.argmax(moved[::-1], axis=0)
    stopped = np.where(ever, np.asarray([steps[i] for i in known])[last], steps[0])
    return dead_finding(tag, stopped, steps[0], steps[-1], series["block"], series["units"])


def dead_finding(tag, stopped, first_step, last_step, block, total):
    """`stopped`: per column, the last step at which it moved (`first_step`
    if it never did); a column stopped by the middle of the run is dead."""
    middle = (first_step + last_step) / 2.0
    dead = np.flatnonzero(stopped <= middle)
    cols = len(stopped)
    if not dead.size or dead.size == cols:
        return None  # none, or all: then the tensor as a whole stood still
    block, total = int(block), int(total)
    units = [u for c in dead.tolist() for u in range(c * block, min(total, (c + 1) * block))]
    last_move, first_move = int(stopped[dead].max()), int(stopped[dead].min())
    head = "%s: %s of %s units" % (tag, "{:,}".format(len(units)), "{:,}".format(total))
    if last_move == first_step:
        message = "%s never changed: updates exactly 0 from step %s on" % (head, _step(first_step))
    else:
        when = "at" if first_move == last_move else "by"
        message = "%s stopped learning %s step %s" % (head, when, _step(last_move))
    return _finding(DEAD_UNITS, WARNING, tag, last_move, last_step, message, units=units,
                    value=len(units) / float(total))


def alpha_side(value):
    """-1 below ALPHA_LOW, 1 above ALPHA_HIGH, 0 inside (or None: unknown)."""
    if value is None:
        return None
    return -1 if value < ALPHA_LOW else (1 if value > ALPHA_HIGH else 0)


def _alpha(tag, columns):
    """alpha out of [ALPHA_LOW, ALPHA_HIGH] at every value of the run's last
    ALPHA_WINDOW, on one side; first_step is where it last left the range."""
    steps = columns["steps"]
    known = [(s, a) for s, a in zip(steps, _values(columns, "alpha")) if a is not None]
    start = steps[-1] - ALPHA_WINDOW * (steps[-1] - steps[0])
    window = [(s, a) for s, a in known if s >= start]
    sides = {alpha_side(a) for _, a in window}
    if len(window) < MIN_ALPHA_VALUES or len(sides) != 1 or sides == {0}:
        return None
    side = sides.pop()
    first = window[0][0]
    for s, a in reversed([x for x in known if x[0] < first]):  # back to where it left
        if alpha_side(a) != side:
            break
        first = s
    return alpha_finding(tag, side, first, steps[-1], window[-1][1])


def alpha_finding(tag, side, first, last_step, last):
    """alpha out of range since step `first` on `side` (-1 low, 1 high);
    `last`: its latest value."""
    if side < 0:
        message = ("%s: alpha %s < %g since step %s: a heavy-tailed spectrum, which "
                   "weightwatcher reads as a sign of over-fitting or over-training this layer"
                   % (tag, _num(last), ALPHA_LOW, _step(first)))
    else:
        message = ("%s: alpha %s > %g since step %s: little structure learned yet (random "
                   "matrices have a large alpha; normal early in training, or for a layer "
                   "that hardly trains)" % (tag, _num(last), ALPHA_HIGH, _step(first)))
    return _finding(ALPHA, INFO, tag, first, last_step, message, value=float(last))


# --- the run ---------------------------------------------------------------------------


def model_order(tags, structure):
    """[(tag, meta)] of `tags` in model order (meta: as `weight_info`; tags
    the structure does not name last, by name)."""
    info = weight_info(structure)
    unknown = {"rank": len(info), "trainable": None, "layer_class": ""}
    return sorted(((t, info.get(t, unknown)) for t in tags), key=lambda x: (x[1]["rank"], x[0]))


def _judged(columns, structure):
    """[(tag, columns, meta)] of the readable tags, in model order."""
    tags = [t for t, c in columns.items() if _usable(c)]
    return [(t, columns[t], meta) for t, meta in model_order(tags, structure)]


def _finite_throughout(columns):
    return not any((n or 0) + (i or 0) > 0 for n, i in
                   zip(_values(columns, "nan"), _values(columns, "inf")))


def needs_units(columns, structure):
    """Tags whose per-unit update series `compute` needs (see `_maybe_dead`)."""
    return [t for t, c, meta in _judged(columns, structure)
            if meta["trainable"] and not is_embedding(meta) and _finite_throughout(c)
            and _maybe_dead(c)]


def compute(columns, structure=None, units=None, gradients=None):
    """The findings of one run, from scratch.

    Args:
      columns: {tag: stats columns} as `/stats?run=R` answers them (a tag
        mapping to {"error": ...} is skipped).
      structure: the run's structure document, or None.
      units: {tag: per-unit update series (see `_dead_units`)} for the tags
        `needs_units` named; a tag left out is not checked for dead units.
      gradients: `(quantity, {tag: stats columns})` of the run's gradient
        quantity (`GRADIENT_QUANTITIES`: `/stats?run=R&quantity=Q`), or None.

    Returns:
      A list of findings (dicts), ordered.
    """
    units = units or {}
    entries = []
    for tag, c, meta in _judged(columns, structure):
        steps = c["steps"]
        bad = _nonfinite(tag, c)
        checks_dead = (bad is None and bool(meta["trainable"]) and tag in units
                       and not is_embedding(meta))
        entries.append((tag, meta, {
            "nonfinite": bad,
            "exploding": _exploding(tag, c),
            "alpha": _alpha(tag, c),
            "still": _still(c),
            "span": (steps[0], steps[-1], len(steps)),
            "dead": _dead_units(tag, c, units[tag]) if checks_dead else None,
        }))
    extra = []
    if gradients is not None:
        quantity, grads = gradients
        levels = {t: (np.asarray(c["steps"], np.int64), rms_of(c["mean"], c["std"]))
                  for t, c in grads.items() if _usable(c)}
        extra = gradient_findings(quantity, levels, structure)
    return assemble(entries, extra)


# --- gradients ------------------------------------------------------------------------


def rms_of(mean, std):
    """Per-snapshot RMS of a tensor, sqrt(mean² + std²) (std over all
    entries), from stats columns (None or NaN: undefined, NaN)."""
    mean = np.array([np.nan if v is None else v for v in mean], np.float64)
    std = np.array([np.nan if v is None else v for v in std], np.float64)
    return np.sqrt(mean * mean + std * std)


def gradient_findings(quantity, levels, structure):
    """`vanishing_gradients` and `exploding_gradients` of a run.

    Args:
      quantity: the gradient quantity measured ("grad" or "v_rms").
      levels: {tag: (steps, per-snapshot RMS, NaN where undefined)}.
      structure: the run's structure, for model order and what is trained.
    """
    judged = [(t, levels[t]) for t, meta in model_order(levels, structure)
              if meta["trainable"] is not False and not is_embedding(meta)
              and len(levels[t][0])]
    cancelled = _biases_into_batchnorm(structure)
    found = _vanishing(quantity, [(t, level) for t, level in judged if t not in cancelled],
                       optimizer_epsilon(structure))
    # From v_rms (Keras on TensorFlow and JAX record no `grad`), a running
    # mean square: one step's gradient g moves it by (1 - b2) g², so a
    # GRAD_JUMP× jump of v_rms takes a gradient about GRAD_JUMP / sqrt(1 - b2)
    # times its level (630× at b2 = 0.999): only gross spikes show.
    found += [f for f in (_grad_jump(t, steps, rms, quantity) for t, (steps, rms) in judged) if f]
    return found


# Optimizers that add eps under the square root, sqrt(v + eps) (by the
# structure's framework, "keras" when it names none): the floor on v_rms is
# then sqrt(eps). The others add it to sqrt(v) or sqrt(v_hat).
EPS_UNDER_SQRT = {("keras", "RMSprop"), ("keras", "Adagrad"), ("keras", "Adadelta"),
                  ("torch", "Adadelta")}


def optimizer_epsilon(structure):
    """`(floor, said)`: what the "below eps" test compares a gradient RMS
    with, and how the message names it. The run's recorded optimizer's eps
    (its square root for EPS_UNDER_SQRT); floor None when that optimizer
    has no eps (SGD: nothing is compared); ADAM_EPS for a run that did not
    record its optimizer (written before it was recorded)."""
    model = (structure or {}).get("model") or {}
    optimizer = model.get("optimizer")
    if not isinstance(optimizer, dict):
        return ADAM_EPS, "Adam's eps (%g)" % ADAM_EPS
    name = str(optimizer.get("class") or "optimizer")
    eps = optimizer.get("epsilon")
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and 0 < eps < np.inf):
        return None, "%s has no eps" % name
    if (model.get("framework") or "keras", name) in EPS_UNDER_SQRT:
        floor = float(np.sqrt(eps))
        return floor, "the square root of its optimizer's eps (%s, sqrt(%g) = %g)" % (name, eps,
                                                                                      floor)
    return float(eps), "its optimizer's eps (%s, %g)" % (name, eps)


def _biases_into_batchnorm(structure):
    """Tags of the biases of layers that feed only BatchNorm layers: BatchNorm
    subtracts each feature's batch mean, so their gradient is zero up to
    rounding by construction (a bias that does nothing, not a gradient that
    vanished)."""
    layers = (structure or {}).get("layers") or []
    feeds = {}
    for layer in layers:
        for source in layer.get("inbound") or []:
            feeds.setdefault(source, []).append(str(layer.get("class") or ""))
    into_bn = [layer for layer in layers if feeds.get(layer.get("path"))
               and all("BatchNorm" in c for c in feeds[layer.get("path")])]
    return {w.get("tag") for layer in into_bn for w in layer.get("weights") or []
            if str(w.get("tag", "")).endswith("bias")}


def _vanishing(quantity, judged, epsilon):
    """`epsilon`: `(floor or None, how it is named)` (`optimizer_epsilon`)."""
    eps, said = epsilon
    window_levels = {}
    for tag, (steps, rms) in judged:
        middle = (steps[0] + steps[-1]) / 2.0
        window = rms[(steps > middle) & ~np.isnan(rms)]
        # A gradient of exactly zero does not reach the weight at all: the
        # weight stays still and `frozen` says so.
        if len(window) >= MIN_STILL_SNAPSHOTS and np.median(window) > 0:
            window_levels[tag] = (float(np.median(window)), int(steps[steps > middle][0]),
                                  int(steps[-1]))
    if not window_levels:
        return []
    with np.errstate(divide="ignore"):
        logs = np.log10([lv for lv, _, _ in window_levels.values()])
    reference = float(np.quantile(logs, VANISH_REFERENCE)) if len(logs) > 1 else None
    found = []
    for tag, (level, first, last) in window_levels.items():
        with np.errstate(divide="ignore"):
            log = np.log10(level)
        below = None if reference is None else reference - log
        if below is not None and below > VANISH_ORDERS:
            message = ("%s: gradient RMS %s over the last half of the run (steps %s to %s), "
                       "%s orders of magnitude below the model's (%s)"
                       % (tag, _num(level), _step(first), _step(last),
                          "over 300" if below == np.inf else "%.1f" % below,
                          _num(10 ** reference)))
        elif eps is not None and level < eps:
            message = ("%s: gradient RMS %s over the last half of the run (steps %s to %s), "
                       "below %s: its step is no longer scale-free"
                       % (tag, _num(level), _step(first), _step(last), said))
        else:
            continue
        if quantity != "grad":
            message += " (from the optimizer's %s)" % quantity
        found.append(_finding(VANISHING_GRADIENTS, WARNING, tag, first, last, message,
                              value=level))
    return found


def _grad_jump(tag, steps, rms, quantity):
    """The first snapshot whose gradient RMS jumped GRAD_JUMP× above the
    median of the tensor's defined values before it (GRAD_HISTORY to
    GRAD_WINDOW of them); last_step: the last such snapshot."""
    hits, history = [], []
    for step, value in zip(steps.tolist(), rms.tolist()):
        if value != value:  # NaN: undefined
            continue
        if len(history) >= GRAD_HISTORY:
            level = float(np.median(history[-GRAD_WINDOW:]))
            if level > 0 and value > GRAD_JUMP * level:
                hits.append((step, value, level))
        history.append(value)
    if not hits:
        return None
    step, value, level = hits[0]
    message = ("%s: gradient RMS %s at step %s, %s× its running level (%s, the median of the "
               "snapshots before)" % (tag, _num(value), _step(step), _num(value / level),
                                     _num(level)))
    if quantity != "grad":
        message += " (from the optimizer's %s)" % quantity
    return _finding(EXPLODING_GRADIENTS, WARNING, tag, step, hits[-1][0], message,
                    value=value / level)


def assemble(entries, extra=()):
    """The ordered findings of a run from what each weight showed.

    Args:
      entries: [(tag, meta, kinds)] of the readable weights in model order
        (meta: as `weight_info`); kinds: {"nonfinite", "exploding", "alpha",
        "dead": a finding or None (dead: only where `needs_units` named the
        tag), "still": True/False/None (see `_still`), "span": (first step,
        last step, snapshots)}. The findings in it are copied, not changed.
      extra: findings of the run as a whole (`gradient_findings`), ordered
        with the rest.
    """
    rank = {tag: i for i, (tag, _, _) in enumerate(entries)}
    found = []
    still = {}
    span = {}
    for tag, meta, kinds in entries:
        bad = kinds["nonfinite"]
        if bad is not None:
            found.append(dict(bad))
        if meta["trainable"] is not False:  # moving statistics measure activations
            if kinds["exploding"] is not None:
                found.append(dict(kinds["exploding"]))
            if bad is None and kinds["alpha"] is not None:
                found.append(dict(kinds["alpha"]))
        if bad is None and meta["trainable"]:
            still[tag] = kinds["still"]
            span[tag] = kinds["span"]
            if kinds["dead"] is not None and not is_embedding(meta):
                found.append(dict(kinds["dead"]))
    _merge_layer_twins(found, rank)
    frozen = [t for t, s in still.items() if s]
    nothing_learns = bool(frozen) and not any(s is False for s in still.values())
    for tag in frozen:
        found.append(_frozen(tag, span[tag], ERROR if nothing_learns else WARNING))
    found.extend(dict(f) for f in extra)
    found.sort(key=lambda f: (SEVERITIES.index(f["severity"]), f["first_step"],
                              rank.get(f["tag"], len(rank)), f["kind"]))
    _name_the_first_nonfinite(found)
    return found


def _merge_layer_twins(found, rank):
    """One dead_units finding per layer and set of units: a dead unit's
    kernel column and bias entry stop together (the later tags are named
    in the first's message)."""
    kept = {}
    for f in sorted([f for f in found if f["kind"] == DEAD_UNITS], key=lambda f: rank[f["tag"]]):
        key = (f["tag"].rpartition("/")[0], tuple(f["units"]))
        if key in kept:
            kept[key]["message"] += " (%s too)" % f["tag"]
            found.remove(f)
        else:
            kept[key] = f


def _name_the_first_nonfinite(found):
    nonfinite = [f for f in found if f["kind"] == NONFINITE]
    if len(nonfinite) > 1:
        first = nonfinite[0]["first_step"]
        together = sum(f["first_step"] == first for f in nonfinite)
        for f in nonfinite[:together]:
            if together == 1:
                f["message"] += ", first of all weights"
            else:
                f["message"] += ", the run's first (with %d other weight%s)" % (
                    together - 1, "" if together == 2 else "s")
