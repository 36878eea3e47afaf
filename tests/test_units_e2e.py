"""GET /units and /findings on a real `tensorboard`, both ingesters.

The logdir holds the planted-fault runs (planted.py), a few layer families
with their true weights recorded, the version-1 fixture runs and a run with
damaged units. /units must equal numpy on the true weights and /findings
the planted faults, on the Python ingester and on RustBoard alike.
"""

import json
import os
import shutil

import numpy as np
import pytest

import planted
from tb_server import TensorBoardServer
from test_units import V1_RUNS, _train_family, unit_norms, write_damaged_units_run

FAMILIES = ["mlp", "conv2d", "mha"]


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("units_e2e")
    recorders = planted.train_planted(root)
    recorders.update({family: _train_family(root / family, family) for family in FAMILIES})
    write_damaged_units_run(str(root / "damaged_units"))
    for run in os.listdir(V1_RUNS):
        shutil.copytree(os.path.join(V1_RUNS, run), root / ("v1_" + run))
    return root, recorders


@pytest.fixture(scope="module", params=[False, True], ids=["python", "rustboard"])
def tb(request, logdir):
    runs = set(planted.RUNS) | set(FAMILIES) | {"v1_blows_up", "v1_lr0_bn"}  # damaged_units: no frames
    with TensorBoardServer(logdir[0], load_fast=request.param) as server:
        server.wait_for(lambda: runs <= {r["run"] for r in server.get_json("runs")["runs"]}, timeout=90)
        yield server


def units(tb, run, tag, stat):
    r = tb.get("units", {"run": run, "tag": tag, "stat": stat})
    assert r.status == 200, (run, tag, r.body[:300])
    assert r.content_type == "application/octet-stream"
    rows, cols = int(r.headers["X-NNViz-Rows"]), int(r.headers["X-NNViz-Cols"])
    return np.frombuffer(r.body, dtype="<f4").reshape(rows, cols), int(r.headers["X-NNViz-Unit-Block"])


def findings(tb, run):
    r = tb.get("findings", {"run": run})
    assert r.status == 200 and r.content_type == "application/json", r.body[:300]
    return json.loads(r.body)


@pytest.mark.parametrize("run", FAMILIES)
def test_units_equal_numpy_on_the_true_weights(tb, logdir, run):
    recorder = logdir[1][run]
    for t in tb.get_json("tags", {"run": run})["tensors"]:
        tag = t["tag"]
        steps = tb.get_json("stats", {"run": run, "tag": tag})["steps"]
        norm, block = units(tb, run, tag, "norm")
        update, _ = units(tb, run, tag, "update")
        assert block == 1 and len(norm) == len(update) == len(steps)
        for i, step in enumerate(steps):
            w = recorder.weights[step][tag]
            np.testing.assert_allclose(norm[i], unit_norms(tag, w), rtol=1e-6, err_msg=tag)
            if i:
                moved = w.astype(np.float64) - recorder.weights[steps[i - 1]][tag]
                np.testing.assert_allclose(update[i], unit_norms(tag, moved), rtol=1e-6, atol=1e-30)
        assert np.isnan(update[0]).all()


def test_planted_faults_are_found(tb, logdir):
    (dead,) = findings(tb, "dead_relu")["findings"]
    assert (dead["kind"], dead["tag"], dead["units"]) == ("dead_units", "hidden/kernel", planted.DEAD_UNITS)
    assert [(f["kind"], f["tag"]) for f in findings(tb, "zero_branch")["findings"]] == [
        ("frozen", "branch/kernel"), ("frozen", "branch/bias")]
    for run in ("lr_zero", "bfloat16"):
        found = findings(tb, run)["findings"]
        assert found and {(f["kind"], f["severity"]) for f in found} == {("frozen", "error")}
    huge = findings(tb, "huge_lr")["findings"]
    rec = logdir[1]["huge_lr"]
    for f in huge:
        if f["kind"] == "nonfinite":
            assert f["first_step"] == planted.first_nonfinite_step(rec, f["tag"])
    assert {"nonfinite", "exploding"} == {f["kind"] for f in huge}
    for run in ("healthy", "healthy_bn_frozen"):
        assert findings(tb, run) == {"findings": []}


def test_version_1_runs_and_damaged_units(tb):
    r = tb.get("units", {"run": "v1_blows_up", "tag": "out/kernel", "stat": "update"})
    assert r.status == 404 and r.content_type == "application/json"
    assert "recorded before per-unit stats" in r.json()["error"]
    doc = findings(tb, "v1_lr0_bn")
    assert doc["notes"] and [f["tag"] for f in doc["findings"]] == [
        "dense/kernel", "dense/bias", "bn/gamma", "bn/beta", "out/kernel", "out/bias"]
    frame = tb.get("frame", {"run": "v1_blows_up", "tag": "dense/kernel", "step": 0})
    assert frame.status == 200
    for tag, match in (("short/kernel", "units tensor has shape"), ("future/kernel", "upgrade")):
        r = tb.get("units", {"run": "damaged_units", "tag": tag, "stat": "norm"})
        assert r.status == 422 and match in r.json()["error"], r.body
    r = tb.get("units", {"run": "mlp", "tag": "dense/kernel", "stat": "nope"})
    assert r.status == 400 and r.content_type == "application/json"
