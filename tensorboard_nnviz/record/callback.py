"""`NNVizCallback`: weight snapshots and model structure from `model.fit`."""

import collections
import functools
import json
import logging
import os

import keras
import numpy as np

from tensorboard_nnviz.record import budget as budget_lib
from tensorboard_nnviz.record import quantities_keras
from tensorboard_nnviz.record import recorder as recorder_lib
from tensorboard_nnviz.record import sharded as sharded_lib
from tensorboard_nnviz.record import structure as structure_lib
from tensorboard_nnviz.record import writer as writer_lib

logger = logging.getLogger(__name__)


class NNVizCallback(keras.callbacks.Callback):
    """Records weight snapshots and the model structure for TensorBoard's nnviz tab.

    Each snapshot stores every weight of every layer (trainable or not) as a
    heatmap frame plus full-resolution statistics, at step = optimizer
    iterations completed. The first snapshot is taken as soon as the model
    has weights: at the start of training (step 0 for a fresh model), or,
    for a subclassed model built by its first batch, right after that batch.
    Steps stay monotonic within `log_dir`: after a recompile, a new
    optimizer, or on a log_dir that already holds snapshots, they continue
    after the last step written there, and no step is written twice.
    Beside each weight it records the optimizer's quantities of it
    (`quantities`), read from the live optimizer at the snapshot.

    The training thread only copies weights to host memory; a background
    thread lays them out, measures and writes them. It runs on Keras's
    TensorFlow, JAX and torch backends. One process writes: the chief
    worker under `tf.distribute`, process 0 under Keras's distribution API
    on JAX (create the callback after `keras.distribution.initialize()`),
    rank 0 under `torch.distributed`. A weight sharded over devices (a
    `LayoutMap` of `ModelParallel` on JAX) is measured block by block where
    it lies, and the processes combine their sums: none holds it whole
    (README, "Sharded weights"); so are its optimizer slots' quantities.

    Args:
      log_dir: directory for the event files (one TensorBoard run), e.g.
        the same `log_dir` as `keras.callbacks.TensorBoard`'s `train/`.
      snapshot_freq: `"epoch"` for a snapshot at the end of each epoch, an
        int N for one each time the step count crosses a multiple of N
        (with `steps_per_execution` k > 1 callbacks run only every k steps),
        or `"log"` for log-spaced steps, dense early and sparse late
        (`tensorboard_nnviz.LogSchedule`).
      max_cells: tensors of up to this many cells are stored exactly;
        larger ones are block-mean reduced to at most this many.
      include: regular expression; only tags where it matches (`re.search`)
        are recorded, e.g. `"kernel$"`.
      exclude: regular expression; tags where it matches are skipped.
      spectral: spectral stats of each weight matrix (`sv_max`,
        `stable_rank`, power-law `alpha`, `alpha_weighted`; computed on the
        writer thread, never the training thread). `"auto"` (default)
        spends a bounded CPU budget per snapshot and refreshes the matrices
        it skips at later snapshots (null until then); `True` computes
        every matrix at every snapshot (ResNet50: see the README, "Spectral
        stats", for the cost); `False` none; a number: CPU seconds per
        snapshot.
      quantities: what to record beside each weight, each as the weight
        is (stats, per-unit stats, frames if chosen): names from "grad",
        "m_hat", "v_rms", "momentum" (README, "Gradients and optimizer
        state", says which each backend and optimizer has, and their
        conventions); `()` for the weights only.
      quantity_frames: which of `quantities` also get frames: names, True
        (all) or False (none). Default `("grad",)`: the README gives the
        bytes each adds per snapshot.

    Raises:
      OSError: `log_dir` cannot be written (raised here, before training).
      ValueError: an invalid `snapshot_freq`, `max_cells`, `include`,
        `exclude` or `spectral`.

    Example:

    ```python
    model.fit(x, y, epochs=5,
              callbacks=[NNVizCallback("logs/run1", snapshot_freq=100)])
    # then: tensorboard --logdir logs
    ```
    """

    def __init__(self, log_dir, snapshot_freq="epoch", max_cells=65536, include=None,
                 exclude=None, spectral="auto", quantities=recorder_lib.DEFAULT_QUANTITIES,
                 quantity_frames=recorder_lib.DEFAULT_QUANTITY_FRAMES):
        super().__init__()
        # Every argument is checked here, before fit (recorder.py).
        self.recorder = recorder_lib.Recorder(recorder_lib.KERAS, log_dir, snapshot_freq,
                                              max_cells, include, exclude, spectral,
                                              quantities=quantities,
                                              quantity_frames=quantity_frames)
        self.log_dir = self.recorder.log_dir
        self.snapshot_freq = snapshot_freq
        self.max_cells = self.recorder.max_cells
        self.spectral = spectral
        self._chief = writes_here()  # this process writes the snapshots
        self._joins = _takes_part(self._chief)  # this process takes snapshots
        self._pending_first = False
        self._count = 0  # steps completed, counted from the batch hooks
        self._epoch_base = 0  # that count when the epoch began
        if self._chief:
            self.recorder.open()  # fails now if log_dir is unwritable

    # --- Keras hooks --------------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._check_role()
        if not self._joins:
            return
        if self._chief:
            self.recorder.open()  # again after a fit closed it
        self._count = self._iterations()
        self._pending_first = not self._has_weights()
        if not self._pending_first:
            self._log_budget(self._count)
            self._snapshot(self._count)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_base = self._count

    def on_train_batch_end(self, batch, logs=None):
        if not self._joins:
            return
        # Steps counted here, not read from the optimizer: reading its
        # iterations syncs with the device at every batch.
        # With steps_per_execution k, Keras reports the last hook of an epoch
        # as batch ceil(steps / k) * k - 1, past the epoch's real steps.
        done = batch + 1
        steps = (self.params or {}).get("steps")
        if steps:
            done = min(done, steps)
        count, previous = self._epoch_base + done, self._count
        self._count = count
        if self._pending_first:
            if self._has_weights():
                self._pending_first = False
                self._log_budget(count)
                self._snapshot()
        elif self.recorder.due(previous, count):
            self._snapshot()

    def on_epoch_end(self, epoch, logs=None):
        if self._joins and self.recorder.schedule.per_epoch and not self._pending_first:
            self._snapshot()

    def on_train_end(self, logs=None):
        self.close()

    def close(self):
        """Writes every queued snapshot and closes the event file (idempotent)."""
        self.recorder.close()

    # --- snapshots ----------------------------------------------------------------

    def _check_role(self):
        """A JAX process group started after this callback was made changes
        which process writes: stop writing here if this is not process 0."""
        self._joins = _takes_part(self._chief)
        if self._chief and not writes_here():
            self._chief = False
            self.close()
            logger.warning("nnviz: this process (not process 0) stops writing to %r; create "
                           "NNVizCallback after keras.distribution.initialize()", self.log_dir)

    def _log_budget(self, iterations):
        """Logs what this fit will record: tensors, bytes per snapshot, snapshots."""
        params = self.params or {}
        expected = budget_lib.expected_snapshots(
            self.recorder.schedule, epochs=params.get("epochs"),
            steps_per_epoch=params.get("steps"), start=iterations)
        # Printed beside Keras's progress bar, like its own messages.
        self.recorder.log_budget(_KerasModel(self.model), expected,
                                 echo=bool(params.get("verbose", 1)))

    def _snapshot(self, iterations=None):
        """Takes a snapshot (once per optimizer and iteration count: a second
        fit starts with the weights the first one ended with)."""
        it = self._iterations() if iterations is None else iterations
        self._find_shards()
        source = _KerasModel(self.model, self.recorder.shards is not None,
                             self.recorder.quantities, self.recorder.warn_once,
                             iterations=it if self._has_iterations() else None)
        self.recorder.snapshot(source, it, token=self._optimizer())

    def _find_shards(self):
        """Gives the recorder a `sharded.ShardedStats` once the model has a
        weight sharded over devices (JAX): on every process, which decides
        alike from the global sharding. Across processes it measures on the
        training thread (JAX's collectives keep their order with training's)."""
        if self.recorder.shards is not None or not sharded_lib.available():
            return
        if not any(_sharded_jax_array(getattr(v, "value", v)) for v in self.model.weights):
            return
        import jax

        across = jax.process_count() > 1
        self.recorder.shards = sharded_lib.ShardedStats(
            _JaxCollectives() if across else sharded_lib.Collectives(), self.recorder.max_cells,
            self.recorder.spectral, writer_lib.BufferPool(), threaded=not across,
            name=self.recorder.api)

    def _optimizer(self):
        return getattr(self.model, "optimizer", None)

    def _iterations(self):
        if not self._has_iterations():  # no optimizer: count the batches ourselves
            return self._count
        return int(np.asarray(keras.ops.convert_to_numpy(self._optimizer().iterations)))

    def _has_iterations(self):
        return getattr(self._optimizer(), "iterations", None) is not None

    def _has_weights(self):
        return bool(getattr(self.model, "built", True) and self.model.weights)


