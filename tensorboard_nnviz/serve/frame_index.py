"""Where each record of a run's disk series lies in its event files, built
incrementally.

`RunIndex` maps (summary tag, step) to (file, offset, length) for one run
directory, for the series the plugin reads from disk (frames and per-unit
stats: `format.DISK_PREFIXES`; docs/architecture.md, "Frames from disk"):

- It reads each event file from the offset where it stopped last time:
  a record's 12-byte header, then the first bytes of its data, which say
  whether it is ours and of which tag and step (event_records.py); the
  value itself is not read. A live run keeps growing and is followed.
- A record not yet whole (the file ends inside it) ends the file's reading
  for now; the next refresh tries it again. A header whose checksum is
  wrong ends it for good (damaged), as it does for TensorBoard.
- Files are read in name order (TensorBoard's order). A step written again
  follows TensorBoard's rules: a record at step s replaces the same tag's
  records at steps ≥ s read before it (RustBoard's rule, and the Python
  ingester's for out-of-order steps), and a SessionLog.START after the
  first drops every tag's records at steps ≥ its step (the Python
  ingester's restart rule).
- A file that vanished or shrank starts the run's index over.
- Memory: per record a step (8 bytes), a file number (4), an offset (8)
  and a length (4), in flat arrays per tag.

`read_value` reads one record with one positioned read, checks both of its
checksums (core/records.py) and returns the value; `read_frame` decodes a
frame from it.

This module imports neither Keras nor TensorFlow.
"""

import array
import bisect
import functools
import logging
import os
import queue
import threading

from google.protobuf import message as pb_message

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.core import records
from tensorboard_nnviz.serve import event_records

logger = logging.getLogger(__name__)

# Bytes of a record's data read to tell what it is: enough for the event's
# step and a frame tag of ~200 characters (a longer tag costs one more read).
_PREFIX = 256
# Event files are read in chunks, walking the records within: the first
# read of a file and the read after a big record skipped are small, then
# each read is 4x the last, up to _CHUNK. A record over _BIG that does not
# fit in the chunk is skipped over (only its head read), so a run of large
# frames costs about one small read per record, and a run of small records
# one read per _CHUNK bytes.
_FIRST_READ = 16 << 10
_CHUNK = 4 << 20
_BIG = 64 << 10
# Records indexed in the background from the start, at most (24 B each).
WARM_RECORDS = 4_000_000
# How long a listing waits for a run's first build before it answers with
# the records indexed so far (a small run's whole build takes less).
LISTING_WAIT_SECONDS = 0.25
_HEADER_SIZE = records.HEADER.size
_FRAMING = records.record_size(0)


def is_event_file(name):
    """TensorBoard's rule (io_wrapper.IsSummaryEventsFile)."""
    return "tfevents" in name and not name.endswith(".profile-empty")


def inside(root, path):
    """Whether the real `path` lies within the real directory `root`."""
    return os.path.commonpath([root, path]) == root


def run_directory(logdir, run):
    """The real directory of `run` (a TensorBoard run name: its path
    relative to `logdir`, "." for `logdir` itself), or None unless it is a
    directory inside `logdir` (`logdir` given as a real path).

    Run names come from requests: whatever they hold ("..", absolute
    paths, symbolic links out), nothing outside `logdir` is returned.
    """
    if not run or "\0" in run or os.path.isabs(run):
        return None
    path = os.path.realpath(os.path.join(logdir, run))
    if not inside(logdir, path) or not os.path.isdir(path):
        return None
    return path


