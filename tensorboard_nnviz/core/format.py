"""The nnviz summary format: the one module the writer and the reader share.

Everything that is on disk is defined here and nowhere else: the plugin
name, the summary tags, the versioned `plugin_data.content`, the frame blob
encoding and the stats vector. The writer builds `Summary.Value` protos with
the `*_value` functions; the reader decodes what TensorBoard's data provider
hands back with `parse_content`, `decode_frame`, `stats_from_array` and
`structure_from_array`.

Per weight tag `T` (e.g. `dense_1/kernel`) and per snapshot step:

- `nnviz/frame/T`: DATA_CLASS_BLOB_SEQUENCE, a rank-1 DT_STRING tensor of one
  element (RustBoard drops scalar blob sequences): the frame blob. Runs
  written now put it under the plugin name `nnviz_frames`
  (`FRAMES_PLUGIN_NAME`), in an event of its own (one record per frame),
  before the snapshot's other values; runs written by earlier versions
  have it under `nnviz`, in the snapshot's one event. TensorBoard keeps
  one sample per tag of `nnviz_frames` (`SAMPLES_PER_PLUGIN`, set by the
  plugin's loader); the plugin reads every other frame record from the
  event files on disk (docs/architecture.md, "Frames from disk").
- `nnviz/stats/T` (versions 1 and 2): DATA_CLASS_TENSOR, a float64 vector
  ordered as the `fields` of its content; null values are stored as NaN.
- `nnviz/units/T` (version 2): DATA_CLASS_TENSOR, a float32 tensor of
  shape (2, cols): row 0 the per-unit norms, row 1 the per-unit updates
  (NaN at the tag's first snapshot), ordered as the `fields` of its
  content; `cols` = ceil(units / block), each column the mean of `block`
  consecutive units (block 1 when exact). Runs written now put it under
  the plugin name `nnviz_units` (`UNITS_PLUGIN_NAME`), in an event of its
  own, like the frame: TensorBoard keeps one sample per tag and the plugin
  reads the rest from disk. Earlier runs have it under `nnviz`, in the
  snapshot's one event.

Per snapshot step (version 3, instead of `nnviz/stats/T`):

- `nnviz/stats_table`: DATA_CLASS_TENSOR, a rank-1 DT_STRING tensor of two
  elements: UTF-8 JSON `{"tags": [weight tag], "fields": [stat]}`, then the
  float64 stats of those tags, little-endian, one row per tag, one column
  per field (null as NaN). One datum per snapshot instead of one per
  weight: reading a whole run's stats through TensorBoard's data provider
  costs per datum (docs/architecture.md, "Whole-run answers").

Per weight tag `T`, per quantity `Q` recorded beside it (`grad`, `m_hat`,
`v_rms`, `momentum`: `QUANTITIES`) and per snapshot step, in runs written
now (docs/architecture.md, "Gradients and optimizer state"):

- `nnviz/qframe/Q/T` (only for the quantities that get frames): the
  quantity's frame, as the weight's frame (same layout and block), under
  `nnviz_frames`, in an event of its own.
- `nnviz/qunits/Q/T`: its per-unit stats, as the weight's, under
  `nnviz_units`, in an event of its own.
- `nnviz/qstats_table`: DATA_CLASS_TENSOR, in the snapshot's event right
  after `nnviz/stats_table`: the stats of every quantity of that snapshot,
  as the stats table, its JSON header naming `"tags"`, `"quantities"` (one
  per row: row i is quantity `quantities[i]` of weight `tags[i]`) and
  `"fields"`.

Readers of format 3 written before quantities ignore all three: their
frame and units listings take only the `nnviz/frame/` and `nnviz/units/`
prefixes, their index only those records, and their stats only
`nnviz/stats_table`, so an older plugin shows such a run's weights exactly
as before and no quantity (the format version stays 3: nothing an older
reader reads changed).

Once per run:

- `nnviz/structure`: DATA_CLASS_TENSOR, a rank-1 DT_STRING tensor holding
  the model structure as UTF-8 JSON (written once, again if it changes).

Version 2 added the units series, `units_still` to the stats vector,
`unit_axes` to the frame layout and `trainable` to the structure's weights.
A reader of version 2 reads version-1 runs (they have no units series).
The spectral fields (`sv_max`, `stable_rank`, `alpha`, `alpha_weighted`,
spectral.py) were appended to the stats vector within version 2: a reader
takes the field names from the content, so runs written before them still
open (the reader serves their spectral columns as null) and older version-2
readers serve the new fields as extra columns.

Version 3 writes the stats of a snapshot as one table (`nnviz/stats_table`)
and each frame and each units row in an event of its own under the plugin
names `nnviz_frames` and `nnviz_units`. A reader of version 3 reads the
per-weight stats, frames and units of versions 1 and 2 (all under `nnviz`),
and a run continued across the change has both (the reader merges stats by
step; frames and units are read from disk or through TensorBoard per
series, by their plugin name).

`plugin_data.content` is UTF-8 JSON with a `version`. Both TensorBoard
ingesters keep only the first event's content per tag, so anything in it is
fixed for the whole series; the frame blob repeats what a reader must check
per step (rows, cols, encoding).

This module imports neither Keras nor TensorFlow.
"""

