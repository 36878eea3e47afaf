"""The frame path: which steps each weight has, and one frame at a time.

Frames live in one of two places (docs/architecture.md, "Frames from
disk"), and a source serves each:

- `ProviderFrames`: frames TensorBoard holds as blob sequences, read
  through its data provider. Runs written by earlier versions keep every
  frame under `nnviz` (the loader keeps all of them); runs written now,
  where the plugin cannot read the logdir itself, only the frames
  TensorBoard kept under `nnviz_frames`. The blob keys of each (run, tag)
  are cached (`series.SeriesCache`) and re-read only when the listing
  reports that the series changed, so one frame costs a bisection and one
  `read_blob`, however many steps the run has.
- `disk_frames.DiskFrames`: runs written now, every frame read from the
  run's event files through an index.

`Frames` puts them together: a weight's frame series is in exactly one of
them (TensorBoard fixes a tag's plugin by its first value), and it
remembers which. A frame request checks for changes at most once per
`recheck_seconds` per series (the Python ingester's listing walks every
step, which would make a frame's cost grow with the run); /runs and /tags
always check.

This module imports neither Keras nor TensorFlow.
"""

import bisect
import functools
import threading

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.serve import decode
from tensorboard_nnviz.serve import series as series_lib
from tensorboard_nnviz.serve.errors import DataError, NotFoundError


def list_frames(blobs, ctx, eid, runs=None, tags=None):
    """{run: {summary tag: time series}} of the frame series `blobs` (a
    `series.ProviderSeries` of blob sequences) lists: the weights' frames,
    and of a quantity's only those named in `tags`."""
    listing = blobs.list(ctx, eid, runs=runs, tags=tags)
    return {
        run: {t: s for t, s in by_tag.items()
              if t.startswith(fmt.FRAME_PREFIX) or (tags is not None and t in tags)}
        for run, by_tag in listing.items()
    }


class ProviderFrames:
    """Frame series of one plugin name, read through the data provider.

    Args:
      provider: a `tensorboard.data.provider.DataProvider`.
      plugin_name: the plugin name the frames are written under.
      recheck_seconds: how long a frame request trusts the cached blob keys
        of a series before asking the provider whether it changed.
      clock: monotonic seconds (tests pass their own).
      complete: whether TensorBoard keeps every frame of this plugin (its
        `samples_per_plugin` is 0), so the series hold every step.
    """

    def __init__(self, provider, plugin_name, recheck_seconds, clock, complete=True):
        self._provider = provider
        self._blobs = series_lib.ProviderSeries(provider, plugin_name, blob_sequences=True)
        self._cache = series_lib.SeriesCache(
            functools.partial(decode.blob_series, source=self, complete=complete))
        self._recheck_seconds = recheck_seconds
        self._clock = clock

    def list(self, ctx, eid, runs=None, tags=None):
        """{run: {summary tag: time series}} of frame series."""
        return list_frames(self._blobs, ctx, eid, runs, tags)

    def series(self, ctx, eid, listing, listed_at):
        """{(run, summary tag): FrameSeries} of `listing`."""
        keyed = {(eid, run, tag): s for run, by_tag in listing.items() for tag, s in by_tag.items()}
        found = self._cache.get(keyed, self._blobs.reader(ctx, eid), listed_at)
        return {key[1:]: value for key, value in found.items()}

    def forget_except(self, eid, live):
        """Drops cached series of `eid` not in `live` ((run, tag) pairs: a deleted run)."""
        self._cache.forget_unless(lambda key: key[0] != eid or key[1:] in live)

    def one(self, ctx, eid, run, tag, recheck=False, quantity=fmt.WEIGHTS):
        """The FrameSeries of weight `tag` (or of its `quantity`), or None if
        the run has no such frame series (the provider is asked only past
        the recheck window)."""
        summary_tag = fmt.frame_tag(tag, quantity)
        cached = self._cache.peek((eid, run, summary_tag))
        if (not recheck and cached is not None
                and self._clock() - cached[1] < self._recheck_seconds):
            return cached[0]
        listed_at = self._clock()
        listing = self.list(ctx, eid, runs=[run], tags=[summary_tag])
        if summary_tag not in listing.get(run, {}):
            return None
        return self.series(ctx, eid, listing, listed_at)[(run, summary_tag)]

    def read(self, ctx, run, tag, step, location, quantity=fmt.WEIGHTS):
        """The frame of `tag` (its `quantity`) at `step`, stored at
        `location` (a blob key).

        Raises:
          tensorboard.errors.NotFoundError: the blob is gone (TensorBoard
            purged it: a restarted run); the caller lists again.
          DataError: the blob cannot be decoded.
        """
        return decode_blob(run, tag, step, self._provider.read_blob(ctx, blob_key=location),
                           quantity)


