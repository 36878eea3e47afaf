"""The storage budget: frame precision, bytes per snapshot, the log line.

Precision on disk (why, with the measurements of benchmarks/precision.py
and benchmarks/scale.py: the README, "Storage and scale"):

- A tensor of up to `max_cells` cells is stored exactly, float32
  (`block == [1, 1]`).
- A block-reduced frame is stored as float16 (`REDUCED_ENCODING`): half
  the bytes, a rounding error of at most 2**-11 of the cell's value
  (absolute 2**-25 below 6.1e-5, float16's subnormals; block means beyond
  ±65504 read as ±inf, the stats keep the true values).
- Δ views: a block mean is linear, so the Δ of two reduced frames is the
  reduced Δ; after float16 rounding it is within 2**-11 (|a| + |b|) per
  cell: faithful for updates well above that rounding, noise for smaller
  ones. Δ has no frames of its own (they would cost as much as float32
  frames); the full-resolution `update_l2` / `update_absmax` stats stay
  exact.

`snapshot_bytes` is exact: it sizes the very protos the writer writes
(the frame and units `Summary.Value`s of every tensor, the snapshot's stats
table, the events and their record framing: one event per frame and per
units value, one for the stats table), so `bytes per snapshot × snapshots`
is the event-file growth, structure aside.

This module imports neither Keras nor TensorFlow.
"""

import collections

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.core import layout as layout_lib
from tensorboard_nnviz.record import stats as stats_lib

REDUCED_ENCODING = fmt.ENCODING_F16
# A quantity's frame (the gradient's, the optimizer's moments) is an overview
# beside its weight's: at most this many cells, so framing the gradient by
# default keeps a snapshot within 1.5x the weights' bytes (README, "Gradients
# and optimizer state"). Its stats and per-unit stats stay full resolution.
QUANTITY_MAX_CELLS = 4096
_RECORD_FRAMING = 16  # TFRecord: u64 length, u32 crc, data, u32 crc

# What the budget needs to know of one weight.
TensorSpec = collections.namedtuple("TensorSpec", "tag shape layer_class layer_name dtype")
TensorSpec.__new__.__defaults__ = ("", "", "float32")


def cell_budget(quantity, max_cells):
    """The frame cell budget of a weight (`max_cells`) or of a quantity."""
    return max_cells if quantity == fmt.WEIGHTS else min(max_cells, QUANTITY_MAX_CELLS)


def frame_encoding(block):
    """The encoding of a frame reduced by `block` ([1, 1] = exact → float32)."""
    return fmt.ENCODING_F32 if list(block) == [1, 1] else REDUCED_ENCODING


def spec(item):
    """A `TensorSpec` from a shape, a `TensorSpec`, a `structure.WeightRef`,
    or an object with `.shape` (and optionally `.tag`, `.layer_class`,
    `.layer_name`)."""
    if isinstance(item, TensorSpec):
        return item
    source = getattr(item, "variable", item)  # structure.WeightRef: its variable
    shape = getattr(source, "shape", None)
    if shape is not None:
        return TensorSpec(
            getattr(item, "tag", "w") or "w",
            tuple(int(d) for d in shape),
            getattr(item, "layer_class", "") or "",
            getattr(item, "layer_name", "") or "",
            _dtype_name(getattr(item, "dtype", None) or getattr(source, "dtype", None)),
        )
    return TensorSpec("w", tuple(int(d) for d in item))


def _dtype_name(dtype):
    if dtype is None:
        return "float32"
    return str(getattr(dtype, "name", dtype))


def frame_layout(s):
    """`(layout, (R, C))`: the layout the writer chooses for spec `s` (without
    its `block`) and the unreduced layout's rows and columns."""
    s = spec(s)
    weight_name = s.tag.rsplit("/", 1)[-1]
    layout = layout_lib.choose_layout(s.layer_class, weight_name, s.shape, s.layer_name)
    return layout, layout_lib.layout_size(layout, s.shape)


