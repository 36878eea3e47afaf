"""Time series read through TensorBoard's data provider, decoded once per state.

TensorBoard gives plugins no reload hook, so the reader tells a changed
series by its listing: `stamp` is what a listing reports about a series
(new steps move `max_step` and `max_wall_time`, a rewrite moves
`max_wall_time`). `SeriesCache` keeps each decoded series with the stamp it
was read at and reads again, in one bulk call for all of them, only the
series whose stamp moved. Frame and units series read through TensorBoard
go through it; a run's stats are kept by run_stats.py, with the same
`stamp` (docs/architecture.md, "The reader").

This module imports neither Keras nor TensorFlow.
"""

import collections
import threading

from tensorboard.data import provider as tb_provider

# "Keep everything": larger than any number of snapshots a run can hold.
ALL = 1 << 30


def stamp(series):
    """What a listing says about a series' state (equal: unchanged)."""
    return (
        series.max_step,
        series.max_wall_time,
        getattr(series, "max_length", None),  # blob sequences only
        series.plugin_content,
    )


_Entry = collections.namedtuple("_Entry", "stamp listed_at confirmed_at value")


class SeriesCache:
    """Decoded series by key, each re-read only when its stamp moves.

    Args:
      decode: `decode(plugin_content, datums)` → the decoded value (keep
        what cannot be decoded in the value: it is cached like the rest).
      max_entries: least recently used entries beyond this are dropped
        (None: no bound).
    """

    def __init__(self, decode, max_entries=None):
        self._decode = decode
        self._max_entries = max_entries
        self._entries = collections.OrderedDict()  # key -> _Entry
        self._lock = threading.Lock()

    def get(self, listing, read, listed_at=0.0):
        """{key: decoded value} for `listing` ({key: time series}).

        `read(keys)` → {key: datums} reads the stale series, all in one
        call. `listed_at` is when `listing` was asked: of two concurrent
        requests, the later listing wins the cache.
        """
        result, stale = {}, {}
        with self._lock:
            for key, series in listing.items():
                entry = self._entries.get(key)
                if entry is not None and entry.stamp == stamp(series):
                    self._entries[key] = entry._replace(
                        confirmed_at=max(entry.confirmed_at, listed_at))
                    self._entries.move_to_end(key)
                    result[key] = entry.value
                else:
                    stale[key] = series
        if not stale:
            return result
        data = read(list(stale))
        with self._lock:
            for key, series in stale.items():
                value = self._decode(series.plugin_content, data.get(key, []))
                current = self._entries.get(key)
                if current is None or current.listed_at <= listed_at:
                    self._entries[key] = _Entry(stamp(series), listed_at, listed_at, value)
                    self._entries.move_to_end(key)
                result[key] = value
            while self._max_entries is not None and len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return result

    def peek(self, key):
        """`(value, confirmed_at)`: the cached value and the last time a
        listing confirmed it, or None."""
        entry = self._entries.get(key)
        return None if entry is None else (entry.value, entry.confirmed_at)

    def forget_unless(self, keep):
        """Drops the entries whose key fails `keep(key)`."""
        with self._lock:
            for key in [k for k in self._entries if not keep(k)]:
                del self._entries[key]


class ProviderSeries:
    """Lists and bulk-reads one plugin's series of one kind (tensors or blob
    sequences) through the data provider, keyed `(eid, run, summary tag)`."""

    def __init__(self, provider, plugin_name, blob_sequences=False):
        self._provider = provider
        self._plugin_name = plugin_name
        kind = "blob_sequences" if blob_sequences else "tensors"
        self._list = getattr(provider, "list_" + kind)
        self._read = getattr(provider, "read_" + kind)

    def list(self, ctx, eid, runs=None, tags=None):
        """{run: {summary tag: time series}}."""
        return self._list(
            ctx,
            experiment_id=eid,
            plugin_name=self._plugin_name,
            run_tag_filter=tb_provider.RunTagFilter(runs=runs, tags=tags),
        )

    def reader(self, ctx, eid):
        """A `read` for `SeriesCache.get`: every datum of the keys' series."""

        def read(keys):
            data = self._read(
                ctx,
                experiment_id=eid,
                plugin_name=self._plugin_name,
                downsample=ALL,
                run_tag_filter=tb_provider.RunTagFilter(
                    runs={k[1] for k in keys}, tags={k[2] for k in keys}),
            )
            return {k: data.get(k[1], {}).get(k[2], []) for k in keys}

        return read