import json
import math
import struct

import numpy as np
from tensorboard.compat.proto import summary_pb2
from tensorboard.compat.proto import types_pb2

from tensorboard_nnviz.core.spectral import FIELDS as SPECTRAL_FIELDS

PLUGIN_NAME = "nnviz"
# Frames and per-unit stats of runs written now: plugin names of their own,
# so that TensorBoard keeps only the latest of each weight in memory
# (SAMPLES_PER_PLUGIN); the plugin reads the others from disk.
FRAMES_PLUGIN_NAME = "nnviz_frames"
UNITS_PLUGIN_NAME = "nnviz_units"
# Samples per tag TensorBoard keeps unless the user says otherwise (0: all).
SAMPLES_PER_PLUGIN = {PLUGIN_NAME: 0, FRAMES_PLUGIN_NAME: 1, UNITS_PLUGIN_NAME: 1}

# Bump when a reader of the previous version could misread new data.
FORMAT_VERSION = 3
UNITS_VERSION = 2  # the first version with per-unit stats
STATS_TABLE_VERSION = 3  # the first version with one stats table per snapshot

FRAME_PREFIX = "nnviz/frame/"
STATS_PREFIX = "nnviz/stats/"
UNITS_PREFIX = "nnviz/units/"
STRUCTURE_TAG = "nnviz/structure"
STATS_TABLE_TAG = "nnviz/stats_table"
# A quantity's frames and units: prefix, quantity, "/", weight tag.
QFRAME_PREFIX = "nnviz/qframe/"
QUNITS_PREFIX = "nnviz/qunits/"
QSTATS_TABLE_TAG = "nnviz/qstats_table"
# Series the plugin reads from disk: one value per event (record) in runs
# written now; their summary tags begin with one of these.
DISK_PREFIXES = (FRAME_PREFIX, UNITS_PREFIX, QFRAME_PREFIX, QUNITS_PREFIX)

# What may be recorded of a weight: the weight itself, then the quantities
# of the same shape beside it (docs/architecture.md, "Gradients and
# optimizer state").
WEIGHTS = "weights"
QUANTITIES = ("grad", "m_hat", "v_rms", "momentum")
ALL_QUANTITIES = (WEIGHTS,) + QUANTITIES

KIND_FRAME = "frame"
KIND_STATS = "stats"
KIND_UNITS = "units"
KIND_STRUCTURE = "structure"
KIND_STATS_TABLE = "stats_table"
KIND_QSTATS_TABLE = "qstats_table"

# Rows of a units tensor written by this version (the content repeats them).
UNIT_FIELDS = ("norm", "update")
# Above this many units a series stores block means of consecutive units.
MAX_UNITS = 65536