class _TagRecords:
    """The records of one tag, by ascending step."""

    __slots__ = ("steps", "files", "offsets", "lengths", "generation", "changes", "last")

    def __init__(self, generation):
        self.steps = array.array("q")
        self.files = array.array("I")
        self.offsets = array.array("q")
        self.lengths = array.array("I")
        self.generation = generation
        self.changes = 0
        self.last = None  # the last step

    @property
    def version(self):
        """Moves whenever the records change."""
        return (self.generation, self.changes)

    def add(self, step, file_number, offset, length):
        if self.last is not None and step <= self.last:
            self.drop_from(step)  # a step written again: TensorBoard's preemption
        self.steps.append(step)
        self.files.append(file_number)
        self.offsets.append(offset)
        self.lengths.append(length)
        self.last = step
        self.changes += 1

    def drop_from(self, step):
        i = bisect.bisect_left(self.steps, step)
        if i < len(self.steps):
            for a in (self.steps, self.files, self.offsets, self.lengths):
                del a[i:]
            self.last = self.steps[-1] if self.steps else None
            self.changes += 1

    def nbytes(self):
        return sum(a.itemsize * len(a) for a in (self.steps, self.files, self.offsets, self.lengths))


class _File:
    __slots__ = ("path", "offset", "damaged")

    def __init__(self, path):
        self.path = path
        self.offset = 0  # where the next record begins
        self.damaged = None  # why reading stopped for good


class Locations:
    """`locations[i]` = (path, offset, length) of a tag's i-th record: a
    copy of its arrays, so a later refresh does not move what a caller holds."""

    def __init__(self, paths, records_):
        self._paths = paths
        self._files = array.array("I", records_.files)
        self._offsets = array.array("q", records_.offsets)
        self._lengths = array.array("I", records_.lengths)

    def __len__(self):
        return len(self._offsets)

    def __getitem__(self, i):
        return (self._paths[self._files[i]], self._offsets[i], self._lengths[i])


