"""Runs for tests, without Keras: written through the real writer, crafted
damage, and reading a run back independently of reader.py.

- `SyntheticWriter(run_dir)` / `write_synthetic_run(run_dir, steps)`: a
  healthy run of deterministic weights (`synthetic_weight`), written by the
  real `writer.SnapshotWriter`, so frames, stats and format are what a
  training process writes. Use one `SyntheticWriter` to add steps later
  (one event file, as a training process writes: a second file in the same
  second can sort before the first and be skipped by the Python ingester).
  `legacy=True` writes them as format version 2 did (`LegacyLayout`).
- `write_damaged_run`, `write_newer_structure_run`, `truncate_event_file`,
  `frame_record_ends`, `newer_content`, `write_events`: crafted damage;
  `full_disk_at`: writes of some steps fail as on a full disk.
- `snapshot_events`: values laid out in events as the writer does.
- `read_run(logdir)` and `steps_of`: a run read back with TensorBoard's
  `EventAccumulator`, not with reader.py.
- `reference_frame(w, layout)`: the layout rule in plain numpy.

Imports neither Keras nor TensorFlow.
"""

import json
import os
import time
import zlib

import numpy as np

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.record import eventfiles

# --- the layout rule, in plain numpy ------------------------------------------------


def reference_frame(w, layout):
    """transpose(W, row_axes + col_axes).reshape(Π rows, Π cols)."""
    rows = int(np.prod([w.shape[a] for a in layout["row_axes"]], dtype=np.int64))
    cols = int(np.prod([w.shape[a] for a in layout["col_axes"]], dtype=np.int64))
    return np.transpose(w, list(layout["row_axes"]) + list(layout["col_axes"])).reshape(rows, cols)


# --- healthy runs through the real writer ---------------------------------------------


def synthetic_weight(tag, shape, step, seed=0):
    """The deterministic weight `write_synthetic_run` writes for (tag, step)."""
    rng = np.random.default_rng([zlib.crc32(tag.encode("utf-8")), seed])
    base = rng.standard_normal(shape).astype(np.float32)
    return base + np.float32(0.01 * step)


def synthetic_structure(weights):
    """A structure document for {tag: shape}: one Dense layer per tag prefix."""
    layers = {}
    for tag, shape in weights.items():
        path, name = tag.rsplit("/", 1)
        layer = layers.setdefault(path, {
            "path": path, "class": "Dense", "params": 0, "trainable": True, "inbound": [],
            "output_shape": [None, int(shape[-1])], "weights": [],
        })
        layer["weights"].append({"name": name, "tag": tag, "shape": list(shape), "dtype": "float32"})
        layer["params"] += int(np.prod(shape))
    return {"model": {"name": "synthetic", "class": "Sequential"}, "layers": list(layers.values())}


def _is_frame(value):
    kind = fmt.parse_summary_tag(value.tag)
    return kind is not None and kind[0] == fmt.KIND_FRAME


def _is_alone(value):
    """A value the writer puts in an event of its own (a frame, units)."""
    return value.tag.startswith(fmt.DISK_PREFIXES)


class LegacyLayout:
    """Turns events as the writer writes them now into the layout of
    format version 2 (before frames and units had plugin names of their
    own and before the stats table): every value under `nnviz`, all of a
    snapshot's values in one event, the structure first, a stats vector
    per weight, contents of version 2. `convert(event)` returns the event
    to write, or None while it holds a value for its snapshot's event."""

    def __init__(self):
        self._alone = []

    def convert(self, event):
        if not event.HasField("summary"):
            return event
        values = list(event.summary.value)
        if values and all(_is_alone(v) for v in values):
            self._alone.extend(values)
            return None
        for v in self._alone:
            v.metadata.plugin_data.plugin_name = fmt.PLUGIN_NAME
        structure = [v for v in values if v.tag == fmt.STRUCTURE_TAG]
        others = [s for v in values if v.tag != fmt.STRUCTURE_TAG for s in _stats_vectors(v)]
        del event.summary.value[:]
        event.summary.value.extend(structure + self._alone + others)
        for v in event.summary.value:
            doc = json.loads(v.metadata.plugin_data.content)
            doc["version"] = 2
            v.metadata.plugin_data.content = json.dumps(doc, sort_keys=True).encode("utf-8")
        self._alone = []
        return event


