"""The recorder skeleton: what every recorder does, written once.

The front ends (the Keras callback, torch's `watch`, the Lightning and
Hugging Face callbacks) know their framework: when a step ends, which
process writes, what a model's tensors are and how to copy them (a
`Source`). A `Recorder` does the rest (docs/architecture.md, "Recorders"):

- checks the arguments when the front end is made, so a bad value fails
  before training, naming the API the user called (`KERAS`, `WATCH`,
  `LIGHTNING`, `TRANSFORMERS`);
- opens the writer on the process that writes, its steps continuing after
  the last step the log_dir holds;
- takes a snapshot: walks the tensors again only when they changed, writes
  the structure with the first snapshot and whenever the model changed,
  copies the recorded tensors while the writer is paused, numbers the step;
- logs the budget (tensors, bytes per snapshot, snapshots expected);
- reports an error of its own once (a log line and a warning) and never
  raises it into training.

This module imports no framework.
"""

import logging
import math
import numbers
import os
import tempfile
import warnings
import weakref

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.record import budget as budget_lib
from tensorboard_nnviz.record import eventfiles
from tensorboard_nnviz.record import schedule as schedule_lib
from tensorboard_nnviz.record import spectral_budget
from tensorboard_nnviz.record import writer as writer_lib

logger = logging.getLogger(__name__)

# The APIs users call, as the messages name them.
KERAS = "tensorboard_nnviz.NNVizCallback"
WATCH = "tensorboard_nnviz.torch.watch"
LIGHTNING = "tensorboard_nnviz.lightning.NNVizCallback"
TRANSFORMERS = "tensorboard_nnviz.transformers.NNVizCallback"

# What is recorded beside each weight unless the user says otherwise: the
# gradient and the RMS gradient the optimizer sees, stats and per-unit
# stats (README, "Gradients and optimizer state").
DEFAULT_QUANTITIES = ("grad", "v_rms")
# Which of them also get frames by default: chosen by the bytes they add
# per snapshot (README, "Gradients and optimizer state").
DEFAULT_QUANTITY_FRAMES = ("grad",)


class Source:
    """A framework's view of one model, as `Recorder.snapshot` uses it."""

    def key(self):
        """A cheap value that changes whenever `tensors()` would (asked at
        every snapshot, on the training thread)."""
        raise NotImplementedError

    def tensors(self):
        """`(items, signature, recordable)`: every tensor (for the structure),
        a value that changes when the structure must be written again, and
        the items snapshots may hold, each with a `.tag`."""
        raise NotImplementedError

    def structure(self, items):
        """The structure document of the model."""
        raise NotImplementedError

    def copy(self, recorded, pool, writes=True):
        """One host copy of each recorded item into `pool`'s buffers: a list
        of `writer.Weight`; a sharded weight's value a `sharded.Sharded`
        holding this process's blocks (when the recorder has `shards`).
        `writes` False (another process writes): only the sharded ones."""
        raise NotImplementedError

    def join(self, recorded):
        """On a process that does not write: its part in the collectives
        the writing process's copy needs (none by default)."""


