"""When the callback takes a snapshot: `snapshot_freq` as schedule objects.

User-facing spellings (`NNVizCallback(snapshot_freq=...)`):

- `"epoch"`: at the end of every epoch (`EpochSchedule`).
- an int N: each time the step count crosses a multiple of N
  (`EverySchedule(N)`); with `steps_per_execution` k > 1 the batch hooks
  fire only every k steps, and a crossing is still seen once.
- `"log"`: log-spaced, dense early and sparse late, 10 per decade of steps
  (`LogSchedule()`); or `LogSchedule(per_decade=n)` for another density.

Every schedule answers `due(prev_step, step)`: whether a snapshot is due
after training went from `prev_step` to `step` (optimizer iterations seen
at the previous and at this hook). It is a pure function of its arguments,
so a hook that fires every k steps, twice at the same step, or after a gap
takes a snapshot exactly once per point it passed over, never twice.
`count(start, end)` is the number of snapshots due as training goes from
`start` to `end`, for the budget's "snapshots expected" figure.

The first snapshot (at `on_train_begin`) is the callback's business and is
not part of a schedule.

Shared by both recorders (the Keras callback and torch's `watch`):
`StepNumbers` keeps a log_dir's steps monotonic, `tag_filter` is the
`include` / `exclude` rule.

This module imports neither Keras nor TensorFlow.
"""

import math
import numbers
import re


class EpochSchedule:
    """A snapshot at the end of every epoch (that trained at least one step)."""

    per_epoch = True

    def due(self, prev_step, step):
        return step > prev_step

    def count(self, start, end, epochs=None):
        """Snapshots in a fit of `epochs` epochs (None when unknown)."""
        return epochs

    def __repr__(self):
        return '"epoch"'


class EverySchedule:
    """A snapshot each time the step count crosses a multiple of `n`."""

    per_epoch = False

    def __init__(self, n):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError("snapshot_freq must be a positive int, got %r" % (n,))
        self.n = int(n)

    def due(self, prev_step, step):
        return step // self.n > prev_step // self.n

    def count(self, start, end, epochs=None):
        if start is None or end is None:
            return None
        return max(0, end // self.n - start // self.n)

    def __repr__(self):
        return "%d" % self.n


class LogSchedule:
    """Log-spaced snapshots: dense early, sparse late.

    Snapshot points are the steps `round(10 ** (k / per_decade))` for
    k = 0, 1, 2, … (duplicates merged): with the default 10 per decade,
    steps 1 2 3 4 5 6 8 10 13 16 20 25 32 40 50 63 79 100 126 … — every
    step at first, then about `per_decade` snapshots per tenfold of steps:
    about 51 snapshots for 100,000 steps, 61 for a million.

    Args:
      per_decade: snapshot points per tenfold of steps (a positive number).
    """

    per_epoch = False

    def __init__(self, per_decade=10):
        if (isinstance(per_decade, bool) or not isinstance(per_decade, numbers.Real)
                or not math.isfinite(per_decade) or per_decade <= 0):
            raise ValueError("per_decade must be a positive number, got %r" % (per_decade,))
        self.per_decade = float(per_decade)

    def point(self, k):
        """The k-th snapshot point (non-decreasing in k)."""
        return int(math.floor(10.0 ** (k / self.per_decade) + 0.5))

    def next_point(self, step):
        """The smallest snapshot point strictly greater than `step`."""
        k = 0
        if step >= 1:
            # Start a little below the estimate and walk up, so float error
            # in the log never skips a point.
            k = max(0, int(math.floor(self.per_decade * math.log10(step))) - 2)
        while self.point(k) <= step:
            k += 1
        return self.point(k)

    def due(self, prev_step, step):
        return self.next_point(prev_step) <= step

    def count(self, start, end, epochs=None):
        if start is None or end is None:
            return None
        return len(self.points(end, start))

    def points(self, end, start=0):
        """All snapshot points in (start, end]."""
        out, p = [], self.next_point(start)
        while p <= end:
            out.append(p)
            p = self.next_point(p)
        return out

    def __repr__(self):
        return "LogSchedule(per_decade=%g)" % self.per_decade


def parse(snapshot_freq):
    """The schedule of a `snapshot_freq` argument.

    Raises:
      ValueError: not "epoch", "log", a positive int or a schedule object.
    """
    if isinstance(snapshot_freq, (EpochSchedule, EverySchedule, LogSchedule)):
        return snapshot_freq
    if isinstance(snapshot_freq, str):
        if snapshot_freq == "epoch":
            return EpochSchedule()
        if snapshot_freq == "log":
            return LogSchedule()
    elif isinstance(snapshot_freq, numbers.Integral) and not isinstance(snapshot_freq, bool):
        if snapshot_freq > 0:
            return EverySchedule(snapshot_freq)
    raise ValueError(
        "snapshot_freq must be 'epoch', 'log', a positive int or a "
        "tensorboard_nnviz.LogSchedule, got %r" % (snapshot_freq,)
    )


class StepNumbers:
    """The step of each snapshot written to one log_dir: the training count
    (Keras's optimizer iterations, torch's optimizer steps) moved past every
    step already written, so steps stay monotonic when the count goes back
    (a new optimizer) or the log_dir holds a later run's steps.

    Args:
      last: the last step already in the log_dir, or None.
    """

    def __init__(self, last=None):
        self.last = last
        self._offset = 0  # step = count + offset

    def step(self, count):
        """The step a snapshot at `count` would be written at."""
        step = count + self._offset
        if self.last is not None and step <= self.last:
            self._offset = self.last + 1 - count
            step = self.last + 1
        return step

    def written(self, step):
        self.last = step


def tag_filter(include=None, exclude=None):
    """`wanted(tag)` of the recorders' `include` / `exclude` regexes
    (`re.search`): a tag is recorded when `include` matches (or is None)
    and `exclude` does not.

    Raises:
      ValueError: `include` or `exclude` is not a regular expression.
    """
    inc = _regex("include", include)
    exc = _regex("exclude", exclude)

    def wanted(tag):
        return (inc is None or inc.search(tag) is not None) and (exc is None or not exc.search(tag))

    return wanted


def _regex(name, pattern):
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except (re.error, TypeError) as e:
        raise ValueError(
            "%s must be a regular expression, got %r (%s)" % (name, pattern, e)) from None