class RunIndex:
    """The disk-series records of the run in directory `run_dir` (a real path
    inside the real directory `root`; event files resolving outside
    `root` are not read)."""

    def __init__(self, run_dir, root):
        self.run_dir = run_dir
        self._root = root
        self._lock = threading.Lock()
        self._generation = 0  # moves when the index starts over
        self._lengths = {}  # record header -> its data length (checksum checked)
        self._built = threading.Event()  # set once a refresh has read every file to its end
        self._reset()
        self.bytes_scanned = 0  # event-file bytes covered (benchmarks)
        self.records_scanned = 0

    def _reset(self):
        self._generation += 1
        self._files = []  # [_File], in the order first read
        self._paths = []  # file number -> path
        self._tags = {}  # summary tag -> _TagRecords
        self._seen_start = False  # the first SessionLog.START is no restart

    def refresh(self):
        """Reads what the run's event files gained since the last refresh.

        The lock is taken per chunk read, not for the whole refresh:
        requests see the records indexed so far while a long run's first
        build goes on (`ready` tells when it has caught up once), and two
        refreshes at once share the work.

        Raises:
          OSError: the run's directory cannot be listed.
        """
        with self._lock:
            paths = self._event_files()
            if any(not _still(f, paths) for f in self._files):
                self._reset()  # a file vanished or shrank: start over
            known = {f.path for f in self._files}
            for path in paths:
                if path not in known:
                    self._files.append(_File(path))
                    self._paths.append(path)
            generation = self._generation
            files = [(n, f) for n, f in enumerate(self._files) if f.damaged is None]
        for number, f in files:
            if not self._read_file(number, f, generation):
                return  # started over meanwhile: the refresh that did reads it
        with self._lock:
            if generation == self._generation:
                self._built.set()

    @property
    def ready(self):
        """Whether the index has once caught up with the run's files."""
        return self._built.is_set()

    def wait_built(self, seconds):
        """Waits up to `seconds` for `ready`; returns it."""
        return self._built.wait(seconds)

    def _event_files(self):
        """{path: size} of the run's event files, in name order."""
        found = {}
        for name in sorted(os.listdir(self.run_dir)):
            if not is_event_file(name):
                continue
            path = os.path.join(self.run_dir, name)
            if not inside(self._root, os.path.realpath(path)):
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            if os.path.isfile(path):
                found[path] = st.st_size
        return found

    def _read_file(self, number, f, generation):
        """Indexes file `f` from where it stopped, a chunk at a time; False
        if the index started over meanwhile."""
        try:
            fd = os.open(f.path, os.O_RDONLY)
        except OSError as e:
            logger.warning("nnviz: cannot read %s: %s", f.path, e)
            return True
        try:
            size, want, more = os.fstat(fd).st_size, _FIRST_READ, True
            while more:
                with self._lock:
                    if generation != self._generation:
                        return False
                    if f.damaged is not None or f.offset + records.HEADER.size > size:
                        return True
                    buf = _pread(fd, min(want, size - f.offset), f.offset)
                    if not buf:
                        return True  # it shrank meanwhile: the next refresh starts over
                    more, skipped, need = self._read_chunk(fd, number, f, buf, size)
                # Small records: read larger chunks; after a big record
                # skipped over, small reads again (only record heads).
                want = _FIRST_READ if skipped else max(min(want * 4, _CHUNK), need)
            return True
        finally:
            os.close(fd)

    def _read_chunk(self, fd, number, f, buf, size):
        """Indexes the records of `buf` (the file's bytes from `f.offset`;
        the file is `size` bytes) and moves `f.offset` past them.

        Returns:
          (more, skipped, need): whether the file may hold more whole
          records after them, whether reading ended by skipping over a big
          one, and the bytes of the record the chunk ended inside (0: none).
        """
        pos, n, base = 0, len(buf), f.offset
        scan_at, tags = event_records.scan_at, self._tags
        VALUES, FULL = event_records.VALUES, event_records.FULL  # noqa: N806 (locals: the hot loop)
        try:
            while pos + records.HEADER.size <= n:
                length = self._length(buf, pos)
                if length is None:
                    f.damaged = "damaged record header at byte %d" % (base + pos)
                    logger.warning("nnviz: stopped reading %s: %s", f.path, f.damaged)
                    return False, False, 0
                total = length + _FRAMING
                if base + pos + total > size:
                    return False, False, 0  # not whole yet: read again when it is
                start = pos + _HEADER_SIZE
                if pos + total <= n:
                    found = scan_at(buf, start, length)
                    if found.kind is VALUES and len(found.tags) == 1:  # most records: inline
                        tag_records = tags.get(found.tags[0])
                        if tag_records is not None:
                            tag_records.add(found.step, number, base + pos, length)
                            self.records_scanned += 1
                            pos += total
                            continue
                    elif found.kind is FULL:
                        found = self._full(buf[pos:pos + total], f, base + pos)
                elif total > _BIG:  # only its head is read: skip over the rest
                    found = self._scanned_head(fd, f, base + pos, buf[start:start + _PREFIX], length)
                    self._add(found, number, base + pos, length)
                    pos += total
                    return True, True, 0
                else:
                    return True, False, total  # the next chunk begins with it
                self._add(found, number, base + pos, length)
                pos += total
            return True, False, 0
        finally:
            self.bytes_scanned += pos
            f.offset = base + pos

    def _length(self, buf, pos):
        """The data length of the record whose header is at `buf[pos]`, or
        None if the header's checksum is wrong."""
        head = buf[pos:pos + records.HEADER.size]
        length = self._lengths.get(head)  # headers repeat: records of one size
        if length is None:
            try:
                length = records.read_length(head)
            except records.RecordError:
                return None
            if len(self._lengths) > 4096:
                self._lengths.clear()
            self._lengths[head] = length
        return length

    def _scanned_head(self, fd, f, offset, prefix, length):
        """What the big record at `offset` holds, from `prefix` (its first
        bytes, as many as the chunk had) or its head read now."""
        if len(prefix) < min(length, _PREFIX):
            prefix = _pread(fd, records.HEADER.size + _PREFIX, offset)[records.HEADER.size:]
        found = event_records.scan(memoryview(prefix)[:length], length)
        if found.kind == event_records.FULL:
            found = self._full(_pread(fd, records.record_size(length), offset), f, offset)
        return found

    def _full(self, record, f, offset):
        """What the whole `record` (at `offset` of `f`) holds."""
        try:
            return event_records.full(records.record_data(record))
        except (records.RecordError, pb_message.DecodeError) as e:
            logger.warning("nnviz: skipped a damaged record of %s at byte %d: %s",
                           f.path, offset, e)
            return event_records.Scanned(event_records.OTHER, 0, ())

    def _add(self, found, number, offset, length):
        self.records_scanned += 1
        if found.kind == event_records.VALUES:
            for tag in found.tags:
                tag_records = self._tags.get(tag)
                if tag_records is None:
                    tag_records = self._tags[tag] = _TagRecords(self._generation)
                tag_records.add(found.step, number, offset, length)
        elif found.kind == event_records.START:
            if self._seen_start:
                for tag_records in self._tags.values():
                    tag_records.drop_from(found.step)
            self._seen_start = True

    def records(self, summary_tag):
        """`(version, steps, Locations)` of a tag's records (version
        moves whenever they change), or None if the tag has none."""
        with self._lock:
            found = self._tags.get(summary_tag)
            if found is None:
                return None
            return found.version, found.steps.tolist(), Locations(self._paths, found)

    def version(self, summary_tag):
        found = self._tags.get(summary_tag)
        return None if found is None else found.version

    def nbytes(self):
        """Bytes of the index's arrays (benchmarks)."""
        return sum(t.nbytes() for t in self._tags.values())

    def record_count(self):
        return sum(len(t.steps) for t in self._tags.values())


