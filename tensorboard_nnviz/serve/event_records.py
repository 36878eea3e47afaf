"""What one event record holds, told from its first bytes.

The index (frame_index.py) has to learn, for every record of a run,
whether it holds a value of a series read from disk (a frame or per-unit
stats: `format.DISK_PREFIXES`; the stats table) and of which (tag, step), without reading
the value: an event (event.proto) is serialised field by field in field-number
order, so `wall_time` (1), `step` (2) and the start of `summary` (5) come
first, and in the summary's first `Value` its `tag` (1) comes before the
tensor (8). `scan` reads those from a record's first bytes; whatever it
cannot tell from them (a tag longer than the bytes given, fields out of
order, several values of which the first is ours) it leaves to `full`,
which parses the whole record with protobuf. `scan_at` is `scan` for a
record inside a chunk the index read, quick for the layout our writers
produce.

This module imports neither Keras nor TensorFlow.
"""

import collections
import re

from tensorboard.compat.proto import event_pb2

from tensorboard_nnviz.core import format as fmt

# What a record is, for the index.
OTHER = "other"  # none of ours to index, nor a restart
VALUES = "values"  # values of disk series: `tags` are their summary tags
START = "start"  # SessionLog.START: TensorBoard's restart marker
FULL = "full"  # needs the whole record (see `full`)

Scanned = collections.namedtuple("Scanned", "kind step tags")

_EVENT_STEP, _EVENT_SUMMARY, _EVENT_SESSION_LOG = 2, 5, 7
_SESSION_START = 1  # SessionLog.START
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
_DISK_PREFIXES = tuple(p.encode("utf-8") for p in fmt.DISK_PREFIXES)
_STRUCTURE_TAG = fmt.STRUCTURE_TAG.encode("utf-8")
# The stats table is indexed too: the plugin reads a run's tables from disk
# where it can (run_stats.py), instead of every table through TensorBoard.
_STATS_TABLE_TAG = fmt.STATS_TABLE_TAG.encode("utf-8")

# The layout every writer of ours produces: wall_time, step (absent when
# 0), then a summary whose first value begins with a tag of < 128 bytes.
# `scan_at` matches it with one regular expression and looks what follows
# the step (the summary's sizes and the tag: the same for every record of
# a series) up in a table; any other layout goes the field-by-field way
# (`scan`).
_V = rb"[\x80-\xff]{0,9}[\x00-\x7f]"  # a varint
_LAYOUT = re.compile(rb"\x09.{8}(?:\x10(" + _V + rb"))?(\x2a" + _V + rb"\x0a" + _V + rb"\x0a[\x00-\x7f])",
                     re.S)
_CACHED = 65536  # entries of each table below, at most
_VARINTS = {}  # varint bytes -> value: steps repeat across a snapshot's records
_HEADS = {}  # summary head and tag -> (bytes to the summary's end, kind, tags)


def _indexed(tag):
    """Whether summary tag `tag` (bytes) is one the index keeps."""
    return tag.startswith(_DISK_PREFIXES) or tag == _STATS_TABLE_TAG


class _Short(Exception):
    """The bytes given end before what `scan` needs."""