def _stats_vectors(value):
    """A stats table value as the per-weight stats vectors of version 2;
    any other value as it is."""
    if value.tag != fmt.STATS_TABLE_TAG:
        return [value]
    header, cells = value.tensor.string_val
    tags, fields = fmt.parse_stats_table_header(header)
    rows = np.frombuffer(cells, "<f8").reshape(len(tags), len(fields))
    return [fmt.stats_value(tag, dict(zip(fields, row.tolist()))) for tag, row in zip(tags, rows)]


class _RecordingEvents:
    """The event file the writer writes to, keeping each frame as written
    (`legacy`: in the layout of earlier versions, `LegacyLayout`)."""

    def __init__(self, log_dir, written, legacy=False):
        self._events = eventfiles.new_writer(log_dir)
        self._written = written
        self._legacy = LegacyLayout() if legacy else None

    def add_event(self, event):
        for v in event.summary.value:
            if _is_frame(v):
                frame = fmt.decode_frame(v.tensor.string_val[0])
                self._written.setdefault(fmt.parse_summary_tag(v.tag)[1], {})[event.step] = frame
        if self._legacy is not None:
            event = self._legacy.convert(event)
            if event is None:
                return
        self._events.add_event(event)

    def flush(self):
        self._events.flush()

    def close(self):
        self._events.close()


class SyntheticWriter:
    """Writes nnviz snapshots of `synthetic_weight`s into one run without
    Keras, through the real `SnapshotWriter` (one event file, flushed after
    every snapshot; real stats; reduced frames in float16).

    The weights are "Dense" weights: frames are laid out rows [0..n-2],
    cols [n-1], block-reduced above `max_cells`.

    Args:
      logdir: the run's directory.
      weights: {tag: shape}; default a 4x3 Dense kernel and its bias.
      structure: write the model structure with the first snapshot.
      seed: varies the weights (see `synthetic_weight`).
      wall_time: the snapshots' wall time (default: now).
      legacy: write the snapshots as format version 2 did (frames and units
        under `nnviz`, in the snapshot's one event, with a stats vector per
        weight), so TensorBoard serves them.

    Attributes:
      written: {tag: {step: frame}}, each frame decoded from the event written.
    """

    def __init__(self, logdir, weights=None, structure=True, max_cells=65536, seed=0,
                 wall_time=None, legacy=False):
        from tensorboard_nnviz.record import writer as writer_lib

        self.weights = weights or {"dense/kernel": (4, 3), "dense/bias": (3,)}
        self.seed = seed
        self.wall_time = wall_time
        self.written = {tag: {} for tag in self.weights}
        self._structure = structure
        self._Weight = writer_lib.Weight
        self._events = None
        self._legacy = legacy
        os.makedirs(logdir, exist_ok=True)
        self._writer = writer_lib.SnapshotWriter(str(logdir), max_cells=max_cells,
                                                 event_writer_factory=self._open)

    def _open(self, log_dir):
        self._events = _RecordingEvents(log_dir, self.written, self._legacy)
        return self._events

    def write(self, steps):
        """Writes a snapshot at each step; returns when they are on disk."""
        for step in steps:
            weights = [self._Weight(tag, synthetic_weight(tag, shape, step, self.seed), "Dense",
                                    tag.rpartition("/")[0], "float32")
                       for tag, shape in self.weights.items()]
            structure = synthetic_structure(self.weights) if self._structure else None
            self._structure = False
            self._writer.write(step, weights, structure, wall_time=self.wall_time)
        self._writer.flush()
        if self._writer.failed_steps:
            raise RuntimeError("steps %s were not written" % self._writer.failed_steps)
        return self

    def add_event(self, event):
        """Appends a hand-made event to the same event file, after the snapshots."""
        self._writer.flush()
        self._events.add_event(event)
        self._events.flush()

    def close(self):
        self._writer.close()


def write_synthetic_run(logdir, steps, **kwargs):
    """Writes nnviz snapshots at `steps` into `logdir` (one run, one event
    file; see `SyntheticWriter`). Returns {tag: {step: frame}} written."""
    writer = SyntheticWriter(logdir, **kwargs)
    try:
        writer.write(steps)
    finally:
        writer.close()
    return writer.written


# --- crafted damage --------------------------------------------------------------------


def _event(step, values, wall_time=None):
    from tensorboard.compat.proto import event_pb2, summary_pb2

    return event_pb2.Event(
        step=int(step),
        wall_time=time.time() if wall_time is None else wall_time,
        summary=summary_pb2.Summary(value=values),
    )