class RunIndexes:
    """A RunIndex per run the plugin can read itself, shared by the frame,
    units and stats paths, each refreshed at most once per
    `recheck_seconds` unless asked.

    A run's first build is the long part (a long run's every record head),
    so it can happen in the background: with `warm()`, one thread indexes
    the logdir's runs from the start (the newest first, until
    `WARM_RECORDS` records are indexed), and a request that does not wait
    (`get(..., wait=False)`: the listings) for a run not yet indexed gets
    the records indexed so far and has the rest built in the background.

    Args:
      logdir: the local logdir TensorBoard reads, or None (no run can be
        read: every caller falls back to TensorBoard).
      recheck_seconds, clock: the refresh window and monotonic seconds.
    """

    def __init__(self, logdir, recheck_seconds, clock):
        self._logdir = None if logdir is None else os.path.realpath(logdir)
        self._recheck_seconds = recheck_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._slots = {}  # (eid, run) -> [RunIndex or None, refreshed at]
        self._by_dir = {}  # real run directory -> RunIndex
        self._jobs = queue.Queue()
        self._queued = set()  # indexes waiting for the background thread
        self._worker = None

    def warm(self, then=()):
        """Indexes the logdir's runs in the background, the newest first,
        up to WARM_RECORDS; then calls each of `then` with each index
        built, in the same order (disk_stats reads the stats tables)."""
        if self._logdir is not None:
            self._submit(functools.partial(self._warm, tuple(then)))

    def get(self, eid, run, refresh=False, wait=True):
        """The index of `run` (a run TensorBoard listed: the caller checks),
        refreshed if asked or past the window; None if the plugin cannot
        read the run itself (`run_directory`) or its directory is gone.
        Unless `wait`, an index whose first build has not ended within
        LISTING_WAIT_SECONDS is returned as it is, its build going on in
        the background."""
        if self._logdir is None:
            return None
        with self._lock:
            slot = self._slots.get((eid, run))
            if slot is None:
                path = run_directory(self._logdir, run)
                slot = self._slots[(eid, run)] = [None if path is None else self._index_of(path), None]
        index, refreshed_at = slot
        if index is not None and not wait and not index.ready:
            self._submit(index)
            if not index.wait_built(LISTING_WAIT_SECONDS):
                return index
        now = self._clock()
        if index is not None and (refresh or refreshed_at is None
                                  or now - refreshed_at >= self._recheck_seconds):
            try:
                index.refresh()
            except OSError:
                return None  # the run's directory is gone or unreadable
            slot[1] = now
        return index

    def _index_of(self, path):
        index = self._by_dir.get(path)
        if index is None:
            index = self._by_dir[path] = RunIndex(path, self._logdir)
        return index

    def forget_except(self, eid, runs):
        """Drops the indexes of `eid`'s runs not in `runs` (deleted runs)."""
        with self._lock:
            for key in [k for k in self._slots if k[0] == eid and k[1] not in runs]:
                index = self._slots.pop(key)[0]
                if index is not None and not any(s[0] is index for s in self._slots.values()):
                    self._by_dir.pop(index.run_dir, None)

    # --- the background thread ---------------------------------------------------

    def _submit(self, job):
        with self._lock:
            if job in self._queued:
                return
            self._queued.add(job)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="nnviz-index", daemon=True)
                self._worker.start()
        self._jobs.put(job)

    def _work(self):
        while True:
            job = self._jobs.get()
            with self._lock:
                self._queued.discard(job)
            try:
                job() if not isinstance(job, RunIndex) else job.refresh()
            except OSError as e:
                logger.warning("nnviz: cannot index %s: %s", getattr(job, "run_dir", "the logdir"), e)
            except Exception:  # never let one run stop the thread
                logger.exception("nnviz: indexing failed")

    def _warm(self, then):
        """Indexes the logdir's runs, the newest first, up to WARM_RECORDS,
        then hands each index to `then`."""
        total, built = 0, []
        for path in _run_directories(self._logdir):
            with self._lock:
                index = self._index_of(path)
            index.refresh()
            built.append(index)
            total += index.record_count()
            if total >= WARM_RECORDS:
                break
        for index in built:
            for step in then:
                step(index)


