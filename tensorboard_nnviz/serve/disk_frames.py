"""Frames of runs written now, read from the run's event files on disk.

TensorBoard keeps only the latest frame of each weight under
`nnviz_frames` (format.SAMPLES_PER_PLUGIN); `DiskFrames` takes from it
which runs and weights there are and each series' content (TensorBoard's
listing), and from the run's frame index (frame_index.py) every step and
where its record lies. A frame is one positioned read, its checksums
checked and decoded, through a byte-bounded cache shared by all requests
(docs/architecture.md, "Frames from disk").

Where the plugin cannot read a run itself (no local logdir: --logdir_spec,
a gRPC data provider, a URL logdir; or a run directory that is not a
directory inside the logdir) the run's frames come from `fallback`, a
`frames.ProviderFrames` over the same plugin name: only what TensorBoard
kept.

This module imports neither Keras nor TensorFlow.
"""

import collections
import threading

from google.protobuf import message as pb_message

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.core import records
from tensorboard_nnviz.serve import decode
from tensorboard_nnviz.serve import frame_index
from tensorboard_nnviz.serve import frames as frames_lib
from tensorboard_nnviz.serve import series as series_lib
from tensorboard_nnviz.serve.errors import DataError, NotFoundError

# Decoded frames kept for all requests together (the panel keeps its own
# cache too; this one serves prefetches, several tabs and the CLI).
FRAME_CACHE_BYTES = 64 << 20


class FrameCache:
    """Decoded frames by key, least recently used dropped beyond `max_bytes`."""

    def __init__(self, max_bytes=FRAME_CACHE_BYTES):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._frames = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            frame = self._frames.get(key)
            if frame is not None:
                self._frames.move_to_end(key)
            return frame

    def put(self, key, frame):
        if frame.nbytes > self.max_bytes:
            return
        with self._lock:
            if key in self._frames:
                return
            self._frames[key] = frame
            self.bytes += frame.nbytes
            while self.bytes > self.max_bytes:
                _, old = self._frames.popitem(last=False)
                self.bytes -= old.nbytes


class DiskFrames:
    """Frame series under `nnviz_frames`, every step read from disk.

    Args:
      provider: the data provider (listings only).
      indexes: a `frame_index.RunIndexes` (it has none for a run the
        plugin cannot read itself: then everything comes from `fallback`).
      fallback: a `frames.ProviderFrames` over `nnviz_frames`.
      cache: a `FrameCache`.
    """

    def __init__(self, provider, indexes, fallback, cache):
        self._blobs = series_lib.ProviderSeries(provider, fmt.FRAMES_PLUGIN_NAME, blob_sequences=True)
        self._indexes = indexes
        self._fallback = fallback
        self._cache = cache
        self._lock = threading.Lock()
        self._contents = {}  # (eid, run, summary tag) -> content TensorBoard listed
        self._series = {}  # (eid, run, summary tag) -> (version, content, FrameSeries)

    def list(self, ctx, eid, runs=None, tags=None):
        return frames_lib.list_frames(self._blobs, ctx, eid, runs, tags)

    def series(self, ctx, eid, listing, listed_at):
        """{(run, summary tag): FrameSeries} of `listing`: from the index,
        refreshed first; from `fallback` where there is none."""
        result, fallback = {}, {}
        for run, by_tag in listing.items():
            index = self._indexes.get(eid, run, refresh=True)
            for tag, s in by_tag.items():
                self._contents[(eid, run, tag)] = s.plugin_content
                entry = index and self._entry(eid, run, tag, index)
                if entry is None:
                    fallback.setdefault(run, {})[tag] = s
                else:
                    result[(run, tag)] = entry
        if fallback:
            result.update(self._fallback.series(ctx, eid, fallback, listed_at))
        return result

    def forget_except(self, eid, live):
        self._fallback.forget_except(eid, live)
        self._indexes.forget_except(eid, {run for run, _ in live})
        with self._lock:
            for table in (self._contents, self._series):
                for key in [k for k in table if k[0] == eid and k[1:] not in live]:
                    del table[key]

    def one(self, ctx, eid, run, tag, recheck=False, quantity=fmt.WEIGHTS):
        """The FrameSeries of weight `tag` (or of its `quantity`), or None.
        TensorBoard is asked only the first time (or on `recheck`): a tag's
        content never changes, and the index finds new steps itself."""
        summary_tag = fmt.frame_tag(tag, quantity)
        content = self._contents.get((eid, run, summary_tag))
        if content is None or recheck:
            listing = self.list(ctx, eid, runs=[run], tags=[summary_tag])
            if summary_tag not in listing.get(run, {}):
                return None
            content = listing[run][summary_tag].plugin_content
            self._contents[(eid, run, summary_tag)] = content
        index = self._indexes.get(eid, run, refresh=recheck)
        entry = index and self._entry(eid, run, summary_tag, index)
        if entry is None:
            return self._fallback.one(ctx, eid, run, tag, recheck, quantity)
        return entry

    def _entry(self, eid, run, summary_tag, index):
        """The FrameSeries of a tag from `index` (kept while its records
        and content stay), or None if the index has no record of it."""
        key = (eid, run, summary_tag)
        content = self._contents[key]
        version = index.version(summary_tag)
        if version is None:
            return None
        cached = self._series.get(key)
        if cached is not None and cached[0] == version and cached[1] == content:
            return cached[2]
        version, steps, locations = index.records(summary_tag)
        entry = decode.FrameSeries(content, steps, locations, source=self)
        self._series[key] = (version, content, entry)
        return entry

    def read(self, ctx, run, tag, step, location, quantity=fmt.WEIGHTS):
        """The frame of `tag` (its `quantity`) at `step` in the record at
        `location`.

        Raises:
          NotFoundError: the event file is gone (the caller refreshes).
          DataError: the record is damaged.
        """
        summary_tag = fmt.frame_tag(tag, quantity)
        name = frames_lib.named(tag, quantity)
        key = (location, summary_tag)
        frame = self._cache.get(key)
        if frame is not None:
            return frame
        try:
            frame = frame_index.read_frame(location, summary_tag)
        except FileNotFoundError:
            raise NotFoundError("%s of run %r: its event file is gone" % (name, run))
        except OSError as e:
            raise DataError("%s of run %r at step %d: cannot read its event file (%s)"
                            % (name, run, step, e.strerror or e))
        except (records.RecordError, fmt.FormatError, pb_message.DecodeError) as e:
            raise DataError("%s of run %r at step %d: %s" % (name, run, step, e))
        self._cache.put(key, frame)
        return frame
