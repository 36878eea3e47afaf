"""`watch`: weight snapshots of a PyTorch model for TensorBoard's nnviz tab.

    from tensorboard_nnviz.torch import watch

    watcher = watch(model, "runs/exp1", optimizer=optimizer, snapshot_freq=100)
    for x, y in loader:
        ...
        optimizer.step()          # counted by a step hook: nothing else to add
    watcher.close()

The same event format, writer, layouts and panel as the Keras callback; only
the recorder differs. Tags and what is recorded: structure_torch.py. Layouts
in torch's axis order: layout_torch.py.
"""

import datetime
import itertools
import os
import weakref

import numpy as np
import torch

from tensorboard_nnviz.record import quantities_torch
from tensorboard_nnviz.record import recorder as recorder_lib
from tensorboard_nnviz.record import sharded as sharded_lib
from tensorboard_nnviz.record import structure_torch
from tensorboard_nnviz.record import writer as writer_lib

__all__ = ["Watcher", "watch"]


def watch(model, log_dir, optimizer=None, snapshot_freq=100, max_cells=65536, include=None,
          exclude=None, spectral="auto", quantities=recorder_lib.DEFAULT_QUANTITIES,
          quantity_frames=recorder_lib.DEFAULT_QUANTITY_FRAMES):
    """Records weight snapshots of `model` into `log_dir` for the nnviz tab.

    Takes the first snapshot (step 0) now, then one each time the step
    count crosses a multiple of `snapshot_freq`. The step is the number of
    optimizer steps completed: counted by a step post-hook on `optimizer`,
    or, without one (no optimizer, several optimizers), by calls to
    `watcher.step()` after each update. Steps stay monotonic within a
    `log_dir`: on a directory that already holds snapshots, numbering
    continues after the last step written there.

    Every floating-point parameter and buffer is recorded, trainable or not;
    integer and bool buffers (`num_batches_tracked`) are not. The training
    thread only copies the tensors to host memory (CUDA tensors: one
    asynchronous copy into pinned, recycled buffers); a background thread
    lays them out, measures and writes them. Call `watch` on every process
    of a distributed job: only rank 0 writes. Under
    `DistributedDataParallel` the other ranks only count steps; under FSDP2
    (`fully_shard`, after it) or any DTensor sharding every rank measures
    its own shards of each weight and the ranks combine the sums (a gloo
    group of their own; no rank gathers a whole weight: README, "Sharded
    weights"); close the watcher on every rank. FSDP1 (`FullyShardedDataParallel`) is not recorded (a
    warning). An error of ours is logged and warned about once; training
    goes on.

    Args:
      model: the `torch.nn.Module`, or its DDP / `torch.compile` wrapper
        (tags are the plain model's names either way).
      log_dir: directory for the event files (one TensorBoard run), e.g.
        `SummaryWriter(log_dir)`'s.
      optimizer: a `torch.optim.Optimizer` whose steps count the step, or
        a wrapper of one (Accelerate's `AcceleratedOptimizer`, Lightning's
        `LightningOptimizer`, any wrapper exposing it as `.optimizer`):
        steps are counted on the real optimizer, once per real step (an
        accumulation micro-step, or a step a grad scaler skipped, is none).
        None to count with `watcher.step()`.
      snapshot_freq: an int N for a snapshot each time the step count
        crosses a multiple of N, or `"log"` for log-spaced steps
        (`tensorboard_nnviz.LogSchedule`).
      max_cells: tensors of up to this many cells are stored exactly;
        larger ones are block-mean reduced to at most this many.
      include: regular expression; only tags where it matches (`re.search`)
        are recorded, e.g. `"weight$"`.
      exclude: regular expression; tags where it matches are skipped.
      spectral: spectral stats of each weight matrix (`sv_max`,
        `stable_rank`, power-law `alpha`, `alpha_weighted`; computed on the
        writer thread). `"auto"` (default) spends a bounded CPU budget per
        snapshot and fills the matrices it skips at later snapshots (null
        until then); `True` every matrix at every snapshot (cost: the
        README, "Spectral stats"); `False` none; a number: CPU seconds per
        snapshot.
      quantities: what to record beside each weight at the optimizer step
        (read from `p.grad` and `optimizer.state[p]`; only with an
        `optimizer`), each as the weight is (stats, per-unit stats, frames if chosen):
        names from "grad", "m_hat", "v_rms", "momentum" (README,
        "Gradients and optimizer state"); `()` for the weights only.
      quantity_frames: which of `quantities` also get frames: names, True
        (all) or False (none). Default `("grad",)`: the README gives the
        bytes each adds per snapshot.

    Returns:
      A `Watcher`; `close()` it (or use it as a context manager) to write
      what is queued. What is still queued at exit is written anyway.

    Raises:
      OSError: `log_dir` cannot be written.
      ValueError: an invalid `snapshot_freq` (e.g. `"epoch"`: a training loop
        has no epochs a hook can see), `max_cells`, `include`, `exclude`,
        `spectral`, or an `optimizer` that is none.

    Example:

    ```python
    with watch(model, "runs/exp1", optimizer=opt, snapshot_freq=50):
        for epoch in range(10):
            for x, y in loader:
                opt.zero_grad()
                loss_fn(model(x), y).backward()
                opt.step()
    # then: tensorboard --logdir runs
    ```
    """
    watcher = Watcher(model, log_dir, optimizer=optimizer, snapshot_freq=snapshot_freq,
                      max_cells=max_cells, include=include, exclude=exclude, spectral=spectral,
                      quantities=quantities, quantity_frames=quantity_frames)
    watcher.snapshot()
    return watcher


