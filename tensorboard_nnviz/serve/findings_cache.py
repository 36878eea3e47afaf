"""Findings kept per run and extended with each new snapshot.

`findings.compute` judges a run from scratch. Here each weight keeps a
small running summary of its stats (`_TagFold`: the first NaN, the first
explosion, whether it ever moved, alpha's last run on one side, ...) that
new rows extend, numpy over the new rows only, and `findings.assemble`
turns the summaries into the answer. Per-unit updates fold the same way
(`_UnitsFold`: per column, the last step it moved). The answer equals
`findings.compute` over the whole run at every point
(tests/test_findings_cache.py checks it on a growing run).

A weight whose rows were not only appended to (a new `TagStats.lineage`:
TensorBoard dropped steps of a restarted run) is folded again from its
first row.

This module imports neither Keras nor TensorFlow (numpy only).
"""

import bisect
import threading

import numpy as np

from tensorboard_nnviz.serve import findings as F


def _nz(values):
    """NaN (undefined) as 0, as the from-scratch rule's `value or 0`."""
    return np.where(np.isnan(values), 0.0, values)


def _opt(value):
    """A float, or None for NaN (as the /stats columns hold it)."""
    value = float(value)
    return None if value != value else value


class _TagFold:
    """What one weight's stats showed so far (rows [0, n) of its TagStats)."""

    def __init__(self, lineage):
        self.lineage = lineage
        self.n = 0
        self.first_bad = None  # (step, nan, inf) of the first snapshot with NaN/Inf
        self.last_bad = None
        self.first_l2 = None  # the first defined ||W||
        self.prev_l2 = np.nan  # ||W|| of row n - 1
        self.prev_step = None
        self.first_hit = None  # the first explosion (findings.exploding_finding's `hit`)
        self.last_hit = None
        self.moved = False  # some update_l2 > 0 after the first row
        self.updates = 0  # defined update_l2 after the first row
        self.side = None  # alpha: the side of its last run of defined values
        self.side_steps = []  # the steps of that run
        self.before_side = None  # the step of the defined alpha before that run
        self.last_alpha = None
        self.not_still = None  # the last step (after the first row) with units_still not > 0

    def extend(self, stats):
        """Folds rows n.. of `stats` (a TagStats of this lineage) in."""
        n = self.n
        if n >= len(stats):
            return
        steps = stats.steps[n:]
        self._nonfinite(steps, stats.column("nan", n), stats.column("inf", n))
        self._exploding(steps, stats.column("l2", n), stats.column("update_ratio", n), n)
        after_first = np.arange(n, len(stats)) > 0
        self._still(stats.column("update_l2", n)[after_first])
        self._alpha(steps, stats.column("alpha", n))
        still = stats.column("units_still", n)
        not_still = steps[after_first & ~(still > 0)]
        if len(not_still):
            self.not_still = int(not_still[-1])
        self.prev_step = int(steps[-1])
        self.n = len(stats)

    def _nonfinite(self, steps, nan, inf):
        nan, inf = _nz(nan), _nz(inf)
        bad = np.flatnonzero(nan + inf > 0)
        if not len(bad):
            return
        if self.first_bad is None:
            k = bad[0]
            self.first_bad = (int(steps[k]), float(nan[k]), float(inf[k]))
        self.last_bad = int(steps[bad[-1]])

    def _exploding(self, steps, l2, ratio, n):
        if self.first_l2 is None:
            defined = np.flatnonzero(~np.isnan(l2))
            if len(defined):
                self.first_l2 = float(l2[defined[0]])
        prev = np.concatenate([[self.prev_l2], l2[:-1]])
        prev_steps = np.concatenate([[-1 if self.prev_step is None else self.prev_step], steps[:-1]])
        with np.errstate(invalid="ignore"):
            grew = (l2 > F.GROWTH_LIMIT * self.first_l2) if self.first_l2 is not None else np.zeros(len(l2), bool)
            jumped = ((ratio > F.JUMP_LIMIT) & ~np.isnan(l2) & ~np.isnan(prev) & (prev != 0)
                      & (l2 > F.JUMP_GROWTH * prev))
        if n == 0:
            jumped[0] = False  # the first snapshot has no update
        hits = np.flatnonzero(grew | jumped)
        self.prev_l2 = l2[-1]
        if not len(hits):
            return
        if self.first_hit is None:
            k = hits[0]
            self.first_hit = {"step": int(steps[k]), "jumped": bool(jumped[k]), "ratio": _opt(ratio[k]),
                              "l2": _opt(l2[k]), "prev_l2": _opt(prev[k]),
                              "prev_step": int(prev_steps[k])}
        self.last_hit = int(steps[hits[-1]])

    def _still(self, updates):
        updates = updates[~np.isnan(updates)]
        self.moved = self.moved or bool((updates > 0).any())
        self.updates += len(updates)

    def _alpha(self, steps, alpha):
        defined = ~np.isnan(alpha)
        steps, alpha = steps[defined], alpha[defined]
        if not len(steps):
            return
        sides = np.where(alpha < F.ALPHA_LOW, -1, np.where(alpha > F.ALPHA_HIGH, 1, 0))
        change = np.flatnonzero(sides != sides[-1])
        if len(change):  # the last run begins inside these rows
            start = change[-1] + 1
            self.before_side = int(steps[change[-1]])
            self.side_steps = steps[start:].tolist()
        elif sides[-1] == self.side:
            self.side_steps.extend(steps.tolist())
        else:
            if self.side_steps:
                self.before_side = self.side_steps[-1]
            self.side_steps = steps.tolist()
        self.side = int(sides[-1])
        self.last_alpha = float(alpha[-1])

    # --- what it shows ----------------------------------------------------------------

    def kinds(self, tag, stats, units_fold=None):
        """The `findings.assemble` entry of this weight (see there)."""
        steps = stats.steps
        first, last = int(steps[0]), int(steps[-1])
        nonfinite = None if self.first_bad is None else F.nonfinite_finding(tag, self.first_bad, self.last_bad)
        exploding = None
        if self.first_l2 and self.first_hit is not None:
            exploding = F.exploding_finding(tag, self.first_hit, self.first_l2, self.last_hit)
        still = False if self.moved else (True if self.updates >= F.MIN_STILL_SNAPSHOTS else None)
        dead = None if units_fold is None else units_fold.finding(tag, steps)
        return {"nonfinite": nonfinite, "exploding": exploding, "alpha": self._alpha_finding(tag, first, last),
                "still": still, "span": (first, last, len(steps)), "dead": dead}

    def _alpha_finding(self, tag, first, last):
        start = last - F.ALPHA_WINDOW * (last - first)
        if self.before_side is not None and self.before_side >= start:
            return None  # the window holds both sides
        window = len(self.side_steps) - bisect.bisect_left(self.side_steps, start)
        if window < F.MIN_ALPHA_VALUES or self.side == 0:
            return None
        return F.alpha_finding(tag, self.side, self.side_steps[0], last, self.last_alpha)

    def maybe_dead(self, steps):
        """Some unit may have stood still over the last half of the run (as
        findings._maybe_dead)."""
        middle = (int(steps[0]) + int(steps[-1])) / 2.0
        window = len(steps) - int(np.searchsorted(steps, middle, side="right"))
        return window >= F.MIN_STILL_SNAPSHOTS and (self.not_still is None or self.not_still <= middle)