class Recorder:
    """Checked settings, the writer and the snapshot logic of one recorder.

    Args:
      api: the API the user called (`KERAS`, `WATCH`, ...), for messages.
      log_dir: the run's directory, or None when the front end learns it
        when training starts (Lightning's logger, the Trainer's logging).
      snapshot_freq, max_cells, include, exclude, spectral: as the front
        ends document them.
      epochs: whether the front end sees epochs (`snapshot_freq="epoch"`).
      quantities: what to record beside each weight, names from
        `format.QUANTITIES` ("grad", "m_hat", "v_rms", "momentum"); `()`
        records the weights only. Kept as `self.quantities`, a tuple in
        that order; a Source's `copy` returns one `writer.Weight` per
        quantity it finds for a weight.
      quantity_frames: which of `quantities` also get frames: True (all),
        False (none), or names; those not recorded are ignored.

    Raises:
      ValueError: an invalid argument, naming `api`.
    """

    def __init__(self, api, log_dir=None, snapshot_freq="epoch", max_cells=65536, include=None,
                 exclude=None, spectral="auto", epochs=True, quantities=DEFAULT_QUANTITIES,
                 quantity_frames=DEFAULT_QUANTITY_FRAMES):
        self.api = api
        self.quantities = _checked(api, _quantities, quantities, "quantities")
        frames = (self.quantities if quantity_frames is True else
                  () if quantity_frames is False or quantity_frames is None else
                  _checked(api, _quantities, quantity_frames, "quantity_frames"))
        self.quantity_frames = tuple(q for q in self.quantities if q in frames)
        self.schedule = _checked(api, schedule_lib.parse, snapshot_freq)
        if self.schedule.per_epoch and not epochs:
            raise ValueError(
                "%s: snapshot_freq='epoch' needs epochs a hook can see (the Keras, Lightning and "
                "Hugging Face callbacks have them); for a training loop give an int N or 'log', "
                "and call watcher.snapshot() where you want one more" % api)
        self.max_cells = _checked(api, _positive_int, max_cells)
        self.wanted = _checked(api, schedule_lib.tag_filter, include, exclude)
        _checked(api, spectral_budget.scheduler_for, spectral)  # on every process
        self.spectral = spectral
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.writer = None
        self.steps = schedule_lib.StepNumbers()
        self._steps_dir = None  # the log_dir `steps` were read from
        self._writer_state = None  # per-tag state of the last writer on log_dir
        self._signature = None  # of the structure last written to log_dir
        self._key = None  # the source's key when _tensors was built
        self._tensors = None  # (items, signature, recorded)
        self._last = None  # (count, weakref to the token) of the last snapshot
        self._warned = False
        # A sharded.ShardedStats when the model has sharded weights: they are
        # measured by every process on its own blocks (front ends set it).
        self.shards = None

    # --- the writer ---------------------------------------------------------------

    def check_log_dir(self):
        """Fails now if `log_dir` cannot be written, without opening the
        writer (for front ends that open it when training starts).

        Raises:
          writer.LogDirError: naming the API.
        """
        if self.log_dir is None or "://" in self.log_dir:
            return  # a URL is checked by the writer when it opens
        try:
            os.makedirs(self.log_dir, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.log_dir):
                pass
        except OSError as e:
            raise writer_lib.LogDirError(
                "%s cannot write to log_dir %r: %s" % (self.api, self.log_dir, e)) from e

    def open(self, log_dir=None, pool=None):
        """Opens the writer on `log_dir` (default: the one given), on the
        process that writes; a no-op when it is open.

        Args:
          pool: the writer's buffer pool (default its own).

        Raises:
          writer.LogDirError: `log_dir` cannot be written, naming the API.
        """
        if self.writer is not None:
            return
        if log_dir is not None and os.fspath(log_dir) != self.log_dir:
            self.log_dir = os.fspath(log_dir)
            self._writer_state = None
            self._signature = None
        if self._steps_dir != self.log_dir:
            self.steps = schedule_lib.StepNumbers(eventfiles.read_last_step(self.log_dir))
            self._steps_dir = self.log_dir
        self.writer = writer_lib.SnapshotWriter(self.log_dir, self.max_cells,
                                                state=self._writer_state, spectral=self.spectral,
                                                name=self.api,
                                                quantity_frames=self.quantity_frames)
        if pool is not None:
            self.writer.pool = pool

    def close(self):
        """Writes every queued snapshot and closes the writer (idempotent);
        a later `open` on the same log_dir continues its stats. With
        `shards`: on every process."""
        if self.shards is not None:
            self.shards.end(self.writer)
        if self.writer is not None:
            self.writer.close()
            self._writer_state = self.writer.state
            self.writer = None

    @property
    def last_step(self):
        """The step of the last snapshot in `log_dir` (ours or earlier), or None."""
        return self.steps.last

    # --- snapshots ----------------------------------------------------------------

    def due(self, previous, count):
        """Whether the schedule wants a snapshot as training went from
        `previous` to `count` steps (never for "epoch": the front end asks
        at each epoch's end)."""
        return not self.schedule.per_epoch and self.schedule.due(previous, count)

    def snapshot(self, source, count, token=None):
        """Takes a snapshot of `source` at training step count `count`, once
        per `(count, token)` (`token`: what else makes a count new, e.g. a
        new optimizer). Without an open writer, only the source's part in
        collectives. An error of ours is logged and warned once, not raised.
        """
        if self._last is not None and self._last[0] == count and self._last[1]() is token:
            return
        try:
            self._take(source, count)
            self._last = (count, _weakref(token))
        except Exception as e:
            logger.exception("nnviz: could not take a weight snapshot")
            self.warn_once("%s could not take a weight snapshot (%s: %s); training goes on"
                           % (self.api, type(e).__name__, e))

    def _take(self, source, count):
        items, signature, recorded = self.tensors(source)
        if self.writer is None:  # another process writes
            if self.shards is not None:
                self.shards.submit(lambda pool: source.copy(recorded, pool, writes=False))
            else:
                source.join(recorded)
            return
        doc = source.structure(items) if signature != self._signature else None
        step = self.steps.step(count)
        if self.shards is not None:  # measured with the other processes, then written
            self.shards.submit(lambda pool: source.copy(recorded, pool), self.writer, step, doc)
        else:
            with self.writer.paused():
                weights = source.copy(recorded, self.writer.pool)
            self.writer.write(step, weights, doc, pooled=True)
        self._signature = signature
        self.steps.written(step)

    def tensors(self, source):
        """`source.tensors()` with the recorded items (`include`/`exclude`),
        built again only when `source.key()` changed: the walk is Python
        work on the training thread at every snapshot otherwise."""
        key = source.key()
        if key != self._key:
            items, signature, recordable = source.tensors()
            # The cache holds the tensors, so ids in a key stay unique.
            self._tensors = (items, signature, [r for r in recordable if self.wanted(r.tag)])
            self._key = key
        return self._tensors

    # --- reporting ----------------------------------------------------------------

    def log_budget(self, source, expected=None, echo=False):
        """Logs what will be recorded: tensors, bytes per snapshot and, when
        known, the snapshots expected. `echo`: print it as well (beside a
        progress bar). On the writing process only; never raises."""
        if self.writer is None or not (echo or logger.isEnabledFor(logging.INFO)):
            return  # nobody would read it: not worth a walk of the layouts
        try:
            recorded = self.tensors(source)[2]
            msg = budget_lib.budget_message(
                len(recorded), budget_lib.snapshot_bytes(recorded, self.max_cells), expected)
        except Exception:  # an estimate must never stop training
            logger.exception("nnviz: could not estimate the snapshot size")
            return
        logger.info(msg)
        if echo:
            print(msg, flush=True)

    def warn_once(self, msg):
        """A log line and a RuntimeWarning, the first time only."""
        if self._warned:
            return
        self._warned = True
        logger.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