# A weight ref with its dtype's name (read once per walk, not per snapshot).
_Recorded = collections.namedtuple("_Recorded", structure_lib.WeightRef._fields + ("dtype",))


class _KerasModel(recorder_lib.Source):
    """A Keras model as the recorder sees it (recorder.Source)."""

    def __init__(self, model, shards=False, quantities=(), warn=logger.warning, iterations=None):
        self.model = model
        self.shards = shards  # sharded weights measured where they lie (sharded.py)
        self.quantities = quantities  # read beside each weight (quantities_keras.py)
        self.warn = warn
        self.iterations = iterations  # the optimizer's, read once for this snapshot

    def key(self):
        # The optimizer too: a recompile with another one writes the structure again.
        optimizer = getattr(self.model, "optimizer", None)
        return (id(self.model), id(optimizer)) + tuple(map(id, self.model.weights))

    def tensors(self):
        refs = structure_lib.weight_refs(self.model)
        recordable = [_Recorded(*r, structure_lib.dtype_name(r.variable)) for r in refs]
        optimizer = structure_lib.optimizer_summary(getattr(self.model, "optimizer", None))
        signature = (structure_lib.signature(refs), tuple(sorted((optimizer or {}).items())))
        return refs, signature, recordable

    def structure(self, refs):
        return structure_lib.build_structure(self.model, refs)

    def copy(self, recorded, pool, writes=True):
        # Every process reads the slots of sharded weights (their blocks).
        reader = self._reader() if writes or self.shards else None
        weights = []
        for r in recorded:
            value = getattr(r.variable, "value", r.variable)
            sharded = self.shards and _sharded_jax_array(value)
            if sharded:
                value = _own_shards(value, r.tag, pool.take)
            elif writes:
                value = _copy_to_host(r.variable, r.tag, pool.take)
            else:
                continue
            weights.append(writer_lib.Weight(r.tag, value, r.layer_class, r.layer_name, r.dtype))
            if reader is None:
                continue
            if sharded:
                weights += self._sharded_quantities(reader, r, pool.take)
            elif writes:
                weights += self._quantities(reader, r, pool.take)
        return weights

    def _sharded_quantities(self, reader, r, take):
        """`writer.Weight`s of the sharded weight `r`'s slot quantities, this
        process's blocks of each (`sharded.Sharded`, pool keys
        ((tag, quantity), start)): measured where they lie, as the weight."""
        dtypes = {}

        def own(array, name):
            dtypes[name] = np.dtype(array.dtype).name  # the same on every process
            return _own_shards(array, (r.tag, name), take)

        # No try: every process must list the same quantities (a failure
        # here is the snapshot's, reported by the recorder, on every process).
        return [writer_lib.Weight(r.tag, blocks, r.layer_class, r.layer_name, dtypes[name],
                                  quantity=name)
                for name, blocks in reader.read_blocks(r.variable, own)]

    def _reader(self):
        """The optimizer's quantities for this snapshot (one read of its
        step count and scales), or None when none are recorded or the
        optimizer cannot be read (then the weights are recorded alone)."""
        if not self.quantities:
            return None
        try:
            return quantities_keras.Reader(getattr(self.model, "optimizer", None),
                                           self.quantities, _host_view, self.iterations)
        except Exception as e:
            self._failed(e)
            return None

    def _quantities(self, reader, r, take):
        """`writer.Weight`s of the quantities `reader` finds for the recorded
        weight `r`, each copied into the pool under (tag, quantity); none
        if reading them fails (the weight is recorded all the same)."""
        try:
            found = reader.read(r.variable, lambda name, shape, dtype: take((r.tag, name), shape,
                                                                             dtype))
        except Exception as e:
            self._failed(e)
            return []
        return [writer_lib.Weight(r.tag, value, r.layer_class, r.layer_name, value.dtype.name,
                                  quantity=name) for name, value in found]

    def _failed(self, e):
        logger.debug("nnviz: optimizer quantities not read", exc_info=True)
        self.warn("%s could not read the optimizer's quantities (%s: %s); the weights are "
                  "recorded without them" % (recorder_lib.KERAS, type(e).__name__, e))

    def join(self, recorded):
        for r in recorded:
            _join_gather(r.variable)


