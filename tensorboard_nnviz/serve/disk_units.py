"""Per-unit stats of runs written now, read from the run's event files.

TensorBoard keeps one sample per weight under `nnviz_units`
(format.SAMPLES_PER_PLUGIN): a units series is a row of (2, units) floats
per snapshot, and kept whole it would grow TensorBoard by those bytes
every snapshot (README, "Long runs"). `DiskUnits` takes each series'
content from TensorBoard's listing and its rows from the run's index
(frame_index.py): one positioned read per snapshot the first time, then
only the snapshots added since, through a byte-bounded cache
(docs/architecture.md, "Frames from disk").

Where the plugin cannot read a run itself, the series comes from
TensorBoard (`read_tensors` of what it kept), as for frames.

This module imports neither Keras nor TensorFlow.
"""

import collections
import logging
import threading

from google.protobuf import message as pb_message

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.core import records
from tensorboard_nnviz.serve import decode
from tensorboard_nnviz.serve import frame_index
from tensorboard_nnviz.serve import series as series_lib

logger = logging.getLogger(__name__)

# Rows of units series kept decoded, for all requests together.
UNITS_CACHE_BYTES = 128 << 20

_Datum = collections.namedtuple("_Datum", "step numpy")


class _Rows:
    """The rows read so far of one units series, by record location."""

    def __init__(self, content):
        self.content = content
        self.by_location = {}  # location -> _Datum, or None (damaged)
        self.nbytes = 0


class DiskUnits:
    """Units series under `nnviz_units`.

    Args:
      provider: the data provider (listings, and the fallback's reads).
      indexes: a `frame_index.RunIndexes`.
      complete: whether TensorBoard keeps every sample of `nnviz_units`
        (for the fallback's series).
      max_bytes: decoded rows kept, least recently used dropped first.
    """

    def __init__(self, provider, indexes, complete=False, max_bytes=UNITS_CACHE_BYTES):
        self._tensors = series_lib.ProviderSeries(provider, fmt.UNITS_PLUGIN_NAME)
        self._indexes = indexes
        self._fallback = series_lib.SeriesCache(decode.UnitsSeries, max_entries=32)
        self.complete = complete
        self._max_bytes = max_bytes
        self._rows = collections.OrderedDict()  # (eid, run, summary tag) -> _Rows
        self._bytes = 0
        self._lock = threading.Lock()

    def list(self, ctx, eid, run, tags=None):
        """{summary tag: time series} of the run's units series."""
        return self._tensors.list(ctx, eid, runs=[run], tags=tags).get(run, {})

    def series(self, ctx, eid, run, listing):
        """{summary tag: decode.UnitsSeries} of `listing` (from `list`)."""
        index = self._indexes.get(eid, run)
        if index is not None and any(_behind(index.records(t), s) for t, s in listing.items()):
            # TensorBoard has read a step the index has not (within its
            # refresh window): the rows must cover what the stats show.
            index = self._indexes.get(eid, run, refresh=True)
        result, fallback = {}, {}
        for tag, s in listing.items():
            found = index and index.records(tag)
            if found is None:
                fallback[(eid, run, tag)] = s
            else:
                result[tag] = self._from_disk((eid, run, tag), s.plugin_content, found)
        if fallback:
            read = self._fallback.get(fallback, self._tensors.reader(ctx, eid))
            result.update({key[2]: value for key, value in read.items()})
        return result

    def _from_disk(self, key, content, found):
        _, steps, locations = found
        with self._lock:
            rows = self._rows.get(key)
            if rows is None or rows.content != content:
                rows = _Rows(content)
            else:
                self._bytes -= rows.nbytes
                del self._rows[key]
        datums = []
        for i, step in enumerate(steps):
            location = locations[i]
            if location not in rows.by_location:
                try:
                    rows.by_location[location] = _read_row(step, location, key[2])
                except OSError as e:  # the file went away: read again next time
                    logger.warning("nnviz: cannot read %s: %s", location[0], e)
                    continue
                datum = rows.by_location[location]
                rows.nbytes += 0 if datum is None else datum.numpy.nbytes
            if rows.by_location[location] is not None:
                datums.append(rows.by_location[location])
        series = decode.UnitsSeries(content, datums)
        with self._lock:
            other = self._rows.pop(key, None)  # a concurrent request's
            self._bytes += rows.nbytes - (0 if other is None else other.nbytes)
            self._rows[key] = rows
            while self._bytes > self._max_bytes and len(self._rows) > 1:
                _, old = self._rows.popitem(last=False)
                self._bytes -= old.nbytes
        return series


def _behind(found, series):
    """Whether the index's records of a tag (`RunIndex.records`) end before
    the last step TensorBoard lists for it."""
    return found is None or not found[1] or found[1][-1] < series.max_step


def _read_row(step, location, summary_tag):
    """The units tensor of one record as a datum, or None if it is damaged
    (that step then has no unit data: NaN in /units, as any step without).

    Raises:
      OSError: the file cannot be read.
    """
    try:
        value = frame_index.read_value(location, summary_tag)
        return _Datum(step, fmt.units_array_of(value))
    except (records.RecordError, fmt.FormatError, pb_message.DecodeError) as e:
        logger.warning("nnviz: skipped damaged per-unit stats %s at step %d: %s",
                       summary_tag, step, e)
        return None
