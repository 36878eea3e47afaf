"""`nnviz demo --no-serve` trains the demo runs, and the story is there,
with the numbers the README states (its table, from demo/readme_numbers.py).

The whole demo, not `--quick`: its 20 epochs add about 20 s to the start-up
and the three models' first epochs, and let every README number be checked.
Everything is read back as a user would see it: nnviz data through
reader.py (the plugin's code), loss curves through TensorBoard's data
provider.
"""

import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from tensorboard import context
from tensorboard.data import provider as tb_provider

from tensorboard_nnviz.cli import local_provider

NNVIZ = os.path.join(os.path.dirname(sys.executable), "nnviz")
RUNS = {"mlp_tuned", "mlp_high_lr", "cnn", "cnn_torch"}  # cnn_torch: PyTorch
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


readme_numbers = _load(os.path.join(REPO, "demo", "readme_numbers.py"), "readme_numbers")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("demo") / "logs")
    proc = subprocess.run(
        [NNVIZ, "demo", "--no-serve", "--logdir", logdir],
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r, provider, eid = local_provider.local_reader(logdir)
    stats = {run: r.stats_impl(None, eid, run) for run in RUNS}
    return {"logdir": logdir, "proc": proc, "provider": provider, "eid": eid, "reader": r,
            "stats": stats}


def _scalars(demo, run, tag):
    """A Keras TensorBoard callback scalar series, as the Scalars tab reads it."""
    data = demo["provider"].read_scalars(
        context.RequestContext(), experiment_id=demo["eid"], plugin_name="scalars",
        downsample=1000, run_tag_filter=tb_provider.RunTagFilter(runs=[run], tags=[tag]),
    )
    return [d.value for d in data[run][tag]]


def test_demo_writes_four_nnviz_runs_and_their_loss_curves(demo):
    runs = {x["run"]: x for x in demo["reader"].runs_impl(None, demo["eid"])["runs"]}
    assert set(runs) == RUNS
    for run in runs.values():
        assert run["tags"] == 6
        assert len(run["steps"]) > 20  # snapshots every few steps
    all_runs = {r.run_name for r in demo["provider"].list_runs(context.RequestContext(), experiment_id=demo["eid"])}
    for run in RUNS:
        assert {run + "/train", run + "/validation"} <= all_runs
    # Keras progress bars were on.
    assert "Epoch 1/20" in demo["proc"].stdout


def test_the_high_learning_rate_run_blows_up_to_nan(demo):
    stats = demo["stats"]["mlp_high_lr"]
    first_nan = {
        tag: next((s for s, n in zip(c["steps"], c["nan"]) if n), None) for tag, c in stats.items()
    }
    assert all(step is not None for step in first_nan.values()), first_nan
    kernel = stats["hidden1/kernel"]
    i = kernel["steps"].index(first_nan["hidden1/kernel"])
    # Before turning NaN the weights grew by orders of magnitude.
    assert kernel["absmax"][i - 1] > 100 * kernel["absmax"][0], kernel["absmax"][: i + 1]
    assert np.isnan(_scalars(demo, "mlp_high_lr/train", "epoch_loss")[-1])


def test_inspect_tells_when_each_tensor_went_bad(demo, capsys):
    from tensorboard_nnviz.cli import commands as cli

    assert cli.main(["inspect", demo["logdir"]]) == 0
    sections = {s.splitlines()[0].split(":")[0]: s.splitlines()[2:]
                for s in capsys.readouterr().out.split("\n\n")}
    # Each run's table, then its findings (a section of their own).
    findings = {k: sections.pop(k) for k in list(sections) if k.startswith("findings of run ")}
    assert set(sections) == {"run " + run for run in RUNS}
    assert set(findings) == {"findings of run " + run for run in RUNS}
    for run in RUNS:
        # A line per tensor: a table that lost rows (or all of them) fails here.
        assert sorted(line.split()[0] for line in sections["run " + run]) == sorted(
            demo["stats"][run]), sections["run " + run]
        for line in sections["run " + run]:
            tag, since = line.split()[0], line.split()[-1]
            c = demo["stats"][run][tag]
            expected = next((s for s, n in zip(c["steps"], c["nan"]) if n), None)
            assert since == ("-" if expected is None else str(expected)), (run, line)
            assert (since != "-") == (run == "mlp_high_lr")


def test_the_tuned_run_stays_finite_and_learns(demo):
    for tag, c in demo["stats"]["mlp_tuned"].items():
        assert not any(c["nan"]) and not any(c["inf"]), tag
        assert max(c["absmax"]) < 10, tag
        assert c["update_ratio"][-1] is not None and c["update_ratio"][-1] > 0, tag
    accuracy = _scalars(demo, "mlp_tuned/validation", "epoch_accuracy")
    assert accuracy[-1] > 0.85, accuracy


def test_the_tuned_run_has_alpha_info_only_where_its_kernels_end_out_of_range(demo):
    """A healthy run: no warning or error. Its hidden kernels start random
    (alpha > 6, which must not count) and end trained to near-zero loss
    with alpha just under 2: `alpha` info, from where it left [2, 6]."""
    found = demo["reader"].findings_impl(None, demo["eid"], "mlp_tuned")["findings"]
    assert all(f["severity"] == "info" and f["kind"] == "alpha" for f in found), found
    stats = demo["stats"]["mlp_tuned"]
    for f in found:
        alpha = stats[f["tag"]]["alpha"]
        assert alpha[0] > 6 and f["first_step"] > 0 and f["value"] < 2
    assert {f["tag"] for f in found} <= {"hidden1/kernel", "hidden2/kernel"}


def test_the_cnn_first_layer_kernels_become_smooth_strokes(demo):
    r, eid = demo["reader"], demo["eid"]
    kernel = [t for t in r.tags_impl(None, eid, "cnn")["tensors"] if t["tag"] == "conv1/kernel"][0]
    assert kernel["shape"] == [3, 3, 1, 16] and (kernel["rows"], kernel["cols"]) == (3, 48)
    first, _ = r.frame_impl(None, eid, "cnn", "conv1/kernel", kernel["steps"][0])
    last, _ = r.frame_impl(None, eid, "cnn", "conv1/kernel", kernel["steps"][-1])
    # Random at init (neighbours uncorrelated); strokes and edges are smooth.
    assert abs(readme_numbers.neighbour_correlation(first)) < 0.1
    assert readme_numbers.neighbour_correlation(last) > 0.12
    accuracy = _scalars(demo, "cnn/validation", "epoch_accuracy")
    assert accuracy[-1] > 0.5, accuracy


def test_the_torch_cnn_shows_the_same_picture_as_the_keras_one(demo):
    """cnn_torch is cnn in PyTorch: its conv1 weight (out, in, kh, kw) is laid
    out as Keras's conv1 kernel (kh, kw, in, out), a row of 16 3x3 tiles, and
    its kernels smooth out as they learn."""
    r, eid = demo["reader"], demo["eid"]
    tensors = {run: {t["tag"]: t for t in r.tags_impl(None, eid, run)["tensors"]}
               for run in ("cnn", "cnn_torch")}
    assert sorted(tensors["cnn_torch"]) == ["conv1/bias", "conv1/weight", "conv2/bias",
                                            "conv2/weight", "output/bias", "output/weight"]
    keras_kernel, torch_kernel = tensors["cnn"]["conv1/kernel"], tensors["cnn_torch"]["conv1/weight"]
    assert torch_kernel["shape"] == [16, 1, 3, 3]
    assert (torch_kernel["rows"], torch_kernel["cols"]) == (keras_kernel["rows"], keras_kernel["cols"])
    assert torch_kernel["steps"] == keras_kernel["steps"]  # same batches, same snapshot steps
    first, _ = r.frame_impl(None, eid, "cnn_torch", "conv1/weight", torch_kernel["steps"][0])
    last, _ = r.frame_impl(None, eid, "cnn_torch", "conv1/weight", torch_kernel["steps"][-1])
    assert readme_numbers.neighbour_correlation(last) > max(0.12, readme_numbers.neighbour_correlation(first) + 0.1)
    assert _scalars(demo, "cnn_torch/validation", "epoch_accuracy")[-1] > 0.5


def test_a_second_demo_keeps_the_trained_runs(demo):
    before = {
        os.path.join(d, f): os.path.getmtime(os.path.join(d, f))
        for d, _, files in os.walk(demo["logdir"]) for f in files
    }
    proc = subprocess.run(
        [NNVIZ, "demo", "--no-serve", "--quick", "--logdir", demo["logdir"]],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("already trained") == len(RUNS), proc.stdout
    after = {
        os.path.join(d, f): os.path.getmtime(os.path.join(d, f))
        for d, _, files in os.walk(demo["logdir"]) for f in files
    }
    assert after == before

def _outside_the_table(text):
    return (text[:text.index(readme_numbers.BEGIN)]
            + text[text.index(readme_numbers.END):])


def test_the_readme_numbers_are_what_the_demo_does(demo, tmp_path):
    """Every number of the README's table is what the demo measures now
    (within 5 %: the table rounds to 3 digits, and other CPUs round
    differently), and the generator rewrites that table and nothing else."""
    readme_path = os.path.join(REPO, "README.md")
    with open(readme_path, encoding="utf-8") as f:
        original = f.read()
    readme = readme_numbers.parse_table(original)
    measured = {(run, what, step): value
                for run, what, step, value in readme_numbers.rows(demo["logdir"])}
    assert len(readme) >= 15 and sorted(readme) == sorted(measured)
    for key, text in readme.items():
        assert readme_numbers.value_of(measured[key]) == pytest.approx(
            readme_numbers.value_of(text), rel=0.05, abs=0.01), (key, text, measured[key])
    copy = str(tmp_path / "README.md")
    shutil.copy(readme_path, copy)
    readme_numbers.write_readme(copy, readme_numbers.rows(demo["logdir"]))
    with open(copy, encoding="utf-8") as f:
        rewritten = f.read()
    assert readme_numbers.parse_table(rewritten) == measured
    assert _outside_the_table(rewritten) == _outside_the_table(original)
