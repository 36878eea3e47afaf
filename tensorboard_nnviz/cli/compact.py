"""`compact`: a thinned copy of a finished run, written to a new directory.

Event files are append-only and TensorBoard misreads files rewritten under
it, so a run is never rewritten in place: `compact` reads the run's event
files and writes a new event file into `out`, which must be new or empty,
both with TensorBoard's own reader and writer (eventfiles.py); `thin`
decides what the copy keeps.

What the copy holds:

- the nnviz snapshots (frame, stats or stats table, and per-unit stats of
  every weight) at the kept steps: always the first and the last, and
  `keep` in all (fewer only when the run has fewer), chosen by
  `choose_steps`;
- every structure event, and every event and summary value that is not an
  nnviz snapshot (scalars, histograms, graphs, ...), untouched, in order.

Frames are copied byte for byte. The `update_*` stats of a kept snapshot
still measure the change since the snapshot before it in the original run
(the copy cannot recompute them: it holds no full-resolution weights).

This module imports neither Keras nor TensorFlow.
"""

import bisect
import math
import os

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.record import eventfiles

SPACINGS = ("log", "even")


class CompactError(ValueError):
    """The run cannot be compacted as asked (message says why)."""


def choose_steps(steps, keep, spacing="log"):
    """The snapshot steps to keep, sorted.

    Places `keep` targets between the first and the last step, evenly or
    log-spaced (dense early: target i sits at first + (span + 1) ** (i /
    (keep - 1)) - 1), and keeps for each the nearest snapshot not kept yet
    (ties go to the earlier one). The first and last are targets, so they
    are always kept, and exactly `min(keep, len(steps))` steps come back.

    Args:
      steps: the run's snapshot steps.
      keep: how many to keep (>= 2).
      spacing: "log" (default: training changes fastest early) or "even".
    """
    if spacing not in SPACINGS:
        raise CompactError("spacing must be one of %s, got %r" % (", ".join(SPACINGS), spacing))
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 2:
        raise CompactError("keep must be an int >= 2 (the first and last "
                           "snapshots are always kept), got %r" % (keep,))
    steps = sorted(set(int(s) for s in steps))
    if len(steps) <= keep:
        return steps
    first, span = steps[0], steps[-1] - steps[0]
    targets = []
    for i in range(keep):
        f = i / (keep - 1)
        offset = (span + 1) ** f - 1 if spacing == "log" else span * f
        targets.append(first + offset)
    # The ends first, so they are never taken by a neighbour's target.
    order = [0, keep - 1] + list(range(1, keep - 1))
    kept = set()
    for i in order:
        kept.add(_nearest_free(steps, targets[i], kept))
    return sorted(kept)


def _nearest_free(steps, target, taken):
    """The step nearest `target` not in `taken` (the earlier on a tie)."""
    j = bisect.bisect_left(steps, target)
    lo, hi = j - 1, j
    while True:
        while lo >= 0 and steps[lo] in taken:
            lo -= 1
        while hi < len(steps) and steps[hi] in taken:
            hi += 1
        d_lo = target - steps[lo] if lo >= 0 else math.inf
        d_hi = steps[hi] - target if hi < len(steps) else math.inf
        if d_lo == d_hi == math.inf:
            raise AssertionError("more targets than steps")  # callers prevent it
        return steps[lo] if d_lo <= d_hi else steps[hi]


def _is_snapshot_value(value):
    kind = fmt.parse_quantity_tag(value.tag)  # a weight's or a quantity's
    return kind is not None and kind[0] in (fmt.KIND_FRAME, fmt.KIND_STATS, fmt.KIND_UNITS,
                                            fmt.KIND_STATS_TABLE, fmt.KIND_QSTATS_TABLE)


def run_dir(logdir, run):
    """The directory of `run` ("." is the logdir itself)."""
    return os.path.normpath(os.path.join(os.fspath(logdir), run))