def process_rank():
    """This process's rank in a `torch.distributed` job (0 when there is none).

    The process group's rank when it is initialised, else `RANK` from the
    environment (set by torchrun before the group exists).
    """
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


class Watcher:
    """Takes weight snapshots of a torch model; see `watch`.

    `watch` makes one and takes the first snapshot; the Lightning and
    Hugging Face callbacks drive one from their trainer's step count
    (`Driver`, through `Watcher.driven`).

    Args: as `watch`, and
      start: optimizer steps already completed (e.g. a resumed
        `global_step`); the first snapshot's step.
    """

    def __init__(self, model, log_dir, optimizer=None, snapshot_freq=100, max_cells=65536,
                 include=None, exclude=None, start=0, allow_epochs=False, spectral="auto",
                 quantities=recorder_lib.DEFAULT_QUANTITIES,
                 quantity_frames=recorder_lib.DEFAULT_QUANTITY_FRAMES):
        # Every argument is checked here, before anything is opened (recorder.py).
        recorder = recorder_lib.Recorder(recorder_lib.WATCH, log_dir, snapshot_freq, max_cells,
                                         include, exclude, spectral, epochs=allow_epochs,
                                         quantities=quantities, quantity_frames=quantity_frames)
        optimizer = real_optimizer(optimizer)
        self._start(recorder, model, None, optimizer, start, process_rank() == 0)

    @classmethod
    def driven(cls, recorder, model, log_dir, start=0, writes=True, expected=None,
               optimizers=()):
        """A Watcher for a callback that counts the steps itself (`advance_to`
        its trainer's `global_step`).

        Args:
          recorder: the callback's `recorder.Recorder`, its arguments checked
            when the callback was made.
          log_dir: the run's directory, known once training starts.
          writes: whether this process writes (the trainer's global zero);
            the others only measure their shards of sharded weights.
          expected: snapshots expected, for the budget line (or None).
          optimizers: the trainer's optimizers (or wrappers of them), whose
            state and gradients give the recorded quantities.
        """
        self = cls.__new__(cls)
        self._start(recorder, model, log_dir, None, start, writes, expected, optimizers)
        return self

    def _start(self, recorder, model, log_dir, optimizer, start, writes, expected=None,
               optimizers=()):
        self.recorder = recorder
        self.model = structure_torch.unwrap(model)
        self._source = _TorchModel(self.model)
        self._source.quantities = recorder.quantities
        found = ([optimizer] if optimizer is not None
                 else [_optimizer_or_none(o) for o in optimizers])
        self._source.optimizers = [o for o in found if o is not None]
        self.skipped_steps = 0  # steps a fused optimizer skipped for inf/NaN grads
        self._count = int(start)  # optimizer steps completed
        self._budget = [expected]  # logged before the first snapshot, then emptied
        self._hook = None
        self._closed = False
        # Sharded weights (FSDP2's DTensors) are measured by every rank on
        # its own shards at every snapshot (collectives); one process writes.
        self._sharded = any(map(structure_torch.is_sharded, self.model.parameters()))
        self.active = writes and not structure_torch.has_fsdp1(self.model)
        if self._sharded and recorder.shards is None and sharded_lib.available():
            recorder.shards = sharded_lib.ShardedStats(
                _TorchCollectives(), recorder.max_cells, recorder.spectral, HostBufferPool(),
                name=recorder.api)
        self._source.shards = recorder.shards is not None
        if self.active:
            recorder.open(log_dir, pool=HostBufferPool())
        elif writes:
            recorder.warn_once(
                "%s records nothing under FullyShardedDataParallel (FSDP1): its parameters are "
                "flat shards. Shard with torch.distributed.fsdp.fully_shard (FSDP2) instead: its "
                "weights are measured shard by shard for each snapshot." % recorder.api)
        if optimizer is not None and (self.active or self._sharded):
            self._hook = optimizer.register_step_post_hook(self._on_optimizer_step)

    # --- counting steps -------------------------------------------------------------

    def step(self):
        """Counts one completed optimizer step; takes a snapshot when one is due.

        Call it after each update when `watch` got no optimizer (no
        optimizer, or several: call it once per training step).
        """
        if self._hook is not None:
            self.recorder.warn_once("watcher.step() is ignored: the optimizer passed to "
                                    "watch() already counts the steps")
            return
        self.advance_to(self._count + 1)

    def _on_optimizer_step(self, optimizer, args, kwargs):
        if quantities_torch.skipped(optimizer):  # no step: the weights did not change
            self.skipped_steps += 1
            return
        self.advance_to(self._count + 1)

    def advance_to(self, count):
        """Training reached `count` optimizer steps (e.g. Lightning's
        `global_step`): takes a snapshot if one is due since the last count."""
        previous, self._count = self._count, int(count)
        if self.recorder.due(previous, self._count):
            self.snapshot()

    # --- snapshots ----------------------------------------------------------------

    def snapshot(self):
        """Takes a snapshot now, at the current step (once per step).

        Errors of ours are logged and warned about once, never raised.
        """
        if self._closed or not (self.active or self._sharded):
            return
        if self._budget:
            self.recorder.log_budget(self._source, self._budget.pop())
        self.recorder.snapshot(self._source, self._count, token=self)

    # --- closing --------------------------------------------------------------------

    @property
    def last_step(self):
        """The step of the last snapshot in `log_dir` (ours or earlier), or None."""
        recorder = getattr(self, "recorder", None)  # None if __init__ raised
        return recorder.last_step if recorder is not None else None

    def close(self):
        """Removes the optimizer hook and writes every queued snapshot (idempotent)."""
        self._closed = True
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self.recorder.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class Driver:
    """What the Lightning and Hugging Face callbacks share: their arguments,
    checked when the callback is made, and a `Watcher` that their hooks
    drive from the trainer's `global_step`.

    Args:
      api: the callback's name for messages (`recorder.LIGHTNING`, ...).
      log_dir, snapshot_freq, max_cells, include, exclude, spectral,
        quantities, quantity_frames: the callback's arguments.

    Raises:
      OSError: an explicit `log_dir` cannot be written.
      ValueError: an invalid argument.
    """

    def __init__(self, api, log_dir, snapshot_freq, max_cells, include, exclude, spectral,
                 quantities=recorder_lib.DEFAULT_QUANTITIES,
                 quantity_frames=recorder_lib.DEFAULT_QUANTITY_FRAMES):
        self.recorder = recorder_lib.Recorder(api, log_dir, snapshot_freq, max_cells, include,
                                              exclude, spectral, quantities=quantities,
                                              quantity_frames=quantity_frames)
        if process_rank() == 0:
            self.recorder.check_log_dir()  # an explicit log_dir; the trainer's is known later
        self._watcher = None

    def start(self, model, log_dir, start, writes, expected=None, optimizers=()):
        """Training starts: the first snapshot. On every process: one writes,
        but sharded weights (FSDP2) need every process to measure its shards.
        `optimizers`: the trainer's, for the recorded quantities."""
        self._watcher = Watcher.driven(self.recorder, model, log_dir, start=start, writes=writes,
                                       expected=expected, optimizers=optimizers)
        self._watcher.snapshot()

    def advance_to(self, global_step):
        if self._watcher is not None:
            self._watcher.advance_to(global_step)

    def epoch_end(self, global_step):
        if self._watcher is not None and self.recorder.schedule.per_epoch:
            self._watcher.advance_to(global_step)
            self._watcher.snapshot()

    def close(self):
        """Writes what is queued and closes the writer (idempotent)."""
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None


