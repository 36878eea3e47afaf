"""`watch` with the optimizer wrapped as Accelerate, Lightning and
ZeroRedundancyOptimizer wrap it: real training loops on CPU, steps counted
once per real step on the wrapped optimizer, snapshots equal to the weights
at those steps."""

import os
import socket

import lightning
import numpy as np
import pytest
import torch
from torch import nn

import torch_models as tm
from runs import read_run, reference_frame, steps_of

from tensorboard_nnviz.torch import watch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))


def _data(n=16):
    g = torch.Generator().manual_seed(1)
    return torch.utils.data.TensorDataset(torch.randn(n, 5, generator=g),
                                          torch.randn(n, 2, generator=g))


def _truth_at_real_steps(model, inner):
    """{real step: state(model)}, from a hook on the inner optimizer
    registered after watch's (so it runs after watch's count)."""
    truth = {0: tm.state(model)}
    inner.register_step_post_hook(lambda *_: truth.__setitem__(len(truth), tm.state(model)))
    return truth


def _assert_frames_are(truth, log_dir):
    run = read_run(log_dir)
    for tag, frames in run["frames"].items():
        for step, frame in frames.items():
            expected = reference_frame(truth[step][tag], run["content"][tag]["layout"])
            np.testing.assert_array_equal(frame, expected.astype(np.float32), err_msg=tag)


def test_accelerate_prepared_optimizer_with_gradient_accumulation(tmp_path):
    """8 batches, accumulating 2: 4 real steps, each counted once (the
    AcceleratedOptimizer's step on a micro-batch never reaches the real
    optimizer); passing the wrapper used to fail in watch."""
    from accelerate import Accelerator
    from accelerate.optimizer import AcceleratedOptimizer

    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=2)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = torch.utils.data.DataLoader(_data(), batch_size=2)
    model, opt, loader = accelerator.prepare(model, opt, loader)
    assert isinstance(opt, AcceleratedOptimizer)
    with watch(model, tmp_path, optimizer=opt, snapshot_freq=1) as w:
        truth = _truth_at_real_steps(model, opt.optimizer)
        for x, y in loader:
            with accelerator.accumulate(model):
                accelerator.backward(nn.functional.mse_loss(model(x), y))
                opt.step()
                opt.zero_grad()
        assert w.last_step == 4
    assert steps_of(tmp_path) == [0, 1, 2, 3, 4]
    assert len(truth) == 5
    _assert_frames_are(truth, tmp_path)


def test_a_step_the_grad_scaler_skips_is_not_a_step(tmp_path):
    """Accelerate's optimizer with a real grad scaler (CPU): an inf
    gradient makes the scaler skip the step, and watch does not count it."""
    from accelerate import Accelerator
    from accelerate.optimizer import AcceleratedOptimizer

    Accelerator(cpu=True)  # the state AcceleratedOptimizer reads
    model = _mlp()
    scaler = torch.amp.GradScaler("cpu")
    opt = AcceleratedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), scaler=scaler)
    skipped = []
    with watch(model, tmp_path, optimizer=opt, snapshot_freq=1) as w:
        truth = _truth_at_real_steps(model, opt.optimizer)
        for i, (x, y) in enumerate(torch.utils.data.DataLoader(_data(8), batch_size=2)):
            scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
            if i == 1:
                model[0].weight.grad[0, 0] = float("inf")  # an overflow
            opt.step()
            skipped.append(opt.step_was_skipped)
            opt.zero_grad()
        assert skipped == [False, True, False, False]
        assert w.last_step == 3
    assert steps_of(tmp_path) == [0, 1, 2, 3]
    _assert_frames_are(truth, tmp_path)


def test_the_plain_grad_scaler_skip_is_not_counted_either(tmp_path):
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    with watch(model, tmp_path, optimizer=opt, snapshot_freq=1) as w:
        for i in range(3):
            scaler.scale(model(torch.ones(2, 5)).pow(2).mean()).backward()
            if i == 0:
                model[2].bias.grad[0] = float("nan")
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
        assert w.last_step == 2


class _Lit(lightning.LightningModule):
    """Passes its LightningOptimizer to watch when training starts."""

    def __init__(self, log_dir):
        super().__init__()
        self.net = _mlp()
        self.log_dir = log_dir
        self.watcher = None
        self.truth = None

    def on_train_start(self):
        wrapped = self.optimizers()
        assert type(wrapped).__name__.startswith("Lightning")
        self.watcher = watch(self.net, self.log_dir, optimizer=wrapped, snapshot_freq=1)
        self.truth = _truth_at_real_steps(self.net, wrapped.optimizer)

    def on_train_end(self):
        self.watcher.close()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightnings_wrapped_optimizer_counts_each_global_step_once(tmp_path):
    module = _Lit(str(tmp_path / "run"))
    trainer = lightning.Trainer(
        max_epochs=2, accelerator="cpu", devices=1, logger=False, accumulate_grad_batches=2,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, torch.utils.data.DataLoader(_data(), batch_size=2))
    assert trainer.global_step == 8  # 8 batches a epoch, accumulating 2, 2 epochs
    assert steps_of(tmp_path / "run") == list(range(9))
    _assert_frames_are(module.truth, tmp_path / "run")


def test_zero_redundancy_optimizer(tmp_path):
    """ZeroRedundancyOptimizer (one gloo process on 127.0.0.1): one count a step."""
    import torch.distributed as dist
    from torch.distributed.optim import ZeroRedundancyOptimizer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=0,
                            world_size=1)
    try:
        model = _mlp()
        opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.SGD, lr=0.1)
        with watch(model, tmp_path, optimizer=opt, snapshot_freq=1) as w:
            for _ in range(3):
                opt.zero_grad()
                model(torch.ones(2, 5)).pow(2).mean().backward()
                opt.step()
            assert w.last_step == 3
    finally:
        dist.destroy_process_group()
    assert steps_of(tmp_path) == [0, 1, 2, 3]


def test_something_that_is_no_optimizer_is_refused_naming_watch(tmp_path):
    class Wrapper:
        def step(self):
            pass

    for bad in (object(), Wrapper(), "adam"):
        with pytest.raises(ValueError, match="^tensorboard_nnviz.torch.watch: optimizer must be"):
            watch(_mlp(), tmp_path / "run", optimizer=bad)
    assert not (tmp_path / "run").exists()
