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

    def read(self, eid, run, series):
        """Every stats table of `run` in step order (one per step), as
        datums, or None if they are not on disk for the plugin to read.
        `series` is TensorBoard's listing of the table: an index behind it
        is refreshed first."""
        index = self._indexes.get(eid, run)
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
                if wall is None:
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
