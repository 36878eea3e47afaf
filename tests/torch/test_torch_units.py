"""Per-unit stats and findings of runs recorded by `watch`.

The same routes as for Keras (`/units`, `/findings`, through the reader's
`*_impl`), on real torch training: per-unit norms and updates are compared
with numpy on the true weights of every family, with the unit written here
as torch's output channel (no layout code); a planted fault (a ReLU unit
that can never fire) must be found, and a healthy run must give no warning.
"""

import numpy as np
import pytest
import torch
from torch import nn

import torch_models as tm

from tensorboard_nnviz.cli import local_provider

RUN = "run"


def unit_axes(family, tag, w):
    """torch's output channel: axis 1 of a transposed conv's (in, out/g, k…),
    the embedding axis of MultiheadAttention's bias_k/bias_v (1, 1, E), axis
    0 of everything else (Linear and conv (out, …), RNN gates (G·h, …),
    embedding rows, the entries of a vector); a scalar is one unit, and so is
    each entry of a norm's affine weight, whatever its shape (LayerNorm((2, 3)))."""
    if w.ndim == 0:
        return []
    if family == "norms" and not tag.startswith("0/"):  # module 0 is its Linear
        return list(range(w.ndim))
    if tag.rsplit("/", 1)[-1] in ("bias_k", "bias_v"):
        return [2]
    if w.ndim >= 3 and "transpose" in family:  # the models are the module itself
        return [1]
    return [0]


def unit_norms(family, tag, w):
    w = np.asarray(w, np.float64)
    axes = unit_axes(family, tag, w)
    rest = [a for a in range(w.ndim) if a not in axes]
    units = int(np.prod([w.shape[a] for a in axes], dtype=np.int64))
    return np.sqrt((np.transpose(w, axes + rest).reshape(units, -1) ** 2).sum(axis=1))


def open_reader(log_dir):
    r, _, eid = local_provider.local_reader(str(log_dir))
    return r, eid


@pytest.fixture(scope="module")
def family_runs(tmp_path_factory):
    return {family: (truth, open_reader(logdir))
            for family, (_, truth, logdir, _) in tm.train_families(tmp_path_factory.mktemp, RUN).items()}


@pytest.mark.parametrize("family", tm.FAMILIES)
def test_unit_norms_and_updates_equal_numpy_on_the_true_weights(family_runs, family):
    truth, (r, eid) = family_runs[family]
    for t in r.tags_impl(None, eid, RUN)["tensors"]:
        tag = t["tag"]
        norms, block, steps = r.units_impl(None, eid, RUN, tag, "norm")
        updates, _, _ = r.units_impl(None, eid, RUN, tag, "update")
        assert block == 1 and steps == [0, 2, 4], tag
        for row, step in enumerate(steps):
            w = truth[step][tag]
            np.testing.assert_allclose(norms[row], unit_norms(family, tag, w), rtol=1e-5, atol=1e-6,
                                       err_msg="%s norm @ %d" % (tag, step))
            if row == 0:
                assert np.isnan(updates[0]).all(), "no update at the first snapshot"
                continue
            moved = unit_norms(family, tag, w.astype(np.float64) - truth[steps[row - 1]][tag])
            np.testing.assert_allclose(updates[row], moved, rtol=1e-4, atol=1e-6,
                                       err_msg="%s update @ %d" % (tag, step))


def _train_mlp(log_dir, activation, dead=()):
    """Linear(6, 8) → activation → Linear(8, 3), 12 SGD steps, a snapshot
    every 2. Units in `dead` start with a bias of -50: behind a ReLU they
    never fire, so their weights get no gradient while the others move."""
    from tensorboard_nnviz.torch import watch

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), activation, nn.Linear(8, 3))
    with torch.no_grad():
        for u in dead:
            model[0].bias[u] = -50.0
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(16, 6), torch.randn(16, 3)
    with watch(model, str(log_dir), optimizer=opt, snapshot_freq=2):
        for _ in range(12):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()


def test_a_relu_unit_that_can_never_fire_is_a_dead_unit(tmp_path):
    _train_mlp(tmp_path / RUN, nn.ReLU(), dead=(2, 5))
    r, eid = open_reader(tmp_path)
    found = r.findings_impl(None, eid, RUN)["findings"]
    dead = [f for f in found if f["kind"] == "dead_units" and f["tag"] == "0/weight"]
    assert len(dead) == 1, found
    assert dead[0]["units"] == [2, 5] and dead[0]["severity"] == "warning"
    assert not [f for f in found if f["severity"] == "error"], found


@pytest.mark.parametrize("activation", [nn.Tanh(), nn.LeakyReLU(0.1)], ids=["tanh", "leaky_relu"])
def test_a_healthy_torch_run_has_no_warning_or_error(tmp_path, activation):
    _train_mlp(tmp_path / RUN, activation)
    r, eid = open_reader(tmp_path)
    found = r.findings_impl(None, eid, RUN)["findings"]
    assert [f for f in found if f["severity"] in ("warning", "error")] == [], found