# Order of the stats vector written by this version (the content repeats it,
# so a reader uses the names on disk, not this tuple).
STAT_FIELDS = (
    "mean",
    "std",
    "min",
    "max",
    "l2",
    "absmax",
    "p01",
    "p99",
    "zero_frac",
    "nan",
    "inf",
    "update_l2",
    "update_absmax",
    "update_ratio",
    "init_l2",
    "init_absmax",
    "init_cos",
    "units_still",
) + SPECTRAL_FIELDS

# Frame blob: a fixed header, then the cells row-major.
#   magic "NNVZ", format version (u8), encoding (u8), reserved (u16),
#   rows (u32), cols (u32), all little-endian.
_FRAME_MAGIC = b"NNVZ"
_FRAME_HEADER = struct.Struct("<4sBBHII")
ENCODING_F32 = 0  # little-endian float32, exact
ENCODING_F16 = 1  # little-endian float16
_ENCODING_DTYPES = {ENCODING_F32: np.dtype("<f4"), ENCODING_F16: np.dtype("<f2")}


class FormatError(ValueError):
    """Data this reader cannot decode: damaged, malformed or of a newer format."""


class NewerFormatError(FormatError):
    """Data written by a newer tensorboard_nnviz than this reader."""


# --- summary tags -----------------------------------------------------------


def frame_tag(weight_tag, quantity=WEIGHTS):
    if quantity == WEIGHTS:
        return FRAME_PREFIX + weight_tag
    return QFRAME_PREFIX + quantity + "/" + weight_tag


def stats_tag(weight_tag):
    return STATS_PREFIX + weight_tag


def units_tag(weight_tag, quantity=WEIGHTS):
    if quantity == WEIGHTS:
        return UNITS_PREFIX + weight_tag
    return QUNITS_PREFIX + quantity + "/" + weight_tag


def parse_summary_tag(summary_tag):
    """Returns `(kind, weight_tag)` for one of our summary tags of a weight
    (not of a quantity: `parse_quantity_tag`), else None.

    `weight_tag` is None for the structure tag and the stats tables.
    """
    parsed = parse_quantity_tag(summary_tag)
    if parsed is None or parsed[2] != WEIGHTS:
        return None
    return parsed[:2]


def parse_quantity_tag(summary_tag):
    """Returns `(kind, weight_tag, quantity)` for one of our summary tags,
    else None; `quantity` is `WEIGHTS` for the weight's own series and for
    the structure and the weights' stats table, None for the quantities'
    stats table (it holds several)."""
    if summary_tag == STRUCTURE_TAG:
        return (KIND_STRUCTURE, None, WEIGHTS)
    if summary_tag == STATS_TABLE_TAG:
        return (KIND_STATS_TABLE, None, WEIGHTS)
    if summary_tag == QSTATS_TABLE_TAG:
        return (KIND_QSTATS_TABLE, None, None)
    for prefix, kind in ((FRAME_PREFIX, KIND_FRAME), (STATS_PREFIX, KIND_STATS),
                         (UNITS_PREFIX, KIND_UNITS)):
        if summary_tag.startswith(prefix):
            return (kind, summary_tag[len(prefix):], WEIGHTS)
    for prefix, kind in ((QFRAME_PREFIX, KIND_FRAME), (QUNITS_PREFIX, KIND_UNITS)):
        if summary_tag.startswith(prefix):
            quantity, _, tag = summary_tag[len(prefix):].partition("/")
            if quantity in QUANTITIES and tag:
                return (kind, tag, quantity)
    return None


# --- plugin_data.content ----------------------------------------------------


def _content(kind, **fields):
    doc = {"version": FORMAT_VERSION, "kind": kind}
    doc.update(fields)
    return json.dumps(doc, sort_keys=True).encode("utf-8")


def frame_content(*, shape, dtype, layout, rows, cols):
    """Content of a frame series.

    Args:
      shape: the weight's full shape (list of ints).
      dtype: the weight's dtype name, e.g. "float32".
      layout: `{"row_axes", "col_axes", "block", "groups"}` (see layout.py).
      rows, cols: the frame's size after block reduction.
    """
    return _content(
        KIND_FRAME,
        shape=[int(d) for d in shape],
        dtype=str(dtype),
        layout=layout,
        rows=int(rows),
        cols=int(cols),
    )


