"""Sharded weights, measured where they lie (docs/architecture.md, "Sharded
weights").

Under FSDP2 (DTensor) and Keras `ModelParallel` on JAX each process holds
blocks of a weight. Here every process measures the blocks it counts into
the fused pass's partial buffer of the whole weight (`stats.accumulate`
with a shard), against the same blocks of W_prev and W_0, which it keeps
itself; the training engine's collectives (a front end's `Collectives`)
combine the buffers, and the chief finishes them into the weight's stats,
units and frame (`stats.finish`) and hands them to its writer. No process
holds more of a weight than its own blocks.

A quantity of a sharded parameter (its gradient, the optimizer's moments:
docs/architecture.md, "Gradients and optimizer state") is measured the
same way, against its own previous and first snapshot, keyed by
`writer.Weight.key`. First, once per snapshot, the processes agree which
quantities exist (`_agree`): one a process lacks for the blocks it holds
(an optimizer without state yet) is measured by none.

Then, per bucket of weights (at most `BUCKET_ENTRIES` entries of partial
buffers), in the same order on every process:

1. the tensor sums, summed everywhere, and the minima and maxima, maxed
   everywhere (a few entries per weight): every process then knows which
   weights need the centred sum of squares (`stats.centring_shift`);
2. the whole buffers (unit sums, cell sums, sample) summed onto the chief;
3. the centred sums of those weights, summed onto the chief;
4. for the matrices whose spectrum is due (`_Turns`), their Gram matrix,
   summed onto the chief (`_gram_side`).

What a front end brings: its shards as `Sharded` values of `writer.Weight`
(only the blocks this process counts: one process per block, replicas
skipped) and its `Collectives`. This module imports no framework.
"""

import atexit
import collections
import contextlib
import logging
import queue
import threading
import warnings

import numpy as np

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.core import spectral as spectral_lib
from tensorboard_nnviz.record import budget
from tensorboard_nnviz.record import stats as stats_lib
from tensorboard_nnviz.record import writer as writer_lib

logger = logging.getLogger(__name__)

# float64 entries of partial buffers combined by one collective (4 MiB):
# few collectives for many small weights, bounded memory for large ones
# (the collectives allocate as much again).
BUCKET_ENTRIES = 1 << 19
# The longest side of a Gram matrix summed from shards when it is the
# longer side of the matrix (the shorter side's Gram is taken whatever its
# size): 32 MiB, and an eigensolve of about a second.
MAX_GRAM_SIDE = 2048

Shard = collections.namedtuple("Shard", "start data")
Shard.__doc__ = """One block of a sharded weight: its first index along each
axis (`start`) and a host copy of it (`data`, C order)."""


def available():
    """Whether shards can be measured where they lie: the fused kernel
    (numba) is there. Without it the front ends gather each weight."""
    return stats_lib._fused_kernel() is not None


class Sharded:
    """A sharded weight as a process copies it (a `writer.Weight`'s value).

    Args:
      shape: the whole weight's shape.
      shards: the `Shard`s this process counts (none when other processes
        hold all of it, or replicas of its blocks).
      cut: the axes the sharding cuts, the same on every process.
      missing: a quantity this process lacks for blocks it holds (its
        optimizer has no state for them yet): no process measures it.
    """

    __slots__ = ("shape", "shards", "cut", "missing")

    def __init__(self, shape, shards, cut, missing=False):
        self.shape = tuple(int(d) for d in shape)
        self.shards = list(shards)
        self.cut = frozenset(int(a) for a in cut)
        self.missing = bool(missing)

    @property
    def ndim(self):
        return len(self.shape)


class Measured:
    """A sharded weight measured by its processes together, as the chief's
    writer takes it (a `writer.Weight`'s value, in place of a copy).

    shape: the whole weight's shape; measurement: its `stats.Measurement`;
    gram: the (slices, s, s) Gram matrix of its matrix when this snapshot
    has its spectrum, else None.
    """

    __slots__ = ("shape", "measurement", "gram")

    def __init__(self, shape, measurement, gram=None):
        self.shape, self.measurement, self.gram = tuple(shape), measurement, gram

    @property
    def ndim(self):
        return len(self.shape)

    def spectral_metrics(self):
        """The spectral stats from the Gram matrix (then dropped), or None
        when this snapshot has none."""
        gram, self.gram = self.gram, None
        if gram is None:
            return None
        if not np.isfinite(gram).all():
            return dict.fromkeys(spectral_lib.FIELDS)
        return spectral_lib.metrics(spectral_lib.gram_eigenvalues(gram))