def read_events(path):
    """Every event of the run at `path`, in order (eventfiles.read_events).

    Raises:
      CompactError: the run's directory cannot be listed.
    """
    try:
        paths = eventfiles.event_files(path)
    except OSError as e:
        raise CompactError("cannot read run directory %r: %s" % (path, e))
    for name in paths:
        yield from eventfiles.read_file_events(name)


def snapshot_steps(path):
    """Sorted steps of the nnviz snapshots in the run at `path`."""
    steps = set()
    for event in read_events(path):
        if any(_is_snapshot_value(v) for v in event.summary.value):
            steps.add(event.step)
    return sorted(steps)


def _check_out(source, out):
    src, dst = os.path.realpath(source), os.path.realpath(out)
    if src == dst:
        raise CompactError("the output directory is the run itself (%r): compact "
                           "never rewrites a run in place; give a new directory" % out)
    if os.path.exists(out):
        if not os.path.isdir(out):
            raise CompactError("output %r exists and is not a directory" % out)
        if os.listdir(out):
            raise CompactError("output directory %r is not empty: give a new or "
                               "empty directory" % out)


def thin(events, kept):
    """The events of a thinned copy: `events` without the nnviz snapshots
    at steps not in `kept` (a pure generator; `events` are altered in place).

    Every other event and summary value (scalars, histograms, graphs, the
    structure) passes untouched, in order; an event left empty is dropped,
    and so is the `file_version` event (a new file has its own). Both
    TensorBoard ingesters take a series' metadata from its first value, so
    the metadata of a dropped first value moves to the next value kept.
    """
    pending_metadata = {}  # summary tag -> metadata of a dropped first value
    for event in events:
        if event.HasField("file_version"):
            continue
        if event.step not in kept and event.HasField("summary"):
            values = []
            for v in event.summary.value:
                if not _is_snapshot_value(v):
                    values.append(v)
                elif v.HasField("metadata"):
                    pending_metadata.setdefault(v.tag, v.metadata)
            if not values:
                continue
            del event.summary.value[:]
            event.summary.value.extend(values)
        else:
            for v in event.summary.value:
                metadata = pending_metadata.pop(v.tag, None)
                if metadata is not None and not v.HasField("metadata"):
                    v.metadata.CopyFrom(metadata)
        yield event


def compact(logdir, run, keep, out, spacing="log"):
    """Writes a thinned copy of `run` into the new directory `out`.

    Args:
      logdir: the TensorBoard logdir holding the run.
      run: the run's name, its directory relative to `logdir` ("." for
        `logdir` itself).
      keep: snapshots to keep (>= 2; first and last always kept).
      out: the new run directory (created; must not exist or be empty,
        and must not be the run's own directory).
      spacing: "log" (dense early, the default) or "even"; see
        `choose_steps`.

    Returns:
      dict: `source`, `out`, `steps` (of the run), `kept` (steps kept),
      `events_in`, `events_out`, `bytes_in`, `bytes_out`.

    Raises:
      CompactError: bad arguments, a missing run, a run without nnviz
        snapshots, or an unusable `out`. Nothing is written then.
    """
    source = run_dir(logdir, run)
    if not os.path.isdir(source):
        raise CompactError("run %r not found: %r is not a directory" % (run, source))
    _check_out(source, out)
    steps = snapshot_steps(source)
    if not steps:
        raise CompactError("run %r has no nnviz snapshots in %r" % (run, source))
    kept = set(choose_steps(steps, keep, spacing))

    os.makedirs(out, exist_ok=True)
    writer = eventfiles.new_writer(out, max_queue_size=16)
    counts = {"events_in": 0, "events_out": 0}

    def source_events():
        for event in read_events(source):
            counts["events_in"] += 1
            yield event

    try:
        for event in thin(source_events(), kept):
            writer.add_event(event)
            counts["events_out"] += 1
    finally:
        writer.close()
    return dict(
        counts,
        source=source,
        out=out,
        steps=steps,
        kept=sorted(kept),
        bytes_in=_bytes(eventfiles.event_files(source)),
        bytes_out=_bytes(eventfiles.event_files(out)),
    )


def _bytes(paths):
    return sum(os.path.getsize(p) for p in paths)
