"""Reads nnviz data back through a TensorBoard data provider.

`NNVizReader` answers the plugin's HTTP API (see http_api.md) as plain
JSON-able values, independent of HTTP: the plugin's routes are thin adapters
over its `*_impl` methods, and the CLI calls them directly on an in-process
provider (local_provider.py).

Frames come from blob sequences: the list of blob keys of each (run, tag) is
cached and re-read only when `list_blob_sequences` reports that the series
changed, so serving one frame costs a bisection and one `read_blob`, however
many steps the run has. A frame request checks for changes at most once per
`recheck_seconds` per series (the Python ingester's listing walks every
step, which would make a frame's cost grow with the run); /runs and /tags
always check. TensorBoard itself reloads every 5 s by default.

Errors are typed (errors.py: `NotFoundError` 404, `DataError` 422 for a
damaged or too-new item); anything the data provider raises as a
`tensorboard.errors.PublicError` passes through unchanged.

This module imports neither Keras nor TensorFlow.
"""

import bisect
import collections
import math
import threading
import time

import numpy as np

from tensorboard import context as tb_context
from tensorboard import errors as tb_errors
from tensorboard.data import provider as tb_provider

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.serve import findings as findings_lib
from tensorboard_nnviz.serve.errors import BadRequestError, DataError, NotFoundError

# "Keep everything": larger than any number of snapshots a run can hold.
_ALL = 1 << 30
# Decoded units series kept (the panel shows one tensor at a time; findings
# read only the tags with stopped units).
_UNITS_CACHED = 32
UNIT_STATS = ("norm", "update")


class _FrameSeries:
    """Blob keys of one (run, tag) frame series, by ascending step, and its
    decoded content (or why it cannot be decoded)."""

    def __init__(self, stamp, content, steps, keys, listed_at):
        self.stamp = stamp
        self.listed_at = listed_at  # when the provider was asked
        self.checked_at = listed_at  # last time it confirmed the stamp
        self.steps = steps
        self.keys = keys
        self.doc = None
        self.error = None
        try:
            self.doc = fmt.parse_content(content)
        except fmt.FormatError as e:
            self.error = str(e)


def _series_stamp(series):
    # TensorBoard gives plugins no reload hook: a series changed when any of
    # these did (new steps move max_step/max_wall_time, a rewrite moves
    # max_wall_time).
    return (
        series.max_step,
        series.max_wall_time,
        getattr(series, "max_length", None),  # blob sequences only
        series.plugin_content,
    )


def _layer_of(tag):
    return tag.rpartition("/")[0]