def stats_content(fields=STAT_FIELDS):
    return _content(KIND_STATS, fields=list(fields))


def stats_table_content():
    return _content(KIND_STATS_TABLE)


def structure_content():
    return _content(KIND_STRUCTURE)


def units_content(*, unit_axes, units, block, fields=UNIT_FIELDS):
    """Content of a units series.

    Args:
      unit_axes: the weight's unit axes (as in its layout).
      units: the number of units (the product of the unit axes' sizes).
      block: units per stored column (1: exact).
    """
    return _content(
        KIND_UNITS,
        fields=list(fields),
        unit_axes=[int(a) for a in unit_axes],
        units=int(units),
        block=int(block),
    )


def parse_content(content):
    """Decodes `plugin_data.content`.

    Raises:
      NewerFormatError: written by a newer version than this reader knows.
      FormatError: not nnviz content at all.
    """
    try:
        doc = json.loads(bytes(content).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, TypeError) as e:
        raise FormatError("nnviz content is not valid JSON: %s" % e)
    if not isinstance(doc, dict) or not isinstance(doc.get("version"), int):
        raise FormatError("nnviz content has no format version")
    if doc["version"] > FORMAT_VERSION:
        raise NewerFormatError(
            "written in nnviz format version %d; this reader knows up to "
            "version %d: upgrade tensorboard_nnviz" % (doc["version"], FORMAT_VERSION)
        )
    if doc["version"] < 1:
        raise FormatError("invalid nnviz format version %d" % doc["version"])
    return doc


def _value(out, tag, content, data_class, plugin_name=PLUGIN_NAME):
    """`out` (a new `Summary.Value` if None) with its tag and metadata set.

    The writer passes `event.summary.value.add()`: the value is built in
    place, so its megabytes are not copied again into the event.
    """
    out = summary_pb2.Summary.Value() if out is None else out
    out.tag = tag
    out.metadata.plugin_data.plugin_name = plugin_name
    out.metadata.plugin_data.content = content
    out.metadata.data_class = data_class
    return out


def _tensor(out, dtype, shape):
    out.dtype = dtype
    for n in shape:
        out.tensor_shape.dim.add(size=int(n))
    return out


# --- frames -------------------------------------------------------------------


def encode_frame(frame, encoding=ENCODING_F32):
    """Encodes a 2-D array as a frame blob (header + row-major cells)."""
    return b"".join(frame_pieces(frame, encoding))


def frame_pieces(frame, encoding=ENCODING_F32):
    """The blob of `encode_frame` as [header, cells], not joined: the
    writer writes both without copying the cells again. A frame already
    of the encoding's dtype is copied once, into the cells' bytes."""
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise ValueError("a frame is 2-D, got shape %r" % (frame.shape,))
    rows, cols = frame.shape
    cells = np.ascontiguousarray(frame, dtype=_ENCODING_DTYPES[encoding])
    header = _FRAME_HEADER.pack(_FRAME_MAGIC, FORMAT_VERSION, encoding, 0, rows, cols)
    return [header, cells.tobytes()]


def encoding_dtype(encoding):
    """The numpy dtype of a frame encoding's cells."""
    return _ENCODING_DTYPES[encoding]


def frame_blob_size(rows, cols, encoding=ENCODING_F32):
    """Bytes of the blob `encode_frame` makes for a rows x cols frame."""
    return _FRAME_HEADER.size + rows * cols * _ENCODING_DTYPES[encoding].itemsize


