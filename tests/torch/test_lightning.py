"""`tensorboard_nnviz.lightning.NNVizCallback` with a real `lightning.Trainer` on CPU."""

import os

import lightning
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing import event_accumulator as ea
from torch import nn

import torch_models as tm
from bad_arguments import assert_refused_when_made
from runs import read_run, reference_frame, steps_of

from tensorboard_nnviz.lightning import NNVizCallback

STEPS_PER_EPOCH = 3


class Digits(lightning.LightningModule):
    """A small CNN on random 8x8 images."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        return self.fc(h.mean(dim=(2, 3)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.05)


class Recorder(lightning.Callback):
    """The true weights at each global_step (runs after NNVizCallback's hooks)."""

    def __init__(self):
        self.weights = {}

    def on_train_start(self, trainer, pl_module):
        self.weights[trainer.global_step] = tm.state(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.weights[trainer.global_step] = tm.state(pl_module)


def _fit(callbacks, logger, epochs=2, root=None):
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(4 * STEPS_PER_EPOCH, 1, 8, 8),
                                          torch.randint(0, 3, (4 * STEPS_PER_EPOCH,)))
    rec = Recorder()
    trainer = lightning.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=logger,
        callbacks=list(callbacks) + [rec], enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
        default_root_dir=root)
    model = Digits()
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=4))
    return model, rec.weights


def test_snapshots_sit_in_the_tensorboard_loggers_run(tmp_path):
    logger = TensorBoardLogger(str(tmp_path), name="exp")
    model, truth = _fit([NNVizCallback(snapshot_freq=2)], logger)
    run_dir = logger.log_dir
    assert run_dir == os.path.join(str(tmp_path), "exp", "version_0")
    run = read_run(run_dir)
    assert sorted(run["frames"]) == sorted(
        n.replace(".", "/") for n, t in model.state_dict().items() if t.is_floating_point())
    # Steps are global_step; frames are the true weights of that step.
    for tag, frames in run["frames"].items():
        assert sorted(frames) == [0, 2, 4, 6], tag
        for step, frame in frames.items():
            expected = reference_frame(truth[step][tag], run["content"][tag]["layout"])
            np.testing.assert_array_equal(frame, expected.astype(np.float32))
    assert not np.array_equal(run["frames"]["conv/weight"][6], run["frames"]["conv/weight"][0])
    # Lightning's own scalars are in the same run (directory).
    acc = ea.EventAccumulator(run_dir)
    acc.Reload()
    assert "train_loss" in acc.Tags()["scalars"]
    assert len({e.step for e in acc.Scalars("train_loss")}) == 2 * STEPS_PER_EPOCH


def test_default_schedule_is_each_epoch(tmp_path):
    logger = TensorBoardLogger(str(tmp_path), name="exp")
    _fit([NNVizCallback()], logger, epochs=3)
    assert steps_of(logger.log_dir) == [0, 3, 6, 9]


def test_explicit_log_dir_and_other_loggers(tmp_path):
    _fit([NNVizCallback(str(tmp_path / "mine"), snapshot_freq=3)],
         TensorBoardLogger(str(tmp_path), name="exp"))
    assert steps_of(tmp_path / "mine") == [0, 3, 6]
    # Without a TensorBoard logger: the trainer's log dir (here the CSV logger's).
    csv = CSVLogger(str(tmp_path), name="csv")
    _fit([NNVizCallback(snapshot_freq=3)], csv)
    assert steps_of(csv.log_dir) == [0, 3, 6]


def test_a_second_fit_in_the_same_run_continues_the_steps(tmp_path):
    logger = TensorBoardLogger(str(tmp_path), name="exp", version="v")
    _fit([NNVizCallback(snapshot_freq=3)], logger)
    _fit([NNVizCallback(snapshot_freq=3)], TensorBoardLogger(str(tmp_path), name="exp", version="v"))
    assert steps_of(os.path.join(str(tmp_path), "exp", "v")) == [0, 3, 6, 7, 10, 13]