class _TorchModel(recorder_lib.Source):
    """A torch module as the recorder sees it (recorder.Source)."""

    def __init__(self, model):
        self.model = model
        self.shards = False  # sharded weights measured where they lie (sharded.py)
        self.quantities = ()  # recorded beside each parameter (quantities_torch.py)
        self.optimizers = []  # whose gradients and state give them

    def key(self):
        model = self.model
        return tuple(_tensor_key(t) for t in itertools.chain(model.parameters(), model.buffers()))

    def tensors(self):
        items = structure_torch.entries(self.model)
        return items, structure_torch.signature(items), [e for e in items if e.recorded]

    def structure(self, items):
        return structure_torch.build_structure(self.model, items,
                                               structure_torch.fx_inbound(self.model),
                                               self.optimizers)

    def copy(self, recorded, pool, writes=True):
        groups = quantities_torch.groups_of(self.optimizers) if self.quantities else {}
        with torch.no_grad():
            return copy_to_host(recorded, pool, writes, self.shards, self.quantities, groups)

    def join(self, recorded):
        """Another rank's part in a snapshot of sharded weights it gathers
        (without `shards`): the same gathers as the writing rank, in the
        same order; nothing is kept."""
        self.copy(recorded, None, writes=False)


# Where wrappers keep the optimizer they wrap: Accelerate's
# AcceleratedOptimizer `.optimizer`, Lightning's LightningOptimizer
# `._optimizer`.
_WRAPPED = ("optimizer", "_optimizer")


