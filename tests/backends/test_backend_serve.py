"""A run trained on this Keras backend, served by a real `tensorboard` started
from this environment, on both ingesters.

In the JAX and torch environments TensorFlow is not installed
(test_backend_env.py), so this also shows that TensorBoard loads and serves
the plugin without it.
"""

import keras
import numpy as np
import pytest

import keras_models as km
from runs import read_run, reference_frame
from tb_server import TensorBoardServer

RUN = "run"

# `make test-py` (TensorFlow) leaves this file out: tests/test_plugin_e2e.py
# serves TensorFlow runs on both ingesters already, and these servers would
# add about 50 s. `make test-jax` and `make test-torch` run it.


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    rec = km.recorder()
    model, data = km.build("conv2d")
    model.compile(keras.optimizers.Adam(0.01), "mse")  # optimizer state to serve
    km.train_run(str(root / RUN), model=(model, data), epochs=1, steps=3, snapshot_freq=1,
                 callbacks=[rec])
    return root, rec.weights, read_run(root / RUN)


@pytest.fixture(scope="module", params=[False, True], ids=["python", "rustboard"])
def tb(request, trained):
    with TensorBoardServer(trained[0], load_fast=request.param) as server:
        assert server.data_server_running() == request.param
        server.wait_for(lambda: server.get_json("runs")["runs"], timeout=60)
        yield server


def test_runs_tags_and_steps(tb, trained):
    _, _, run = trained
    runs = tb.get_json("runs")["runs"]
    assert runs == [{"run": RUN, "steps": [0, 1, 2, 3], "tags": len(run["frames"]), "frame_steps": "all"}]
    tags = {t["tag"]: t for t in tb.get_json("tags", {"run": RUN})["tensors"]}
    assert sorted(tags) == sorted(run["frames"])
    kernel = tags["conv2d/kernel"]
    assert kernel["shape"] == [3, 2, 3, 4] and kernel["steps"] == [0, 1, 2, 3]
    assert kernel["layout"]["row_axes"] == [2, 0] and kernel["layout"]["col_axes"] == [3, 1]


def test_frames_served_equal_the_weights_recorded_during_training(tb, trained):
    _, weights, run = trained
    for tag in ("conv2d/kernel", "conv2d/bias", "dense/kernel"):
        layout = run["content"][tag]["layout"]
        for step in (0, 3):
            r = tb.get("frame", {"run": RUN, "tag": tag, "step": step})
            assert r.status == 200, r.body
            rows, cols = int(r.headers["X-NNViz-Rows"]), int(r.headers["X-NNViz-Cols"])
            frame = np.frombuffer(r.body, "<f4").reshape(rows, cols)
            expected = reference_frame(weights[step][tag], layout).astype(np.float32)
            np.testing.assert_array_equal(frame, expected, err_msg="%s step %d" % (tag, step))


def test_stats_and_structure_served(tb, trained):
    _, weights, _ = trained
    stats = tb.get_json("stats", {"run": RUN, "tag": "dense/kernel"})
    assert stats["steps"] == [0, 1, 2, 3]
    expected = [float(np.linalg.norm(weights[s]["dense/kernel"].astype(np.float64)))
                for s in stats["steps"]]
    np.testing.assert_allclose(stats["l2"], expected, rtol=1e-6)
    assert stats["update_l2"][0] is None and stats["update_l2"][3] > 0
    layers = tb.get_json("structure", {"run": RUN})["layers"]
    assert [layer["path"] for layer in layers] == ["conv2d", "pool", "dense"]


def test_optimizer_quantities_served(tb, trained):
    # The default quantities: v_rms on every backend, grad where the backend
    # keeps it (torch); frames of grad only (README, "Gradients and
    # optimizer state").
    _, _, run = trained
    on_torch = keras.backend.backend() == "torch"
    kernel = {t["tag"]: t for t in tb.get_json("tags", {"run": RUN})["tensors"]}["dense/kernel"]
    assert kernel["quantities"] == (["weights", "grad", "v_rms"] if on_torch
                                    else ["weights", "v_rms"])
    assert kernel["frame_quantities"] == (["weights", "grad"] if on_torch else ["weights"])
    stats = tb.get_json("stats", {"run": RUN, "tag": "dense/kernel", "quantity": "v_rms"})
    assert stats["steps"] == [1, 2, 3]  # none before the first step
    expected = run["qstats"]["dense/kernel", "v_rms"]
    np.testing.assert_allclose(stats["l2"], [expected[s]["l2"] for s in (1, 2, 3)], rtol=1e-6)
    assert tb.get("stats", {"run": RUN, "tag": "dense/kernel", "quantity": "m_hat"}).status == 404
