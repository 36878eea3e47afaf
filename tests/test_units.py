"""GET /units and /findings through the plugin's WSGI app, on real training runs.

Per-unit norms and updates are compared with numpy on the true weights a
`keras_models.recorder()` kept during training, for Dense, Conv2D, LSTM,
MultiHeadAttention and Embedding, and for an embedding of more than 65,536
units (block-averaged). Version-1 runs (tests/fixtures/v1_runs, written by
the format-version-1 writer) still open everywhere and say why they have
no units. The real-server variant is test_units_e2e.py.
"""

import json
import os
import shutil

import numpy as np
import pytest
from werkzeug import test as wtest

import keras_models as km
from runs import newer_content, write_events
from test_plugin import PREFIX, assert_error, get_json

FAMILIES = ["mlp", "conv2d", "lstm", "mha", "embedding"]
V1_RUNS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "v1_runs")


def unit_norms(tag, w):
    """||W[u]|| per unit by the definition, one rule per family (DESIGN's
    unit axes), written here without the layout code."""
    w = np.asarray(w, np.float64)
    name = tag.rsplit("/", 1)[-1]
    if w.ndim == 0:
        return np.abs(w).reshape(1)
    if w.ndim == 1:  # a vector: each entry
        return np.abs(w)
    if tag.startswith("emb/"):  # (vocab, dim): a token per unit
        return np.sqrt((w * w).sum(axis=1))
    if "/attention_output/" in tag and name == "kernel":  # (heads, hd, d): [2]
        return np.sqrt((w * w).sum(axis=(0, 1)))
    if tag.split("/")[1:2] in (["query"], ["key"], ["value"]):
        if name == "kernel":  # (d, heads, hd): [1, 2]
            return np.sqrt((w * w).sum(axis=0)).reshape(-1)
        return np.abs(w).reshape(-1)  # bias (heads, hd): [0, 1]
    # Dense (in, out), conv (..., in, out), LSTM (in, 4u): the last axis
    return np.sqrt((w * w).reshape(-1, w.shape[-1]).sum(axis=0))


def _train_family(logdir, family):
    from tensorboard_nnviz import NNVizCallback

    model, (x, y) = km.build(family)
    km.compile_model(model)
    rec = km.recorder()
    n = 4 * km.BATCH
    x, y = np.concatenate([x] * 2)[:n], np.concatenate([y] * 2)[:n]
    model.fit(x, y, batch_size=km.BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[NNVizCallback(str(logdir), snapshot_freq=1), rec])
    return rec


def _train_big_embedding(logdir):
    import keras

    from tensorboard_nnviz import NNVizCallback

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,), dtype="int32"), keras.layers.Embedding(70001, 2, name="emb"),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1, name="out")])
    km.compile_model(model, lr=1.0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 70001, size=(16, 4))
    rec = km.recorder()
    model.fit(x, rng.standard_normal((16, 1)).astype("float32"), batch_size=8, epochs=1, verbose=0,
              callbacks=[NNVizCallback(str(logdir), snapshot_freq=1), rec])
    return rec


def write_damaged_units_run(logdir):
    """`short/kernel`'s units tensors have one row (two expected);
    `future/kernel`'s units series is of a newer format version."""
    from tensorboard_nnviz.core import format as fmt
    from tensorboard_nnviz.record import stats as stats_lib

    events = []
    for step in (0, 1):
        values = []
        for tag in ("short/kernel", "future/kernel"):
            w = np.full((3, 2), 0.5 + step, np.float32)
            measured = stats_lib.measure(w)
            values.append(fmt.stats_value(tag, measured.stats))
            content = fmt.units_content(unit_axes=[1], units=2, block=1)
            value = fmt.units_value(tag, measured.norm, None, content)
            if tag == "short/kernel":
                value.tensor.tensor_shape.dim[0].size = 1
                value.tensor.tensor_content = value.tensor.tensor_content[:8]
            else:
                value.metadata.plugin_data.content = newer_content(content)
            values.append(value)
        events.append((step, values))
    write_events(logdir, events)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("units_logdir")
    recorders = {family: _train_family(root / family, family) for family in FAMILIES}
    recorders["big_embedding"] = _train_big_embedding(root / "big_embedding")
    write_damaged_units_run(str(root / "damaged_units"))
    for run in os.listdir(V1_RUNS):
        shutil.copytree(os.path.join(V1_RUNS, run), root / ("v1_" + run))
    return root, recorders


