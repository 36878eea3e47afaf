"""Spectral stats served by a real `tensorboard`, both ingesters: /stats
answers the four fields equal to numpy's float64 SVD of the true weights
(tolerances: tests/spectral_reference.py), null (never NaN) for biases, NaN
weights and runs recorded before the spectral stats."""

import json
import os
import shutil

import numpy as np
import pytest

from spectral_reference import assert_metrics_match, reference_metrics, slices
from tb_server import TensorBoardServer
from test_spectral_run import V1_RUNS, train_spectral_run
from tensorboard_nnviz.core import spectral
from tensorboard_nnviz.record import writer as writer_lib

MATRICES = ("conv/kernel", "dense/kernel", "dense_1/kernel", "out/kernel")


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("spectral_e2e")
    weights = train_spectral_run(root / "trained", epochs=2)
    # A weight that goes NaN at step 1 (the writer's own input path).
    w = np.random.default_rng(0).standard_normal((30, 25)).astype("float32")
    bad = w.copy()
    bad[0, 0] = np.nan
    writer = writer_lib.SnapshotWriter(str(root / "goes_nan"), spectral=True)
    for step, value in enumerate([w, bad]):
        writer.write(step, [writer_lib.Weight("d/kernel", value, "Dense", "d", "float32")])
    writer.close()
    shutil.copytree(os.path.join(V1_RUNS, "blows_up"), root / "v1_blows_up")
    return root, weights


@pytest.fixture(scope="module", params=[False, True], ids=["python", "rustboard"])
def tb(request, logdir):
    runs = {"trained", "goes_nan", "v1_blows_up"}
    with TensorBoardServer(logdir[0], load_fast=request.param) as server:
        server.wait_for(lambda: runs <= {r["run"] for r in server.get_json("runs")["runs"]}, timeout=90)
        yield server


def strict_stats(tb, run, tag=None):
    """/stats parsed as strict JSON: NaN or Infinity would fail here."""
    r = tb.get("stats", {"run": run} if tag is None else {"run": run, "tag": tag})
    assert r.status == 200 and r.content_type == "application/json", r.body[:300]

    def no_constants(name):
        raise AssertionError("non-finite %s in /stats JSON" % name)

    return json.loads(r.body, parse_constant=no_constants)


def test_stats_serve_the_svd_metrics_of_the_true_weights(tb, logdir):
    weights = logdir[1]
    answer = strict_stats(tb, "trained")
    for tag in MATRICES:
        columns = answer[tag]
        assert len(columns["steps"]) >= 4
        for i, step in enumerate(columns["steps"]):
            got = {f: columns[f][i] for f in spectral.FIELDS}
            assert_metrics_match(got, reference_metrics(slices(weights[step][tag], "keras")), (tag, step))
    assert any(v is not None for v in answer["dense/kernel"]["alpha"])
    for tag in ("conv/bias", "dense/bias"):
        assert all(answer[tag][f] == [None] * len(answer[tag]["steps"]) for f in spectral.FIELDS)
    # One tag alone answers the same columns.
    one = strict_stats(tb, "trained", "dense/kernel")
    assert {f: one[f] for f in spectral.FIELDS} == {f: answer["dense/kernel"][f] for f in spectral.FIELDS}


def test_nan_weights_and_old_runs_answer_null(tb):
    nan = strict_stats(tb, "goes_nan", "d/kernel")
    assert nan["sv_max"][0] is not None and nan["nan"] == [0.0, 1.0]
    assert all(nan[f][1] is None for f in spectral.FIELDS)
    for tag, columns in strict_stats(tb, "v1_blows_up").items():
        n = len(columns["steps"])
        assert all(columns[f] == [None] * n for f in spectral.FIELDS), tag
