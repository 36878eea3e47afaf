"""Series as TensorBoard's data provider returns them → what the routes serve.

Pure functions and small value classes, no provider, no cache: `reader.py`
and `frames.py` feed them the datums of one series (read once per state by
`series.SeriesCache`). A series that cannot be decoded keeps why in its
value, so a damaged or too-new series fails alone.

This module imports neither Keras nor TensorFlow.
"""

import math

import numpy as np

from tensorboard_nnviz.core import format as fmt

UNIT_STATS = ("norm", "update")


def layer_of(tag):
    return tag.rpartition("/")[0]


def content_version(content):
    try:
        return fmt.parse_content(content)["version"]
    except fmt.FormatError:
        return fmt.FORMAT_VERSION  # unreadable: its own error says so elsewhere


# --- frames ---------------------------------------------------------------------


class FrameSeries:
    """Where each step of one frame series is (`locations[i]` for
    `steps[i]`, ascending), and its decoded content (or why it cannot be
    decoded).

    A location is whatever `source` (frames.py) reads the frame by.
    `complete` is False when the steps are only those TensorBoard kept in
    memory, not every step on disk.
    """

    def __init__(self, content, steps, locations, source=None, complete=True):
        self.steps = steps
        self.locations = locations
        self.source = source
        self.complete = complete
        self.doc = None
        self.error = None
        try:
            self.doc = fmt.parse_content(content)
        except fmt.FormatError as e:
            self.error = str(e)


def blob_series(content, datums, source=None, complete=True):
    """A FrameSeries from read_blob_sequences' datums: its blob keys, the
    first datum of each step."""
    by_step = {}
    for d in datums:
        if d.values and d.step not in by_step:
            by_step[d.step] = d.values[0].blob_key
    steps = sorted(by_step)
    return FrameSeries(content, steps, [by_step[s] for s in steps], source, complete)


def tag_info(tag, entry):
    """The `/tags` item of weight `tag` whose frames are `entry` (a FrameSeries)."""
    info = {
        "tag": tag,
        "layer": layer_of(tag),
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


# --- stats ------------------------------------------------------------------------


class StatsSeries:
    """The columns of one stats series, or why it cannot be decoded."""

    def __init__(self, content, datums):
        self.columns = None
        self.error = None
        try:
            self.columns = stats_columns(content, datums)
        except fmt.FormatError as e:
            self.error = str(e)


def stats_columns(content, datums):
    """{"steps", "wall_times", <field>: [...]} from read_tensors' datums.

    Raises:
      FormatError: newer version, or a vector that does not match its fields.
    """
    doc = fmt.parse_content(content)
    fields = doc.get("fields")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise fmt.FormatError("stats metadata has no list of fields")
    vectors, steps, wall_times, seen = [], [], [], set()
    for d in sorted(datums, key=lambda d: d.step):
        if d.step in seen:
            continue
        seen.add(d.step)
        vectors.append(d.numpy)
        steps.append(int(d.step))
        wall_times.append(float(d.wall_time))
    if not vectors:  # listed, but TensorBoard holds no step (e.g. all purged)
        table = np.zeros((0, len(fields)))
    elif len({np.size(v) for v in vectors}) == 1 and np.size(vectors[0]) >= len(fields):
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


# --- per-unit stats ---------------------------------------------------------------


class UnitsSeries:
    """A decoded units series: {step: {field: float32 row}}, its column
    count and block, or why it cannot be decoded."""

    def __init__(self, content, datums):
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

    def cells(self, stat, steps):
        """float32 (len(steps), cols) of `stat`, NaN where a step has none."""
        cells = np.full((len(steps), self.cols), np.nan, np.float32)
        for i, step in enumerate(steps):
            row = self.rows.get(step)
            if row is not None and row[stat].shape == (self.cols,):
                cells[i] = row[stat]
        return cells
