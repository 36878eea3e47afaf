"""Reads nnviz data back through a TensorBoard data provider.

`NNVizReader` answers the plugin's HTTP API (see http_api.md) as plain
JSON-able values, independent of HTTP: the plugin's routes are thin adapters
over its `*_impl` methods, and the CLI calls them directly on an in-process
provider (local_provider.py).

Its parts (docs/architecture.md, "The reader"): `frames.py` finds which
steps each weight has and reads one frame, through TensorBoard for runs of
earlier versions and from the event files on disk for runs written now
(`disk_frames.py`, `frame_index.py`); `series.py` caches each decoded
series until its listing changes; `decode.py` turns a series' datums into
what a route serves.

Errors are typed (errors.py: `NotFoundError` 404, `DataError` 422 for a
damaged or too-new item); anything the data provider raises as a
`tensorboard.errors.PublicError` passes through unchanged.

This module imports neither Keras nor TensorFlow.
"""

import threading
import time

from tensorboard import context as tb_context
from tensorboard import errors as tb_errors

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.serve import decode
from tensorboard_nnviz.serve import disk_frames
from tensorboard_nnviz.serve import disk_stats
from tensorboard_nnviz.serve import disk_units
from tensorboard_nnviz.serve import findings_cache
from tensorboard_nnviz.serve import frame_index
from tensorboard_nnviz.serve import frames as frames_lib
from tensorboard_nnviz.serve import run_stats
from tensorboard_nnviz.serve import series as series_lib
from tensorboard_nnviz.serve.errors import BadRequestError, DataError, NotFoundError

# Decoded units series kept (the panel shows one tensor at a time; findings
# read only the tags with stopped units).
_UNITS_CACHED = 32
UNIT_STATS = decode.UNIT_STATS


def _context(ctx):
    return ctx if ctx is not None else tb_context.RequestContext()


def _no_quantity(run, tag, quantity, stats):
    """Raises the error for a weight without stats of `quantity`: the
    quantities' table is damaged (422), or it was not recorded (404)."""
    if stats.quantities_error:
        raise DataError(stats.quantities_error)
    if tag in stats.tags:
        raise NotFoundError("run %r has no %s recorded for weight %r" % (run, quantity, tag))
    raise NotFoundError("run %r has no weight tag %r" % (run, tag))


def check_quantity(quantity):
    """Raises BadRequestError unless `quantity` is a quantity's name."""
    if quantity not in fmt.ALL_QUANTITIES:
        raise BadRequestError("parameter 'quantity' must be one of %s, got %r"
                              % (", ".join(fmt.ALL_QUANTITIES), str(quantity)[:100]))


