"""A run's stats tables read from its event files on disk.

TensorBoard keeps every stats table (one per snapshot, format version 3)
and `run_stats.py` decodes them; read through the data provider they are
the whole run's tables at once, which on RustBoard crosses its gRPC
channel (tens of MB for a long run of many weights). Where the plugin
reads the run's event files itself, `DiskTables.read` gives run_stats the
same datums from the run's index (frame_index.py): each table one
positioned read, checksums checked, and each record read once: the
(step, wall time) of tables read before is kept, their cells are not
(run_stats keeps them decoded). Steps written again follow TensorBoard's
rules as for frames, so the last table of a step wins (docs/architecture.md,
"Whole-run answers").

Where the index has no table (no direct path, a run of an earlier
version) `read` answers None and run_stats reads through TensorBoard.

Reading a long run's tables is most of its first /stats (1,000 positioned
reads and protobuf parses for 1,000 snapshots). As TensorBoard loads runs
in the background before anyone asks, so does the plugin: once the
background thread has indexed the logdir's runs, `preread` reads their
tables (the newest run first, up to PREREAD_BYTES in all), and they wait,
by location, for the run's first `read`.

This module imports neither Keras nor TensorFlow.
"""

import logging
import threading

from google.protobuf import message as pb_message
from tensorboard.util import tensor_util

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.core import records
from tensorboard_nnviz.serve import frame_index

logger = logging.getLogger(__name__)

# Stats tables read ahead and not asked for yet, at most (record bytes,
# over all runs): a run of 320 weights x 1,000 snapshots has 56 MB.
PREREAD_BYTES = 64 << 20


class _Datum:
    """A stats table as the data provider gives it (step, wall_time,
    numpy); the cells are read when first asked for."""

    __slots__ = ("step", "wall_time", "_location", "_numpy")

    def __init__(self, step, wall_time, location, numpy=None):
        self.step = step
        self.wall_time = wall_time
        self._location = location
        self._numpy = numpy

    @property
    def numpy(self):
        if self._numpy is None:
            try:
                self._numpy = _read(self._location)[1]
            except OSError as e:  # gone since: run_stats skips the table, as a damaged one
                logger.warning("nnviz: cannot read %s: %s", self._location[0], e)
        return self._numpy


def _read(location, files=None):
    """(wall time, table array) of the stats table record at `location`
    (read through `files`, a `frame_index.OpenFiles`, when given); a
    damaged record gives None (run_stats skips it, as a table it cannot
    decode).

    Raises:
      OSError: the file cannot be read.
    """
    try:
        event = frame_index.read_event(location, files)
        for value in event.summary.value:
            if value.tag == fmt.STATS_TABLE_TAG:
                return event.wall_time, tensor_util.make_ndarray(value.tensor)
        raise fmt.FormatError("the record holds no stats table")
    except (records.RecordError, fmt.FormatError, pb_message.DecodeError, ValueError) as e:
        logger.warning("nnviz: skipped a damaged stats table in %s at byte %d: %s",
                       location[0], location[1], e)
        return float("nan"), None


class DiskTables:
    """Stats tables of runs the plugin reads itself.

    Args:
      indexes: a `frame_index.RunIndexes`.
    """

    def __init__(self, indexes):
        self._indexes = indexes
        self._lock = threading.Lock()
        self._walls = {}  # (eid, run) -> {location: wall time}
        self._ahead = {}  # location -> (wall time, table) read by `preread`
        self._ahead_bytes = 0
        self._prereading = {}  # RunIndex -> Event set when its preread ends

    def preread(self, index):
        """Reads the stats tables of a run just indexed (`index`), for its
        first `read`, while PREREAD_BYTES allows. A `read` of the run
        meanwhile waits for it (the same reads), so that none is left."""
        done = threading.Event()
        with self._lock:
            self._prereading[index] = done
        try:
            self._preread(index)
        finally:
            with self._lock:
                del self._prereading[index]
            done.set()

    def _preread(self, index):
        found = index.records(fmt.STATS_TABLE_TAG)
        if found is None:
            return
        _, steps, locations = found
        with frame_index.OpenFiles() as files:
            for i in range(len(steps)):
                location = locations[i]
                with self._lock:
                    if location in self._ahead:
                        continue
                    if self._ahead_bytes + location[2] > PREREAD_BYTES:
                        return
                try:
                    wall, table = _read(location, files)
                except OSError:
                    return  # read on first use, if still there
                if table is not None:
                    with self._lock:
                        self._ahead[location] = (wall, table)
                        self._ahead_bytes += location[2]

    def _read_ahead(self, location):
        """(wall time, table) of `location` if `preread` read it, else None."""
        with self._lock:
            found = self._ahead.pop(location, None)
            if found is not None:
                self._ahead_bytes -= location[2]
            return found

    def read(self, eid, run, series):
        """Every stats table of `run` in step order (one per step), as
        datums, or None if they are not on disk for the plugin to read.
        `series` is TensorBoard's listing of the table: an index behind it
        is refreshed first."""
        index = self._indexes.get(eid, run)
        with self._lock:
            prereading = self._prereading.get(index)
        if prereading is not None:
            prereading.wait()
        found = index and index.records(fmt.STATS_TABLE_TAG)
        if index is not None and (found is None or not found[1] or found[1][-1] < series.max_step):
            index = self._indexes.get(eid, run, refresh=True)
            found = index and index.records(fmt.STATS_TABLE_TAG)
        if found is None:
            return None
        _, steps, locations = found
        with self._lock:
            known = self._walls.get((eid, run), {})
        walls, datums = {}, []
        with frame_index.OpenFiles() as files:
            for i, step in enumerate(steps):
                location = locations[i]
                wall = known.get(location)
                ahead = self._read_ahead(location) if self._ahead else None
                if ahead is not None and wall is None:
                    wall, table = ahead
                    datums.append(_Datum(step, wall, location, table))
                elif wall is None:
                    try:
                        wall, table = _read(location, files)
                    except OSError as e:
                        logger.warning("nnviz: cannot read %s: %s", location[0], e)
                        return None  # the file went away: TensorBoard answers this time
                    if table is None:
                        continue
                    datums.append(_Datum(step, wall, location, table))
                else:
                    datums.append(_Datum(step, wall, location))
                walls[location] = wall
        with self._lock:
            self._walls[(eid, run)] = walls
        return datums

    def forget(self, eid, run):
        with self._lock:
            self._walls.pop((eid, run), None)
