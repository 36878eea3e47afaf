"""`nnviz inspect`, `export` and `compact` on torch runs, unchanged."""

import collections

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import torch_models as tm

from tensorboard_nnviz.cli import commands as cli
from tensorboard_nnviz.cli import compact
from tensorboard_nnviz.cli import local_provider
from runs import read_run, write_events


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    """A torch CNN with a snapshot at every one of 8 steps, and a loss
    scalar next to it (as `SummaryWriter.add_scalar` would write)."""
    from tensorboard.plugins.scalar import summary_v2

    root = tmp_path_factory.mktemp("torch_cli")
    torch.manual_seed(0)
    model = nn.Sequential(collections.OrderedDict([
        ("conv", nn.Conv2d(3, 4, (3, 2))), ("flatten", nn.Flatten()), ("fc", nn.Linear(4 * 4 * 4, 2))]))
    truth, _ = tm.train(model, torch.randn(4, 3, 6, 5), root / "cnn", steps=8, snapshot_freq=1)
    write_events(str(root / "cnn"), [(s, list(summary_v2.scalar_pb("loss", 1.0 / (s + 1)).value))
                                     for s in range(9)])
    return str(root), truth


def _reader(logdir):
    r, _, eid = local_provider.local_reader(logdir)
    return r, eid


def test_inspect_lists_torch_tensors(logdir, capsys):
    assert cli.main(["inspect", logdir[0]]) == 0
    out = capsys.readouterr().out
    assert "run cnn: 4 tensors, 9 snapshots" in out.splitlines()[0], out
    conv = [line.split() for line in out.splitlines() if line.split()[:1] == ["conv/weight"]][0]
    assert conv[1:5] == ["4×3×3×2", "9×8", "9", "8"]
    mean = float(np.mean(logdir[1][8]["conv/weight"], dtype=np.float64))
    assert float(conv[5]) == pytest.approx(mean, rel=5e-3, abs=1e-6)


def test_export_png_draws_the_true_weights_with_conv_tiles(logdir, tmp_path):
    out = str(tmp_path / "conv.png")
    grid = cli.export(logdir[0], "cnn", out, tag="conv/weight", step=6)
    w = logdir[1][6]["conv/weight"]  # (out 4, in 3, kh 3, kw 2)
    np.testing.assert_array_equal(np.asarray(grid.images["conv/weight"].get_array()),
                                  w.transpose(1, 2, 0, 3).reshape(9, 8))
    ax = grid.axes["conv/weight"]
    horizontal = sorted(l.get_ydata()[0] for l in ax.lines if l.get_ydata()[0] == l.get_ydata()[1])
    vertical = sorted(l.get_xdata()[0] for l in ax.lines if l.get_xdata()[0] == l.get_xdata()[1])
    assert horizontal == [2.5, 5.5] and vertical == [1.5, 3.5, 5.5]  # kh x kw tiles
    with Image.open(out) as png:
        assert png.format == "PNG"


def test_export_gif_of_every_step(logdir, tmp_path):
    out = str(tmp_path / "all.gif")
    cli.export(logdir[0], "cnn", out)
    with Image.open(out) as gif:
        assert gif.format == "GIF" and gif.n_frames == 9


def test_compact_keeps_torch_snapshots_and_the_scalars(logdir, tmp_path):
    out = tmp_path / "logs" / "thin"
    result = compact.compact(logdir[0], "cnn", 4, str(out), spacing="even")
    assert result["kept"] == compact.choose_steps(list(range(9)), 4, "even")
    assert len(result["kept"]) == 4 and result["kept"][0] == 0 and result["kept"][-1] == 8
    original, thinned = read_run(logdir[0] + "/cnn"), read_run(out)
    for tag, frames in thinned["frames"].items():
        assert sorted(frames) == result["kept"]
        for step in result["kept"]:
            assert frames[step].tobytes() == original["frames"][tag][step].tobytes()
    assert thinned["structure"] == original["structure"]
    r, eid = _reader(str(tmp_path / "logs"))
    assert [(x["run"], x["steps"]) for x in r.runs_impl(None, eid)["runs"]] == [("thin", result["kept"])]
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(out))
    acc.Reload()
    assert len(acc.Tensors("loss")) == 9  # every scalar kept
