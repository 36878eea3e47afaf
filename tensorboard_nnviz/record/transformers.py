"""`NNVizCallback` for the Hugging Face `Trainer`: weight snapshots in the
run where the Trainer's own TensorBoard logging writes.

The Trainer calls its callbacks around each optimizer step:

```
on_pre_optimizer_step   gradients final: unscaled, all-reduced, accumulated
optimizer.step()
on_optimizer_step       the optimizer's new state
global_step += 1
on_step_end             weights after the step global_step counts: snapshots
```

A snapshot due at `global_step + 1` is taken at `on_optimizer_step`: the
weights are those `on_step_end` would see, and the gradients the step
applied are still there (the Trainer zeroes them before `on_step_end`),
with the optimizer's new state (docs/architecture.md, "Hugging Face
Trainer"). Snapshots at an epoch's end (`on_epoch_end`) have the
optimizer's state but no gradient.
"""

import math
import os
import sys

from transformers import TrainerCallback
from transformers.trainer_callback import CallbackHandler

from tensorboard_nnviz.record import budget as budget_lib
from tensorboard_nnviz.record import recorder as recorder_lib
from tensorboard_nnviz.record import torch_watch as nnviz_torch

__all__ = ["NNVizCallback"]


class NNVizCallback(TrainerCallback):
    """Records weight snapshots of the Trainer's model for TensorBoard's nnviz tab.

    The step is the Trainer's `state.global_step`: optimizer steps, a
    gradient accumulation of k micro-batches counted once. The first
    snapshot is taken when training starts; then one at the end of every
    epoch (`snapshot_freq="epoch"`), each time `global_step` crosses a
    multiple of N (an int), or log-spaced (`"log"`). Tags, what is recorded
    and the layouts are those of `tensorboard_nnviz.torch.watch` (tied
    weights once, under their first name in `named_parameters()`). Only the
    world process zero writes (the Trainer under DDP or FSDP through
    Accelerate); under FSDP2 every process measures its shards of the
    sharded weights.

    Args:
      log_dir: directory for the event files. Default: where the Trainer's
        TensorBoard logging writes (`report_to="tensorboard"`), so the nnviz
        tab and the Trainer's scalars show one run: its TensorBoard
        callback's directory (transformers 5: `$TENSORBOARD_LOGGING_DIR`,
        else `output_dir/runs/<time>_<host>`; 4.x: `args.logging_dir`);
        without that callback, the same rule.
      snapshot_freq: `"epoch"`, an int N, or `"log"`.
      max_cells, include, exclude, spectral, quantities, quantity_frames:
        as for `tensorboard_nnviz.torch.watch`.

    Raises:
      OSError: an explicit `log_dir` cannot be written (raised here, before
        training).
      ValueError: an invalid `snapshot_freq`, `max_cells`, `include`,
        `exclude` or `spectral`.

    Example:

    ```python
    args = TrainingArguments("out", report_to="tensorboard", logging_steps=10)
    trainer = Trainer(model=model, args=args, train_dataset=train_set,
                      callbacks=[NNVizCallback(snapshot_freq=50)])
    trainer.train()
    # then: tensorboard --logdir out/runs
    ```
    """

    def __init__(self, log_dir=None, snapshot_freq="epoch", max_cells=65536, include=None,
                 exclude=None, spectral="auto", quantities=recorder_lib.DEFAULT_QUANTITIES,
                 quantity_frames=recorder_lib.DEFAULT_QUANTITY_FRAMES):
        # Every argument is checked here, before training (recorder.py).
        self._driver = nnviz_torch.Driver(recorder_lib.TRANSFORMERS, log_dir, snapshot_freq,
                                          max_cells, include, exclude, spectral, quantities,
                                          quantity_frames)
        self.log_dir = log_dir

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        writes = state.is_world_process_zero
        log_dir = self.log_dir
        if writes and log_dir is None:
            log_dir = default_log_dir(args, _running_callbacks())
        optimizer = kwargs.get("optimizer")
        self._driver.start(model, log_dir, state.global_step, writes=writes,
                           expected=self._expected(state),
                           optimizers=[] if optimizer is None else [optimizer])

    def on_optimizer_step(self, args, state, control, **kwargs):
        self._driver.advance_to(state.global_step + 1)  # the step being completed

    def on_step_end(self, args, state, control, **kwargs):
        self._driver.advance_to(state.global_step)

    def on_epoch_end(self, args, state, control, **kwargs):
        self._driver.epoch_end(state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        # When training raises, the writer's atexit finaliser writes what
        # is queued: the Trainer has no exception event.
        self._driver.close()

    def _expected(self, state):
        """Snapshots this training will take, for the budget line."""
        schedule, start = self._driver.recorder.schedule, state.global_step
        if schedule.per_epoch:
            epochs = math.ceil(state.num_train_epochs - (state.epoch or 0))
            return budget_lib.expected_snapshots(schedule, epochs=epochs)
        return budget_lib.expected_snapshots(schedule, epochs=1, start=start,
                                             steps_per_epoch=max(0, state.max_steps - start))


def default_log_dir(args, callbacks=()):
    """Where the Trainer's TensorBoard logging writes.

    Its `TensorBoardCallback` (one of `callbacks`) knows once its own
    `on_train_begin` ran, before any callback passed to the Trainer: its
    writer's directory, else its `logging_dir`. Without one: `args.logging_dir`
    (transformers 4.x), else that callback's rule in transformers 5,
    `$TENSORBOARD_LOGGING_DIR`, else `output_dir/runs/<time>_<host>`.
    """
    for cb in callbacks:
        if type(cb).__name__ == "TensorBoardCallback":
            writer = getattr(cb, "tb_writer", None)
            if writer is not None and callable(getattr(writer, "get_logdir", None)):
                return writer.get_logdir()
            if getattr(cb, "logging_dir", None):
                return cb.logging_dir
    if getattr(args, "logging_dir", None):
        return args.logging_dir
    if os.environ.get("TENSORBOARD_LOGGING_DIR"):
        return os.path.expanduser(os.environ["TENSORBOARD_LOGGING_DIR"])
    from transformers.integrations.integration_utils import default_logdir

    return os.path.join(args.output_dir, default_logdir())


def _running_callbacks():
    """The callbacks of the Trainer whose event is running.

    transformers hands a callback neither the Trainer nor the other
    callbacks, and its TensorBoard callback picks its directory (with the
    time in it) only when training starts; so the list is read from the
    `CallbackHandler` whose `call_event` called this hook, a few frames up.
    """
    frame = sys._getframe(1)
    for _ in range(8):
        if frame is None:
            break
        handler = frame.f_locals.get("self")
        if isinstance(handler, CallbackHandler):
            return list(handler.callbacks)
        frame = frame.f_back
    return []