def _run_directories(logdir):
    """The directories in `logdir` holding event files (TensorBoard's
    runs), the one with the latest write first; symbolic links are not
    followed."""
    found = []
    for path, _, names in os.walk(logdir):
        times = [_mtime(os.path.join(path, n)) for n in names if is_event_file(n)]
        if times:
            found.append((-max(times), path))
    return [path for _, path in sorted(found)]


def _mtime(path):
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _still(f, paths):
    """Whether file `f` is still there, at least as long as what was read."""
    size = paths.get(f.path)
    return size is not None and size >= f.offset


def _pread(fd, n, offset):
    if hasattr(os, "pread"):
        return os.pread(fd, n, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # Windows has no pread
    return os.read(fd, n)


def read_value(location, summary_tag):
    """The `Summary.Value` of `summary_tag` in the record at `location`
    ((path, offset, length)): one positioned read, both checksums checked.

    Raises:
      FileNotFoundError: the file is gone.
      records.RecordError, format.FormatError, protobuf's DecodeError: the
        record is damaged or holds no such value.
    """
    return event_records.value_of(_record_data(location), summary_tag)


def read_event(location, files=None):
    """The whole event in the record at `location` (as `read_value`);
    through `files` (an `OpenFiles`) when given."""
    data = _record_data(location) if files is None else files.record_data(location)
    return event_records.event_of(data)


def _record_data(location):
    with OpenFiles() as files:
        return files.record_data(location)


class OpenFiles:
    """Positioned reads of records, each file opened once while in use
    (a thousand stats tables of one file: one open, not a thousand)."""

    def __init__(self):
        self._fds = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def record_data(self, location):
        """The checked data of the record at `location` (as `read_value`)."""
        path, offset, length = location
        fd = self._fds.get(path)
        if fd is None:
            fd = self._fds[path] = os.open(path, os.O_RDONLY)
        return records.record_data(_pread(fd, records.record_size(length), offset))


def read_frame(location, summary_tag):
    """The float32 frame of `summary_tag` in the record at `location`
    (`read_value`, then the frame decoded; the same errors)."""
    return fmt.decode_frame(fmt.frame_blob_of(read_value(location, summary_tag)))