class _UnitsFold:
    """Per column of one weight's per-unit updates, the last step it moved
    (NaN counts as moved: not provably still), over the rows folded in so
    far: those at a stats step after the first."""

    def __init__(self, lineage):
        self.lineage = lineage
        self.done = []  # folded steps, ascending
        self.last_moved = None  # float64 per column, -inf where it never moved
        self.irregular = None  # a series whose rows change length: from scratch
        self.block = self.units = None

    def extend(self, steps, series):
        """Folds in the rows of `series` (decode.UnitsSeries) at `steps`
        (its weight's stats steps) not folded yet."""
        self.block, self.units = series.block, series.units
        if self.irregular is not None:
            self.irregular = series
            return
        done = set(self.done)
        new = [s for s in steps[1:].tolist() if s not in done and s in series.rows]
        if not new:
            return
        rows = np.array([series.rows[s]["update"] for s in new], dtype=np.float64) \
            if len({len(series.rows[s]["update"]) for s in new}) == 1 else None
        if rows is None or (self.last_moved is not None and rows.shape[1] != len(self.last_moved)):
            self.irregular = series
            return
        moved = ~(rows == 0)
        at = np.where(moved, np.asarray(new, dtype=np.float64)[:, None], -np.inf).max(axis=0)
        self.last_moved = at if self.last_moved is None else np.maximum(self.last_moved, at)
        for s in new:
            bisect.insort(self.done, s)

    def finding(self, tag, steps):
        if self.irregular is not None:  # rows of several lengths: the rule as written
            return F._dead_units(tag, {"steps": steps.tolist()}, self.irregular.updates())
        first, last = int(steps[0]), int(steps[-1])
        middle = (first + last) / 2.0
        window = len(steps) - int(np.searchsorted(steps, middle, side="right"))
        folded = len(self.done) - bisect.bisect_right(self.done, middle)
        if window < F.MIN_STILL_SNAPSHOTS or folded < window or self.last_moved is None:
            return None
        stopped = np.where(self.last_moved > -np.inf, self.last_moved, first).astype(np.int64)
        return F.dead_finding(tag, stopped, first, last, self.block, self.units)