@pytest.fixture(scope="module")
def client(logdir, make_app):
    app, _ = make_app(logdir[0])
    return wtest.Client(app)


def get_findings(client, run):
    """GET /findings: messages may say "NaN"; the JSON itself holds none."""
    r = client.get(PREFIX + "/findings", query_string={"run": run})
    assert r.status_code == 200 and r.mimetype == "application/json", r.get_data(as_text=True)

    def reject(constant):
        raise AssertionError("non-finite JSON number %s" % constant)

    return json.loads(r.get_data(as_text=True), parse_constant=reject)


def get_units(client, run, tag, stat):
    r = client.get(PREFIX + "/units", query_string={"run": run, "tag": tag, "stat": stat})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.mimetype == "application/octet-stream"
    rows, cols = int(r.headers["X-NNViz-Rows"]), int(r.headers["X-NNViz-Cols"])
    cells = np.frombuffer(r.get_data(), dtype="<f4").reshape(rows, cols)
    return cells, int(r.headers["X-NNViz-Unit-Block"])


@pytest.mark.parametrize("family", FAMILIES)
def test_units_match_numpy_on_the_true_weights(client, logdir, family):
    recorder = logdir[1][family]
    tags = [t["tag"] for t in get_json(client, "/tags?run=" + family)["tensors"]]
    for tag in tags:
        steps = get_json(client, "/stats?" + "run=%s&tag=%s" % (family, tag))["steps"]
        norm, block = get_units(client, family, tag, "norm")
        update, _ = get_units(client, family, tag, "update")
        assert block == 1 and norm.shape == update.shape == (len(steps), norm.shape[1])
        assert steps == sorted(recorder.weights)  # one row per snapshot, in order
        for i, step in enumerate(steps):
            w = recorder.weights[step][tag]
            np.testing.assert_allclose(norm[i], unit_norms(tag, w), rtol=1e-6, atol=1e-30, err_msg=tag)
            if i == 0:
                assert np.isnan(update[0]).all()  # no previous snapshot
            else:
                prev = recorder.weights[steps[i - 1]][tag]
                want = unit_norms(tag, w.astype(np.float64) - prev.astype(np.float64))
                np.testing.assert_allclose(update[i], want, rtol=1e-6, atol=1e-30, err_msg=tag)
                assert ((update[i] == 0) == (want == 0)).all(), tag  # exact zeros stay exact


def test_layout_names_the_unit_axes(client):
    layouts = {t["tag"]: t["layout"] for t in get_json(client, "/tags?run=mha")["tensors"]}
    assert layouts["mha/query/kernel"]["unit_axes"] == [1, 2]
    assert layouts["mha/attention_output/kernel"]["unit_axes"] == [2]
    layouts = {t["tag"]: t["layout"] for t in get_json(client, "/tags?run=embedding")["tensors"]}
    assert layouts["emb/embeddings"]["unit_axes"] == [0]


def test_more_than_65536_units_are_block_averaged(client, logdir):
    recorder = logdir[1]["big_embedding"]
    norm, block = get_units(client, "big_embedding", "emb/embeddings", "norm")
    update, _ = get_units(client, "big_embedding", "emb/embeddings", "update")
    assert block == 2 and norm.shape[1] == 35001  # 70,001 tokens, the last column alone
    steps = sorted(recorder.weights)
    exact = unit_norms("emb/embeddings", recorder.weights[steps[-1]]["emb/embeddings"])
    want = np.append(exact[:-1].reshape(-1, 2).mean(axis=1), exact[-1])
    np.testing.assert_allclose(norm[-1], want, rtol=1e-6)
    moved = unit_norms("emb/embeddings", recorder.weights[steps[-1]]["emb/embeddings"].astype(np.float64)
                       - recorder.weights[steps[-2]]["emb/embeddings"])
    want = np.append(moved[:-1].reshape(-1, 2).mean(axis=1), moved[-1])
    np.testing.assert_allclose(update[-1], want, rtol=1e-6, atol=1e-30)
    assert 0 < np.count_nonzero(update[-1]) < 35001  # only the tokens of the batch moved


