"""Writes weight snapshots to a log_dir from a background thread.

The training thread only hands over host copies of the weights
(`SnapshotWriter.write`); a worker thread lays them out, measures them,
encodes them and writes one TensorBoard event per snapshot through
TensorBoard's own `EventFileWriter` (not `tf.summary`), flushing after each
so a live TensorBoard sees it.

The host copies land in buffers the writer recycles (`BufferPool`): once
a snapshot's copy is no longer needed as the previous value of its tag,
the worker hands it back, so the next copy writes into memory that is
already mapped instead of page-faulting fresh memory (for ResNet50 that
was most of the copy's time on the training thread).

The queue between the two is bounded: when the worker falls behind, `write`
blocks and training waits; no snapshot is dropped. Everything queued is
written by `close()`, and by an `atexit` finaliser when the process ends
without it (Keras skips `on_train_end` when `fit` raises).

A write failure after the start (a full disk) is reported once with a
warning; training goes on and later snapshots are tried on a new event
file, backing off (1, 2, 4, … snapshots) while they keep failing. The
snapshots that failed are lost, and the warning says so.

This module imports neither Keras nor TensorFlow.
"""

import atexit
import collections
import logging
import queue
import threading
import time
import warnings

import numpy as np
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from tensorboard_nnviz import fast_crc
from tensorboard_nnviz import budget
from tensorboard_nnviz import format as fmt
from tensorboard_nnviz import layout as layout_lib
from tensorboard_nnviz import stats as stats_lib

logger = logging.getLogger(__name__)

# One weight of a snapshot, as copied on the training thread.
Weight = collections.namedtuple("Weight", "tag value layer_class layer_name dtype")

_Snapshot = collections.namedtuple("_Snapshot", "step wall_time weights structure pooled")
_STOP = object()


class LogDirError(OSError):
    """The log_dir cannot be written."""


class _TagState:
    """What the worker keeps per weight tag between snapshots."""

    __slots__ = ("key", "layout", "content", "prev", "init", "prev_pooled")

    def __init__(self, key, layout, content, init):
        self.key = key  # (shape, dtype, layer_class): a new key resets the state
        self.layout = layout
        self.content = content
        self.prev = None
        self.init = init
        self.prev_pooled = False  # prev is a BufferPool buffer: recycle it when replaced


class BufferPool:
    """Host buffers per weight tag, reused across snapshots.

    The training thread `take`s a buffer and copies a weight into it; the
    worker `give`s it back once nothing refers to it any more. A buffer is
    in one place at a time: the pool, a snapshot on its way, or a tag's
    prev or init; the worker gives a prev back only once a newer snapshot
    replaced it (never W_0), so a reused buffer never holds data still needed.
    """

    def __init__(self):
        self._free = {}
        self._lock = threading.Lock()  # take and give run on different threads

    def take(self, tag, shape, dtype):
        """A buffer of this shape and dtype (uninitialised)."""
        with self._lock:
            free = self._free.get(tag)
            buf = free.pop() if free else None
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self.allocate(shape, dtype)  # first use, or the weight changed
        return buf

    def allocate(self, shape, dtype):
        """A new buffer (a subclass may pin it for device-to-host copies)."""
        return np.empty(shape, dtype)

    def give(self, tag, buf):
        with self._lock:
            self._free.setdefault(tag, []).append(buf)