class FindingsCache:
    """Findings per (experiment, run), extended as the run grows.

    `findings(key, stats, structure, read_units)`: stats is the run's
    `run_stats.RunStats`, structure its document (or None), and
    `read_units(tags)` returns {weight tag: decode.UnitsSeries} of those
    weights (the ones that may have dead units), read when asked for.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._runs = {}  # key -> _RunFindings

    def findings(self, key, stats, structure, read_units):
        with self._lock:
            run = self._runs.setdefault(key, _RunFindings())
        with run.lock:
            return run.update(stats, structure, read_units)

    def forget(self, key):
        """Drops what is kept of a run (gone from TensorBoard)."""
        with self._lock:
            self._runs.pop(key, None)


class _RunFindings:
    def __init__(self):
        self.lock = threading.Lock()
        self.tags = {}  # weight tag -> _TagFold
        self.units = {}  # weight tag -> _UnitsFold

    def update(self, stats, structure, read_units):
        usable = {t: s for t, s in stats.tags.items() if not isinstance(s, str) and len(s)}
        for gone in [t for t in self.tags if t not in usable]:
            del self.tags[gone]
        for tag, tag_stats in usable.items():
            fold = self.tags.get(tag)
            if fold is None or fold.lineage is not tag_stats.lineage or fold.n > len(tag_stats):
                fold = self.tags[tag] = _TagFold(tag_stats.lineage)
            fold.extend(tag_stats)
        order = F.model_order(usable, structure)
        wanted = [t for t, meta in order if meta["trainable"] and not F.is_embedding(meta)
                  and self.tags[t].first_bad is None and self.tags[t].maybe_dead(usable[t].steps)]
        series = read_units(wanted) if wanted else {}
        entries = []
        for tag, meta in order:
            units = None
            if tag in series:
                units = self.units.get(tag)
                if units is None or units.lineage is not usable[tag].lineage:
                    units = self.units[tag] = _UnitsFold(usable[tag].lineage)
                units.extend(usable[tag].steps, series[tag])
            entries.append((tag, meta, self.tags[tag].kinds(tag, usable[tag], units)))
        return F.assemble(entries, gradient_findings(stats, structure))


def gradient_findings(stats, structure):
    """`findings.gradient_findings` of a run's `run_stats.RunStats`, from
    its first gradient quantity (from scratch: two columns per tensor)."""
    for quantity in F.GRADIENT_QUANTITIES:
        tags = {t: s for t, s in stats.quantities.get(quantity, {}).items()
                if not isinstance(s, str) and len(s)}
        if tags:
            levels = {t: (s.steps, np.sqrt(s.column("mean") ** 2 + s.column("std") ** 2))
                      for t, s in tags.items()}
            return F.gradient_findings(quantity, levels, structure)
    return []