def test_spectral_option_reaches_the_writer(tmp_path):
    """spectral=True: the fc weight (a 4 x 3 matrix) has its spectral norm at
    every snapshot, from the true weights; spectral=False: none. A bad value
    fails when the callback is made, before fit."""
    import pytest

    logger = TensorBoardLogger(str(tmp_path), name="exp")
    _, truth = _fit([NNVizCallback(snapshot_freq=2, spectral=True)], logger)
    stats = read_run(logger.log_dir)["stats"]
    for step, s in stats["fc/weight"].items():
        sv = np.linalg.svd(truth[step]["fc/weight"].astype(np.float64), compute_uv=False)
        assert s["sv_max"] == pytest.approx(sv[0], rel=1e-9), step
    assert all(s["sv_max"] is None for s in stats["fc/bias"].values())
    off = TensorBoardLogger(str(tmp_path), name="off")
    _fit([NNVizCallback(snapshot_freq=2, spectral=False)], off)
    assert all(s["sv_max"] is None for s in read_run(off.log_dir)["stats"]["fc/weight"].values())
    with pytest.raises(ValueError, match="spectral must be"):
        NNVizCallback(spectral="everything")


def test_bad_arguments_are_refused_when_the_callback_is_made(tmp_path):
    """Before training: `max_cells` too (it used to fail inside fit)."""
    assert_refused_when_made(NNVizCallback, "tensorboard_nnviz.lightning.NNVizCallback", tmp_path)


class FailsAt(Digits):
    """Raises in the training step once `global_step` reaches `step`."""

    def __init__(self, step):
        super().__init__()
        self.fail_at = step

    def training_step(self, batch, batch_idx):
        if self.global_step == self.fail_at:
            raise RuntimeError("planted failure")
        return super().training_step(batch, batch_idx)


def test_snapshots_queued_when_training_raises_are_written(tmp_path):
    """Lightning's `on_exception`: the snapshot queued right before the
    failure is on disk once `fit` has raised, and the writer is closed (its
    thread gone), not left for the end of the process."""
    import threading

    import pytest

    def writers():
        return {t for t in threading.enumerate() if t.name == "nnviz-writer"}

    before = writers()
    logger = TensorBoardLogger(str(tmp_path), name="exp")
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(4 * STEPS_PER_EPOCH, 1, 8, 8),
                                          torch.randint(0, 3, (4 * STEPS_PER_EPOCH,)))
    model = FailsAt(step=4)
    rec = Recorder()
    trainer = lightning.Trainer(
        max_epochs=3, accelerator="cpu", devices=1, logger=logger,
        callbacks=[NNVizCallback(snapshot_freq=1), rec], enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(RuntimeError, match="planted failure"):
        trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=4))
    assert writers() <= before, "the writer was closed when training raised"
    run = read_run(logger.log_dir)
    assert sorted(run["frames"]["fc/weight"]) == [0, 1, 2, 3, 4]
    expected = reference_frame(rec.weights[4]["fc/weight"], run["content"]["fc/weight"]["layout"])
    np.testing.assert_array_equal(run["frames"]["fc/weight"][4], expected.astype(np.float32))


def test_gradients_and_adams_moments_beside_the_weights(tmp_path):
    """The callback reads the trainer's optimizer: at each snapshot the
    gradient the step applied and Adam's bias-corrected v, as the trainer's
    optimizer holds them after its last step."""
    logger = TensorBoardLogger(str(tmp_path), name="exp")
    model, _ = _fit([NNVizCallback(snapshot_freq=2, quantities=("grad", "v_rms"))], logger)
    run = read_run(logger.log_dir)
    assert sorted(run["qstats"][("fc/weight", "grad")]) == [2, 4, 6]  # none at step 0
    assert ("bn/running_mean", "grad") not in run["qstats"]  # a buffer has no gradient
    grad = model.fc.weight.grad.numpy().astype(np.float64)
    assert run["qstats"][("fc/weight", "grad")][6]["l2"] == pytest.approx(np.linalg.norm(grad),
                                                                         rel=1e-6)
    state = model.trainer.optimizers[0].state[model.fc.weight]
    v_rms = np.sqrt(state["exp_avg_sq"].numpy().astype(np.float64)
                    / (1 - 0.999 ** float(state["step"])))
    assert run["qstats"][("fc/weight", "v_rms")][6]["max"] == pytest.approx(v_rms.max(), rel=1e-6)
    assert sorted(run["qframes"]) == sorted(k for k in run["qstats"] if k[1] == "grad")
    # The trainer's optimizer, named in the structure with its eps (torch's default here).
    assert run["structure"][0][1]["model"]["optimizer"] == {"class": "Adam", "epsilon": 1e-8}
