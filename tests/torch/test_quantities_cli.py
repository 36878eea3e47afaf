"""`nnviz inspect --quantity` and `nnviz export --quantity` on a real torch
run recorded by `watch` under Adam: the values shown are the live
optimizer's at the snapshot step; a bad name and a quantity not recorded
end with one line saying so (exit 2)."""

import numpy as np
import pytest
from PIL import Image

import quantity_runs as qr

from tensorboard_nnviz.cli import commands as cli


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("quantities_cli")
    truth = qr.record_adam_mlp(str(root / "adam"))
    qr.record_weights_only(str(root / "plain"))
    return str(root), truth


def _rows(out):
    """{tensor: row cells} of the table printed by inspect."""
    lines = out.splitlines()
    header = next(line.split() for line in lines if line.startswith("tensor "))
    # The last title is two words ("NaN/Inf since"), its cells one.
    return header, {c[0]: c for c in (line.split() for line in lines) if c and "/" in c[0] and len(c) == len(header) - 1}


@pytest.mark.parametrize("quantity", ["grad", "m_hat", "v_rms"])
def test_inspect_shows_the_live_optimizer_values(logdir, capsys, quantity):
    assert cli.main(["inspect", logdir[0], "--run", "adam", "--quantity", quantity]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("run adam: %d tensors, quantity %s," % (qr.TENSORS, quantity)), out
    header, rows = _rows(out)
    assert header[5] == "rms"
    for tag in (qr.FIRST_TAG, qr.HEAD_TAG):
        want = qr.rms(logdir[1][quantity][tag])
        assert float(rows[tag][5]) == pytest.approx(want, rel=6e-3), (tag, rows[tag])
        absmax = float(np.max(np.abs(logdir[1][quantity][tag])))
        assert float(rows[tag][header.index("absmax")]) == pytest.approx(absmax, rel=6e-3)
    # m_hat was recorded without frames: the frame column says so.
    frame = rows[qr.FIRST_TAG][2]
    assert frame == ("none" if quantity == "m_hat" else "8×8")
    if quantity == "grad":
        # The deep sigmoid MLP: the first layer's gradient far below the head's.
        assert float(rows[qr.FIRST_TAG][5]) < 1e-2 * float(rows[qr.HEAD_TAG][5])


def test_inspect_of_the_weights_is_unchanged(logdir, capsys):
    assert cli.main(["inspect", logdir[0], "--run", "adam"]) == 0
    header, rows = _rows(capsys.readouterr().out)
    assert "rms" not in header
    assert float(rows[qr.FIRST_TAG][5]) == pytest.approx(float(np.mean(logdir[1]["weights"][qr.FIRST_TAG])),
                                                         rel=6e-3, abs=1e-6)


@pytest.mark.parametrize("argv, message", [
    (["--quantity", "grads"], "nnviz inspect: unknown quantity 'grads'; did you mean 'grad'? "
                              "(quantities: weights, grad, m_hat, v_rms, momentum)"),
    (["--run", "adam", "--quantity", "momentum"],
     "nnviz inspect: run 'adam' has no momentum recorded (recorded: weights, grad, m_hat, v_rms)"),
    (["--run", "plain", "--quantity", "grad"],
     "nnviz inspect: run 'plain' has no grad recorded (recorded: weights)"),
])
def test_inspect_names_what_exists(logdir, capsys, argv, message):
    assert cli.main(["inspect", logdir[0]] + argv) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.err.startswith(message), captured.err
    assert captured.out == ""


def test_inspect_of_every_run_says_which_lack_the_quantity(logdir, capsys):
    assert cli.main(["inspect", logdir[0], "--quantity", "v_rms"]) == 0
    out = capsys.readouterr().out
    assert "run adam: %d tensors, quantity v_rms," % qr.TENSORS in out
    assert "run plain: no v_rms recorded (recorded: weights)" in out


def test_export_png_draws_the_true_gradient(logdir, tmp_path):
    out = str(tmp_path / "grad.png")
    grid = cli.export(logdir[0], "adam", out, tag=qr.FIRST_TAG, quantity="grad")
    np.testing.assert_allclose(np.asarray(grid.images[qr.FIRST_TAG].get_array()),
                               logdir[1]["grad"][qr.FIRST_TAG].T, rtol=1e-6)  # (out, in) laid out in x out
    assert "(grad)" in grid.suptitle.get_text()
    with Image.open(out) as png:
        assert png.format == "PNG"


def test_export_gif_of_v_rms(logdir, tmp_path):
    out = str(tmp_path / "v.gif")
    cli.export(logdir[0], "adam", out, quantity="v_rms")
    with Image.open(out) as gif:
        assert gif.format == "GIF" and gif.n_frames == qr.STEPS // qr.SNAPSHOT_FREQ + 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(quantity="m_hat"), "run 'adam' recorded the m_hat of 0/weight"),
    (dict(quantity="momentum"), "run 'adam' has no momentum recorded"),
    (dict(quantity="v_rms", run="plain"), "run 'plain' has no v_rms recorded (recorded: weights)"),
    (dict(quantity="Grad"), "unknown quantity 'Grad'; did you mean 'grad'?"),
])
def test_export_refuses_what_was_not_recorded(logdir, tmp_path, kwargs, message):
    run = kwargs.pop("run", "adam")
    with pytest.raises(cli.UsageError) as e:
        cli.export(logdir[0], run, str(tmp_path / "x.png"), **kwargs)
    assert str(e.value).startswith(message), str(e.value)
    assert not (tmp_path / "x.png").exists()


def test_export_command_line_exit_code(logdir, tmp_path, capsys):
    code = cli.main(["export", logdir[0], "--run", "adam", "--quantity", "nope", "-o", str(tmp_path / "x.png")])
    assert code == cli.EXIT_USAGE
    assert "unknown quantity 'nope'" in capsys.readouterr().err