class SnapshotWriter:
    """Lays out, measures and writes snapshots on a background thread.

    Args:
      log_dir: directory of the event files (created if missing).
      max_cells: frames above this many cells are block-mean reduced.
      queue_size: snapshots that may wait for the worker before `write`
        blocks the caller. Memory: besides these, the worker holds the one
        it is writing plus W_prev and W_0 of every weight (full copies),
        and `pool` one spare copy per weight for the next snapshot.
      state: the per-tag state of an earlier, closed writer on the same run,
        so update and init stats carry over (`writer.state`).
      event_writer_factory: builds the event writer from a log_dir (default
        TensorBoard's `EventFileWriter`).

    Raises:
      LogDirError: the log_dir cannot be created or written.
    """

    def __init__(self, log_dir, max_cells=65536, queue_size=1, state=None,
                 event_writer_factory=None):
        self.log_dir = str(log_dir)
        self.max_cells = int(max_cells)
        self.state = state if state is not None else {}
        self._factory = event_writer_factory or _default_event_writer
        self._queue = queue.Queue(maxsize=max(1, int(queue_size)))
        self._failed_steps = []
        self._warned = False
        self._failures = 0  # consecutive failed writes
        self._skip = 0  # snapshots to skip before the next retry
        self._lost_structure = None  # of a snapshot that failed to be written
        self._closed = False
        self._lock = threading.Lock()
        self.pool = BufferPool()
        # Held by the training thread while it copies a snapshot (`paused`);
        # the worker waits on it before each weight.
        self._pause = threading.Lock()
        self.snapshots_written = 0
        self.worker_cpu_seconds = 0.0  # CPU time the worker spent (benchmarks)
        try:
            self._events = self._factory(self.log_dir)
        except Exception as e:  # OSError, tf.errors.*: all mean "cannot write"
            raise LogDirError(
                "NNVizCallback cannot write to log_dir %r: %s" % (self.log_dir, e)
            ) from e
        self._thread = threading.Thread(target=self._run, name="nnviz-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # --- training thread ----------------------------------------------------------

    def write(self, step, weights, structure=None, wall_time=None, pooled=False):
        """Queues one snapshot; blocks while the queue is full.

        Args:
          step: the snapshot's step (int).
          weights: list of `Weight` whose `value` is a host copy (numpy).
          structure: the structure document to write with it, or None.
          wall_time: seconds since the epoch (default now).
          pooled: the values are buffers from `self.pool` (one per weight),
            handed over to the writer, which recycles them once written.
        """
        if self._closed:
            raise RuntimeError("SnapshotWriter is closed")
        wall_time = time.time() if wall_time is None else wall_time
        self._queue.put(_Snapshot(int(step), float(wall_time), list(weights), structure,
                                  bool(pooled)))

    def paused(self):
        """A context in which the worker stops at its next weight.

        The training thread copies a snapshot in it: each of its variable
        reads releases the GIL, and a busy worker would take it back for up
        to `sys.getswitchinterval()` each time (measured: MobileNetV2's
        262 reads 8 ms with the worker idle, 60 ms with it busy).
        """
        return self._pause

    def flush(self):
        """Waits until every queued snapshot is written (or has failed)."""
        self._queue.join()

    def close(self):
        """Writes everything queued, then closes the event file. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        self._queue.put(_STOP)
        self._thread.join()
        if self._events is not None:
            try:
                self._events.close()
            except Exception as e:
                self._warn_failure(None, e)
        if self._failed_steps:
            logger.warning("nnviz: %d snapshot(s) could not be written to %r, at steps %s",
                           len(self._failed_steps), self.log_dir, self._failed_steps)

    # --- worker thread ------------------------------------------------------------

    def _run(self):
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                start = time.thread_time()
                self._write_snapshot(item)
                self.worker_cpu_seconds += time.thread_time() - start
            finally:
                self._queue.task_done()

    def _write_snapshot(self, snap):
        try:
            values = self._values(snap)
        except Exception as e:  # a bug of ours must not stop training
            logger.exception("nnviz: could not encode the snapshot at step %d", snap.step)
            self._warn_failure(snap.step, e)
            return
        event = event_pb2.Event(
            step=snap.step, wall_time=snap.wall_time, summary=summary_pb2.Summary(value=values)
        )
        if self._events is None and self._skip > 0:
            # Backing off after failures: each retry opens a new file (and
            # TensorBoard's writer thread prints its error), so not every time.
            if snap.structure is not None:
                self._lost_structure = snap.structure
            self._skip -= 1
            self._failed_steps.append(snap.step)
            return
        try:
            if self._events is None:  # an earlier failure: try a new file
                self._events = self._factory(self.log_dir)
            self._events.add_event(event)
            self._events.flush()
            self.snapshots_written += 1
            self._failures = 0
            self._lost_structure = None
        except Exception as e:
            if snap.structure is not None:  # rewrite it with the next snapshot
                self._lost_structure = snap.structure
            self._warn_failure(snap.step, e)
            self._discard_events()
            self._failures += 1
            self._skip = 2 ** min(self._failures - 1, 6) - 1

    def _values(self, snap):
        values = []
        structure = snap.structure if snap.structure is not None else self._lost_structure
        if structure is not None:
            values.append(fmt.structure_value(structure))
        stats_content = fmt.stats_content()
        for w in snap.weights:
            with self._pause:  # not while the training thread copies
                pass
            frame, state = self._frame(w)
            stats = stats_lib.compute_stats(w.value, prev=state.prev, init=state.init)
            old, old_pooled = state.prev, state.prev_pooled
            state.prev, state.prev_pooled = w.value, snap.pooled
            if old_pooled and old is not state.init:  # W_0 stays for the init stats
                self.pool.give(w.tag, old)
            elif snap.pooled:
                # Nothing came back: stock a spare, its pages mapped here
                # rather than by the next copy on the training thread.
                self.pool.give(w.tag, w.value.copy())
            # Exact frames float32, block-reduced ones float16 (budget.py).
            blob = fmt.encode_frame(frame, budget.frame_encoding(state.layout["block"]))
            values.append(fmt.frame_value(w.tag, blob, state.content))
            values.append(fmt.stats_value(w.tag, stats, stats_content))
        return values

    def _frame(self, w):
        """The frame of a weight, and its tag's state (new for a new tag or shape)."""
        value = w.value
        key = (tuple(value.shape), str(w.dtype), w.layer_class)
        state = self.state.get(w.tag)
        if state is not None and state.key == key:
            return layout_lib.make_frame(value, state.layout, self.max_cells)[0], state
        layout = layout_lib.choose_layout(w.layer_class, w.tag.rsplit("/", 1)[-1],
                                          value.shape, w.layer_name)
        frame, block = layout_lib.make_frame(value, layout, self.max_cells)
        layout = dict(layout, block=[int(b) for b in block])
        content = fmt.frame_content(shape=value.shape, dtype=w.dtype, layout=layout,
                                    rows=frame.shape[0], cols=frame.shape[1])
        state = self.state[w.tag] = _TagState(key, layout, content, init=value)
        return frame, state

    def _discard_events(self):
        events, self._events = self._events, None
        if events is not None:
            try:
                events.close()
            except Exception:
                pass  # already reported; the file is broken

    def _warn_failure(self, step, error):
        if step is not None:
            self._failed_steps.append(step)
        if self._warned:
            return
        self._warned = True
        msg = (
            "NNVizCallback could not write the weight snapshot at step %s to %r (%s: %s). "
            "Training goes on; later snapshots are still tried, snapshots that fail are lost "
            "(this warning is shown once)." % (step, self.log_dir, type(error).__name__, error)
        )
        logger.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)

    @property
    def failed_steps(self):
        """Steps whose snapshot could not be written."""
        return list(self._failed_steps)