def _checked(api, check, *args):
    """`check(*args)`, its ValueError naming the API the user called."""
    try:
        return check(*args)
    except ValueError as e:
        raise ValueError("%s: %s" % (api, e)) from None


def _quantities(value, name):
    """Quantity names as a tuple in `format.QUANTITIES` order; a single
    name may be given as a string."""
    if value is None:
        return ()
    names = (value,) if isinstance(value, str) else value
    try:
        names = tuple(names)
    except TypeError:
        raise ValueError("%s must be names from %s, got %r" % (name, fmt.QUANTITIES, value))
    unknown = [q for q in names if q not in fmt.QUANTITIES]
    if unknown:
        raise ValueError("%s: unknown quantit%s %s; known: %s" % (
            name, "ies" if len(unknown) > 1 else "y", ", ".join(repr(q) for q in unknown),
            ", ".join(fmt.QUANTITIES)))
    return tuple(q for q in fmt.QUANTITIES if q in names)


def _positive_int(value):
    """`max_cells` as an int: a positive whole number (65536.0 too)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value < 1 or value != int(value)):
        raise ValueError("max_cells must be a positive int, got %r" % (value,))
    return int(value)


def _weakref(obj):
    """A weak reference to `obj`, or a strong one where it takes none (None)."""
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj
