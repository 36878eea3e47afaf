"""Event-file I/O outside TensorBoard's data provider: listing, writing, reading.

The plugin never uses this module: it reads through TensorBoard's data
provider. These helpers serve the processes that write or copy event files
(the callback's writer, `compact`) and the CLI's look at a logdir before it
decides whether to import TensorFlow.

Nothing here imports TensorFlow at import time; `tensorboard` modules that
may reach it are imported inside the functions that need them.
"""

import itertools
import logging
import os
import socket
import struct
import time

from tensorboard.compat.proto import event_pb2

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.core import records
from tensorboard_nnviz.record import fast_crc

logger = logging.getLogger(__name__)


def _is_url(path):
    return "://" in path


def is_event_file(name):
    """Whether a file name is an event file TensorBoard reads summaries from.

    The rule of TensorBoard's `io_wrapper.IsSummaryEventsFile`, which we
    cannot call from the CLI before it decides whether to import TensorFlow
    (that function does).
    """
    base = os.path.basename(name)
    return "tfevents" in base and not base.endswith(".profile-empty")


def event_files(run_dir):
    """The event files directly in `run_dir`, in TensorBoard's (name) order.

    Local directories are listed with `os`, URLs (gs://, s3://) with
    TensorBoard's `tf.io.gfile`.

    Raises:
      OSError (or the file system's own error for a URL): `run_dir` cannot
        be listed.
    """
    run_dir = os.fspath(run_dir)
    if _is_url(run_dir):
        from tensorboard.compat import tf

        names = tf.io.gfile.listdir(run_dir)
        join = lambda n: run_dir.rstrip("/") + "/" + n  # noqa: E731
    else:
        names = os.listdir(run_dir)
        join = lambda n: os.path.join(run_dir, n)  # noqa: E731
    return [join(n) for n in sorted(names) if is_event_file(n)]


def event_bytes(logdir, stop_at=None):
    """Bytes of the event files anywhere below the local `logdir`; stops
    counting once the total reaches `stop_at`."""
    total = 0
    for root, _, names in os.walk(logdir):
        for name in names:
            if is_event_file(name):
                total += os.path.getsize(os.path.join(root, name))
                if stop_at is not None and total >= stop_at:
                    return total
    return total


def new_writer(log_dir, max_queue_size=4):
    """A writer of events into a new event file in `log_dir`: `EventFile`
    on a local directory, TensorBoard's `EventFileWriter` on a URL (both
    checksum in C, `fast_crc`, when google-crc32c is installed)."""
    fast_crc.install()
    log_dir = os.fspath(log_dir)
    if not _is_url(log_dir) and fast_crc.extend is not None:
        return EventFile(log_dir)
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    # flush_secs is moot: our writers flush after every snapshot or at close.
    return EventFileWriter(log_dir, max_queue_size=max_queue_size, flush_secs=120)


_file_count = itertools.count()


def _file_uid():
    """The number that ends an event file's name: TensorBoard's own counter
    when it has one, so files of this process's other TensorBoard writers
    (torch's SummaryWriter, Keras's callback) are numbered in one sequence."""
    try:
        from tensorboard.summary.writer.event_file_writer import _global_uid
    except ImportError:
        return next(_file_count)
    return _global_uid.get()


class EventFile:
    """Writes TensorBoard event records to a new local event file, from
    byte pieces (`write_pieces`): a snapshot's frames go from their cells'
    bytes straight into the file, checksummed where they lie, never joined
    into one event string (README, "Recording cost").

    The same file TensorBoard's `EventFileWriter` writes: its name, the
    file-version event first, then records framed as core/records.py
    defines them. Writes happen on the caller's
    thread (the snapshot writer's worker), so a full disk raises there.

    Raises:
      OSError: the file cannot be created.
    """

    def __init__(self, log_dir):
        os.makedirs(log_dir, exist_ok=True)
        while True:
            name = "events.out.tfevents.%010d.%s.%d.%d" % (time.time(), socket.gethostname(),
                                                          os.getpid(), _file_uid())
            self.path = os.path.join(log_dir, name)
            try:  # never over another writer's file of the same second
                self._file = open(self.path, "xb", buffering=_BUFFER)
                break
            except FileExistsError:
                continue
        self.add_event(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def add_event(self, event):
        self.write_pieces([event.SerializeToString()])

    def write_pieces(self, pieces):
        """Writes one record whose data is the concatenation of `pieces` (bytes)."""
        size = sum(map(len, pieces))
        if size <= _JOINED:  # one join, one checksum and one write call
            data = b"".join(pieces)
            length = _LENGTH.pack(size)
            self._file.write(b"".join((
                length, records.FOOTER.pack(records.mask(fast_crc.extend(0, length))), data,
                records.FOOTER.pack(records.mask(fast_crc.extend(0, data))))))
            return
        pieces = _joined_small(pieces)
        length = _LENGTH.pack(size)
        crc = 0
        for p in pieces:
            crc = fast_crc.extend(crc, p)
        self._file.write(length + records.FOOTER.pack(records.mask(fast_crc.extend(0, length))))
        for p in pieces:
            self._file.write(p)  # large pieces bypass the buffer: no copy here
        self._file.write(records.FOOTER.pack(records.mask(crc)))

    def flush(self):
        self._file.flush()

    def close(self):
        self._file.close()


_BUFFER = 1 << 16
_LENGTH = struct.Struct("<Q")
_BYTES = [bytes((n,)) for n in range(0x80)]
_SMALL = 1 << 12  # pieces up to this size are joined: one checksum and write call for them
_JOINED = 1 << 15  # records up to this size are joined whole (a small tensor's frame)


def _joined_small(pieces):
    """`pieces` with each run of small pieces joined into one (a frame's
    cells stay as they are: never copied)."""
    out, run = [], []
    for p in pieces:
        if len(p) <= _SMALL:
            run.append(p)
            continue
        if run:
            out.append(b"".join(run))
            run = []
        out.append(p)
    if run:
        out.append(b"".join(run))
    return out


def _varint(n):
    if n <= 0x7F:
        return _BYTES[n]
    if n <= 0x3FFF:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _key(number):
    """The key of a length-delimited protobuf field (its length follows)."""
    return _varint(number << 3 | 2)


def _field(number, pieces):
    """A length-delimited protobuf field whose value is the concatenation
    of `pieces`, as pieces."""
    return [_key(number) + _varint(sum(map(len, pieces)))] + pieces


# Field numbers of TensorBoard's protos the pieces are made of.
_EVENT_SUMMARY, _SUMMARY_VALUE, _VALUE_TENSOR = 5, 1, 8
# The fields of a TensorProto a payload goes in: its one string (a frame's
# blob), or its raw content (a units tensor).
STRING_VAL, TENSOR_CONTENT = 8, 4
_SUMMARY_VALUE_KEY, _EVENT_SUMMARY_KEY = _key(_SUMMARY_VALUE), _key(_EVENT_SUMMARY)


class ValueTemplate:
    """A `Summary.Value` serialized once, written at every snapshot around
    a new payload: its bytes without its tensor, and its tensor's (dtype,
    shape) without the payload, which goes in the tensor's `field`
    (`STRING_VAL` or `TENSOR_CONTENT`). Takes `value` (clears its tensor).
    """

    __slots__ = ("value", "tensor", "_sized")

    def __init__(self, value, field):
        # The tensor's bytes end with the payload field's key; its length follows.
        self.tensor = value.tensor.SerializeToString() + _key(field)
        value.ClearField("tensor")
        self.value = value.SerializeToString() + _key(_VALUE_TENSOR)
        self._sized = (None, None)  # (payload size, `event_head`) last made

    def head(self, size):
        """The value's bytes before a payload of `size` bytes, as a Summary's
        value field: the fields' keys and lengths around the value's bytes."""
        tensor = self.tensor + _varint(size)
        value = self.value + _varint(len(tensor) + size) + tensor
        return _SUMMARY_VALUE_KEY + _varint(len(value) + size) + value

    def pieces(self, payload):
        """The value holding `payload` (byte pieces) as a Summary's value
        field: its `head`, then the payload's pieces as they are."""
        payload = list(payload)
        return [self.head(sum(map(len, payload)))] + payload

    def event_head(self, size):
        """An event's bytes after its step and wall time and before a
        payload of `size` bytes, when the event holds this value alone
        (kept for the last size: a tag's payload size is fixed)."""
        if self._sized[0] != size:
            head = self.head(size)
            self._sized = (size, _EVENT_SUMMARY_KEY + _varint(len(head) + size) + head)
        return self._sized[1]


def event_head(step, wall_time):
    """An event's step and wall time, serialized (shared by a snapshot's events)."""
    return event_pb2.Event(wall_time=wall_time, step=step).SerializeToString()


def value_event_pieces(head, template, payload):
    """An event of one value as byte pieces: `head` (`event_head`), then
    `template` holding `payload` (byte pieces)."""
    return [head + template.event_head(sum(map(len, payload)))] + list(payload)


def event_pieces(event, blobs=()):
    """`event` serialized as byte pieces, with more summary values each
    holding one string: `blobs` is [(Summary.Value, pieces)] whose tensor
    gets the concatenation of `pieces` as its one `string_val`.

    The protobuf wire format written by hand around the blobs: a field is
    its number, its length and its bytes, and a message's fields may come
    in any order, so the blobs' bytes never go through a proto or a join.
    """
    summary = [event.summary.SerializeToString()]
    for value, pieces in blobs:
        summary += ValueTemplate(value, STRING_VAL).pieces(pieces)
    return [event_head(event.step, event.wall_time)] + _field(_EVENT_SUMMARY, summary)


def read_file_events(path):
    """The events of one event file, as `event_pb2.Event`, in order.

    TensorBoard's raw loader: nothing is migrated or altered. A truncated
    last record ends the file, as it does for TensorBoard.
    """
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.compat.proto import event_pb2

    for raw in event_file_loader.RawEventFileLoader(path).Load():
        yield event_pb2.Event.FromString(raw)


def read_events(run_dir):
    """Every event of the run in `run_dir` (its files in order, see
    `read_file_events`)."""
    for path in event_files(run_dir):
        yield from read_file_events(path)


def read_last_step(log_dir):
    """The largest step of nnviz stats already in `log_dir`'s event files, or None.

    A missing or unreadable `log_dir` has none. A damaged file ends its own
    reading (with a warning), not the caller.
    """
    try:
        paths = event_files(log_dir)
    except Exception:  # missing, or a file system that cannot list it
        return None
    last = None
    for path in paths:
        try:
            for event in read_file_events(path):
                if last is not None and event.step <= last:
                    continue
                if any(v.tag.startswith(fmt.STATS_PREFIX) or v.tag == fmt.STATS_TABLE_TAG
                       for v in event.summary.value):
                    last = event.step
        except Exception as e:
            logger.warning("nnviz: stopped reading %s: %s", path, e)
    return last
