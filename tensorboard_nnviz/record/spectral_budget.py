"""Which matrices get spectral stats at each snapshot: the writer's CPU budget.

The maths (eigenvalues, the power-law fit, `cost`) is core/spectral.py;
this module only decides what to spend, so it lives with the writer that
spends it (docs/architecture.md, "Spectral stats").
"""

class SpectralScheduler:
    """Chooses which matrices get spectral metrics at each snapshot.

    Pure bookkeeping (no clock): the writer asks `select` which tags to
    compute at this snapshot, computes them, and reports each one's CPU
    seconds with `record`. Tags not selected are written as null at this
    snapshot and come first at the next ones, so every matrix is refreshed
    in turn and none waits forever.

    The budget is a credit of CPU seconds. Each snapshot adds its allowance,
    the largest of: `budget`; `share` of the wall time since the previous
    snapshot (snapshots minutes apart can afford every matrix); and
    `writer_share` of the CPU seconds the writer spent on the rest of this
    snapshot (stats, frames, encoding), so the spectral work grows with the
    model instead of dwarfing a small model's snapshot. Unspent credit
    carries over up to `carry` allowances, and what a computation really
    took is taken off.
    Tags are served oldest first (never computed, then least recently
    computed, then model order); the first tag whose estimated cost exceeds
    the credit ends the selection, so a costly matrix is not passed over by
    cheap ones: the credit builds up until it fits. A matrix costing more
    than the cap is computed once the credit reaches the cap (the credit
    then goes negative and the next snapshots pay it back), so the cap never
    stops it for good and the average stays within the budget.

    Costs are the last measured seconds of a tag; a tag never timed is
    estimated from its operation count (`cost`) times the seconds per
    operation measured so far.

    Args:
      budget: CPU seconds per snapshot at least, or None for no limit (every
        matrix at every snapshot).
      share: fraction of the wall time between snapshots that may be spent.
      writer_share: fraction of the writer's other CPU time per snapshot
        that may be spent.
      carry: how many allowances of unspent budget the credit may hold.
      seconds_per_op: the initial guess of seconds per `cost` unit.
    """

    def __init__(self, budget=None, share=0.0, writer_share=0.0, carry=4,
                 seconds_per_op=3e-11):
        self.budget = None if budget is None else float(budget)
        self.share = float(share)
        self.writer_share = float(writer_share)
        self.carry = float(carry)
        self.credit = 0.0
        self.snapshot = 0
        self._seconds_per_op = float(seconds_per_op)
        self._last = {}  # tag → snapshot of its last computation
        self._seconds = {}  # tag → its last measured seconds
        self._ops = {}  # tag → operation count (from `select`)

    def allowance(self, elapsed=None, writer_seconds=None):
        """CPU seconds a snapshot adds to the credit.

        Args:
          elapsed: wall seconds since the previous snapshot (None: unknown,
            e.g. at the first snapshot).
          writer_seconds: CPU seconds the writer spent on this snapshot's
            stats and frames (None: unknown).
        """
        parts = [self.budget]
        if elapsed is not None and elapsed > 0:
            parts.append(self.share * float(elapsed))
        if writer_seconds is not None and writer_seconds > 0:
            parts.append(self.writer_share * float(writer_seconds))
        return max(parts)

    def estimate(self, tag):
        """Seconds `tag` is expected to take."""
        if tag in self._seconds:
            return self._seconds[tag]
        return self._ops.get(tag, 0.0) * self._seconds_per_op

    def select(self, ops, elapsed=None, writer_seconds=None):
        """The tags to compute at this snapshot, in order.

        Args:
          ops: `[(tag, operation count)]` of the matrices of this snapshot,
            in model order (operation count from `cost`).
          elapsed, writer_seconds: as for `allowance`.

        Returns:
          A list of tags (a subset of `ops`' tags).
        """
        self.snapshot += 1
        order = {}
        for position, (tag, op_count) in enumerate(ops):
            self._ops[tag] = float(op_count)
            order[tag] = position
        if self.budget is None:
            return list(order)
        costs = {tag: self.estimate(tag) for tag in order}
        allowance = self.allowance(elapsed, writer_seconds)
        cap = max(self.carry, 1.0) * allowance
        self.credit = min(self.credit + allowance, max(cap, self.credit))
        queue = sorted(order, key=lambda t: (self._last.get(t, -1), order[t]))
        chosen, planned = [], 0.0
        for tag in queue:
            over = planned + costs[tag] > self.credit * (1 + 1e-9)  # not on rounding alone
            if over and (chosen or self.credit < cap):
                break
            # The credit is at its cap and the oldest tag alone exceeds it:
            # computed anyway, once, so the cap cannot starve it.
            chosen.append(tag)
            planned += costs[tag]
        return chosen

    def record(self, tag, seconds):
        """Reports what computing `tag` took (CPU seconds) at this snapshot."""
        seconds = max(float(seconds), 0.0)
        self.credit -= seconds
        self._last[tag] = self.snapshot
        self._seconds[tag] = seconds
        ops = self._ops.get(tag)
        if ops:
            # Exponential average of seconds per operation, for tags not yet timed.
            self._seconds_per_op = 0.7 * self._seconds_per_op + 0.3 * seconds / ops

    def overspent(self):
        """True when a budgeted scheduler's credit is used up by what was
        recorded: the estimates were low (the first snapshots), and the
        rest of this snapshot's selection should wait."""
        return self.budget is not None and self.credit < 0


# The callback's `spectral=` option (see `scheduler_for`): "auto" spends per
# snapshot the most of AUTO_BUDGET CPU seconds, AUTO_SHARE of the wall time
# between snapshots and AUTO_WRITER_SHARE of the writer's other CPU time.
# Every matrix of a large model costs several times the rest of the
# writer's work, so "auto" refreshes a few matrices per snapshot, and all of
# them when snapshots are minutes apart. The share of wall time is small
# because on a CPU-only machine the writer's CPU is taken from training,
# and the whole callback aims at 2 % of fit time (what it costs per model:
# the README, "Spectral stats").
AUTO_BUDGET = 0.02
AUTO_SHARE = 0.01
AUTO_WRITER_SHARE = 0.5


def scheduler_for(option):
    """The scheduler for a `spectral=` option, or None for no spectral metrics.

    Args:
      option: False (off), True (every matrix at every snapshot), "auto"
        (see AUTO_BUDGET), or a number of CPU seconds per snapshot.

    Raises:
      ValueError: any other value.
    """
    if option is False or option is None:
        return None
    if option is True:
        return SpectralScheduler(None)
    if option == "auto":
        return SpectralScheduler(AUTO_BUDGET, share=AUTO_SHARE, writer_share=AUTO_WRITER_SHARE)
    if isinstance(option, (int, float)) and not isinstance(option, bool) and option > 0:
        return SpectralScheduler(float(option))
    raise ValueError("spectral must be True, False, \"auto\" or a positive number of seconds "
                     "per snapshot, got %r" % (option,))
