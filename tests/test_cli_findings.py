"""`nnviz findings` and the findings in `nnviz inspect`, run as a user runs
them (the installed console script, as a subprocess).

The logdir: the version-1 fixture runs (NaN/Inf and nothing-learns errors),
plus runs written by the SnapshotWriter itself: one with a frozen weight
(a warning only) and a healthy one.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from test_units import V1_RUNS

NNVIZ = os.path.join(os.path.dirname(sys.executable), "nnviz")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def _write(logdir, frozen):
    from tensorboard_nnviz.record import writer as writer_lib

    structure = {"model": {"name": "m", "class": "Sequential"}, "layers": [
        {"path": "a", "class": "Dense", "params": 8, "trainable": True, "inbound": [], "output_shape": None,
         "weights": [{"name": "kernel", "tag": "a/kernel", "shape": [2, 2], "dtype": "float32",
                      "trainable": True}]},
        {"path": "b", "class": "Dense", "params": 4, "trainable": True, "inbound": ["a"], "output_shape": None,
         "weights": [{"name": "kernel", "tag": "b/kernel", "shape": [2, 2], "dtype": "float32",
                      "trainable": True}]}]}
    writer = writer_lib.SnapshotWriter(logdir)
    try:
        for step in range(4):
            moving = np.full((2, 2), 1.0 + step, np.float32)
            still = np.ones((2, 2), np.float32) if frozen else moving * 2
            writer.write(step, [writer_lib.Weight("a/kernel", moving, "Dense", "a", "float32"),
                                writer_lib.Weight("b/kernel", still, "Dense", "b", "float32")],
                         structure if step == 0 else None)
    finally:
        writer.close()


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_findings")
    for run in os.listdir(V1_RUNS):
        shutil.copytree(os.path.join(V1_RUNS, run), root / run)
    _write(str(root / "warn_only"), frozen=True)
    _write(str(root / "healthy"), frozen=False)
    return str(root)


def nnviz(*args):
    return subprocess.run([NNVIZ] + list(args), capture_output=True, text=True, env=ENV, timeout=120)


def test_findings_prints_each_run_most_severe_first(logdir):
    out = nnviz("findings", logdir)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert [line for line in text.splitlines() if line.startswith("run ")] == [
        "run blows_up:", "run healthy:", "run lr0_bn:", "run warn_only:"]
    assert "error    nonfinite  dense/kernel: Inf at step 3" in text
    assert "warning  frozen  b/kernel: trainable, but never changed over 4 snapshots (steps 0 to 3)" in text
    healthy = text.split("run healthy:")[1].split("run lr0_bn:")[0]
    assert healthy.strip() == "findings: none"
    assert "note: recorded before per-unit stats" in text


@pytest.mark.parametrize("args, code", [
    (["--fail-on", "error"], 1),
    (["--fail-on", "warning"], 1),
    (["--run", "warn_only", "--fail-on", "error"], 0),
    (["--run", "warn_only", "--fail-on", "warning"], 1),
    (["--run", "healthy", "--fail-on", "warning"], 0),
    (["--run", "lr0_bn"], 0),
])
def test_fail_on_gates_on_severity(logdir, args, code):
    out = nnviz("findings", logdir, *args)
    assert out.returncode == code, (out.stdout, out.stderr)


def test_json_is_the_http_answer_per_run(logdir):
    from tensorboard_nnviz.cli import local_provider

    out = nnviz("findings", logdir, "--json", "--run", "lr0_bn")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    r, _, eid = local_provider.local_reader(logdir)
    expected = r.findings_impl(None, eid, "lr0_bn")
    assert doc == {"runs": [dict(expected, run="lr0_bn")]}
    assert [f["severity"] for f in doc["runs"][0]["findings"]] == ["error"] * 6


def test_bad_input_keeps_exit_2(logdir, tmp_path):
    out = nnviz("findings", logdir, "--run", "blows_upp", "--fail-on", "error")
    assert out.returncode == 2
    assert "run 'blows_upp' not found" in out.stderr and "did you mean 'blows_up'" in out.stderr
    out = nnviz("findings", str(tmp_path / "missing"))
    assert out.returncode == 2 and "does not exist" in out.stderr
    out = nnviz("findings", logdir, "--fail-on", "info")
    assert out.returncode == 2  # argparse: not a severity one can gate on


def test_inspect_prints_the_findings(logdir):
    out = nnviz("inspect", logdir, "--run", "warn_only")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-3:] == ["", "findings of run warn_only: 1 warning",
                          "  warning  frozen  b/kernel: trainable, but never changed over 4 snapshots "
                          "(steps 0 to 3)"]
