"""How `watch` counts steps, names tags through wrappers, and stays out of
training's way: real training loops, event files read back."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import torch_models as tm
from bad_arguments import assert_refused_when_made

from tensorboard_nnviz.record.torch_watch import HostBufferPool
from tensorboard_nnviz.torch import watch
from runs import full_disk_at, read_run, steps_of


def _loop(model, opt, steps, batch=None, watcher=None):
    batch = torch.ones(2, 5) if batch is None else batch
    for _ in range(steps):
        opt.zero_grad()
        model(batch).pow(2).mean().backward()
        opt.step()
        if watcher is not None:
            watcher.step()


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))


def test_steps_are_optimizer_steps_counted_by_the_hook(tmp_path):
    model = _mlp()
    opt = torch.optim.Adam(model.parameters(), 0.01)
    with watch(model, tmp_path, optimizer=opt, snapshot_freq=3) as w:
        _loop(model, opt, 7)
        assert w.last_step == 6
    assert steps_of(tmp_path) == [0, 3, 6]


def test_watcher_step_counts_without_an_optimizer(tmp_path):
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    with watch(model, tmp_path, snapshot_freq=2) as w:
        _loop(model, opt, 5, watcher=w)
    assert steps_of(tmp_path) == [0, 2, 4]


def test_two_optimizers_counted_once_per_training_step(tmp_path):
    model = _mlp()
    opt_a = torch.optim.SGD(model[0].parameters(), 0.1)
    opt_b = torch.optim.SGD(model[2].parameters(), 0.1)
    with watch(model, tmp_path, snapshot_freq=2) as w:
        for _ in range(4):
            model(torch.ones(2, 5)).pow(2).mean().backward()
            opt_a.step()
            opt_b.step()
            w.step()
    assert steps_of(tmp_path) == [0, 2, 4]


def test_log_schedule(tmp_path):
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), 0.01)
    with watch(model, tmp_path, optimizer=opt, snapshot_freq="log"):
        _loop(model, opt, 12)
    assert steps_of(tmp_path) == [0, 1, 2, 3, 4, 5, 6, 8, 10]


def test_steps_stay_monotonic_in_a_reused_log_dir(tmp_path):
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    with watch(model, tmp_path, optimizer=opt, snapshot_freq=2):
        _loop(model, opt, 4)
    assert steps_of(tmp_path) == [0, 2, 4]
    # A second run in the same directory: a new optimizer counts from 0 again.
    opt = torch.optim.SGD(model.parameters(), 0.1)
    with watch(model, tmp_path, optimizer=opt, snapshot_freq=2):
        _loop(model, opt, 4)
    assert steps_of(tmp_path) == [0, 2, 4, 5, 7, 9]


def test_include_and_exclude_match_tags(tmp_path):
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), 0.1)
    with watch(model, tmp_path / "inc", optimizer=opt, include=r"weight$"):
        _loop(model, opt, 1)
    with watch(model, tmp_path / "exc", optimizer=opt, exclude=r"^1/"):
        _loop(model, opt, 1)
    assert sorted(read_run(tmp_path / "inc")["frames"]) == ["0/weight", "1/weight", "2/weight"]
    assert sorted(read_run(tmp_path / "exc")["frames"]) == ["0/bias", "0/weight", "2/bias",
                                                               "2/weight"]


def test_compiled_models_keep_plain_tags(tmp_path):
    """torch.compile's `_orig_mod` never reaches a tag, nor the structure
    (DDP's `module`: test_ddp.py)."""
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    model = nn.Sequential(torch.compile(inner, backend="eager"), nn.Linear(2, 2))
    compiled = torch.compile(model, backend="eager")
    assert any("_orig_mod" in n for n, _ in compiled.named_parameters())
    opt = torch.optim.SGD(compiled.parameters(), 0.1)
    truth = {}
    with watch(compiled, tmp_path / "compiled", optimizer=opt, snapshot_freq=1):
        _loop(compiled, opt, 2)
        truth = tm.state(inner)
    run = read_run(tmp_path / "compiled")
    assert sorted(run["frames"]) == ["0/0/bias", "0/0/weight", "0/2/bias", "0/2/weight",
                                     "1/bias", "1/weight"]
    np.testing.assert_array_equal(run["frames"]["0/0/weight"][2], truth["0/weight"].T)
    assert [l["path"] for l in run["structure"][0][1]["layers"]] == ["0", "0/0", "0/1", "0/2", "1"]


def test_half_precision_and_bfloat16_weights(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 3)).to(torch.bfloat16)
    model[1].half()
    with watch(model, tmp_path) as w:
        pass
    run = read_run(tmp_path)
    assert run["content"]["0/weight"]["dtype"] == "bfloat16"
    assert run["content"]["1/weight"]["dtype"] == "float16"
    np.testing.assert_array_equal(run["frames"]["0/weight"][0],
                                  model[0].weight.detach().float().numpy().T)
    np.testing.assert_array_equal(run["frames"]["1/weight"][0],
                                  model[1].weight.detach().float().numpy().T)