def _copy_to_host(variable, tag, take):
    """A variable's current value, copied once into `take(tag, shape, dtype)`.

    The buffer comes from the writer's pool (recycled across snapshots).
    The one copy is made from a host view that shares the backend's memory
    where it can (measured by benchmarks/hold_time.py): on CPU a TensorFlow
    tensor read, a torch `detach()`, and a JAX array all share it. A JAX
    array split over devices (without the fused kernel: the recorder then
    has no `shards`) is copied shard by shard into the buffer, so no
    second, gathered copy is made (JAX would keep one on the array).
    """
    value = getattr(variable, "value", variable)  # the backend's variable or array
    if _sharded_jax_array(value):
        return _gather_jax(value, tag, take)
    view = _host_view(value, variable)
    buf = take(tag, view.shape, view.dtype)
    np.copyto(buf, view)
    return buf


def _host_view(value, variable):
    """The backend value as numpy, sharing its memory where it can.

    `np.array(variable)` copies twice with TensorFlow (`tf.Variable.numpy()`,
    then numpy's own copy) and goes through `convert_to_numpy`'s copy on
    torch. The view must not outlive the caller's copy: while it lives,
    TensorFlow copies the variable at its next update (copy-on-write) to
    keep the view unchanged.
    """
    if callable(getattr(value, "value", None)):  # a tf.Variable: read it as a tensor
        value = value.value()
    elif callable(getattr(value, "detach", None)):  # a torch Parameter: no autograd
        value = value.detach().cpu()  # .cpu() of a CPU tensor is the tensor itself
    try:
        return np.asarray(value)
    except Exception:  # e.g. torch bfloat16, which numpy cannot view
        return np.asarray(keras.ops.convert_to_numpy(variable))