class Collectives:
    """The training engine's collectives over float64 numpy buffers, which
    every process enters in the same order. This one: a single process
    (it holds every block; nothing to combine)."""

    chief = True  # the process that writes

    def sum_all(self, buf):
        """The elementwise sum over the processes, on every process."""
        return buf

    def max_all(self, buf):
        """The elementwise maximum over the processes, on every process."""
        return buf

    def sum_to_chief(self, buf):
        """The elementwise sum over the processes, on the chief (None
        elsewhere); `buf` may be overwritten."""
        return buf


class _Tag:
    """What a process keeps per sharded weight: how to measure it, and its
    own blocks of W_prev and W_0 (by their start)."""

    __slots__ = ("key", "layout", "plan", "size", "frame_dtype", "matrix", "gram", "prev",
                 "init", "snapshots")

    def __init__(self, key, layout, plan, size, frame_dtype, matrix, gram):
        self.key, self.layout, self.plan, self.size = key, layout, plan, size
        self.frame_dtype, self.matrix, self.gram = frame_dtype, matrix, gram
        self.prev, self.init = {}, {}
        self.snapshots = 0

    @property
    def compared(self):
        return ("update", "init") if self.snapshots else ("init",)


class ShardedStats:
    """Measures the sharded weights of each snapshot with the other
    processes, on every process; the chief's writer writes them.

    The training thread copies its blocks (`submit`); a worker thread
    measures and combines them (`threaded`), or the training thread does
    (JAX across processes: its collectives must keep their order with
    training's own).

    Args:
      collectives: the front end's `Collectives`.
      max_cells, spectral: the recorder's.
      pool: the buffer pool of a process that does not write (the chief
        copies into its writer's).
      threaded: measure on a worker thread.
      name: the API the user called, for messages.
    """

    def __init__(self, collectives, max_cells, spectral, pool, threaded=True,
                 name="tensorboard_nnviz"):
        self.collectives = collectives
        self.max_cells = int(max_cells)
        self.pool = pool
        self.name = name
        self.state = {}
        self._turns = _Turns(spectral)
        self._pause = threading.Lock()
        self._queue = queue.Queue(maxsize=1) if threaded else None
        self._thread = None
        self._warned = False
        # The buckets' buffer, kept from one snapshot to the next: freeing a
        # buffer this large raises glibc's mmap threshold, and training's
        # own allocations of that size then stay in the heap (measured:
        # benchmarks/sharded_memory.py).
        self._buffer = np.empty(0)

    # --- training thread ----------------------------------------------------------

    def submit(self, copy, writer=None, step=None, structure=None):
        """A snapshot: `copy(pool)` (the front end's copy, a list of
        `writer.Weight`, sharded ones as `Sharded`) runs now, while the
        workers are paused; the rest on the worker. With `writer` (the
        chief): the snapshot is written at `step`, with `structure`."""
        pool = self.pool if writer is None else writer.pool
        with self._pause, (contextlib.nullcontext() if writer is None else writer.paused()):
            weights = copy(pool)
        item = (writer, step, weights, structure, pool)
        if self._queue is None:
            self._snapshot(*item)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="nnviz-shards", daemon=True)
            self._thread.start()
            atexit.register(self.flush)
        self._queue.put(item)

    def flush(self):
        """Waits until every submitted snapshot is measured (and handed to
        the writer)."""
        if self._thread is not None:
            self._queue.join()

    def end(self, writer=None):
        """The end of a run, on every process before the writer closes:
        the queued snapshots, then the Gram matrices of the spectra
        `spectral="auto"` owes the last snapshot (the writer's close
        computes them, `writer._write_spectral_ends`)."""
        self.flush()
        if writer is not None:
            writer.flush()  # the last snapshot's Measured values are the writer's W_prev
        try:
            owed = self._turns.owed([tag for tag, t in self.state.items() if t.gram])
            for tag in owed:
                t = self.state[tag]
                gram = self._gram(t, [Shard(start, data) for start, data in t.prev.items()])
                state = None if writer is None else writer.state.get(tag)
                if gram is not None and state is not None and isinstance(state.prev, Measured):
                    state.prev.gram = gram
        except Exception as e:  # a bug of ours must not stop training
            self._report(e)

    # --- worker -------------------------------------------------------------------

    def _run(self):
        while True:
            item = self._queue.get()
            try:
                self._snapshot(*item)
            finally:
                self._queue.task_done()

    def _snapshot(self, writer, step, weights, structure, pool):
        try:
            measured = self._measure([w for w in weights if isinstance(w.value, Sharded)], pool)
            if writer is not None:  # without the quantities `_agree` dropped
                weights = [w._replace(value=measured[w.key]) if isinstance(w.value, Sharded)
                           else w for w in weights
                           if not isinstance(w.value, Sharded) or w.key in measured]
                writer.write(step, weights, structure, pooled=True)
        except Exception as e:  # a bug of ours, or a collective that failed
            self._report(e)

    def _measure(self, weights, pool):
        """{key: Measured} of the sharded `weights` on the chief ({} elsewhere)."""
        weights = self._agree(weights)
        tags = [self._tag(w) for w in weights]
        turns = self._turns.choose([w.key for w, t in zip(weights, tags) if t.gram])
        out = {}
        bucket, entries = [], 0
        for w, t in zip(weights, tags):
            entries += stats_lib.partial_size(t.plan, t.size)
            bucket.append((w, t))
            if entries >= BUCKET_ENTRIES or w is weights[-1]:
                out.update(self._combine(bucket))
                bucket, entries = [], 0
        for w, t in zip(weights, tags):
            if w.key in turns:
                gram = self._gram(t, w.value.shards)
                if w.key in out:
                    out[w.key].gram = gram
            self._advance(w, t, pool)
        return out

    def _agree(self, weights):
        """`weights` without the quantities some process lacks (`missing`),
        on every process alike: one collective when there are quantities
        (the same candidates everywhere: the same model and optimizer)."""
        quantities = [i for i, w in enumerate(weights) if w.quantity != fmt.WEIGHTS]
        if not quantities:
            return weights
        missing = self.collectives.max_all(
            np.array([float(weights[i].value.missing) for i in quantities]))
        dropped = {i for i, m in zip(quantities, missing) if m}
        return [w for i, w in enumerate(weights) if i not in dropped]

    def _tag(self, w):
        """The weight's (or quantity's) `_Tag` (new for a new key, shape,
        dtype or layer class); a quantity's layout has its cell budget and
        no spectrum, as the writer's (writer._state)."""
        value = w.value
        key = (value.shape, str(w.dtype), w.layer_class)
        t = self.state.get(w.key)
        if t is None or t.key != key:
            layout = writer_lib.weight_layout(w, budget.cell_budget(w.quantity, self.max_cells))
            matrix = writer_lib.matrix_plan(w, layout) if w.quantity == fmt.WEIGHTS else None
            t = self.state[w.key] = _Tag(
                key, layout, stats_lib.fused_plan(value.shape, layout["unit_axes"], layout),
                int(np.prod(value.shape)),
                fmt.encoding_dtype(budget.frame_encoding(layout["block"])), matrix,
                _gram_side(matrix, value.shape, value.cut))
        return t

    def _combine(self, items):
        """Steps 1–3 of the module docstring for `items` [(Weight, _Tag)]:
        {key: Measured} on the chief."""
        acc_size, mins, maxs = stats_lib.partial_entries()
        sizes = [stats_lib.partial_size(t.plan, t.size) for _, t in items]
        bounds = np.cumsum([0] + sizes)
        if self._buffer.size < bounds[-1]:
            self._buffer = np.empty(int(bounds[-1]))
        buf = self._buffer[:int(bounds[-1])]
        parts = [buf[a:b] for a, b in zip(bounds, bounds[1:])]
        for (w, t), part in zip(items, parts):
            with self._pause:  # not while the training thread copies
                pass
            stats_lib.new_partial(t.plan, t.size, out=part)
            try:
                self._accumulate(part, w, t)
            except Exception:  # still enter the collectives: the others wait
                logger.exception("nnviz: could not measure the shards of %r", w.tag)
                part[:] = np.nan
        acc = np.stack([part[:acc_size] for part in parts])
        extrema = np.concatenate([-acc[:, list(mins)], acc[:, list(maxs)]], axis=1)
        acc[:, list(mins + maxs)] = 0.0
        coll = self.collectives
        acc = coll.sum_all(acc.reshape(-1)).reshape(len(items), acc_size)
        extrema = coll.max_all(extrema.reshape(-1)).reshape(len(items), -1)
        acc[:, list(mins)] = -extrema[:, :len(mins)]
        acc[:, list(maxs)] = extrema[:, len(mins):]
        shifts = [stats_lib.centring_shift(row) for row in acc]
        centred = np.array([sum(stats_lib.centred_sumsq(s.data, shift) for s in w.value.shards)
                            for (w, _), shift in zip(items, shifts) if shift is not None])
        buf = coll.sum_to_chief(buf)
        if centred.size:
            centred = coll.sum_to_chief(centred)
        if not coll.chief:
            return {}
        centred = iter([] if centred is None else centred.tolist())
        out = {}
        for (w, t), a, b, row, shift in zip(items, bounds, bounds[1:], acc, shifts):
            part = buf[a:b]
            part[:acc_size] = row
            value = next(centred) if shift is not None else None
            measurement = stats_lib.finish(part, t.plan, t.compared, lambda _, v=value: v,
                                           _NOTHING, t.frame_dtype)
            out[w.key] = Measured(w.value.shape, measurement)
        return out

    def _accumulate(self, part, w, t):
        """Adds this process's blocks of `w` into its partial buffer."""
        value = w.value
        for shard in value.shards:
            if shard.data.size == 0:
                continue
            plan = stats_lib.fused_plan(value.shape, t.layout["unit_axes"], t.layout,
                                        shard.start, shard.data.shape)
            prev = t.prev.get(shard.start) if t.snapshots else None
            stats_lib.accumulate(part, plan, shard.data, prev, t.init.get(shard.start, shard.data),
                                 shard=(value.shape, shard.start))

    def _gram(self, t, shards):
        """Step 4: the matrix's Gram summed over the processes' `shards`,
        on the chief (None elsewhere)."""
        side, slices, size = t.gram
        gram = np.zeros((slices, size, size))
        with spectral_lib.blas_single_thread():
            for shard in shards:
                if shard.data.size == 0:
                    continue
                x = spectral_lib.matrices(shard.data, t.matrix).astype(np.float64)
                xt = np.swapaxes(x, 1, 2)
                gram += xt @ x if side == "cols" else x @ xt
        gram = self.collectives.sum_to_chief(gram.reshape(-1))
        return None if gram is None else gram.reshape(slices, size, size)

    def _advance(self, w, t, pool):
        """This snapshot's blocks become the tag's W_prev (and W_0 at its
        first); the blocks they replace go back to the pool (never W_0's)."""
        for shard in w.value.shards:
            old = t.prev.get(shard.start)
            t.prev[shard.start] = shard.data
            if not t.snapshots:
                t.init[shard.start] = shard.data
            elif old is not None and old is not t.init.get(shard.start):
                pool.give((w.key, shard.start), old)
        t.snapshots += 1

    def _report(self, error):
        logger.error("nnviz: could not measure sharded weights", exc_info=error)
        if self._warned:
            return
        self._warned = True
        msg = ("%s could not measure the sharded weights of a snapshot (%s: %s); training goes on"
               % (self.name, type(error).__name__, error))
        logger.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)