def _varint(buf, pos):
    if pos < len(buf) and buf[pos] < 0x80:  # most keys and sizes: one byte
        return buf[pos], pos + 1
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _Short()
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _signed64(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def scan(prefix, length):
    """What the record whose data begins with `prefix` (of `length` bytes
    in all) holds: a `Scanned(kind, step, tags)`.

    Never raises: bytes it cannot make sense of give FULL (the whole record
    decides, and a damaged one is reported when read).
    """
    try:
        return _scan(prefix, length)
    except (_Short, ValueError, IndexError):
        return Scanned(FULL, 0, ())


def scan_at(buf, start, length):
    """`scan` of the record data at `buf[start:start + length]` (bytes:
    `buf` may hold more), without copying it."""
    end = start + length
    m = _LAYOUT.match(buf, start, end)
    if m is None:
        return scan(memoryview(buf)[start:end], length)
    head_start, head_end = m.span(2)
    head_end += buf[head_end - 1]  # and the tag
    if head_end > end:
        return scan(memoryview(buf)[start:end], length)
    head = buf[head_start:head_end]
    found = _HEADS.get(head)
    if found is None:
        found = _remember(_HEADS, head, _summary_head(head))
    step = m.group(1)
    if step is None:
        step = 0
    else:
        value = _VARINTS.get(step)
        step = _remember(_VARINTS, step, _signed64(_varint(step, 0)[0])) if value is None else value
    if head_start + found[0] != end:  # fields after the summary (out of order): the record decides
        return Scanned(FULL, step, ())
    return Scanned(found[1], step, found[2])


def _remember(table, key, value):
    if len(table) >= _CACHED:
        table.clear()
    table[key] = value
    return value


def _summary_head(head):
    """(bytes from the summary's key to its end, kind, tags) of a summary
    that begins with `head`: its key and size, its first value's key and
    size, and that value's tag."""
    try:
        size, pos = _varint(head, 1)
        span = pos + size
        value_size, value_start = _varint(head, pos + 1)
        tag = head[value_start + 2:]
        found = _classify(0, tag, value_start + value_size == span)
        return span, found.kind, found.tags
    except ValueError:  # a varint too long, a tag that is not UTF-8
        return -1, FULL, ()


def _classify(step, tag, single):
    """What a record is whose summary's first value has tag `tag` (bytes),
    `single` if it is the summary's only value."""
    if _indexed(tag):
        if single:
            return Scanned(VALUES, step, (tag.decode("utf-8"),))
        return Scanned(FULL, step, ())  # a whole snapshot in one event: earlier versions
    if tag == _STRUCTURE_TAG and not single:
        return Scanned(FULL, step, ())  # earlier versions began a snapshot with it
    return Scanned(OTHER, step, ())


def _scan(buf, length):
    pos, step = 0, 0
    while pos < length:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
            if field == _EVENT_STEP:
                step = _signed64(value)
        elif wire == _FIXED64:
            pos += 8
        elif wire == _FIXED32:
            pos += 4
        elif wire == _BYTES:
            size, pos = _varint(buf, pos)
            if field == _EVENT_SUMMARY:
                return _summary(buf, pos, pos + size, step, length)
            if field == _EVENT_SESSION_LOG:
                return _session_log(buf, pos, pos + size, step)
            pos += size
        else:
            return Scanned(FULL, step, ())
    return Scanned(OTHER, step, ())


def _summary(buf, start, end, step, length):
    if end != length:  # fields after the summary (out of order): the record decides
        return Scanned(FULL, step, ())
    if start == end:
        return Scanned(OTHER, step, ())
    key, pos = _varint(buf, start)
    if key != (1 << 3 | _BYTES):  # Summary.value
        return Scanned(FULL, step, ())
    size, pos = _varint(buf, pos)
    single = pos + size == end
    key, pos = _varint(buf, pos)
    if key != (1 << 3 | _BYTES):  # Value.tag, written first
        return Scanned(OTHER if single else FULL, step, ())
    size, pos = _varint(buf, pos)
    if pos + size > len(buf):
        raise _Short()
    return _classify(step, bytes(buf[pos:pos + size]), single)


def _session_log(buf, start, end, step):
    pos = start
    while pos < min(end, len(buf)):
        key, pos = _varint(buf, pos)
        if key == (1 << 3 | _VARINT):  # SessionLog.status
            status, pos = _varint(buf, pos)
            return Scanned(START if status == _SESSION_START else OTHER, step, ())
        if key & 7 != _BYTES:
            return Scanned(OTHER, step, ())
        size, pos = _varint(buf, pos)
        pos += size
    if end > len(buf):
        raise _Short()
    return Scanned(OTHER, step, ())  # status 0 is not written


def full(data):
    """What a whole record (its data) holds, parsed with protobuf: every
    tag of a disk series in it, or a restart.

    Raises:
      google.protobuf.message.DecodeError: not an event.
    """
    event = event_pb2.Event.FromString(data)
    if event.HasField("session_log"):
        kind = START if event.session_log.status == event_pb2.SessionLog.START else OTHER
        return Scanned(kind, event.step, ())
    tags = tuple(v.tag for v in event.summary.value if _indexed(v.tag.encode("utf-8")))
    return Scanned(VALUES if tags else OTHER, event.step, tags)


def event_of(data):
    """The event a record's data holds.

    Raises:
      google.protobuf.message.DecodeError: not an event.
    """
    return event_pb2.Event.FromString(data)


def value_of(data, summary_tag):
    """The `Summary.Value` of `summary_tag` in a record's data.

    Raises:
      google.protobuf.message.DecodeError: not an event.
      format.FormatError: no such value in it.
    """
    for value in event_of(data).summary.value:
        if value.tag == summary_tag:
            return value
    raise fmt.FormatError("the record holds no %r" % summary_tag)
