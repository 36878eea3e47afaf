"""Series as TensorBoard's data provider returns them → what the routes serve.

Pure functions and small value classes for frames and per-unit stats, no
provider, no cache: `reader.py`, `frames.py` and `disk_units.py` feed them
the datums of one series (read once per state by `series.SeriesCache`, or
from disk). Stats are decoded a whole run at a time by run_stats.py. A series that cannot be decoded keeps why in its
value, so a damaged or too-new series fails alone.

This module imports neither Keras nor TensorFlow.
"""

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