class NNVizReader:
    """Answers the nnviz HTTP API from a TensorBoard `DataProvider`.

    Args:
      data_provider: a `tensorboard.data.provider.DataProvider`.
      recheck_seconds: how long a frame request trusts what it knows of a
        frame series (blob keys, the frame index) before checking for new
        steps.
      clock: monotonic seconds, for the recheck window (tests pass their own).
      logdir: the local directory TensorBoard reads (`--logdir`), from
        which the frames of runs written now are read directly; None when
        the plugin cannot read it itself (then only the frames TensorBoard
        kept in memory are served).
      samples_per_plugin: samples per tag TensorBoard keeps, by plugin name
        (0: all), as TensorBoard's flag (default `format.SAMPLES_PER_PLUGIN`).
      warm: index the runs of `logdir` in the background from the start,
        then read their stats tables (the server does;
        frame_index.RunIndexes, disk_stats.DiskTables.preread).

    Every `*_impl` takes the request's `RequestContext` (None: a default
    one, for callers outside a server) and experiment id.

    Example:

        provider, eid = local_provider.local_data_provider("logs/run1")
        reader = NNVizReader(provider)
        frame, step = reader.frame_impl(None, eid, ".", "dense/kernel")
    """

    def __init__(self, data_provider, recheck_seconds=1.0, clock=time.monotonic, logdir=None,
                 samples_per_plugin=None, warm=False):
        samples = dict(fmt.SAMPLES_PER_PLUGIN, **(samples_per_plugin or {}))

        def provider_frames(plugin_name):
            return frames_lib.ProviderFrames(data_provider, plugin_name, recheck_seconds, clock,
                                             complete=samples[plugin_name] == 0)

        indexes = frame_index.RunIndexes(logdir, recheck_seconds, clock)
        self._tensors = series_lib.ProviderSeries(data_provider, fmt.PLUGIN_NAME)
        self._frames = frames_lib.Frames([
            provider_frames(fmt.PLUGIN_NAME),  # runs of earlier versions
            disk_frames.DiskFrames(data_provider, indexes,
                                   fallback=provider_frames(fmt.FRAMES_PLUGIN_NAME),
                                   cache=disk_frames.FrameCache()),
        ], clock)
        self._units = series_lib.SeriesCache(decode.UnitsSeries, max_entries=_UNITS_CACHED)
        self._disk_units = disk_units.DiskUnits(
            data_provider, indexes, complete=samples[fmt.UNITS_PLUGIN_NAME] == 0)
        self._lock = threading.Lock()
        self._disk_tables = disk_stats.DiskTables(indexes)
        if warm:
            indexes.warm(then=[self._disk_tables.preread])
        self._run_stats = run_stats.RunStatsCache(self._read_tensors, series_lib.stamp,
                                                  self._disk_tables.read)
        self._older_stats = {}  # (eid, run) with a stats table -> its per-weight stats series
        self._findings = findings_cache.FindingsCache()

    # --- listings -----------------------------------------------------------------

    def _list_tensors(self, ctx, eid, run, tags=None):
        return self._tensors.list(ctx, eid, runs=[run], tags=tags).get(run, {})

    def _read_tensors(self, ctx, eid, run, tags):
        """{summary tag: every datum} of `tags` (`nnviz` tensor series of `run`)."""
        keys = [(eid, run, t) for t in tags]
        return {key[2]: datums for key, datums in self._tensors.reader(ctx, eid)(keys).items()}

    def _check_run(self, ctx, eid, run):
        """Raises NotFoundError unless `run` holds nnviz data."""
        if not self._frames.list(ctx, eid, runs=[run])[0].get(run) and not self._list_tensors(
            ctx, eid, run
        ):
            raise NotFoundError("unknown run %r (no nnviz data)" % run)

    def _frame_series(self, ctx, eid, run, tag, recheck=False, quantity=fmt.WEIGHTS):
        entry = self._frames.one(ctx, eid, run, tag, recheck, quantity)
        if entry is None:
            self._check_run(ctx, eid, run)
            if quantity == fmt.WEIGHTS or self._frames.one(ctx, eid, run, tag) is None:
                raise NotFoundError("run %r has no weight tag %r" % (run, tag))
            if quantity in self._quantities_of(ctx, eid, run).get(tag, ()):
                raise NotFoundError(
                    "%s of weight %r of run %r was recorded without frames (its stats and "
                    "per-unit stats are there; record frames with quantity_frames)"
                    % (quantity, tag, run))
            raise NotFoundError("run %r has no %s recorded for weight %r" % (run, quantity, tag))
        return entry

    def _quantities_of(self, ctx, eid, run):
        """{weight tag: [quantity]} of the quantities recorded beside the
        run's weights (their per-unit series: every quantity has one)."""
        found = {}
        for summary_tag in sorted(self._disk_units.list(ctx, eid, run)):
            parsed = fmt.parse_quantity_tag(summary_tag)
            if parsed is not None and parsed[2] != fmt.WEIGHTS:
                found.setdefault(parsed[1], set()).add(parsed[2])
        return {tag: [q for q in fmt.QUANTITIES if q in qs] for tag, qs in found.items()}

    # --- routes -------------------------------------------------------------

    def runs_impl(self, ctx, eid):
        """{"runs": [{"run", "steps", "tags", "frame_steps"}]} for runs with
        nnviz frames; `frame_steps` is "all", or "kept" when only the frames
        TensorBoard kept in memory can be served."""
        ctx = _context(ctx)
        listing, listed_at = self._frames.list(ctx, eid)
        series = self._frames.series(ctx, eid, listing, listed_at)
        self._frames.forget_except(eid, series)
        runs = []
        for run in sorted(listing):
            tags = listing[run]
            if not tags:
                continue
            steps, complete = set(), True
            for tag in tags:
                steps.update(series[(run, tag)].steps)
                complete = complete and series[(run, tag)].complete
            runs.append({"run": run, "steps": sorted(steps), "tags": len(tags),
                         "frame_steps": "all" if complete else "kept"})
        return {"runs": runs}

    def tags_impl(self, ctx, eid, run):
        """{"tensors": [...]}: every weight tag of `run` with its frame geometry.

        A series this reader cannot decode is listed with an "error" (and
        what could be read); the other tags are unaffected.
        """
        ctx = _context(ctx)
        listing, listed_at = self._frames.list(ctx, eid, runs=[run])
        if not listing.get(run):
            self._check_run(ctx, eid, run)
        series = self._frames.series(ctx, eid, listing, listed_at)
        quantities = self._quantities_of(ctx, eid, run)
        framed = self._framed_quantities(ctx, eid, run, quantities)
        tensors = []
        for summary_tag in sorted(listing.get(run, {})):
            _, tag = fmt.parse_summary_tag(summary_tag)
            info = decode.tag_info(tag, series[(run, summary_tag)])
            info["quantities"] = [fmt.WEIGHTS] + quantities.get(tag, [])
            info["frame_quantities"] = [fmt.WEIGHTS] + [q for q in quantities.get(tag, [])
                                                        if (tag, q) in framed]
            tensors.append(info)
        return {"tensors": tensors}

    def _framed_quantities(self, ctx, eid, run, quantities):
        """{(weight tag, quantity)} of `quantities` that have frames."""
        wanted = {fmt.frame_tag(t, q): (t, q) for t, qs in quantities.items() for q in qs}
        if not wanted:
            return set()
        listing, _ = self._frames.list(ctx, eid, runs=[run], tags=list(wanted))
        return {wanted[t] for t in listing.get(run, {}) if t in wanted}

    def frame_impl(self, ctx, eid, run, tag, step=None, quantity=fmt.WEIGHTS):
        """Returns `(frame, step_served)`: the float32 2-D frame of `tag`
        (or of its `quantity`) at the largest snapshot step ≤ `step` (the
        latest when None)."""
        check_quantity(quantity)
        return self._frame(_context(ctx), eid, run, tag, step, recheck=False, quantity=quantity)

    def _frame(self, ctx, eid, run, tag, step, recheck, quantity=fmt.WEIGHTS):
        entry = self._frame_series(ctx, eid, run, tag, recheck, quantity)
        i = frames_lib.step_index(run, tag, entry, step)
        try:
            frame = entry.source.read(ctx, run, tag, entry.steps[i], entry.locations[i], quantity)
        except tb_errors.NotFoundError:
            if recheck:
                raise
            # The cached location went stale (e.g. TensorBoard purged steps
            # of a restarted run): re-list once and answer from fresh data.
            return self._frame(ctx, eid, run, tag, step, recheck=True, quantity=quantity)
        return frame, entry.steps[i]

    def stats_impl(self, ctx, eid, run, tag=None, fields=None, arrays=False,
                   quantity=fmt.WEIGHTS):
        """Stats columns of one tag, or {tag: columns} of every tag of `run`;
        only the stats named in `fields` (with steps and wall times) when
        given (an unknown name: BadRequestError). With `arrays`, each column
        is a numpy array, NaN where undefined (for http.json_response).
        `quantity`: the stats of that quantity of the weights (every tag
        that has it), not of the weights.

        With every tag, a series that cannot be decoded becomes
        {"error": message}; the others are served.
        """
        check_quantity(quantity)
        ctx = _context(ctx)
        stats = self._stats_of_run(ctx, eid, run) if tag is None else self._stats_of_tag(ctx, eid, run, tag)
        if fields is not None:
            run_stats.check_fields(fields, stats.known_fields())
        error = stats.error if quantity == fmt.WEIGHTS else stats.quantities_error
        of = stats.of(quantity)
        if tag is not None:
            found = of.get(tag)
            if found is None:
                if quantity != fmt.WEIGHTS:
                    _no_quantity(run, tag, quantity, stats)
                if error:
                    raise DataError(error)
                raise NotFoundError("run %r has no stats for weight %r" % (run, tag))
            if isinstance(found, str):
                raise DataError(found)
            return found.answer(fields, arrays, alone=True)
        if error and not of:
            raise DataError(error)
        if not of and quantity != fmt.WEIGHTS:
            raise NotFoundError("run %r has no %s recorded" % (run, quantity))
        return {t: {"error": s} if isinstance(s, str) else s.answer(fields, arrays)
                for t, s in of.items()}

    def _stats_of_run(self, ctx, eid, run):
        """run_stats.RunStats of `run` (NotFoundError: no such run)."""
        # Listing every tensor walks every datum on the Python ingester: a
        # run with a stats table lists the table, and once the per-weight
        # stats of the weights it names (a run continued across format 3).
        older = self._older_stats.get((eid, run), [])
        listing = self._list_tensors(ctx, eid, run,
                                     tags=[fmt.STATS_TABLE_TAG, fmt.QSTATS_TABLE_TAG] + older)
        if fmt.STATS_TABLE_TAG not in listing:  # written before format 3, or no stats yet
            listing = self._list_tensors(ctx, eid, run)
            if not listing:
                self._run_stats.forget(eid, run)
                self._disk_tables.forget(eid, run)
                self._findings.forget((eid, run))
                self._older_stats.pop((eid, run), None)
                self._check_run(ctx, eid, run)
            return self._run_stats.get(ctx, eid, run, listing)
        stats = self._run_stats.get(ctx, eid, run, listing)
        if (eid, run) not in self._older_stats:
            found = self._list_tensors(ctx, eid, run, tags=[fmt.stats_tag(t) for t in stats.tags])
            self._older_stats[(eid, run)] = sorted(found)
            if found:
                stats = self._run_stats.get(ctx, eid, run, dict(listing, **found))
        return stats

    def _stats_of_tag(self, ctx, eid, run, tag):
        """RunStats holding `tag`'s stats: of a run written before format 3,
        that weight's series alone (as the run's others are not needed)."""
        if (eid, run) not in self._older_stats:  # not known to have a stats table
            stats_tag = fmt.stats_tag(tag)
            listing = self._list_tensors(ctx, eid, run, tags=[stats_tag, fmt.STATS_TABLE_TAG])
            if stats_tag in listing and fmt.STATS_TABLE_TAG not in listing:
                return self._run_stats.get(ctx, eid, run, listing, part=tag)
        return self._stats_of_run(ctx, eid, run)

    def _series(self, cache, ctx, eid, run, listing):
        """{summary tag: decoded} of `listing` (tensor series of `run`) from `cache`."""
        found = cache.get({(eid, run, t): s for t, s in listing.items()},
                          self._tensors.reader(ctx, eid))
        return {key[2]: value for key, value in found.items()}

    def structure_impl(self, ctx, eid, run):
        """The latest model structure written to `run`."""
        ctx = _context(ctx)
        listing = self._list_tensors(ctx, eid, run, tags=[fmt.STRUCTURE_TAG])
        if fmt.STRUCTURE_TAG not in listing:
            self._check_run(ctx, eid, run)
            raise NotFoundError("run %r has no model structure" % run)
        try:
            fmt.parse_content(listing[fmt.STRUCTURE_TAG].plugin_content)
            key = (eid, run, fmt.STRUCTURE_TAG)
            datums = self._tensors.reader(ctx, eid)([key])[key]
            if not datums:
                raise NotFoundError("run %r has no model structure" % run)
            latest = max(datums, key=lambda d: d.step)
            return fmt.structure_from_array(latest.numpy)
        except fmt.FormatError as e:
            raise DataError("model structure of run %r: %s" % (run, e))

    # --- per-unit stats and findings ------------------------------------------

    def units_impl(self, ctx, eid, run, tag, stat, quantity=fmt.WEIGHTS):
        """Per-unit `stat` ("norm" or "update") of `tag` (or of its
        `quantity`) at every snapshot.

        Returns:
          `(cells, block, steps)`: float32 (rows, cols), one row per step of
          `stats_impl(run, tag, quantity=quantity)` (same order), one column
          per `block` consecutive units; NaN where undefined (an update at
          the first snapshot, a step without unit data).
        """
        ctx = _context(ctx)
        if stat not in UNIT_STATS:
            raise BadRequestError(
                "parameter 'stat' must be one of %s, got %r" % (", ".join(UNIT_STATS), stat[:100]))
        check_quantity(quantity)
        units_tag = fmt.units_tag(tag, quantity)
        stats = self._stats_of_tag(ctx, eid, run, tag)
        # Units of runs written before format 3 are `nnviz` tensor series;
        # of runs written now, rows on disk (`_units_of`).
        listing = self._list_tensors(ctx, eid, run, tags=[units_tag])
        series = self._units_of(ctx, eid, run, [units_tag], listing).get(units_tag)
        if series is None or not isinstance(stats.of(quantity).get(tag), run_stats.TagStats):
            if quantity != fmt.WEIGHTS:
                _no_quantity(run, tag, quantity, stats)
            self._no_units(run, tag, stats)
        steps = stats.of(quantity)[tag].steps.tolist()
        if series.error:
            raise DataError("per-unit stats of weight %r of run %r: %s" % (tag, run, series.error))
        return series.cells(stat, steps), series.block, steps

    def _units_of(self, ctx, eid, run, units_tags, listing):
        """{units summary tag: decode.UnitsSeries} of those of `units_tags`
        the run has: through TensorBoard where `listing` (the run's `nnviz`
        tensor series) has them (runs of earlier versions), else from disk
        (disk_units.py)."""
        kept = {t: listing[t] for t in units_tags if t in listing}
        found = self._series(self._units, ctx, eid, run, kept) if kept else {}
        rest = [t for t in units_tags if t not in kept]
        if rest:
            on_disk = self._disk_units.list(ctx, eid, run, tags=rest)
            if on_disk:
                found.update(self._disk_units.series(ctx, eid, run, on_disk))
        return found

    def _no_units(self, run, tag, stats):
        """Raises the error for a weight without a units series (or stats)."""
        if isinstance(stats.tags.get(tag), str):
            raise DataError(stats.tags[tag])
        if tag not in stats.tags:
            raise NotFoundError("run %r has no weight tag %r" % (run, tag))
        if stats.version < fmt.UNITS_VERSION:
            raise NotFoundError(
                "weight %r of run %r was recorded before per-unit stats (nnviz format "
                "version 1): record the run again with this tensorboard_nnviz to see its "
                "units" % (tag, run))
        raise NotFoundError("weight %r of run %r has no per-unit stats" % (tag, run))

    def findings_impl(self, ctx, eid, run):
        """{"findings": [...]} of `run` (findings.py), kept per run and
        extended with each new step (findings_cache.py)."""
        ctx = _context(ctx)
        stats = self._stats_of_run(ctx, eid, run)
        try:
            structure = self.structure_impl(ctx, eid, run)
        except (NotFoundError, DataError):
            structure = None  # findings from the stats alone

        def read_units(tags):
            units_tags = [fmt.units_tag(t) for t in tags]
            listing = self._list_tensors(ctx, eid, run, tags=units_tags)
            series = self._units_of(ctx, eid, run, units_tags, listing)
            return {fmt.parse_summary_tag(t)[1]: s for t, s in series.items() if not s.error}

        answer = {"findings": self._findings.findings((eid, run), stats, structure, read_units)}
        if stats.version < fmt.UNITS_VERSION:
            answer["notes"] = ["recorded before per-unit stats (nnviz format version 1): "
                               "dead units are not checked"]
        return answer
