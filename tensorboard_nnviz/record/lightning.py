"""`NNVizCallback` for PyTorch Lightning: weight snapshots next to its scalars."""

try:
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import TensorBoardLogger
except ImportError:  # the standalone `pytorch_lightning` package
    from pytorch_lightning.callbacks import Callback
    from pytorch_lightning.loggers import TensorBoardLogger

from tensorboard_nnviz.record import recorder as recorder_lib
from tensorboard_nnviz.record import torch_watch as nnviz_torch

__all__ = ["NNVizCallback"]


class NNVizCallback(Callback):
    """Records weight snapshots of the LightningModule for TensorBoard's nnviz tab.

    The step is the trainer's `global_step` (optimizer steps completed).
    The first snapshot is taken when training starts; then one at the end
    of every training epoch (`snapshot_freq="epoch"`), or each time
    `global_step` crosses a multiple of N (an int), or log-spaced
    (`"log"`). Tags, what is recorded and the layouts are those of
    `tensorboard_nnviz.torch.watch`. Only global rank 0 writes.

    Args:
      log_dir: directory for the event files. Default: the log dir of the
        trainer's `TensorBoardLogger` (`<save_dir>/<name>/version_<n>`), so
        the nnviz tab and the Scalars tab show the same run; without one,
        `trainer.log_dir` (another logger's, or `default_root_dir`).
      snapshot_freq: `"epoch"`, an int N, or `"log"`.
      max_cells: tensors of up to this many cells are stored exactly;
        larger ones are block-mean reduced.
      include: regular expression; only tags where it matches are recorded.
      exclude: regular expression; tags where it matches are skipped.
      spectral: spectral stats of each weight matrix, as for
        `tensorboard_nnviz.torch.watch`: `"auto"` (default, a bounded CPU
        budget per snapshot), `True` (all, every snapshot), `False`, or CPU
        seconds per snapshot.
      quantities, quantity_frames: what to record beside each weight at the
        optimizer step, as for `tensorboard_nnviz.torch.watch` (default
        the gradient and `v_rms`, frames of the gradient).

    Raises:
      OSError: an explicit `log_dir` cannot be written (raised here, before
        training; the logger's directory is known when training starts).
      ValueError: an invalid `snapshot_freq`, `max_cells`, `include`,
        `exclude` or `spectral`.

    Example:

    ```python
    trainer = lightning.Trainer(max_epochs=5, callbacks=[NNVizCallback(snapshot_freq=50)])
    trainer.fit(model, train_loader)
    # then: tensorboard --logdir lightning_logs
    ```
    """

    def __init__(self, log_dir=None, snapshot_freq="epoch", max_cells=65536, include=None,
                 exclude=None, spectral="auto", quantities=recorder_lib.DEFAULT_QUANTITIES,
                 quantity_frames=recorder_lib.DEFAULT_QUANTITY_FRAMES):
        super().__init__()
        # Every argument is checked here, before fit (recorder.py).
        self._driver = nnviz_torch.Driver(recorder_lib.LIGHTNING, log_dir, snapshot_freq,
                                          max_cells, include, exclude, spectral, quantities,
                                          quantity_frames)
        self.log_dir = log_dir

    def on_train_start(self, trainer, pl_module):
        self._driver.start(pl_module, self.log_dir or default_log_dir(trainer),
                           trainer.global_step, writes=trainer.global_rank == 0,
                           optimizers=trainer.optimizers)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._driver.advance_to(trainer.global_step)

    def on_train_epoch_end(self, trainer, pl_module):
        self._driver.epoch_end(trainer.global_step)

    def on_train_end(self, trainer, pl_module):
        self._driver.close()

    def on_exception(self, trainer, pl_module, exception):
        self._driver.close()  # writes what is queued: training raised, the snapshots stay


def default_log_dir(trainer):
    """The TensorBoard logger's log dir, else `trainer.log_dir`, else
    `default_root_dir`."""
    for logger in getattr(trainer, "loggers", None) or []:
        if isinstance(logger, TensorBoardLogger):
            return logger.log_dir
    return trainer.log_dir or trainer.default_root_dir