@pytest.mark.parametrize("path,status,match", [
    ("/units?run=mlp&tag=dense/kernel", 400, "missing parameter 'stat'"),
    ("/units?run=mlp&tag=dense/kernel&stat=mean", 400, "must be one of norm, update"),
    ("/units?run=mlp&stat=norm", 400, "missing parameter 'tag'"),
    ("/units?run=nope&tag=dense/kernel&stat=norm", 404, "unknown run 'nope'"),
    ("/units?run=mlp&tag=nope/kernel&stat=norm", 404, "has no weight tag 'nope/kernel'"),
    ("/units?run=damaged_units&tag=short/kernel&stat=norm", 422, "units tensor has shape"),
    ("/units?run=damaged_units&tag=future/kernel&stat=norm", 422, "upgrade tensorboard_nnviz"),
    ("/findings", 400, "missing parameter 'run'"),
    ("/findings?run=nope", 404, "unknown run 'nope'"),
])
def test_errors(client, path, status, match):
    assert_error(client, path, status, match)


def test_version_1_runs_still_open_and_say_why_they_have_no_units(client):
    runs = {r["run"]: r for r in get_json(client, "/runs")["runs"]}
    assert runs["v1_blows_up"]["steps"] == list(range(9)) and runs["v1_blows_up"]["tags"] == 4
    tensors = get_json(client, "/tags?run=v1_lr0_bn")["tensors"]
    assert "unit_axes" not in tensors[0]["layout"] and all("error" not in t for t in tensors)
    stats = get_json(client, "/stats?run=v1_blows_up&tag=dense/kernel")
    assert stats["nan"][:3] == [0.0, 0.0, 0.0] and "units_still" not in stats
    r = client.get(PREFIX + "/frame?run=v1_lr0_bn&tag=dense/kernel&step=2")
    assert r.status_code == 200 and r.headers["X-NNViz-Step"] == "2"
    assert_error(client, "/units?run=v1_lr0_bn&tag=dense/kernel&stat=norm", 404,
                 "weight 'dense/kernel' of run 'v1_lr0_bn' was recorded before per-unit stats "
                 "(nnviz format version 1)")


def test_version_1_runs_get_the_findings_their_stats_allow(client):
    doc = get_findings(client, "v1_blows_up")
    kinds = {(f["kind"], f["tag"]) for f in doc["findings"]}
    assert {("nonfinite", t) for t in ("dense/kernel", "dense/bias", "out/kernel", "out/bias")} <= kinds
    assert ("exploding", "dense/kernel") in kinds
    assert doc["notes"] == ["recorded before per-unit stats (nnviz format version 1): "
                            "dead units are not checked"]
    # Its structure has no per-weight trainable: BatchNorm's moving statistics
    # are told apart by name, so only the trained weights are frozen.
    found = get_findings(client, "v1_lr0_bn")["findings"]
    assert [(f["kind"], f["severity"], f["tag"]) for f in found] == [
        ("frozen", "error", t) for t in
        ("dense/kernel", "dense/bias", "bn/gamma", "bn/beta", "out/kernel", "out/bias")]


def test_findings_json_shape(client):
    doc = get_findings(client, "mlp")
    assert set(doc) == {"findings"}
    for f in doc["findings"]:
        assert {"kind", "severity", "tag", "first_step", "last_step", "message"} <= set(f)
    json.dumps(doc, allow_nan=False)
