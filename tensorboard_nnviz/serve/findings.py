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


def _is_embedding(meta):
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
    first, nan, inf = bad[0]
    what = "NaN and Inf" if nan and inf else ("NaN" if nan else "Inf")
    count = int(nan + inf)
    message = "%s: %s at step %s (%s %s)" % (
        tag, what, _step(first), "{:,}".format(count), "entry" if count == 1 else "entries")
    return _finding(NONFINITE, ERROR, tag, first, bad[-1][0], message, value=float(count))


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
    if jumped:
        value = ratio[i]
        message = ("%s: one update (step %s to %s) was %s× the weights' norm before it, "
                   "and the norm grew %s×" % (tag, _step(steps[i - 1]), _step(steps[i]),
                                              _num(value), _num(l2[i] / l2[i - 1])))
    else:
        value = l2[i] / first_l2
        message = "%s: the weights' norm grew to %s× its first value by step %s" % (
            tag, _num(value), _step(steps[i]))
    return _finding(EXPLODING, WARNING, tag, steps[i], steps[hits[-1][0]], message, value=float(value))


def _still(columns):
    """True / False: the weight never changed after its first snapshot (over
    at least MIN_STILL_SNAPSHOTS), or did; None: too few snapshots to say."""
    updates = [u for u in _values(columns, "update_l2")[1:] if u is not None]
    if any(u > 0 for u in updates):
        return False
    return True if len(updates) >= MIN_STILL_SNAPSHOTS else None


def _frozen(tag, columns, severity):
    steps = columns["steps"]
    n = len(steps)
    message = "%s: trainable, but never changed over %d snapshots (steps %s to %s)" % (
        tag, n, _step(steps[0]), _step(steps[-1]))
    if severity == ERROR:
        message += "; no trainable weight of the run changed: nothing learns"
    return _finding(FROZEN, severity, tag, steps[0], steps[-1], message)


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
    middle = (steps[0] + steps[-1]) / 2.0
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
    dead = np.flatnonzero(stopped <= middle)
    if not dead.size or dead.size == cols:
        return None  # none, or all: then the tensor as a whole stood still
    block, total = int(series["block"]), int(series["units"])
    units = [u for c in dead.tolist() for u in range(c * block, min(total, (c + 1) * block))]
    last_move, first_move = int(stopped[dead].max()), int(stopped[dead].min())
    head = "%s: %s of %s units" % (tag, "{:,}".format(len(units)), "{:,}".format(total))
    if last_move == steps[0]:
        message = "%s never changed: updates exactly 0 from step %s on" % (head, _step(steps[0]))
    else:
        when = "at" if first_move == last_move else "by"
        message = "%s stopped learning %s step %s" % (head, when, _step(last_move))
    return _finding(DEAD_UNITS, WARNING, tag, last_move, steps[-1], message, units=units,
                    value=len(units) / float(total))


def _alpha_side(value):
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
    sides = {_alpha_side(a) for _, a in window}
    if len(window) < MIN_ALPHA_VALUES or len(sides) != 1 or sides == {0}:
        return None
    side = sides.pop()
    first = window[0][0]
    for s, a in reversed([x for x in known if x[0] < first]):  # back to where it left
        if _alpha_side(a) != side:
            break
        first = s
    last = window[-1][1]
    if side < 0:
        message = ("%s: alpha %s < %g since step %s: a heavy-tailed spectrum, which "
                   "weightwatcher reads as a sign of over-fitting or over-training this layer"
                   % (tag, _num(last), ALPHA_LOW, _step(first)))
    else:
        message = ("%s: alpha %s > %g since step %s: little structure learned yet (random "
                   "matrices have a large alpha; normal early in training, or for a layer "
                   "that hardly trains)" % (tag, _num(last), ALPHA_HIGH, _step(first)))
    return _finding(ALPHA, INFO, tag, first, steps[-1], message, value=float(last))


# --- the run ---------------------------------------------------------------------------


def _judged(columns, structure):
    """[(tag, columns, meta)] of the readable tags, in model order."""
    info = weight_info(structure)
    tags = [t for t, c in columns.items() if _usable(c)]
    unknown = {"rank": len(info), "trainable": None, "layer_class": ""}
    tags.sort(key=lambda t: (info.get(t, unknown)["rank"], t))
    return [(t, columns[t], info.get(t, unknown)) for t in tags]


def _finite_throughout(columns):
    return not any((n or 0) + (i or 0) > 0 for n, i in
                   zip(_values(columns, "nan"), _values(columns, "inf")))


def needs_units(columns, structure):
    """Tags whose per-unit update series `compute` needs (see `_maybe_dead`)."""
    return [t for t, c, meta in _judged(columns, structure)
            if meta["trainable"] and not _is_embedding(meta) and _finite_throughout(c)
            and _maybe_dead(c)]


def compute(columns, structure=None, units=None):
    """The findings of one run.

    Args:
      columns: {tag: stats columns} as `/stats?run=R` answers them (a tag
        mapping to {"error": ...} is skipped).
      structure: the run's structure document, or None.
      units: {tag: per-unit update series (see `_dead_units`)} for the tags
        `needs_units` named; a tag left out is not checked for dead units.

    Returns:
      A list of findings (dicts), ordered.
    """
    units = units or {}
    judged = _judged(columns, structure)
    rank = {tag: i for i, (tag, _, _) in enumerate(judged)}
    found = []
    still = {}
    for tag, c, meta in judged:
        bad = _nonfinite(tag, c)
        if bad is not None:
            found.append(bad)
        if meta["trainable"] is not False:  # moving statistics measure activations
            boom = _exploding(tag, c)
            if boom is not None:
                found.append(boom)
        if bad is None and meta["trainable"] is not False:
            shape = _alpha(tag, c)
            if shape is not None:
                found.append(shape)
        if bad is None and meta["trainable"]:
            still[tag] = _still(c)
            if tag in units and not _is_embedding(meta):
                dead = _dead_units(tag, c, units[tag])
                if dead is not None:
                    found.append(dead)
    _merge_layer_twins(found, rank)
    frozen = [t for t, s in still.items() if s]
    nothing_learns = bool(frozen) and not any(s is False for s in still.values())
    for tag in frozen:
        found.append(_frozen(tag, columns[tag], ERROR if nothing_learns else WARNING))
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