def real_optimizer(optimizer):
    """The optimizer whose `step()` updates the weights, found inside
    wrappers, or None for None.

    A wrapper's `step()` calls the wrapped optimizer's when (and only when)
    a real step happens: not on an accumulation micro-step (Accelerate), nor
    when a grad scaler found inf or NaN gradients and skipped it. So steps
    are counted by a hook on the innermost optimizer, once per real step.
    AcceleratedOptimizer is a torch Optimizer that never ran its
    `__init__`, which is why hooking the wrapper fails.

    Raises:
      ValueError: not an optimizer, nor a wrapper exposing one.
    """
    seen = set()
    while optimizer is not None and id(optimizer) not in seen:
        seen.add(id(optimizer))
        inner = [getattr(optimizer, a, None) for a in _WRAPPED]
        inner = [o for o in inner if o is not optimizer and callable(getattr(o, "step", None))]
        if not inner:
            break
        optimizer = inner[0]
    if optimizer is None or (isinstance(optimizer, torch.optim.Optimizer)
                             and hasattr(optimizer, "_optimizer_step_post_hooks")):
        return optimizer
    raise ValueError(
        "%s: optimizer must be a torch.optim.Optimizer or a wrapper that exposes it as "
        "`.optimizer` (Accelerate's, Lightning's), got %s"
        % (recorder_lib.WATCH, type(optimizer).__name__))


def _optimizer_or_none(optimizer):
    """A trainer's optimizer unwrapped (`real_optimizer`), or None for one
    we cannot read: its quantities are then not recorded, training goes on."""
    try:
        return real_optimizer(optimizer)
    except ValueError:
        return None


# --- the copy to host ---------------------------------------------------------------

# numpy has no bfloat16 or float8: those are widened to float32 by the copy.
_HOST_DTYPES = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}


def _tensor_key(t):
    """What entries() depends on: identity, and shape and dtype (a lazy
    parameter, which has neither yet, changes class when materialised)."""
    if structure_torch.is_lazy(t):
        return id(t), type(t)
    return id(t), type(t), t.shape, t.dtype