def _frame(s, max_cells):
    """`(layout, rows, cols, block)` of the frame the writer makes for spec `s`."""
    s = spec(s)
    layout, (rows, cols) = frame_layout(s)
    block = layout_lib.frame_block(layout, s.shape, max_cells)  # the writer's own choice
    return layout, -(-rows // block[0]), -(-cols // block[1]), block


def frame_size(s, max_cells=65536):
    """`(rows, cols, block)` of the frame of spec `s` at `max_cells`."""
    return _frame(s, max_cells)[1:]


def _varint_len(n):
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


def _field_len(payload_len):
    """Bytes of a length-delimited proto field (one-byte key) of this payload."""
    return 1 + _varint_len(payload_len) + payload_len


def _event_bytes(summary_len, step):
    """Bytes on disk of one event record holding a summary of `summary_len`."""
    # Event: wall_time (a double, 9 bytes), step (key + varint), summary.
    event_len = 9 + (1 + _varint_len(int(step)) if step else 0) + _field_len(summary_len)
    return event_len + _RECORD_FRAMING


def tensor_bytes(s, max_cells=65536, reduced_encoding=None, step=100000):
    """On-disk bytes one weight adds to a snapshot besides its row of the
    stats table: the events of its frame and of its per-unit stats (see
    `snapshot_bytes`).

    Args:
      s: a shape or spec (see `spec`).
      max_cells: the callback's `max_cells`.
      reduced_encoding: encoding of reduced frames (default
        `REDUCED_ENCODING`); exact frames are always float32.
      step: the snapshot's step (sizes its varint).
    """
    s = spec(s)
    layout, rows, cols, block = _frame(s, max_cells)
    if block == [1, 1]:
        encoding = fmt.ENCODING_F32
    else:
        encoding = REDUCED_ENCODING if reduced_encoding is None else reduced_encoding
    content = fmt.frame_content(shape=s.shape, dtype=s.dtype, layout=dict(layout, block=block),
                                rows=rows, cols=cols)
    # The real protos, with a blob of zeros of the real length.
    blob = bytes(fmt.frame_blob_size(rows, cols, encoding))
    frame_len = fmt.frame_value(s.tag, blob, content).ByteSize()
    units_len = _units_bytes(s, layout)
    return _event_bytes(_field_len(frame_len), step) + _event_bytes(_field_len(units_len), step)


def _stats_table_bytes(tensors):
    """Bytes of one snapshot's stats table value of `tensors` (specs)."""
    if not tensors:
        return 0
    rows = [{}] * len(tensors)
    return _field_len(fmt.stats_table_value([t.tag for t in tensors], rows).ByteSize())


def _units_bytes(s, layout):
    """Bytes of the per-unit stats value of spec `s` (see writer.py)."""
    unit_axes = layout["unit_axes"]
    units = stats_lib.unit_count(s.shape, unit_axes)
    block = stats_lib.unit_block(units, fmt.MAX_UNITS)
    cols = -(-units // block)
    content = fmt.units_content(unit_axes=unit_axes, units=units, block=block)
    return fmt.units_value(s.tag, [0.0] * cols, None, content).ByteSize()


def snapshot_bytes(tensors, max_cells=65536, reduced_encoding=None, step=100000):
    """On-disk bytes of one snapshot of `tensors` (shapes or specs): one
    event per frame and per weight's units, then one with the stats table
    of every weight.

    `step` only sizes its varint (1 byte below 128, 3 bytes up to 2 million).
    """
    specs = [spec(t) for t in tensors]
    weights = sum(tensor_bytes(t, max_cells, reduced_encoding, step) for t in specs)
    return weights + _event_bytes(_stats_table_bytes(specs), step)


def frame_cells(tensors, max_cells=65536):
    """Total frame cells of one snapshot (exact and reduced)."""
    total = 0
    for t in tensors:
        rows, cols, _ = frame_size(t, max_cells)
        total += rows * cols
    return total


def expected_snapshots(schedule, epochs=None, steps_per_epoch=None, start=0, first=True):
    """Snapshots a `fit` will take, or None when it cannot be known.

    Args:
      schedule: from `schedule.parse`.
      epochs: epochs of this fit (Keras `params["epochs"]`).
      steps_per_epoch: Keras `params["steps"]` (None for an unsized dataset).
      start: optimizer iterations when the fit begins.
      first: whether the fit takes a first snapshot at its start.
    """
    if schedule.per_epoch:
        n = schedule.count(None, None, epochs=epochs)
    elif epochs is None or steps_per_epoch is None:
        n = None
    else:
        n = schedule.count(start, start + int(epochs) * int(steps_per_epoch))
    if n is None:
        return None
    return int(n) + (1 if first else 0)


def format_bytes(n):
    """Decimal units, 3 significant digits: 950 B, 12.6 MB, 1.26 GB."""
    n = float(n)
    for unit in ("B", "kB", "MB"):
        if abs(n) < 999.5:
            return "%d B" % n if unit == "B" else "%.3g %s" % (n, unit)
        n /= 1000.0
    return "%.3g GB" % n


def budget_message(n_tensors, bytes_per_snapshot, expected=None):
    """The callback's one-line log at the start of a fit."""
    msg = "nnviz: recording %d tensors, %s per snapshot" % (
        n_tensors, format_bytes(bytes_per_snapshot))
    if expected is not None:
        msg += ", ~%d snapshots expected for this fit (~%s)" % (
            expected, format_bytes(expected * bytes_per_snapshot))
    return msg