def _default_event_writer(log_dir):
    # TensorBoard's record writer checksums in pure Python (~1 s per MB,
    # holding the GIL, so training slows too); use the C CRC-32C if present.
    fast_crc.install()
    # flush_secs is moot: the worker flushes after every snapshot.
    return EventFileWriter(log_dir, max_queue_size=4, flush_secs=120)


def read_last_step(log_dir):
    """The largest step of nnviz stats already in `log_dir`'s event files, or None.

    Reads the event files directly inside `log_dir` (one run) with
    TensorBoard's event file loader; a damaged file ends its own reading,
    not the callback.
    """
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.backend.event_processing import io_wrapper
    from tensorboard.compat import tf

    try:
        if not tf.io.gfile.isdir(log_dir):
            return None
        names = tf.io.gfile.listdir(log_dir)
    except Exception:
        return None
    last = None
    for name in sorted(names):
        path = log_dir.rstrip("/") + "/" + name
        if not io_wrapper.IsSummaryEventsFile(path):
            continue
        try:
            for event in event_file_loader.EventFileLoader(path).Load():
                if event.step <= (last if last is not None else -1):
                    continue
                for value in event.summary.value:
                    if value.tag.startswith(fmt.STATS_PREFIX):
                        last = event.step
                        break
        except Exception as e:
            logger.warning("nnviz: stopped reading %s: %s", path, e)
    return last