class Frames:
    """Every frame series, from whichever source holds it (first source
    first: a tag is in one only)."""

    def __init__(self, sources, clock):
        self._sources = sources
        self._clock = clock
        self._owner = {}  # (eid, run, summary tag) -> the source that listed it
        self._lock = threading.Lock()

    def list(self, ctx, eid, runs=None, tags=None):
        """({run: {summary tag: (source, time series)}}, when it was asked)."""
        listed_at = self._clock()
        merged = {}
        for source in self._sources:
            for run, by_tag in source.list(ctx, eid, runs=runs, tags=tags).items():
                into = merged.setdefault(run, {})
                for tag, s in by_tag.items():
                    into.setdefault(tag, (source, s))
        return merged, listed_at

    def series(self, ctx, eid, listing, listed_at):
        """{(run, summary tag): FrameSeries} of `listing` (from `list`)."""
        result = {}
        for source in self._sources:
            mine = {}
            for run, by_tag in listing.items():
                for tag, (owner, s) in by_tag.items():
                    if owner is source:
                        mine.setdefault(run, {})[tag] = s
            if mine:
                result.update(source.series(ctx, eid, mine, listed_at))
        with self._lock:
            for run, tag in result:
                self._owner[(eid, run, tag)] = listing[run][tag][0]
        return result

    def forget_except(self, eid, live):
        for source in self._sources:
            source.forget_except(eid, live)
        with self._lock:
            for key in [k for k in self._owner if k[0] == eid and k[1:] not in live]:
                del self._owner[key]

    def one(self, ctx, eid, run, tag, recheck=False, quantity=fmt.WEIGHTS):
        """The FrameSeries of weight `tag` of `run` (or of its `quantity`),
        or None."""
        key = (eid, run, fmt.frame_tag(tag, quantity))
        owner = self._owner.get(key)
        if owner is not None:
            entry = owner.one(ctx, eid, run, tag, recheck, quantity)
            if entry is not None:
                return entry
        for source in self._sources:
            if source is not owner:
                entry = source.one(ctx, eid, run, tag, recheck, quantity)
                if entry is not None:
                    with self._lock:
                        self._owner[key] = source
                    return entry
        return None


def step_index(run, tag, entry, step):
    """Index in `entry.steps` of the largest step ≤ `step` (the last when
    None); NotFoundError if there is none, DataError if `entry` is damaged."""
    if entry.error:
        raise DataError("weight %r of run %r: %s" % (tag, run, entry.error))
    if not entry.steps:
        raise NotFoundError("weight %r of run %r has no snapshots" % (tag, run))
    if step is None:
        return len(entry.steps) - 1
    i = bisect.bisect_right(entry.steps, step) - 1
    if i < 0:
        raise NotFoundError(
            "weight %r of run %r has no snapshot at or before step %d "
            "(first: %d)" % (tag, run, step, entry.steps[0])
        )
    return i


def decode_blob(run, tag, step, blob, quantity=fmt.WEIGHTS):
    """The float32 frame of a blob; DataError if it cannot be decoded."""
    try:
        return fmt.decode_frame(blob)
    except fmt.FormatError as e:
        raise DataError("%s of run %r at step %d: %s" % (named(tag, quantity), run, step, e))


def named(tag, quantity=fmt.WEIGHTS):
    """How messages name weight `tag`, or one of its quantities."""
    if quantity == fmt.WEIGHTS:
        return "weight %r" % tag
    return "%s of weight %r" % (quantity, tag)