class NNVizReader:
    """Answers the nnviz HTTP API from a TensorBoard `DataProvider`.

    Args:
      data_provider: a `tensorboard.data.provider.DataProvider`.
      recheck_seconds: how long a frame request trusts the cached blob keys
        of a series before asking the provider whether it changed.

    Every `*_impl` takes the request's `RequestContext` (None: a default
    one, for callers outside a server) and experiment id.

    Example:

        provider, eid = local_provider.local_data_provider("logs/run1")
        reader = NNVizReader(provider)
        frame, step = reader.frame_impl(None, eid, ".", "dense/kernel")
    """

    def __init__(self, data_provider, recheck_seconds=1.0):
        self._provider = data_provider
        self._recheck_seconds = recheck_seconds
        self._lock = threading.Lock()
        self._frames = {}  # (eid, run, summary tag) -> _FrameSeries
        self._stats = {}  # (eid, run, summary tag) -> (stamp, columns)
        self._units = collections.OrderedDict()  # (eid, run, summary tag) -> _UnitsSeries
        self._findings = {}  # (eid, run) -> (stamps of the run's series, answer)

    # --- frame series ------------------------------------------------------

    def _list_frames(self, ctx, eid, runs=None, tags=None):
        """{run: {summary tag: BlobSequenceTimeSeries}} of our frame series,
        and the (monotonic) time it was asked."""
        listed_at = time.monotonic()
        listing = self._provider.list_blob_sequences(
            ctx,
            experiment_id=eid,
            plugin_name=fmt.PLUGIN_NAME,
            run_tag_filter=tb_provider.RunTagFilter(runs=runs, tags=tags),
        )
        frames = {
            run: {t: s for t, s in by_tag.items() if t.startswith(fmt.FRAME_PREFIX)}
            for run, by_tag in listing.items()
        }
        return frames, listed_at

    def _frame_series(self, ctx, eid, listing, listed_at):
        """{(run, summary tag): _FrameSeries} for `listing`, reading blob keys
        only for the series that changed since they were cached. Of two
        concurrent requests, the later listing wins the cache."""
        result = {}
        stale = []
        for run, by_tag in listing.items():
            for tag, series in by_tag.items():
                cached = self._frames.get((eid, run, tag))
                if cached is not None and cached.stamp == _series_stamp(series):
                    cached.checked_at = max(cached.checked_at, listed_at)
                    result[(run, tag)] = cached
                else:
                    stale.append((run, tag, series))
        if stale:
            data = self._provider.read_blob_sequences(
                ctx,
                experiment_id=eid,
                plugin_name=fmt.PLUGIN_NAME,
                downsample=_ALL,
                run_tag_filter=tb_provider.RunTagFilter(
                    runs={r for r, _, _ in stale}, tags={t for _, t, _ in stale}
                ),
            )
            with self._lock:
                for run, tag, series in stale:
                    datums = data.get(run, {}).get(tag, [])
                    entry = _index_blobs(_series_stamp(series), series.plugin_content, datums, listed_at)
                    current = self._frames.get((eid, run, tag))
                    if current is None or current.listed_at <= listed_at:
                        self._frames[(eid, run, tag)] = entry
                    result[(run, tag)] = entry
        return result

    def _forget_frames_except(self, eid, live):
        """Drops cached series of `eid` that are gone (a deleted run)."""
        with self._lock:
            for key in [k for k in self._frames if k[0] == eid and k[1:] not in live]:
                del self._frames[key]

    def _one_frame_series(self, ctx, eid, run, tag, recheck=False):
        summary_tag = fmt.frame_tag(tag)
        cached = self._frames.get((eid, run, summary_tag))
        if (
            not recheck
            and cached is not None
            and time.monotonic() - cached.checked_at < self._recheck_seconds
        ):
            return cached
        listing, listed_at = self._list_frames(ctx, eid, runs=[run], tags=[summary_tag])
        if summary_tag not in listing.get(run, {}):
            self._check_run(ctx, eid, run)
            raise NotFoundError("run %r has no weight tag %r" % (run, tag))
        return self._frame_series(ctx, eid, listing, listed_at)[(run, summary_tag)]

    def _check_run(self, ctx, eid, run):
        """Raises NotFoundError unless `run` holds nnviz data."""
        if not self._list_frames(ctx, eid, runs=[run])[0].get(run) and not self._list_tensors(
            ctx, eid, run
        ):
            raise NotFoundError("unknown run %r (no nnviz data)" % run)

    # --- tensor series (stats, structure) --------------------------------

    def _list_tensors(self, ctx, eid, run, tags=None):
        listing = self._provider.list_tensors(
            ctx,
            experiment_id=eid,
            plugin_name=fmt.PLUGIN_NAME,
            run_tag_filter=tb_provider.RunTagFilter(runs=[run], tags=tags),
        )
        return listing.get(run, {})

    def _read_tensors(self, ctx, eid, run, tags):
        data = self._provider.read_tensors(
            ctx,
            experiment_id=eid,
            plugin_name=fmt.PLUGIN_NAME,
            downsample=_ALL,
            run_tag_filter=tb_provider.RunTagFilter(runs=[run], tags=tags),
        )
        return data.get(run, {})

    # --- routes -------------------------------------------------------------

    def runs_impl(self, ctx, eid):
        """{"runs": [{"run", "steps", "tags"}]} for runs with nnviz frames."""
        ctx = ctx if ctx is not None else tb_context.RequestContext()
        listing, listed_at = self._list_frames(ctx, eid)
        series = self._frame_series(ctx, eid, listing, listed_at)
        self._forget_frames_except(eid, series)
        runs = []
        for run in sorted(listing):
            tags = listing[run]
            if not tags:
                continue
            steps = set()
            for tag in tags:
                steps.update(series[(run, tag)].steps)
            runs.append({"run": run, "steps": sorted(steps), "tags": len(tags)})
        return {"runs": runs}

    def tags_impl(self, ctx, eid, run):
        """{"tensors": [...]}: every weight tag of `run` with its frame geometry.

        A series this reader cannot decode is listed with an "error" (and
        what could be read); the other tags are unaffected.
        """
        ctx = ctx if ctx is not None else tb_context.RequestContext()
        listing, listed_at = self._list_frames(ctx, eid, runs=[run])
        if not listing.get(run):
            self._check_run(ctx, eid, run)
        series = self._frame_series(ctx, eid, listing, listed_at)
        tensors = []
        for summary_tag in sorted(listing.get(run, {})):
            _, tag = fmt.parse_summary_tag(summary_tag)
            entry = series[(run, summary_tag)]
            tensors.append(_tag_info(tag, entry))
        return {"tensors": tensors}

    def frame_impl(self, ctx, eid, run, tag, step=None):
        """Returns `(frame, step_served)`: the float32 2-D frame of `tag` at
        the largest snapshot step ≤ `step` (the latest when None)."""
        ctx = ctx if ctx is not None else tb_context.RequestContext()
        return self._frame(ctx, eid, run, tag, step, recheck=False)

    def _frame(self, ctx, eid, run, tag, step, recheck):
        entry = self._one_frame_series(ctx, eid, run, tag, recheck)
        if entry.error:
            raise DataError("weight %r of run %r: %s" % (tag, run, entry.error))
        if not entry.steps:
            raise NotFoundError("weight %r of run %r has no snapshots" % (tag, run))
        if step is None:
            i = len(entry.steps) - 1
        else:
            i = bisect.bisect_right(entry.steps, step) - 1
            if i < 0:
                raise NotFoundError(
                    "weight %r of run %r has no snapshot at or before step %d "
                    "(first: %d)" % (tag, run, step, entry.steps[0])
                )
        try:
            blob = self._provider.read_blob(ctx, blob_key=entry.keys[i])
        except tb_errors.NotFoundError:
            if recheck:
                raise
            # The cached key went stale (e.g. TensorBoard purged steps of a
            # restarted run): re-list once and answer from fresh data.
            return self._frame(ctx, eid, run, tag, step, recheck=True)
        try:
            frame = fmt.decode_frame(blob)
        except fmt.FormatError as e:
            raise DataError(
                "weight %r of run %r at step %d: %s" % (tag, run, entry.steps[i], e)
            )
        return frame, entry.steps[i]

    def stats_impl(self, ctx, eid, run, tag=None):
        """Stats columns of one tag, or {tag: columns} of every tag of `run`.

        With every tag, a series that cannot be decoded becomes
        {"error": message}; the others are served.
        """
        ctx = ctx if ctx is not None else tb_context.RequestContext()
        if tag is not None:
            summary_tag = fmt.stats_tag(tag)
            listing = self._list_tensors(ctx, eid, run, tags=[summary_tag])
            if summary_tag not in listing:
                self._check_run(ctx, eid, run)
                raise NotFoundError("run %r has no stats for weight %r" % (run, tag))
            return self._stats_columns(ctx, eid, run, listing)[summary_tag]
        listing = {
            t: s for t, s in self._list_tensors(ctx, eid, run).items() if t.startswith(fmt.STATS_PREFIX)
        }
        if not listing:
            self._check_run(ctx, eid, run)
        columns = self._stats_columns(ctx, eid, run, listing, per_item_errors=True)
        return {fmt.parse_summary_tag(t)[1]: c for t, c in sorted(columns.items())}

    def _stats_columns(self, ctx, eid, run, listing, per_item_errors=False):
        """{summary tag: columns} for `listing` (cached per series)."""
        result = {}
        stale = {}
        for tag, series in listing.items():
            cached = self._stats.get((eid, run, tag))
            if cached is not None and cached[0] == _series_stamp(series):
                result[tag] = cached[1]
            else:
                stale[tag] = series
        if stale:
            data = self._read_tensors(ctx, eid, run, list(stale))
            for tag, series in stale.items():
                try:
                    columns = _stats_columns(series.plugin_content, data.get(tag, []))
                except fmt.FormatError as e:
                    message = "stats of weight %r of run %r: %s" % (
                        fmt.parse_summary_tag(tag)[1],
                        run,
                        e,
                    )
                    if not per_item_errors:
                        raise DataError(message)
                    result[tag] = {"error": message}
                    continue
                with self._lock:
                    self._stats[(eid, run, tag)] = (_series_stamp(series), columns)
                result[tag] = columns
        return result

    def structure_impl(self, ctx, eid, run):
        """The latest model structure written to `run`."""
        ctx = ctx if ctx is not None else tb_context.RequestContext()
        listing = self._list_tensors(ctx, eid, run, tags=[fmt.STRUCTURE_TAG])
        if fmt.STRUCTURE_TAG not in listing:
            self._check_run(ctx, eid, run)
            raise NotFoundError("run %r has no model structure" % run)
        try:
            fmt.parse_content(listing[fmt.STRUCTURE_TAG].plugin_content)
            datums = self._read_tensors(ctx, eid, run, [fmt.STRUCTURE_TAG]).get(fmt.STRUCTURE_TAG)
            if not datums:
                raise NotFoundError("run %r has no model structure" % run)
            latest = max(datums, key=lambda d: d.step)
            return fmt.structure_from_array(latest.numpy)
        except fmt.FormatError as e:
            raise DataError("model structure of run %r: %s" % (run, e))


    # --- per-unit stats and findings ------------------------------------------

    def units_impl(self, ctx, eid, run, tag, stat):
        """Per-unit `stat` ("norm" or "update") of `tag` at every snapshot.

        Returns:
          `(cells, block, steps)`: float32 (rows, cols), one row per step of
          `stats_impl(run, tag)` (same order), one column per `block`
          consecutive units; NaN where undefined (an update at the first
          snapshot, a step without unit data).
        """
        ctx = ctx if ctx is not None else tb_context.RequestContext()
        if stat not in UNIT_STATS:
            raise BadRequestError(
                "parameter 'stat' must be one of %s, got %r" % (", ".join(UNIT_STATS), stat[:100]))
        units_tag, stats_tag = fmt.units_tag(tag), fmt.stats_tag(tag)
        listing = self._list_tensors(ctx, eid, run, tags=[units_tag, stats_tag])
        if units_tag not in listing or stats_tag not in listing:
            self._no_units(ctx, eid, run, tag, listing.get(stats_tag))
        # One listing for both: each is a round trip to the data provider
        # (RustBoard's over gRPC).
        steps = self._stats_columns(ctx, eid, run, {stats_tag: listing[stats_tag]})[stats_tag]["steps"]
        series = self._units_series(ctx, eid, run, {units_tag: listing[units_tag]})[units_tag]
        if series.error:
            raise DataError("per-unit stats of weight %r of run %r: %s" % (tag, run, series.error))
        cells = np.full((len(steps), series.cols), np.nan, np.float32)
        for i, step in enumerate(steps):
            row = series.rows.get(step)
            if row is not None and row[stat].shape == (series.cols,):
                cells[i] = row[stat]
        return cells, series.block, steps

    def _no_units(self, ctx, eid, run, tag, stats_series):
        """Raises the NotFoundError for a weight without a units series."""
        if stats_series is None:
            self._check_run(ctx, eid, run)
            raise NotFoundError("run %r has no weight tag %r" % (run, tag))
        if _content_version(stats_series.plugin_content) < fmt.UNITS_VERSION:
            raise NotFoundError(
                "weight %r of run %r was recorded before per-unit stats (nnviz format "
                "version 1): record the run again with this tensorboard_nnviz to see its "
                "units" % (tag, run))
        raise NotFoundError("weight %r of run %r has no per-unit stats" % (tag, run))

    def _units_series(self, ctx, eid, run, listing):
        """{summary tag: _UnitsSeries} for `listing` (a few kept, by stamp)."""
        result, stale = {}, {}
        for tag, series in listing.items():
            cached = self._units.get((eid, run, tag))
            if cached is not None and cached.stamp == _series_stamp(series):
                result[tag] = cached
            else:
                stale[tag] = series
        if stale:
            data = self._read_tensors(ctx, eid, run, list(stale))
            with self._lock:
                for tag, series in stale.items():
                    entry = _UnitsSeries(_series_stamp(series), series.plugin_content, data.get(tag, []))
                    self._units[(eid, run, tag)] = result[tag] = entry
                    self._units.move_to_end((eid, run, tag))
                while len(self._units) > _UNITS_CACHED:
                    self._units.popitem(last=False)
        return result

    def findings_impl(self, ctx, eid, run):
        """{"findings": [...]} of `run` (findings.py), computed once per
        state of its series and again when new steps arrive."""
        ctx = ctx if ctx is not None else tb_context.RequestContext()
        listing = self._list_tensors(ctx, eid, run)
        if not listing:
            self._check_run(ctx, eid, run)
        key = tuple(sorted((t, _series_stamp(s)) for t, s in listing.items()))
        cached = self._findings.get((eid, run))
        if cached is not None and cached[0] == key:
            return cached[1]
        stats = {t: s for t, s in listing.items() if t.startswith(fmt.STATS_PREFIX)}
        columns = {fmt.parse_summary_tag(t)[1]: c for t, c in
                   self._stats_columns(ctx, eid, run, stats, per_item_errors=True).items()}
        try:
            structure = self.structure_impl(ctx, eid, run)
        except (NotFoundError, DataError):
            structure = None  # findings from the stats alone
        wanted = {fmt.units_tag(t): listing[fmt.units_tag(t)]
                  for t in findings_lib.needs_units(columns, structure)
                  if fmt.units_tag(t) in listing}
        units = {}
        for summary_tag, series in self._units_series(ctx, eid, run, wanted).items():
            if not series.error:
                units[fmt.parse_summary_tag(summary_tag)[1]] = series.updates()
        answer = {"findings": findings_lib.compute(columns, structure, units)}
        if any(_content_version(s.plugin_content) < fmt.UNITS_VERSION for s in stats.values()):
            answer["notes"] = ["recorded before per-unit stats (nnviz format version 1): "
                               "dead units are not checked"]
        with self._lock:
            self._findings[(eid, run)] = (key, answer)
        return answer