def decode_frame(blob):
    """Decodes a frame blob into a float32 array of shape (rows, cols).

    Raises:
      NewerFormatError, FormatError: as `parse_content`, and for a blob whose
        length does not match its header.
    """
    blob = bytes(blob)
    if len(blob) < _FRAME_HEADER.size:
        raise FormatError("frame blob is truncated (%d bytes)" % len(blob))
    magic, version, encoding, _, rows, cols = _FRAME_HEADER.unpack_from(blob)
    if magic != _FRAME_MAGIC:
        raise FormatError("not an nnviz frame blob")
    if version > FORMAT_VERSION:
        raise NewerFormatError(
            "frame written in nnviz format version %d; this reader knows up to "
            "version %d: upgrade tensorboard_nnviz" % (version, FORMAT_VERSION)
        )
    dtype = _ENCODING_DTYPES.get(encoding)
    if dtype is None:
        raise FormatError("unknown frame encoding %d" % encoding)
    expected = frame_blob_size(rows, cols, encoding)
    if len(blob) != expected:
        raise FormatError(
            "frame blob has %d bytes, expected %d for %d x %d cells"
            % (len(blob), expected, rows, cols)
        )
    cells = np.frombuffer(blob, dtype=dtype, offset=_FRAME_HEADER.size)
    return cells.astype(np.float32).reshape(rows, cols)


def _string_vector(out, payload):
    """A rank-1 DT_STRING tensor of one element."""
    _tensor(out, types_pb2.DT_STRING, [1]).string_val.append(payload)


def frame_value(weight_tag, blob, content, out=None, plugin_name=FRAMES_PLUGIN_NAME,
                quantity=WEIGHTS):
    """The `Summary.Value` of one frame (`blob` from `encode_frame`), built
    into `out` if given. The writer puts each in an event of its own.
    `blob` None: the tensor without its one string, which the writer
    appends as it serializes (eventfiles.event_pieces).

    `plugin_name=PLUGIN_NAME` writes a frame as earlier versions did (tests
    of old runs).
    """
    out = _value(out, frame_tag(weight_tag, quantity), content,
                 summary_pb2.DATA_CLASS_BLOB_SEQUENCE, plugin_name)
    if blob is None:
        _tensor(out.tensor, types_pb2.DT_STRING, [1])
    else:
        _string_vector(out.tensor, blob)
    return out


def frame_blob_of(value):
    """The frame blob a frame `Summary.Value` holds.

    Raises:
      FormatError: not a one-element string tensor.
    """
    strings = value.tensor.string_val
    if len(strings) != 1:
        raise FormatError("frame value holds %d strings, expected 1" % len(strings))
    return strings[0]


# --- stats ------------------------------------------------------------------


def stats_value(weight_tag, stats, content=None, out=None):
    """The `Summary.Value` of one stats vector (built into `out` if given).

    Args:
      stats: mapping of every name in `STAT_FIELDS` to a float or None.
    """
    vector = struct.pack(
        "<%dd" % len(STAT_FIELDS),
        *[math.nan if stats.get(k) is None else float(stats[k]) for k in STAT_FIELDS],
    )
    content = content if content is not None else stats_content()
    out = _value(out, stats_tag(weight_tag), content, summary_pb2.DATA_CLASS_TENSOR)
    _tensor(out.tensor, types_pb2.DT_DOUBLE, [len(STAT_FIELDS)]).tensor_content = vector
    return out


def stats_row(array, fields):
    """The first len(fields) values of a stats vector as float64 (see
    `stats_from_array` for why a vector may be longer).

    Raises:
      FormatError: the vector is shorter than `fields`.
    """
    values = np.asarray(array, dtype=np.float64).ravel()
    if len(values) < len(fields):
        raise FormatError(
            "stats vector has %d values, expected %d" % (len(values), len(fields))
        )
    return values[: len(fields)]


def stats_from_array(array, fields):
    """Maps a stats vector to `{name: float or None}` (NaN and ±Inf → None).

    A vector longer than `fields` comes from a later writer appending to a
    series an earlier one began (its content, fixed by the first event,
    names fewer fields; new fields are only ever appended): the named
    prefix is read, the rest ignored.

    Raises:
      FormatError: the vector is shorter than `fields`.
    """
    values = stats_row(array, fields)
    return {
        name: (float(v) if math.isfinite(v) else None) for name, v in zip(fields, values)
    }