class HostBufferPool(writer_lib.BufferPool):
    """The writer's recycled host buffers; pinned memory once the model is on
    a CUDA device, so the device-to-host copies can be asynchronous.

    A pinned buffer is a numpy view of a pinned torch tensor (the view keeps
    the tensor alive); pinning is slow, which is why buffers are recycled.
    In pinned mode, buffers given back that are not pinned (the writer's
    spare copies) are dropped, so snapshots copy into pinned memory only.
    """

    def __init__(self):
        super().__init__()
        self.pinned = False
        self._pinned_buffers = weakref.WeakValueDictionary()  # id → buffer

    def allocate(self, shape, dtype):
        if not self.pinned:
            return super().allocate(shape, dtype)
        buf = self.empty_pinned(shape, torch.from_numpy(np.empty(0, dtype)).dtype).numpy()
        self._pinned_buffers[id(buf)] = buf
        return buf

    def give(self, tag, buf):
        if self.pinned and self._pinned_buffers.get(id(buf)) is not buf:
            return  # pageable memory: the next take allocates a pinned buffer
        super().give(tag, buf)

    @staticmethod
    def empty_pinned(shape, dtype):
        return torch.empty(shape, dtype=dtype, pin_memory=True)


def copy_to_host(items, pool, writes=True, shards=False, quantities=(), groups=None):
    """One copy of each tensor into a buffer of `pool`: `writer.Weight`s,
    each parameter's followed by one per quantity of `quantities` its
    optimizer has for it (`quantities_torch.read` with `groups`). A sharded
    parameter measured where it lies is followed by one per quantity of
    `quantities` whatever its optimizer has (`_sharded_quantities`), on
    every rank; a gathered one by none.

    CPU tensors: one synchronous copy (torch's, multithreaded for large
    ones). CUDA tensors: one `non_blocking` copy each into pinned buffers,
    then one wait per device for the copies (and the training work queued
    before them) to finish, instead of a wait per tensor.

    A DTensor: with `shards`, a `sharded.Sharded` of this rank's own block
    (`_own_block`); else, or for placements other than shards and replicas,
    gathered whole by every rank (`full_tensor()`, a collective). Without
    `writes` (another rank writes) only those are taken.
    """
    # Keys of `pool`: a weight's tag, a quantity's (tag, quantity) (as
    # `writer.Weight.key`), with the block's start for a shard.
    devices = set()
    weights = []
    finishing = []  # (host tensor, scale, in-place function) once the copies landed

    def host(tensor, key, scale=1.0, finish=None):
        """`tensor` copied into a pooled buffer, times `scale`, then
        `finish`ed in place (queued until the copies have landed)."""
        if tensor.device.type == "cuda":
            devices.add(tensor.device)
            pool.pinned = True
        buf = pool.take(key, tuple(tensor.shape), _HOST_DTYPES.get(tensor.dtype, np.float32))
        dest = torch.from_numpy(buf)
        if scale != 1.0 and tensor.device.type == "cpu" and tensor.dtype == dest.dtype:
            torch.mul(tensor, scale, out=dest)  # the copy and the scaling in one pass
            scale = 1.0
        else:
            dest.copy_(tensor, non_blocking=tensor.device.type == "cuda")
        if scale != 1.0 or finish is not None:
            finishing.append((dest, scale, finish))
        return buf

    for e in items:
        tensor = e.tensor.detach()
        if structure_torch.is_sharded(tensor):
            block = _own_block(tensor) if shards else None
            if block is not None:
                start, local, cut = block
                mine = [] if local is None else [sharded_lib.Shard(start, host(local, (e.tag, start)))]
                weights.append(writer_lib.Weight(e.tag, sharded_lib.Sharded(tensor.shape, mine, cut),
                                                 e.layer_class, e.layer, e.dtype))
                weights.extend(_sharded_quantities(e, tensor, local, quantities, groups or {}, host))
                continue
            tensor = tensor.full_tensor()  # every rank gathers it (a collective)
        if writes:
            weights.append(writer_lib.Weight(e.tag, host(tensor, e.tag), e.layer_class, e.layer,
                                             e.dtype))
            wanted = () if structure_torch.is_sharded(e.tensor) else quantities  # gathered: none
            for r in quantities_torch.read_safely(e.tensor, wanted, groups or {}):
                buf = host(r.tensor.detach(), (e.tag, r.quantity), r.scale, r.finish)
                weights.append(writer_lib.Weight(e.tag, buf, e.layer_class, e.layer,
                                                 str(buf.dtype), r.quantity))
    for device in devices:
        torch.cuda.current_stream(device).synchronize()
    for dest, scale, finish in finishing:
        if scale != 1.0:
            dest.mul_(scale)
        if finish is not None:
            finish(dest)
    return weights