def start_event(step):
    """A SessionLog.START event at `step`: a restarted job's marker (the
    Python ingester purges later steps at every one after the first)."""
    from tensorboard.compat.proto import event_pb2

    start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
    return event_pb2.Event(step=step, wall_time=time.time(), session_log=start)


def newer_content(content):
    """`content` (plugin_data.content bytes) claiming the next format version."""
    doc = json.loads(content)
    doc["version"] = fmt.FORMAT_VERSION + 1
    return json.dumps(doc).encode("utf-8")


def snapshot_events(step, values, wall_time=None):
    """The events the writer writes for one snapshot of `values`
    (`Summary.Value`s): each frame and units value in an event of its own,
    then the rest."""
    alone = [v for v in values if _is_alone(v)]
    rest = [v for v in values if not _is_alone(v)]
    return [_event(step, [v], wall_time) for v in alone] + ([_event(step, rest, wall_time)] if rest else [])


def write_events(logdir, events):
    """Writes `[(step, [Summary.Value])]` as one event file in `logdir`."""
    os.makedirs(logdir, exist_ok=True)
    writer = eventfiles.new_writer(logdir)
    try:
        for step, values in events:
            writer.add_event(_event(step, values))
    finally:
        writer.close()


def write_damaged_run(logdir):
    """A run with one healthy weight (`ok/kernel`), one whose frame at step 2
    has the wrong length (`short/kernel`), one whose frame and stats series
    are of a newer format version (`future/kernel`), and stats of `short/kernel`
    with a NaN. Returns {tag: {step: frame}} of the well-formed frames."""
    from tensorboard_nnviz.record import stats as stats_lib

    layout = {"row_axes": [0], "col_axes": [1], "groups": [], "block": [1, 1]}
    frames = {"ok/kernel": {}, "short/kernel": {}}
    events = []
    for step in (0, 1, 2, 3):
        values = []
        for tag in ("ok/kernel", "short/kernel", "future/kernel"):
            w = synthetic_weight(tag, (3, 2), step)
            content = fmt.frame_content(shape=[3, 2], dtype="float32", layout=layout, rows=3, cols=2)
            blob = fmt.encode_frame(w)
            stats = stats_lib.compute_stats(w)
            stats_content = fmt.stats_content()
            if tag == "short/kernel" and step == 2:
                blob = blob[:-4]
            elif tag in frames:
                frames[tag][step] = w
            if tag == "short/kernel":
                stats["mean"] = float("nan")
            if tag == "future/kernel":
                content = newer_content(content)
                stats_content = newer_content(stats_content)
            values.append(fmt.frame_value(tag, blob, content))
            values.append(fmt.stats_value(tag, stats, stats_content))
        events.append((step, values))
    write_events(logdir, events)
    return frames


def write_newer_structure_run(logdir):
    """A healthy one-weight run whose structure is of a newer format version."""
    writer = SyntheticWriter(logdir, weights={"d/kernel": (2, 2)}, structure=False)
    try:
        doc = synthetic_structure(writer.weights)
        writer.add_event(_event(0, [fmt.structure_value(doc, newer_content(fmt.structure_content()))]))
        writer.write([0, 1])
    finally:
        writer.close()


def frame_record_ends(data):
    """{step: end offset of that step's (last) frame record} in the bytes of
    an event file: where to cut to leave a step's frame whole or not."""
    from tensorboard.compat.proto import event_pb2

    from tensorboard_nnviz.core import records

    ends, offset = {}, 0
    while offset < len(data):
        end = offset + records.record_size(records.read_length(data[offset:offset + 12]))
        event = event_pb2.Event.FromString(records.record_data(data[offset:end]))
        if any(_is_frame(v) for v in event.summary.value):
            ends[event.step] = end
        offset = end
    return ends


def truncate_event_file(run_dir, fraction=0.6):
    """Cuts the run's (single) event file to `fraction` of its bytes, through
    the middle of a record. Returns the new size."""
    (path,) = eventfiles.event_files(run_dir)
    size = int(os.path.getsize(path) * fraction)
    with open(path, "r+b") as f:
        f.truncate(size)
    return size


def full_disk_at(monkeypatch, *steps):
    """Writing a snapshot event at one of `steps` fails with ENOSPC, as on
    a full disk, in the writer's event file (eventfiles.EventFile)."""
    from tensorboard.compat.proto import event_pb2

    from tensorboard_nnviz.record import eventfiles

    real_write = eventfiles.EventFile.write_pieces

    def failing_write(self, pieces):
        event = event_pb2.Event.FromString(b"".join(pieces))
        if event.step in steps and event.summary.value:
            raise OSError(28, "No space left on device")
        return real_write(self, pieces)

    monkeypatch.setattr(eventfiles.EventFile, "write_pieces", failing_write)