def stats_table_value(weight_tags, rows, content=None, out=None, quantities=None):
    """The `Summary.Value` of one snapshot's stats of every weight (built
    into `out` if given), or, with `quantities`, of every quantity.

    Args:
      weight_tags: the weights, in the order of `rows`.
      rows: one mapping per weight of every name in `STAT_FIELDS` to a
        float or None.
      quantities: the quantity of each row (`nnviz/qstats_table`), or None
        for the weights' own table.
    """
    doc = {"tags": list(weight_tags), "fields": list(STAT_FIELDS)}
    if quantities is not None:
        doc["quantities"] = list(quantities)
    header = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    # numpy reads a None as NaN in a float array.
    cells = np.array([list(map(r.get, STAT_FIELDS)) for r in rows],
                     dtype="<f8").reshape(len(rows), len(STAT_FIELDS))
    content = content if content is not None else stats_table_content()
    tag = STATS_TABLE_TAG if quantities is None else QSTATS_TABLE_TAG
    out = _value(out, tag, content, summary_pb2.DATA_CLASS_TENSOR)
    tensor = _tensor(out.tensor, types_pb2.DT_STRING, [2])
    tensor.string_val.append(header)
    tensor.string_val.append(cells.tobytes())
    return out


def stats_table_header(array):
    """The header bytes of a stats table tensor (as the data provider
    returns it): equal headers name the same tags and fields.

    Raises:
      FormatError: not a two-element string tensor.
    """
    items = np.asarray(array, dtype=object).ravel()
    if len(items) != 2 or not all(isinstance(x, bytes) for x in items):
        raise FormatError("stats table is not two byte strings")
    return items[0]


def parse_stats_table_header(header):
    """`(tags, fields)` named by a stats table header.

    Raises:
      FormatError: not the JSON object of two lists of strings.
    """
    try:
        doc = json.loads(header.decode("utf-8"))
        tags, fields = doc["tags"], doc["fields"]
    except (UnicodeDecodeError, ValueError, TypeError, KeyError) as e:
        raise FormatError("stats table header is not valid: %s" % e)
    if not (isinstance(tags, list) and isinstance(fields, list)
            and all(isinstance(x, str) for x in tags + fields)):
        raise FormatError("stats table header does not list tags and fields")
    return tags, fields


def parse_qstats_table_header(header):
    """`(rows, fields)` named by a quantities' stats table header, each row
    a `(weight tag, quantity)` pair.

    Raises:
      FormatError: not a valid header, or rows of unknown quantities.
    """
    tags, fields = parse_stats_table_header(header)
    quantities = json.loads(header.decode("utf-8")).get("quantities")
    if not (isinstance(quantities, list) and len(quantities) == len(tags)
            and all(isinstance(q, str) for q in quantities)):
        raise FormatError("quantities' stats table header does not name a quantity per row")
    return list(zip(tags, quantities)), fields


def stats_table_cells(array, tags, fields):
    """The float64 cells (len(tags), len(fields)) of a stats table tensor.

    Raises:
      FormatError: the cells do not match the header.
    """
    cells = np.asarray(array, dtype=object).ravel()[1]
    expected = 8 * len(tags) * len(fields)
    if len(cells) != expected:
        raise FormatError("stats table has %d bytes of cells, expected %d for %d tags x %d fields"
                          % (len(cells), expected, len(tags), len(fields)))
    return np.frombuffer(cells, dtype="<f8").reshape(len(tags), len(fields))


# --- structure ------------------------------------------------------------------


def structure_value(structure, content=None, out=None):
    """The `Summary.Value` of the model structure (a JSON-able dict)."""
    payload = json.dumps(structure, sort_keys=True, allow_nan=False).encode("utf-8")
    content = content if content is not None else structure_content()
    out = _value(out, STRUCTURE_TAG, content, summary_pb2.DATA_CLASS_TENSOR)
    _string_vector(out.tensor, payload)
    return out


