"""The `nnviz` command on real logdirs written by NNVizCallback.

Figures are checked through what `cli.export` returns (the drawn Grid) and
by opening the written files with Pillow; error cases run the installed
console script as a subprocess, as a user would.
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import numpy as np
import psutil
import pytest
from PIL import Image

import keras_models
from runs import write_damaged_run
from tb_server import free_port

from tensorboard_nnviz.cli import commands as cli
from tensorboard_nnviz.cli import local_provider

NNVIZ = os.path.join(os.path.dirname(sys.executable), "nnviz")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    """Three runs: a Dense MLP with 13 snapshots (more than TensorBoard's
    default 10 per tag), a Conv2D model with 5, and the same Conv2D model
    with max_cells=16, so that its kernel is stored block-averaged."""
    root = tmp_path_factory.mktemp("cli_logdir")
    keras_models.train_run(str(root / "dense"), model="mlp", epochs=3, steps=4, snapshot_freq=1)
    keras_models.train_run(str(root / "conv"), model="conv2d", epochs=2, steps=4, snapshot_freq=2)
    keras_models.train_run(str(root / "reduced"), model="conv2d", epochs=1, steps=2,
                           snapshot_freq=1, max_cells=16)
    return str(root)


@pytest.fixture(scope="module")
def data(logdir):
    """What the reader (the plugin's code path) says is in the logdir."""
    r, provider, eid = local_provider.local_reader(logdir)
    runs = {x["run"]: x for x in r.runs_impl(None, eid)["runs"]}
    tensors = {run: r.tags_impl(None, eid, run)["tensors"] for run in runs}
    stats = {run: r.stats_impl(None, eid, run) for run in runs}

    def frame(run, tag, step):
        return r.frame_impl(None, eid, run, tag, step)[0]

    return {"runs": runs, "tensors": tensors, "stats": stats, "frame": frame}


def test_fixture_has_what_the_tests_assume(data):
    assert set(data["runs"]) == {"dense", "conv", "reduced"}
    reduced = [t for t in data["tensors"]["reduced"] if t["tag"] == "conv2d/kernel"][0]
    assert reduced["downsampled"] and reduced["rows"] * reduced["cols"] <= 16
    assert len(data["runs"]["dense"]["steps"]) == 13
    assert {t["tag"] for t in data["tensors"]["conv"]} >= {"conv2d/kernel", "conv2d/bias"}


# --- inspect -------------------------------------------------------------------


def test_inspect_prints_runs_tensors_shapes_steps_and_latest_stats(logdir, data, capsys):
    assert cli.main(["inspect", logdir]) == 0
    out = capsys.readouterr().out
    sections = {s.splitlines()[0].split(":")[0]: s.splitlines() for s in out.split("\n\n")}
    # Each run's table, then its findings (a section of their own).
    findings = {k: sections.pop(k) for k in list(sections) if k.startswith("findings of run ")}
    assert set(sections) == {"run %s" % run for run in data["runs"]}
    assert set(findings) == {"findings of run %s" % run for run in data["runs"]}
    for run, info in data["runs"].items():
        lines = sections["run %s" % run]
        header = lines[:1]
        assert "%d tensors" % info["tags"] in header[0]
        assert "%d snapshots" % len(info["steps"]) in header[0]
        for t in data["tensors"][run]:
            row = [l for l in lines if l.split()[:1] == [t["tag"]]]
            assert len(row) >= 1, (t["tag"], out)
            cells = row[0].split()
            assert cells[1] == "×".join(map(str, t["shape"]))
            frame = "%d×%d" % (t["rows"], t["cols"])
            if t["downsampled"]:
                frame += "÷%d×%d" % tuple(t["layout"]["block"])
            assert cells[2] == frame
            assert cells[3] == str(len(t["steps"])) and cells[4] == str(t["steps"][-1])
            mean = data["stats"][run][t["tag"]]["mean"][-1]
            assert float(cells[5]) == pytest.approx(mean, rel=5e-3, abs=1e-6)


def test_inspect_prints_the_last_spectral_value_of_each_matrix(logdir, data, capsys):
    """The four spectral columns hold each metric's last computed value
    (the default "auto" budget may leave the latest snapshot null); tensors
    that are not matrices show "-"."""
    assert cli.main(["inspect", logdir, "--run", "conv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[1].split()
    first = header.index("sv_max")
    assert header[first:first + 4] == ["sv_max", "srank", "alpha", "alpha_w"]
    seen = 0
    for t in data["tensors"]["conv"]:
        cells = [l for l in lines if l.split()[:1] == [t["tag"]]][0].split()
        columns = data["stats"]["conv"][t["tag"]]
        for k, name in enumerate(("sv_max", "stable_rank", "alpha", "alpha_weighted")):
            last = [v for v in columns[name] if v is not None]
            assert cells[first + k] == ("%.3g" % last[-1] if last else "-"), (t["tag"], name)
        seen += cells[first] != "-"
        if t["tag"].endswith("bias"):
            assert cells[first:first + 4] == ["-"] * 4
    assert seen >= 2  # the conv and dense kernels


def test_inspect_one_run(logdir, capsys):
    assert cli.main(["inspect", logdir, "--run", "conv"]) == 0
    out = capsys.readouterr().out
    assert "run conv:" in out and "run dense:" not in out


# --- export png ------------------------------------------------------------------


def test_png_draws_every_tensor_on_a_zero_centred_shared_scale(logdir, data, tmp_path):
    out = str(tmp_path / "dense.png")
    grid = cli.export(logdir, "dense", out)
    tags = {t["tag"] for t in data["tensors"]["dense"]}
    assert set(grid.axes) == tags
    last = data["runs"]["dense"]["steps"][-1]
    peak = 0.0
    for tag, im in grid.images.items():
        assert grid.axes[tag].get_title(loc="left").startswith(tag)
        frame = data["frame"]("dense", tag, last)
        np.testing.assert_array_equal(np.asarray(im.get_array()), frame)
        peak = max(peak, float(np.abs(frame).max()))
    for im in grid.images.values():
        vmin, vmax = im.get_clim()
        assert vmin == -vmax  # diverging, centred on zero
        assert vmax == pytest.approx(peak)  # one scale shared by all tensors
    assert len(grid.colorbars) == 1
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size[0] > 300 and png.size[1] > 300
        colours = np.asarray(png.convert("RGB")).reshape(-1, 3)
        # Heatmaps are drawn: red (> 0) and blue (< 0) cells, not just axes.
        assert ((colours[:, 0] > 150) & (colours[:, 2] < 100)).any()
        assert ((colours[:, 2] > 150) & (colours[:, 0] < 100)).any()


def test_png_per_tensor_scale_is_centred_too(logdir, data, tmp_path):
    grid = cli.export(logdir, "dense", str(tmp_path / "t.png"), scale="tensor")
    last = data["runs"]["dense"]["steps"][-1]
    for tag, im in grid.images.items():
        vmin, vmax = im.get_clim()
        assert vmin == -vmax == -float(np.abs(data["frame"]("dense", tag, last)).max())
    assert len(grid.colorbars) == len(grid.images)


def test_png_one_tag_at_a_step(logdir, data, tmp_path):
    steps = data["runs"]["dense"]["steps"]
    out = str(tmp_path / "one.png")
    grid = cli.export(logdir, "dense", out, tag="dense/kernel", step=steps[3])
    assert list(grid.axes) == ["dense/kernel"]
    np.testing.assert_array_equal(
        np.asarray(grid.images["dense/kernel"].get_array()),
        data["frame"]("dense", "dense/kernel", steps[3]),
    )
    assert "step %d" % steps[3] in grid.suptitle.get_text()
    with Image.open(out) as png:
        assert png.format == "PNG"


def test_png_tiles_conv_kernels_with_separators(logdir, data, tmp_path):
    grid = cli.export(logdir, "conv", str(tmp_path / "conv.png"), tag="conv2d/kernel")
    kernel = [t for t in data["tensors"]["conv"] if t["tag"] == "conv2d/kernel"][0]
    kh, kw, cin, cout = kernel["shape"]  # (3, 2, 3, 4): tiles of 3 x 2
    assert (kernel["rows"], kernel["cols"]) == (cin * kh, cout * kw)
    ax = grid.axes["conv2d/kernel"]
    horizontal = sorted(l.get_ydata()[0] for l in ax.lines if l.get_ydata()[0] == l.get_ydata()[1])
    vertical = sorted(l.get_xdata()[0] for l in ax.lines if l.get_xdata()[0] == l.get_xdata()[1])
    assert horizontal == [kh * k - 0.5 for k in range(1, cin)]
    assert vertical == [kw * k - 0.5 for k in range(1, cout)]


def test_png_of_a_block_averaged_tensor_says_so(logdir, data, tmp_path):
    kernel = [t for t in data["tensors"]["reduced"] if t["tag"] == "conv2d/kernel"][0]
    grid = cli.export(logdir, "reduced", str(tmp_path / "r.png"), tag="conv2d/kernel")
    assert "mean of %d×%d" % tuple(kernel["layout"]["block"]) in (
        grid.axes["conv2d/kernel"].get_title(loc="left"))
    assert grid.images["conv2d/kernel"].get_array().shape == (kernel["rows"], kernel["cols"])


# --- export gif ------------------------------------------------------------------


def _gif_frames(path):
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        frames = []
        for i in range(gif.n_frames):
            gif.seek(i)
            frames.append(np.asarray(gif.convert("RGB")))
        return frames


def test_gif_animates_every_step(logdir, data, tmp_path, capsys):
    out = str(tmp_path / "all.gif")
    grid = cli.export(logdir, "dense", out)
    steps = data["runs"]["dense"]["steps"]
    frames = _gif_frames(out)
    assert len(frames) == len(steps)
    assert not np.array_equal(frames[0], frames[-1])  # the weights moved
    assert grid.suptitle.get_text().endswith("step %d" % steps[-1])
    for im in grid.images.values():
        vmin, vmax = im.get_clim()
        assert vmin == -vmax


def test_gif_every_k_keeps_every_kth_and_the_last(logdir, data, tmp_path):
    out = str(tmp_path / "every.gif")
    steps = data["runs"]["dense"]["steps"]  # 13 steps
    cli.export(logdir, "dense", out, every=5)
    kept = steps[::5] + ([steps[-1]] if (len(steps) - 1) % 5 else [])
    assert len(_gif_frames(out)) == len(kept) == 4


def test_gif_of_a_range_of_steps(logdir, data, tmp_path):
    out = str(tmp_path / "range.gif")
    steps = data["runs"]["dense"]["steps"]
    grid = cli.export(logdir, "dense", out, steps=(steps[2], steps[6]), every=2)
    assert len(_gif_frames(out)) == 3  # steps[2], steps[4], steps[6]
    assert grid.suptitle.get_text().endswith("step %d" % steps[6])


def test_gif_of_one_tensor_with_a_progress_bar(logdir, data, tmp_path):
    out = str(tmp_path / "conv.gif")
    proc = subprocess.run(
        [NNVIZ, "export", logdir, "--run", "conv", "--tag", "conv2d/kernel", "-o", out],
        capture_output=True, text=True, env=ENV, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    n = len(data["runs"]["conv"]["steps"])
    assert len(_gif_frames(out)) == n
    assert re.search(r"rendering \[#+\] %d/%d" % (n, n), proc.stderr), proc.stderr
    assert "wrote %s" % out in proc.stdout


# --- errors: one clear line, exit 2 ------------------------------------------------


def _error_cases(logdir, tmp_path):
    return {
        "logdir": (["inspect", str(tmp_path / "nowhere")], ["nowhere", "does not exist"]),
        "run": (["export", logdir, "--run", "densse", "-o", str(tmp_path / "x.png")],
                ["'densse'", "did you mean 'dense'", "conv, dense, reduced"]),
        "tag": (["export", logdir, "--run", "dense", "--tag", "dense/kernal",
                 "-o", str(tmp_path / "x.png")], ["'dense/kernal'", "dense/kernel"]),
        "step": (["export", logdir, "--run", "dense", "--step", "999",
                  "-o", str(tmp_path / "x.png")], ["999", "13 snapshots"]),
        "inspect_run": (["inspect", logdir, "--run", "nope"], ["'nope'", "conv, dense, reduced"]),
        "extension": (["export", logdir, "--run", "dense", "-o", str(tmp_path / "x.jpg")],
                      ["x.jpg", ".png or .gif"]),
        "empty_logdir": (["inspect", str(tmp_path)], ["no nnviz data"]),
        "outdir": (["export", logdir, "--run", "dense", "-o", str(tmp_path / "no" / "x.png")],
                   ["does not exist", str(tmp_path / "no")]),
        "every": (["export", logdir, "--run", "dense", "--every", "0",
                   "-o", str(tmp_path / "x.gif")], ["--every", "0"]),
        "range": (["export", logdir, "--run", "conv", "--steps", "100:",
                   "-o", str(tmp_path / "x.gif")], ["100:", "5 snapshots: 0, 2, 4, 6, 8"]),
        "serve_logdir": (["serve", str(tmp_path / "nowhere")], ["nowhere", "does not exist"]),
    }


def test_unknown_names_exit_2_with_one_clear_line(logdir, tmp_path):
    cases = _error_cases(logdir, tmp_path)
    # Run side by side: each pays the start-up of TensorBoard's readers.
    procs = {
        name: subprocess.Popen([NNVIZ] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=ENV)
        for name, (argv, _) in cases.items()
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        argv, expected = cases[name]
        lines = [l for l in err.splitlines() if l.startswith("nnviz")]
        assert proc.returncode == 2, (name, err)
        assert "Traceback" not in err, (name, err)
        assert len(lines) == 1, (name, err)
        for text in expected:
            assert text in lines[0], (name, lines[0])
        assert out == "", (name, out)


def test_every_subcommand_has_help(capsys):
    for command in ("demo", "serve", "export", "inspect"):
        with pytest.raises(SystemExit) as e:
            cli.main([command, "--help"])
        assert e.value.code == 0
        assert "usage: nnviz %s" % command in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ("demo", "serve", "export", "inspect"))


def test_damaged_data_is_named_and_the_rest_is_drawn(tmp_path, capsys):
    """A frame of the wrong length (short/kernel at step 2) and a series of a
    newer format (future/kernel), written by hand: see runs.py."""
    logdir = str(tmp_path / "logs")
    write_damaged_run(os.path.join(logdir, "damaged"))
    assert cli.main(["inspect", logdir]) == 0
    captured = capsys.readouterr()
    assert "ok/kernel" in captured.out and "short/kernel" in captured.out
    assert "future/kernel" in captured.err and "version" in captured.err

    grid = cli.export(logdir, "damaged", str(tmp_path / "d.png"), step=2)
    assert set(grid.axes) == {"ok/kernel", "short/kernel"}
    assert grid.images["ok/kernel"].get_visible()
    assert not grid.images["short/kernel"].get_visible()  # unreadable at step 2
    assert "short/kernel" in capsys.readouterr().err

    assert cli.main(["export", logdir, "--run", "damaged", "--tag", "future/kernel",
                     "-o", str(tmp_path / "f.png")]) == cli.EXIT_DATA
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "future/kernel" in err[0] and "upgrade" in err[0]


# --- serve ---------------------------------------------------------------------------


def _get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read().decode("utf-8"))


def test_serve_runs_tensorboard_with_the_plugin_and_every_step(logdir, data):
    port = free_port()
    proc = subprocess.Popen([NNVIZ, "serve", logdir, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=ENV, start_new_session=True)
    try:
        base = "http://localhost:%d" % port
        deadline, listing, runs = time.time() + 90, None, None
        while time.time() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            try:
                listing = _get_json(base + "/data/plugins_listing")
                runs = _get_json(base + "/data/plugin/nnviz/runs")["runs"]
                if len(runs) == 3:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert listing is not None and "nnviz" in listing, listing
        assert listing["nnviz"]["enabled"] is True
        # Every step kept (TensorBoard's default would keep 10 of 13).
        by_run = {r["run"]: r["steps"] for r in runs}
        assert by_run["dense"] == data["runs"]["dense"]["steps"]
    finally:
        for p in [psutil.Process(proc.pid)] + psutil.Process(proc.pid).children(recursive=True):
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        proc.wait(timeout=10)
    output = proc.stdout.read()
    assert "http://localhost:%d/#nnviz" % port in output, output