def _sharded_quantities(e, param, local, quantities, groups, host):
    """A `writer.Weight` of a `sharded.Sharded` per quantity of `quantities`
    for the sharded parameter of entry `e` (`local`: this rank's block of
    it, or None), this rank's block of the optimizer's DTensor copied by
    `host` (scaled and finished as the Reading says).

    Every rank gives the same list (parameter and optimizer are the same
    everywhere), so the ranks enter the same collectives; a quantity this
    rank lacks for a block it holds (no state yet, a placement other than
    the parameter's shards) is `missing`, and no rank measures it
    (`sharded.ShardedStats._agree`)."""
    if id(e.tensor) not in groups:
        return []
    holds = local is not None and local.numel() > 0
    out = []
    for quantity in quantities:
        readings = quantities_torch.read_safely(e.tensor, (quantity,), groups)
        tensor = readings[0].tensor.detach() if readings else None
        block = (_own_block(tensor) if tensor is not None and structure_torch.is_sharded(tensor)
                 and tuple(tensor.shape) == tuple(param.shape) else None)
        dtype = _HOST_DTYPES.get(param.dtype if tensor is None else tensor.dtype, np.float32)
        if block is None:
            value = sharded_lib.Sharded(param.shape, [], (), missing=holds)
        else:
            start, mine, cut = block
            shards = []
            if mine is not None:
                buf = host(mine, ((e.tag, quantity), start), readings[0].scale,
                           readings[0].finish)
                shards.append(sharded_lib.Shard(start, buf))
            value = sharded_lib.Sharded(param.shape, shards, cut)
        out.append(writer_lib.Weight(e.tag, value, e.layer_class, e.layer, np.dtype(dtype).name,
                                     quantity))
    return out


def _own_block(tensor):
    """(start, local tensor, cut axes) of the block of a DTensor this rank
    counts, the local tensor None when a replica on another rank counts it
    (the replica at coordinate 0 of each replicated mesh dimension); None
    when its placements are not plain shards and replicas (a pending sum,
    a strided shard), which are then gathered."""
    try:
        from torch.distributed.tensor import Replicate, Shard
        from torch.distributed.tensor._utils import compute_local_shape_and_global_offset
    except ImportError:  # an older torch: gathered
        return None
    mesh, placements = tensor.device_mesh, tensor.placements
    if not all(type(p) is Shard or isinstance(p, Replicate) for p in placements):
        return None
    ndim = tensor.ndim
    cut = {p.dim % ndim for i, p in enumerate(placements)
           if isinstance(p, Shard) and mesh.size(i) > 1}
    coordinate = mesh.get_coordinate()
    if coordinate is None:  # not in the mesh: holds nothing
        return (0,) * ndim, None, cut
    shape, start = compute_local_shape_and_global_offset(tensor.shape, mesh, placements)
    local = tensor.to_local()
    if tuple(local.shape) != tuple(shape):
        return None  # padded, or another layout than the one computed: gathered
    counts = all(c == 0 for c, p in zip(coordinate, placements) if isinstance(p, Replicate))
    return tuple(int(s) for s in start), local if counts else None, cut


class _TorchCollectives(sharded_lib.Collectives):
    """torch.distributed collectives on a gloo group of the recorder's own
    (host buffers whatever the training backend, NCCL included; a group of
    its own, so the worker thread's collectives never interleave with
    training's)."""

    def __init__(self):
        dist = torch.distributed
        # A rank that never joins (it stopped, or skipped close()) fails a
        # snapshot after this long, with a warning, instead of torch's 30 min.
        self.group = dist.new_group(backend="gloo", timeout=datetime.timedelta(minutes=10))
        self.chief = dist.get_rank() == 0

    def _run(self, buf, op, chief=False):
        dist = torch.distributed
        tensor = torch.from_numpy(np.ascontiguousarray(buf, np.float64))
        if chief:
            dist.reduce(tensor, dst=0, op=op, group=self.group)
        else:
            dist.all_reduce(tensor, op=op, group=self.group)
        return tensor.numpy()

    def sum_all(self, buf):
        return self._run(buf, torch.distributed.ReduceOp.SUM)

    def max_all(self, buf):
        return self._run(buf, torch.distributed.ReduceOp.MAX)

    def sum_to_chief(self, buf):
        out = self._run(buf, torch.distributed.ReduceOp.SUM, chief=True)
        return out if self.chief else None
