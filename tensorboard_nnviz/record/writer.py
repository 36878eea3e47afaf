"""Writes weight snapshots to a log_dir from a background thread.

The training thread only hands over host copies of the weights
(`SnapshotWriter.write`); a worker thread measures them and makes their
frames in one pass (stats.py; docs/architecture.md, "The fused pass"),
adds the spectral stats of matrices within a CPU budget per snapshot
(spectral.py and docs/architecture.md, "Spectral stats"), and writes the
snapshot as TensorBoard events (`eventfiles.EventFile`: the frames' bytes
go into the file as they are; not `tf.summary`): one event per frame and
one per weight's per-unit stats, then one with the snapshot's stats table
and structure, flushing after each snapshot so a live TensorBoard sees it.
At `close`, under spectral="auto", it adds the spectral stats the budget
skipped at the last snapshot.

The host copies land in buffers the writer recycles (`BufferPool`): once
a snapshot's copy is no longer needed as the previous value of its tag,
the worker hands it back, so the next copy writes into memory that is
already mapped instead of page-faulting fresh memory (README, "Snapshot
hold time").

The queue between the two is bounded: when the worker falls behind, `write`
blocks and training waits; no snapshot is dropped. Everything queued is
written by `close()`, and by an `atexit` finaliser when the process ends
without it (Keras skips `on_train_end` when `fit` raises).

A write failure after the start (a full disk) is reported once with a
warning; training goes on and later snapshots are tried on a new event
file, backing off (1, 2, 4, … snapshots) while they keep failing. The
snapshots that failed are lost, and the warning says so. A lost snapshot
leaves no trace: the next one's `update_*` stats measure the change since
the last snapshot on disk, and a weight whose first snapshot was lost takes
its W_0 from its first snapshot on disk.

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

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.core import layout as layout_lib
from tensorboard_nnviz.core import spectral as spectral_lib
from tensorboard_nnviz.record import budget
from tensorboard_nnviz.record import eventfiles
from tensorboard_nnviz.record import spectral_budget
from tensorboard_nnviz.record import stats as stats_lib

logger = logging.getLogger(__name__)

class Weight(collections.namedtuple("Weight", "tag value layer_class layer_name dtype quantity",
                                    defaults=(fmt.WEIGHTS,))):
    """One weight of a snapshot, as copied on the training thread, or a
    quantity of the same shape beside it (`quantity`: "grad", ...; the
    weight itself is "weights"): same tag, layer class and layer name as
    the weight, its own value."""

    __slots__ = ()

    @property
    def key(self):
        """The writer's key of its state and buffers: the tag for the
        weight itself, (tag, quantity) for a quantity."""
        return self.tag if self.quantity == fmt.WEIGHTS else (self.tag, self.quantity)


_Snapshot = collections.namedtuple("_Snapshot", "step wall_time weights structure pooled")
_STOP = object()


class LogDirError(OSError):
    """The log_dir cannot be written."""


class _TagState:
    """What the worker keeps per weight tag between snapshots."""

    __slots__ = ("key", "layout", "frame_value", "units_value", "unit_block", "prev", "init",
                 "prev_pooled", "prev_sumsq", "init_sumsq", "matrix", "last_stats",
                 "last_spectral")

    def __init__(self, key, layout, frame_value, units_value, unit_block, init, matrix=None):
        self.key = key  # (shape, dtype, layer_class): a new key resets the state
        self.layout = layout
        # The frame and units values, serialized once (eventfiles.ValueTemplate).
        self.frame_value = frame_value
        self.units_value = units_value
        self.unit_block = unit_block  # units per stored column
        self.prev = None
        self.init = init
        self.prev_pooled = False  # prev is a BufferPool buffer: recycle it when replaced
        # ||prev||^2 and ||W_0||^2 as measured, when all finite (else None):
        # spares reading them again for update_ratio and init_cos.
        self.prev_sumsq = None
        self.init_sumsq = None
        # How the weight reads as matrices for the spectral stats
        # (spectral.plan), or None: not a matrix. Fixed by the key.
        self.matrix = matrix
        self.last_stats = None  # the stats written with prev
        self.last_spectral = False  # whether they hold its spectral stats


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
        `eventfiles.new_writer`: an `EventFile`, or TensorBoard's
        `EventFileWriter` for a URL).
      spectral: which matrices get spectral stats at each snapshot
        (`spectral_budget.scheduler_for`): "auto" (a CPU budget per snapshot),
        True (all, every snapshot), False (none), or seconds per snapshot.
      name: the API the user called (`recorder.WATCH`, ...), named in the
        writer's messages.
      quantity_frames: the quantities (`Weight.quantity`) whose frames are
        written besides their stats and per-unit stats; a weight's own
        frame always is.

    Raises:
      LogDirError: the log_dir cannot be created or written.
      ValueError: an invalid `spectral`.
    """

    def __init__(self, log_dir, max_cells=65536, queue_size=1, state=None,
                 event_writer_factory=None, spectral="auto", name="tensorboard_nnviz",
                 quantity_frames=()):
        self._scheduler = spectral_budget.scheduler_for(spectral)  # ValueError first
        self._last_wall_time = None  # of the previous snapshot (the budget's elapsed time)
        self._last_written = None  # (step, tags) of the last snapshot on disk
        self.spectral_cpu_seconds = 0.0  # of worker_cpu_seconds, on spectral stats
        self.log_dir = str(log_dir)
        self.name = name
        self.quantity_frames = frozenset(quantity_frames)
        self.max_cells = int(max_cells)
        self.state = state if state is not None else {}
        self._factory = event_writer_factory or eventfiles.new_writer
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
        # the worker waits on it before each compiled call (stats.measure_many).
        self._pause = threading.Lock()
        self.snapshots_written = 0
        self.worker_cpu_seconds = 0.0  # CPU time the worker spent (benchmarks)
        try:
            self._events = self._factory(self.log_dir)
        except Exception as e:  # OSError, tf.errors.*: all mean "cannot write"
            raise LogDirError(
                "%s cannot write to log_dir %r: %s" % (self.name, self.log_dir, e)
            ) from e
        self._thread = threading.Thread(target=self._run, name="nnviz-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # --- training thread ----------------------------------------------------------

    def write(self, step, weights, structure=None, wall_time=None, pooled=False):
        """Queues one snapshot; blocks while the queue is full.

        Args:
          step: the snapshot's step (int).
          weights: list of `Weight` whose `value` is a host copy (numpy), or
            a sharded weight measured by its processes (`sharded.Measured`).
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
        """A context in which the worker stops before its next compiled call
        (a large weight, or a snapshot's small ones together).

        The training thread copies a snapshot in it: each of its variable
        reads releases the GIL, and a busy worker would take it back for up
        to `sys.getswitchinterval()` each time (measured: the README, "The
        worker pauses while the training thread copies").
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
            start = time.thread_time()
            try:
                if item is _STOP:
                    self._write_spectral_ends()
                    return
                self._write_snapshot(item)
            finally:
                self.worker_cpu_seconds += time.thread_time() - start
                self._queue.task_done()

    def _write_snapshot(self, snap):
        if self._events is None and self._skip > 0:
            # Backing off after failures: each retry opens a new file (and
            # TensorBoard's writer thread prints its error), so not every
            # time; a skipped snapshot costs no layout or encoding.
            self._skip -= 1
            self._failed_steps.append(snap.step)
            self._forget(snap)
            return
        try:
            sumsqs, events, stats, spectral = self._values(snap)
        except Exception as e:  # a bug of ours must not stop training
            logger.exception("nnviz: could not encode the snapshot at step %d", snap.step)
            self._warn_failure(snap.step, e)
            self._forget(snap)
            return
        try:
            self._write_events(events)
        except Exception as e:
            self._warn_failure(snap.step, e)
            self._forget(snap)
            self._discard_events()
            self._failures += 1
            self._skip = 2 ** min(self._failures - 1, 6) - 1
            return
        self.snapshots_written += 1
        self._failures = 0
        self._lost_structure = None
        self._last_written = (snap.step, [w.tag for w in snap.weights
                                          if w.quantity == fmt.WEIGHTS])
        for w, sumsq, tag_stats in zip(snap.weights, sumsqs, stats):
            state = self.state[w.key]
            state.last_stats, state.last_spectral = tag_stats, w.key in spectral
            self._advance(state, w, snap.pooled and isinstance(w.value, np.ndarray), sumsq)

    def _write_events(self, events):
        """Writes events, each as its pieces (`eventfiles.event_pieces`), in
        order, and flushes."""
        if self._events is None:  # an earlier failure: try a new file
            self._events = self._factory(self.log_dir)
        for pieces in events:
            if hasattr(self._events, "write_pieces"):
                self._events.write_pieces(pieces)
            else:  # an event writer of TensorBoard's (a URL, or a test's)
                self._events.add_event(event_pb2.Event.FromString(b"".join(pieces)))
        self._events.flush()

    def _write_spectral_ends(self):
        """At the end of the run, the spectral stats of the matrices the
        budget skipped at the last snapshot, computed from that snapshot's
        weights (still held as W_prev): its stats vectors again, complete,
        at the same step (a reader keeps the last vector of a step)."""
        if self._scheduler is None or self._last_written is None:
            return
        try:
            self._write_spectral_ends_of(self._last_written)
        except Exception:  # a bug of ours: the snapshots are on disk already
            logger.exception("nnviz: could not add the spectral stats at the end of the run")

    def _write_spectral_ends_of(self, last_written):
        tags = [tag for tag, st in self.state.items()
                if st.matrix is not None and st.last_stats is not None and not st.last_spectral]
        chosen = self._scheduler.select_all(tags)
        if not chosen:
            return
        step, tags = last_written
        # The same step, a later wall time: the reader's cache sees the table
        # change, and both ingesters keep the later table of a step.
        event = event_pb2.Event(step=step, wall_time=time.time())
        with spectral_lib.blas_single_thread():
            for tag in chosen:
                state = self.state[tag]
                start = time.thread_time()
                state.last_stats.update(_spectral_metrics(tag, state.prev, state.matrix) or {})
                self.spectral_cpu_seconds += time.thread_time() - start
                state.last_spectral = True
        # The whole table again: RustBoard keeps only the later of two
        # tables at one step, so one holding the chosen tags alone would
        # hide the others' stats of that step.
        fmt.stats_table_value(tags, [self.state[tag].last_stats for tag in tags],
                              out=event.summary.value.add())
        try:
            self._write_events([eventfiles.event_pieces(event)])
        except Exception as e:
            self._warn_failure(step, e)

    def _forget(self, snap):
        """Leaves no trace of a snapshot that is not on disk, so the next
        one's update and init stats measure from snapshots that are: the
        tag states it created go, and its pooled buffers go back."""
        if snap.structure is not None:  # written with the next snapshot instead
            self._lost_structure = snap.structure
        for w in snap.weights:
            state = self.state.get(w.key)
            if state is not None and state.init is w.value:
                del self.state[w.key]
            if snap.pooled and isinstance(w.value, np.ndarray):
                self.pool.give(w.key, w.value)

    def _advance(self, state, w, pooled, sumsq):
        """Makes a written weight its tag's W_prev (update stats measure
        from it) and recycles the buffer it replaces; `sumsq`: its
        ||W||**2 as measured (None if not all finite)."""
        if state.prev is None and state.init is w.value:
            state.init_sumsq = sumsq
        state.prev_sumsq = sumsq
        old, old_pooled = state.prev, state.prev_pooled
        state.prev, state.prev_pooled = w.value, pooled
        if old_pooled and old is not state.init:  # W_0 stays for the init stats
            self.pool.give(w.key, old)
        elif pooled:
            # Nothing came back: stock a spare, its pages mapped here
            # rather than by the next copy on the training thread.
            self.pool.give(w.key, w.value.copy())

    def _values(self, snap):
        """The snapshot's events, each as byte pieces for the event file
        (`eventfiles.event_pieces`): two per weight, its frame and its
        per-unit stats, then one with the snapshot's stats table and
        structure (all values built in place, not copied into an event;
        the frames' cells are never copied into a proto).

        Returns each weight's ||W||**2 (None if not all finite), the
        events, each weight's stats and the tags whose spectral stats were
        computed.

        A frame or units value in an event of its own is one record on
        disk, which the plugin reads alone (docs/architecture.md, "Frames
        from disk"). The stats table goes first and the structure last: the
        plugin's index tells that event from the others by its first value
        without reading the rest.
        """
        sumsqs, stats, events = [], [], []
        head = eventfiles.event_head(snap.step, snap.wall_time)  # of every event here
        start = time.thread_time()
        states = [self._state(w) for w in snap.weights]
        # Exact frames float32, block-reduced ones float16 (budget.py).
        encodings = [budget.frame_encoding(state.layout["block"]) for state in states]
        framed = [w.quantity == fmt.WEIGHTS or w.quantity in self.quantity_frames
                  for w in snap.weights]
        # The stats, the unit sums and the frame: one pass (stats.py), or
        # measured by the processes holding its shards (sharded.py).
        measured = [getattr(w.value, "measurement", None) for w in snap.weights]
        local = [i for i, m in enumerate(measured) if m is None]
        requests = [stats_lib.Request(
            snap.weights[i].value, states[i].prev, states[i].init, states[i].layout["unit_axes"],
            states[i].prev_sumsq, states[i].init_sumsq,
            states[i].layout if framed[i] else None, fmt.encoding_dtype(encodings[i]))
            for i in local]
        for i, m in zip(local, stats_lib.measure_many(requests, between=self._wait)):
            measured[i] = m
        units = fmt.units_cells_many(
            [stats_lib.block_units(m.norm, state.unit_block) for m, state in zip(measured, states)],
            [None if m.update is None else stats_lib.block_units(m.update, state.unit_block)
             for m, state in zip(measured, states)])
        for i, m in enumerate(measured):
            sumsqs.append(m.sumsq if m.finite else None)
            stats.append(m.stats)
            if framed[i]:
                events.append(eventfiles.value_event_pieces(
                    head, states[i].frame_value, fmt.frame_pieces(m.frame, encodings[i])))
            events.append(eventfiles.value_event_pieces(head, states[i].units_value,
                                                        [units[i].tobytes()]))
        spectral = self._spectral(snap, stats, time.thread_time() - start)
        event = event_pb2.Event(step=snap.step, wall_time=snap.wall_time)
        weights = [i for i, w in enumerate(snap.weights) if w.quantity == fmt.WEIGHTS]
        others = [i for i, w in enumerate(snap.weights) if w.quantity != fmt.WEIGHTS]
        if weights:  # one table per snapshot: a datum per snapshot for the reader
            fmt.stats_table_value([snap.weights[i].tag for i in weights],
                                  [stats[i] for i in weights], out=event.summary.value.add())
        if others:  # the quantities' table, after the weights' (format.py)
            fmt.stats_table_value([snap.weights[i].tag for i in others],
                                  [stats[i] for i in others], out=event.summary.value.add(),
                                  quantities=[snap.weights[i].quantity for i in others])
        structure = snap.structure if snap.structure is not None else self._lost_structure
        if structure is not None:
            fmt.structure_value(structure, out=event.summary.value.add())
        events.append(eventfiles.event_pieces(event))
        return sumsqs, events, stats, spectral

    def _wait(self):
        """Waits while the training thread copies a snapshot (`paused`)."""
        with self._pause:
            pass

    def _spectral(self, snap, stats, writer_seconds):
        """Fills the spectral fields of `stats` (one dict per weight of
        `snap`) for the matrices the scheduler picks; the rest stay None.

        Runs here, on the worker, with BLAS on one thread: the training
        thread never waits for an eigensolver, and the solver does not take
        the cores training uses (spectral.blas_single_thread).
        """
        if self._scheduler is None:
            return set()
        elapsed = None if self._last_wall_time is None else snap.wall_time - self._last_wall_time
        self._last_wall_time = snap.wall_time
        matrices = {w.key: (w, s) for w, s in zip(snap.weights, stats)
                    if self.state[w.key].matrix is not None}
        done = self._unchanged_spectra(matrices)
        for tag in done:
            del matrices[tag]
        sharded = [tag for tag, (w, _) in matrices.items() if not isinstance(w.value, np.ndarray)]
        if sharded:  # sharded.py chose them (their Gram)
            with spectral_lib.blas_single_thread():
                for tag in sharded:
                    w, tag_stats = matrices.pop(tag)
                    metrics = _spectral_metrics(tag, w.value, None)
                    if metrics is not None:
                        tag_stats.update(metrics)
                        done.add(tag)
        ops = [(tag, spectral_lib.cost(w.value.shape, self.state[tag].matrix))
               for tag, (w, _) in matrices.items()]
        chosen = self._scheduler.select(ops, elapsed=elapsed, writer_seconds=writer_seconds)
        if not chosen:
            return done
        with spectral_lib.blas_single_thread():
            for tag in chosen:
                with self._pause:  # not while the training thread copies
                    pass
                w, tag_stats = matrices[tag]
                start = time.thread_time()
                tag_stats.update(_spectral_metrics(tag, w.value, self.state[tag].matrix))
                seconds = time.thread_time() - start
                self._scheduler.record(tag, seconds)
                self.spectral_cpu_seconds += seconds
                done.add(tag)
                if self._scheduler.overspent():
                    break  # the estimates were low (first snapshots): the rest wait
        return done

    def _unchanged_spectra(self, matrices):
        """Fills in the spectral stats of the matrices that did not change
        since the last snapshot written, when that snapshot had them (a
        frozen layer): the same weights have the same spectrum, so it is
        copied, not computed, and costs no budget.

        Args:
          matrices: {tag: (Weight, its stats dict)} of this snapshot.

        Returns:
          The set of tags filled in.
        """
        done = set()
        for tag, (w, tag_stats) in matrices.items():
            state = self.state[tag]
            # update_absmax = max |W - W_prev| (None without W_prev) picks
            # the candidates; it passes over NaN entries, so the weights
            # themselves are compared (equal arrays hold no NaN).
            if (state.last_spectral and isinstance(w.value, np.ndarray)
                    and tag_stats.get("update_absmax") == 0
                    and np.array_equal(w.value, state.prev)):
                tag_stats.update((f, state.last_stats.get(f)) for f in spectral_lib.FIELDS)
                done.add(tag)
        return done

    def _state(self, w):
        """The tag's state (new for a new tag, shape, dtype or layer class)."""
        value = w.value
        key = (tuple(value.shape), str(w.dtype), w.layer_class)
        state = self.state.get(w.key)
        if state is not None and state.key == key:
            return state
        layout = weight_layout(w, budget.cell_budget(w.quantity, self.max_cells))
        block, unit_axes = layout["block"], layout["unit_axes"]
        rows, cols = layout_lib.layout_size(layout, value.shape)
        content = fmt.frame_content(shape=value.shape, dtype=w.dtype, layout=layout,
                                    rows=-(-rows // block[0]), cols=-(-cols // block[1]))
        units = stats_lib.unit_count(value.shape, unit_axes)
        unit_block = stats_lib.unit_block(units, fmt.MAX_UNITS)
        units_content = fmt.units_content(unit_axes=unit_axes, units=units, block=unit_block)
        frame_value = eventfiles.ValueTemplate(
            fmt.frame_value(w.tag, None, content, quantity=w.quantity), eventfiles.STRING_VAL)
        units_value = fmt.units_value(w.tag, np.zeros(-(-units // unit_block)), None,
                                      units_content, quantity=w.quantity)
        units_value.tensor.ClearField("tensor_content")
        units_value = eventfiles.ValueTemplate(units_value, eventfiles.TENSOR_CONTENT)
        # A quantity gets no spectral stats (not a weight matrix).
        matrix = matrix_plan(w, layout) if w.quantity == fmt.WEIGHTS else None
        state = self.state[w.key] = _TagState(key, layout, frame_value, units_value, unit_block,
                                              init=value, matrix=matrix)
        return state

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
            "%s could not write the weight snapshot at step %s to %r (%s: %s). "
            "Training goes on; later snapshots are still tried, snapshots that fail are lost "
            "(this warning is shown once)."
            % (self.name, step, self.log_dir, type(error).__name__, error)
        )
        logger.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)

    @property
    def failed_steps(self):
        """Steps whose snapshot could not be written."""
        return list(self._failed_steps)


def weight_layout(w, max_cells):
    """The layout of a `Weight` with its frame `block` and `unit_axes`
    (the writer's, and record/sharded.py's on every process of a sharded one)."""
    shape = tuple(w.value.shape)
    layout = layout_lib.choose_layout(w.layer_class, w.tag.rsplit("/", 1)[-1], shape,
                                      w.layer_name)
    block = layout_lib.frame_block(layout, shape, max_cells)
    # A layout from elsewhere (e.g. another framework's) may name no units.
    unit_axes = layout.get("unit_axes", stats_lib.default_unit_axes(len(shape)))
    return dict(layout, block=[int(b) for b in block], unit_axes=unit_axes)


def matrix_plan(w, layout):
    """How `w` reads as matrices (spectral.plan), or None; never raises: a
    weight we cannot plan simply gets no spectral stats."""
    try:
        return spectral_lib.plan(layout, w.value.shape, w.layer_class, w.tag.rsplit("/", 1)[-1])
    except Exception:
        logger.debug("nnviz: no spectral plan for %r", w.tag, exc_info=True)
        return None


def _spectral_metrics(tag, value, matrix):
    """The spectral metrics of one weight; all None if anything fails (a
    LinAlgError on a pathological matrix must not lose the snapshot). A
    sharded weight's come from its Gram matrix (`sharded.Measured`), or are
    None when this snapshot has none."""
    try:
        if not isinstance(value, np.ndarray):
            return value.spectral_metrics()
        return spectral_lib.compute(value, matrix)
    except Exception:
        logger.debug("nnviz: spectral metrics of %r failed", tag, exc_info=True)
        return dict.fromkeys(spectral_lib.FIELDS)