class _UnitsSeries:
    """A decoded units series: {step: {field: float32 row}}, its column
    count and block, or why it cannot be decoded."""

    def __init__(self, stamp, content, datums):
        self.stamp = stamp
        self.rows = {}
        self.cols = 0
        self.block = 1
        self.units = 0
        self.error = None
        try:
            doc = fmt.parse_content(content)
            fields = doc.get("fields")
            if not isinstance(fields, list) or not set(UNIT_STATS) <= set(fields):
                raise fmt.FormatError("units metadata has no norm and update fields")
            self.block, self.units = int(doc["block"]), int(doc["units"])
            if self.block < 1 or self.units < 0:
                raise fmt.FormatError("units metadata has block %d, units %d" % (self.block, self.units))
            self.cols = -(-self.units // self.block)
            for d in sorted(datums, key=lambda d: d.step):
                if d.step not in self.rows:
                    self.rows[int(d.step)] = fmt.units_from_array(d.numpy, fields)
        except (fmt.FormatError, KeyError, TypeError, ValueError) as e:
            self.error = str(e)

    def updates(self):
        """The per-unit updates as `findings.compute` takes them."""
        steps = sorted(self.rows)
        return {"steps": steps, "update": [self.rows[s]["update"] for s in steps],
                "block": self.block, "units": self.units}


def _content_version(content):
    try:
        return fmt.parse_content(content)["version"]
    except fmt.FormatError:
        return fmt.FORMAT_VERSION  # unreadable: its own error says so elsewhere


def _index_blobs(stamp, content, datums, listed_at):
    """A _FrameSeries from read_blob_sequences' datums (one blob per step)."""
    by_step = {}
    for d in datums:
        if d.values and d.step not in by_step:
            by_step[d.step] = d.values[0].blob_key
    steps = sorted(by_step)
    return _FrameSeries(stamp, content, steps, [by_step[s] for s in steps], listed_at)


def _tag_info(tag, entry):
    info = {
        "tag": tag,
        "layer": _layer_of(tag),
        "shape": [],
        "rows": 0,
        "cols": 0,
        "downsampled": False,
        "layout": None,
        "steps": list(entry.steps),
    }
    if entry.error:
        info["error"] = "weight %r: %s" % (tag, entry.error)
        return info
    doc = entry.doc
    try:
        layout = doc["layout"]
        info.update(
            shape=[int(d) for d in doc["shape"]],
            rows=int(doc["rows"]),
            cols=int(doc["cols"]),
            downsampled=[int(b) for b in layout.get("block", [1, 1])] != [1, 1],
            layout=layout,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        info["error"] = "weight %r: malformed frame metadata (%s)" % (tag, e)
    return info


def _stats_columns(content, datums):
    """{"steps", "wall_times", <field>: [...]} from read_tensors' datums.

    Raises:
      FormatError: newer version, or a vector that does not match its fields.
    """
    doc = fmt.parse_content(content)
    fields = doc.get("fields")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise fmt.FormatError("stats metadata has no list of fields")
    # One vector per step: the last one written (the writer writes a step's
    # vectors again, complete, when it adds spectral stats at the end of a
    # run; record/writer.py); sorted() keeps the order they were written in.
    latest = {}
    for d in sorted(datums, key=lambda d: d.step):
        latest[int(d.step)] = d
    vectors = [d.numpy for d in latest.values()]
    steps = list(latest)
    wall_times = [float(d.wall_time) for d in latest.values()]
    if len({np.size(v) for v in vectors}) == 1 and np.size(vectors[0]) >= len(fields):
        table = np.stack(vectors).astype(np.float64, copy=False).reshape(len(vectors), -1)
    else:  # a series whose vectors changed length: each checked on its own
        table = np.array([fmt.stats_row(v, fields) for v in vectors], dtype=np.float64)
    table = table[:, : len(fields)].reshape(len(vectors), len(fields))
    columns = {"steps": steps, "wall_times": wall_times}
    for i, f in enumerate(fields):
        column = table[:, i]
        if np.isfinite(column).all():
            columns[f] = column.tolist()
        else:  # NaN and ±Inf → None
            columns[f] = [v if math.isfinite(v) else None for v in column.tolist()]
    # Runs recorded before the spectral stats (or with spectral=False) have
    # none: null, so every client finds the four columns.
    for f in fmt.SPECTRAL_FIELDS:
        columns.setdefault(f, [None] * len(steps))
    return columns