# --- reading a run back, independently of reader.py -----------------------------------


def read_run(logdir):
    """Reads an nnviz run back with TensorBoard's EventAccumulator.

    Returns a dict with
      "frames":   {weight_tag: {step: float32 2-D frame}},
      "stats":    {weight_tag: {step: {stat: float or None}}},
      "content":  {weight_tag: frame content dict},
      "structure": [(step, structure dict)],
      "wall_times": {weight_tag: {step: wall_time}},
      "units":    {weight_tag: {step: {"norm": float32 row, "update": float32 row}}},
      "units_content": {weight_tag: units content dict},
      "qframes", "qstats", "qunits", "qcontent", "qunits_content": the same
        of each quantity, keyed by (weight_tag, quantity) (`quantity_view`).
    """
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.util import tensor_util

    acc = ea.EventAccumulator(str(logdir), size_guidance={ea.TENSORS: 0})
    acc.Reload()
    out = {"frames": {}, "stats": {}, "content": {}, "structure": [], "wall_times": {},
           "units": {}, "units_content": {}, "qframes": {}, "qstats": {}, "qunits": {},
           "qcontent": {}, "qunits_content": {}}
    for summary_tag in acc.Tags()["tensors"]:
        parsed = fmt.parse_quantity_tag(summary_tag)
        if parsed is None:
            continue
        kind, tag, quantity = parsed
        content = fmt.parse_content(acc.SummaryMetadata(summary_tag).plugin_data.content)
        for e in acc.Tensors(summary_tag):
            array = tensor_util.make_ndarray(e.tensor_proto)
            if kind == fmt.KIND_STRUCTURE:
                out["structure"].append((e.step, fmt.structure_from_array(array)))
            elif kind == fmt.KIND_STATS_TABLE:
                tags, fields = fmt.parse_stats_table_header(fmt.stats_table_header(array))
                for t, row in zip(tags, fmt.stats_table_cells(array, tags, fields)):
                    out["stats"].setdefault(t, {})[e.step] = fmt.stats_from_array(row, fields)
            elif kind == fmt.KIND_QSTATS_TABLE:
                keys, fields = fmt.parse_qstats_table_header(fmt.stats_table_header(array))
                for key, row in zip(keys, fmt.stats_table_cells(array, keys, fields)):
                    out["qstats"].setdefault(key, {})[e.step] = fmt.stats_from_array(row, fields)
            elif kind == fmt.KIND_FRAME and quantity != fmt.WEIGHTS:
                out["qframes"].setdefault((tag, quantity), {})[e.step] = fmt.decode_frame(array[0])
                out["qcontent"][(tag, quantity)] = content
            elif kind == fmt.KIND_UNITS and quantity != fmt.WEIGHTS:
                out["qunits"].setdefault((tag, quantity), {})[e.step] = fmt.units_from_array(
                    array, content["fields"])
                out["qunits_content"][(tag, quantity)] = content
            elif kind == fmt.KIND_FRAME:
                out["frames"].setdefault(tag, {})[e.step] = fmt.decode_frame(array[0])
                out["content"][tag] = content
                out["wall_times"].setdefault(tag, {})[e.step] = e.wall_time
            elif kind == fmt.KIND_UNITS:
                out["units"].setdefault(tag, {})[e.step] = fmt.units_from_array(
                    array, content["fields"])
                out["units_content"][tag] = content
            else:
                out["stats"].setdefault(tag, {})[e.step] = fmt.stats_from_array(
                    array, content["fields"])
    return out


def steps_of(run):
    """Sorted snapshot steps (union over weight tags) of a run: its
    directory, or what `read_run` read from it."""
    run = run if isinstance(run, dict) else read_run(run)
    return sorted({s for frames in run["frames"].values() for s in frames})


def quantity_view(run, quantity):
    """One quantity of a `read_run` result shaped as the weights are
    ("frames", "stats", "units", "content", "units_content" keyed by tag),
    for the checks written for weights."""
    names = {"frames": "qframes", "stats": "qstats", "units": "qunits", "content": "qcontent",
             "units_content": "qunits_content"}
    return {name: {tag: v for (tag, q), v in run[key].items() if q == quantity}
            for name, key in names.items()}