def _sharded_jax_array(value):
    """A JAX array whose devices hold different parts (not one whole copy each)."""
    # Only JAX arrays have the attribute; asking the sharding is cheap, listing
    # `addressable_shards` is not (measured: most of a snapshot's reads).
    return getattr(value, "is_fully_replicated", True) is False


def _gather_jax(array, tag, take):
    """The whole of a sharded JAX array in one host buffer.

    Each distinct shard held by this process is copied into place (a CPU
    shard reads without a copy). Shards held only by other processes come
    through JAX's collective gather, entered by every process
    (`_join_gather`).
    """
    buf = take(tag, array.shape, np.dtype(array.dtype))
    if not _process0_holds_all(array):
        from jax.experimental import multihost_utils

        np.copyto(buf, multihost_utils.process_allgather(array, tiled=True))
        return buf
    done = set()
    for shard in array.addressable_shards:
        key = _index_key(shard.index)
        if key not in done:  # replicas of a shard hold the same values
            done.add(key)
            buf[shard.index] = np.asarray(shard.data)
    return buf


def _own_shards(array, tag, take):
    """A `sharded.Sharded` of the blocks of a sharded JAX array this
    process counts, each copied into `take((tag, start), ...)`: of the
    devices holding the same block, the first of the lowest process counts
    it."""
    owners, cut = _shard_owners(array.sharding, tuple(array.shape))
    shards = []
    for shard in array.addressable_shards:
        key = _index_key(shard.index)
        if owners[key] == shard.device:
            start = tuple(s.indices(n)[0] for s, n in zip(shard.index, array.shape))
            data = np.asarray(shard.data)  # a CPU shard: no copy
            buf = take((tag, start), data.shape, data.dtype)
            np.copyto(buf, data)
            shards.append(sharded_lib.Shard(start, buf))
    return sharded_lib.Sharded(array.shape, shards, cut)