def structure_from_array(array):
    """Decodes the structure tensor (as the data provider returns it).

    Raises:
      FormatError: not a JSON object.
    """
    items = np.asarray(array, dtype=object).ravel()
    if len(items) != 1:
        raise FormatError("structure tensor has %d elements, expected 1" % len(items))
    raw = items[0]
    try:
        doc = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, ValueError, TypeError) as e:
        raise FormatError("structure is not valid JSON: %s" % e)
    if not isinstance(doc, dict):
        raise FormatError("structure is not a JSON object")
    return doc


# --- units ----------------------------------------------------------------------

# The smallest positive float32: a positive value that float32 would round
# to 0 is stored as this, so a stored 0 always means exactly 0.
_TINY32 = np.float32(np.finfo(np.float32).smallest_subnormal)


def _float32_keeping_zero(values, out):
    """out[:] = values in float32, a positive value rounded to 0 stored as `_TINY32`."""
    values = np.asarray(values)
    out[...] = values
    if not out.all():  # some 0 (rare but for frozen units): which were not 0
        out[(out == 0) & (values > 0)] = _TINY32


def units_value(weight_tag, norm, update, content, out=None, plugin_name=UNITS_PLUGIN_NAME,
                quantity=WEIGHTS):
    """The `Summary.Value` of one snapshot's per-unit stats (built into
    `out` if given). The writer puts each in an event of its own.

    Args:
      norm, update: per-column values (already block-averaged); `update`
        None at a tag's first snapshot (stored as NaN).
      content: from `units_content`.
      plugin_name: `PLUGIN_NAME` writes them as earlier versions did
        (tests of old runs).
    """
    cells = units_cells(norm, update)
    out = _value(out, units_tag(weight_tag, quantity), content, summary_pb2.DATA_CLASS_TENSOR,
                 plugin_name)
    _tensor(out.tensor, types_pb2.DT_FLOAT, cells.shape).tensor_content = cells.tobytes()
    return out


def units_cells(norm, update):
    """The float32 (2, columns) tensor of a units value: norms, then
    updates (NaN when None); a positive value never stored as 0."""
    return units_cells_many([norm], [update])[0]


def units_cells_many(norms, updates):
    """`units_cells` of many weights, converted together: (2, columns)
    views of one array (a snapshot's units in a few numpy calls)."""
    sizes = [np.size(norm) for norm in norms]
    cells = np.empty((2, sum(sizes)), "<f4")
    _float32_keeping_zero(np.concatenate(norms, axis=None), cells[0])
    _float32_keeping_zero(np.concatenate([np.full(size, np.nan) if update is None else update
                                          for size, update in zip(sizes, updates)], axis=None),
                          cells[1])
    ends = np.cumsum(sizes).tolist()
    return [cells[:, end - size:end] for end, size in zip(ends, sizes)]


def units_array_of(value):
    """The units tensor of a units `Summary.Value`, as a float32 array.

    Raises:
      FormatError: not a float32 tensor of two dimensions.
    """
    t = value.tensor
    shape = [d.size for d in t.tensor_shape.dim]
    if t.dtype != types_pb2.DT_FLOAT or len(shape) != 2:
        raise FormatError("units value is not a 2-D float32 tensor")
    if t.tensor_content:
        data = np.frombuffer(t.tensor_content, "<f4")
    else:
        data = np.asarray(t.float_val, "<f4")
    if data.size != shape[0] * shape[1]:
        raise FormatError("units tensor has %d values, expected %d" % (data.size, shape[0] * shape[1]))
    return data.reshape(shape)


def units_from_array(array, fields):
    """{field: float32 row} from a units tensor (as the data provider returns it).

    Raises:
      FormatError: not a 2-D array with one row per field.
    """
    try:
        cells = np.asarray(array, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise FormatError("units tensor is not numeric: %s" % e)
    if cells.ndim != 2 or cells.shape[0] < len(fields):
        raise FormatError(
            "units tensor has shape %r, expected (%d, units)" % (cells.shape, len(fields))
        )
    return {f: cells[i] for i, f in enumerate(fields)}