def test_host_buffers_are_recycled(tmp_path):
    """Snapshots copy into buffers the writer gave back: new memory is taken
    only while the buffers in flight grow (the one being copied, one queued,
    one being written, W_prev), never once per snapshot."""
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    allocated = []

    class Counting(HostBufferPool):
        def allocate(self, shape, dtype):
            buf = super().allocate(shape, dtype)
            allocated.append(buf)
            return buf

    w = watch(model, tmp_path, optimizer=opt, snapshot_freq=1)
    w.recorder.writer.pool = Counting()
    _loop(model, opt, 30)
    w.close()
    assert steps_of(tmp_path) == list(range(31))
    # 4 parameters and their gradients (plain SGD: no state), each at most
    # W_0, W_prev, one queued, one being written and one being copied
    assert 8 <= len(allocated) <= 8 * 5, len(allocated)


def test_pinned_mode_copies_only_into_buffers_it_allocated(tmp_path):
    """The CUDA path's buffer logic, on CPU: in pinned mode every snapshot
    copies into a buffer from `empty_pinned` (here plain CPU memory stands in
    for pinned memory: this machine has no GPU), and the writer's pageable
    spare copies are dropped instead of recycled."""
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    pinned = []

    class StandIn(HostBufferPool):
        @staticmethod
        def empty_pinned(shape, dtype):
            t = torch.empty(shape, dtype=dtype)
            pinned.append(t)
            return t

    pool = StandIn()
    pool.pinned = True
    copied = []
    take = pool.take
    pool.take = lambda *a: copied.append(take(*a)) or copied[-1]
    w = watch(model, tmp_path, optimizer=opt, snapshot_freq=1)
    w.recorder.writer.pool = pool
    _loop(model, opt, 20)
    w.close()
    assert len(copied) == 20 * 4 * 2  # each parameter and its gradient (plain SGD: no state)
    addresses = {t.data_ptr() for t in pinned}
    assert all(buf.ctypes.data in addresses for buf in copied)
    assert len(pinned) <= 8 * 5, "recycled, not one per snapshot"
    frames = read_run(tmp_path)["frames"]
    np.testing.assert_array_equal(frames["2/bias"][20], model[2].bias.detach().numpy()[None])


def test_bad_arguments_are_refused_by_watch_naming_it(tmp_path):
    assert_refused_when_made(lambda log_dir, **kw: watch(_mlp(), log_dir, **kw),
                             "tensorboard_nnviz.torch.watch", tmp_path)


def test_epoch_schedule_is_refused_with_a_clear_message(tmp_path):
    with pytest.raises(ValueError, match="Lightning"):
        watch(_mlp(), tmp_path, snapshot_freq="epoch")


def test_a_failing_snapshot_warns_once_and_training_goes_on(tmp_path):
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), 0.1)

    class Broken(HostBufferPool):
        def take(self, tag, shape, dtype):
            raise RuntimeError("no host memory")

    w = watch(model, tmp_path, optimizer=opt, snapshot_freq=1)
    w.recorder.writer.flush()
    w.recorder.writer.pool = Broken()  # every copy now fails inside our hook
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _loop(model, opt, 3)
    w.close()
    ours = [c for c in caught if "could not take a weight snapshot" in str(c.message)]
    assert len(ours) == 1
    assert steps_of(tmp_path) == [0]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_full_disk_is_reported_naming_watch_and_training_goes_on(tmp_path, monkeypatch):
    """Writing step 2 fails as on a full disk: one warning, which names the
    API the user called (not the Keras callback); the other steps are kept."""
    full_disk_at(monkeypatch, 2)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with watch(model, tmp_path, optimizer=opt, snapshot_freq=1) as w:
            _loop(model, opt, 2)
            w.recorder.writer.flush()
            _loop(model, opt, 2)
    ours = [str(c.message) for c in caught if "No space left" in str(c.message)]
    assert len(ours) == 1, ours
    assert ours[0].startswith("tensorboard_nnviz.torch.watch could not write the weight "
                              "snapshot at step 2")
    assert steps_of(tmp_path) == [0, 1, 3, 4]  # only the failed snapshot is lost


def test_lazy_modules_are_recorded_once_materialised(tmp_path):
    model = nn.Sequential(nn.LazyLinear(3), nn.Linear(3, 2))
    opt = None
    with watch(model, tmp_path, snapshot_freq=1) as w:
        model(torch.ones(2, 4))  # materialises the lazy layer
        opt = torch.optim.SGD(model.parameters(), 0.1)
        _loop(model, opt, 2, batch=torch.ones(2, 4), watcher=w)
    run = read_run(tmp_path)
    assert sorted(run["frames"]["0/weight"]) == [1, 2]
    assert sorted(run["frames"]["1/weight"]) == [0, 1, 2]
    # The structure is written again once the model changed.
    assert [s for s, _ in run["structure"]] == [0, 1]
    assert run["structure"][1][1]["layers"][0]["weights"][0]["shape"] == [3, 4]


def test_other_ranks_write_nothing(tmp_path, monkeypatch):
    """torchrun sets RANK before a process group exists."""
    monkeypatch.setenv("RANK", "1")
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    with watch(model, tmp_path / "run", optimizer=opt, snapshot_freq=1) as w:
        _loop(model, opt, 2)
        assert not w.active
    assert not (tmp_path / "run").exists()