@functools.lru_cache(maxsize=256)
def _shard_owners(sharding, shape):
    """({block: the device that counts it}, the axes the sharding cuts),
    from the global sharding: every process answers the same."""
    owners, cut = {}, set()
    for device, index in sharding.devices_indices_map(tuple(shape)).items():
        block = _index_key(index)
        best = owners.get(block)
        if best is None or (device.process_index, device.id) < (best.process_index, best.id):
            owners[block] = device
        cut |= {a for a, (s, n) in enumerate(zip(index, shape)) if s.indices(n)[:2] != (0, n)}
    return owners, cut


class _JaxCollectives(sharded_lib.Collectives):
    """JAX's collectives across processes (`process_allgather` of each
    process's buffer; float64 goes as its bits, JAX holding float32 unless
    x64 is on), entered on the training thread."""

    def __init__(self):
        import jax

        self.chief = jax.process_index() == 0

    def _gathered(self, buf):
        from jax.experimental import multihost_utils

        bits = np.ascontiguousarray(buf, np.float64).view(np.uint32)
        return np.asarray(multihost_utils.process_allgather(bits)).view(np.float64)

    def sum_all(self, buf):
        return self._gathered(buf).sum(axis=0)

    def max_all(self, buf):
        return self._gathered(buf).max(axis=0)

    def sum_to_chief(self, buf):
        total = self.sum_all(buf)
        return total if self.chief else None


def _join_gather(variable):
    """On a process that does not write: enter the collective gather that
    process 0 needs for this variable, if it needs one."""
    value = getattr(variable, "value", variable)
    if _sharded_jax_array(value) and not _process0_holds_all(value):
        from jax.experimental import multihost_utils

        multihost_utils.process_allgather(value, tiled=True)


def _process0_holds_all(array):
    """Whether process 0's devices hold every part of `array`.

    Decided from the global sharding, so every process answers the same
    and all of them enter a collective gather, or none does.
    """
    parts = {}
    for device, index in array.sharding.devices_indices_map(array.shape).items():
        if device.process_index == 0:
            parts[_index_key(index)] = index
    size = 0
    for index in parts.values():
        size += int(np.prod([len(range(*s.indices(n))) for s, n in zip(index, array.shape)]))
    return size == array.size


def _index_key(index):
    return tuple((s.start, s.stop, s.step) for s in index)


def _takes_part(writes):
    """Whether this process takes snapshots: the writer, and under JAX across
    processes every process (a weight sharded across processes is measured
    with collectives that all of them enter)."""
    if writes or keras.backend.backend() != "jax":
        return writes
    import jax

    return jax.distributed.is_initialized() and jax.process_count() > 1


def writes_here():
    """Whether this process writes the snapshots: one writer per training job.

    TensorFlow: the chief of TF_CONFIG (`is_chief`). JAX: process 0 once
    `jax.distributed` (`keras.distribution.initialize()`) has started, else
    the one process. torch: rank 0 of an initialised `torch.distributed`
    group, else the one process. Never starts a backend's runtime.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return not jax.distributed.is_initialized() or jax.process_index() == 0
    if backend == "torch":
        import torch.distributed as dist

        return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
    return is_chief(os.environ.get("TF_CONFIG"))


def is_chief(tf_config):
    """Whether this process writes, from the TF_CONFIG JSON string (or None).

    No TF_CONFIG, or one without a cluster, means a single process: the
    chief. In a cluster the chief is the "chief" (or "master") task if there
    is one, else worker 0; evaluators and parameter servers never write.
    """
    if not tf_config:
        return True
    try:
        config = json.loads(tf_config) if isinstance(tf_config, str) else dict(tf_config)
    except (TypeError, ValueError) as e:
        raise ValueError("TF_CONFIG is not valid JSON: %s" % e) from e
    cluster = config.get("cluster") or {}
    task = config.get("task") or {}
    if not cluster:
        return True
    task_type = task.get("type")
    index = int(task.get("index", 0) or 0)
    if task_type in ("chief", "master"):
        return True
    if "chief" in cluster or "master" in cluster:
        return False
    return task_type == "worker" and index == 0