_NOTHING = np.zeros(0)  # `finish`'s tensor: a sharded weight is not read again


def _gram_side(matrix, shape, cut):
    """(side, slices, size) of the Gram matrix a sharded matrix's shards sum
    to, or None when none does (its spectrum stays null).

    Shards that cut only the matrix's rows each hold whole columns, so
    XᵀX (columns × columns, "cols") is the sum of theirs; shards that cut
    only its columns, XXᵀ ("rows"). That Gram has the matrix's eigenvalues
    (and zeros when it is the longer side): taken when it is the shorter
    side, or at most MAX_GRAM_SIDE long.
    """
    if matrix is None or cut & set(matrix.slice_axes):
        return None
    slices, rows, cols = matrix.dims(shape)
    if cut <= set(matrix.row_axes):
        side, size = "cols", cols
    elif cut <= set(matrix.col_axes):
        side, size = "rows", rows
    else:
        return None
    if size > min(rows, cols) and size > MAX_GRAM_SIDE:
        return None
    return side, slices, size


class _Turns:
    """Which sharded matrices get their spectrum at a snapshot: the same
    answer on every process, so no clock (the writer's CPU budget is not
    the same on two processes). `spectral=True`: every one at every
    snapshot; "auto": every one at its first snapshot and at the end of the
    run (`owed`), and the one computed longest ago at each snapshot; a
    number: that one only; False: none."""

    def __init__(self, spectral):
        self.off = spectral is False or spectral is None
        self.every = spectral is True
        self.ends = isinstance(spectral, str) and spectral == "auto"
        self.count = 0
        self._last = {}  # tag → the snapshot of its last spectrum

    def choose(self, tags):
        self.count += 1
        if self.off:
            return set()
        if self.every:
            chosen = list(tags)
        else:
            chosen = [t for t in tags if t not in self._last] if self.ends else []
            waiting = sorted((t for t in tags if t not in chosen), key=lambda t: self._last.get(t, -1))
            chosen += waiting[:1]
        for tag in chosen:
            self._last[tag] = self.count
        return set(chosen)

    def owed(self, tags):
        """The matrices without a spectrum at the last snapshot, under "auto"."""
        if not self.ends:
            return []
        owed = [t for t in tags if self._last.get(t) != self.count]
        for tag in owed:
            self._last[tag] = self.count
        return owed
