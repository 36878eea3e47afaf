"""NNVizCallback on real tiny Keras models; event files read back with TensorBoard.

Each family trains a few steps with a `Recorder` after our callback that
keeps the true weights at the same hooks; every frame must equal
transpose(W, row_axes + col_axes).reshape(rows, cols) of the true weights,
cell for cell, and the stats must match numpy.
"""

import math

import numpy as np
import pytest

import keras_models as km
import snapshot_checks as checks
from bad_arguments import assert_refused_when_made
from runs import read_run, reference_frame, steps_of

FAMILIES = sorted(km.BUILDERS)


def _fit(model, x, y, callbacks, epochs=1, steps=4, batch=km.BATCH):
    n = steps * batch
    reps = -(-n // len(x))
    x = np.concatenate([x] * reps)[:n]
    y = np.concatenate([y] * reps)[:n]
    return model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=False, verbose=0,
                     callbacks=callbacks)


def _train(logdir, family, epochs=1, steps=4, **kwargs):
    from tensorboard_nnviz import NNVizCallback

    model, (x, y) = km.build(family)
    km.compile_model(model)
    rec = km.recorder()
    _fit(model, x, y, [NNVizCallback(str(logdir), **kwargs), rec], epochs, steps)
    return model, rec


@pytest.fixture(scope="module")
def family_runs(tmp_path_factory):
    """Every family trained 1 epoch of 4 steps with a snapshot every 2 steps."""
    return km.record_runs(FAMILIES, tmp_path_factory.mktemp, snapshot_freq=2)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_weight_recorded_at_the_scheduled_steps(family_runs, family):
    model, rec, run = family_runs[family]
    from tensorboard_nnviz.record import structure

    tags = [r.tag for r in structure.weight_refs(model)]
    assert sorted(run["frames"]) == sorted(tags)
    assert len(tags) == len(model.weights)  # trainable and not, none missed
    first = 1 if family == "subclassed" else 0
    for tag in tags:
        assert sorted(run["frames"][tag]) == [first, 2, 4], tag
        assert sorted(run["stats"][tag]) == [first, 2, 4], tag


@pytest.mark.parametrize("family", FAMILIES)
def test_frames_equal_the_layout_of_the_true_weights(family_runs, family):
    model, rec, run = family_runs[family]
    checks.assert_frames_match(run, rec.weights)


@pytest.mark.parametrize("family", FAMILIES)
def test_stats_match_numpy(family_runs, family):
    model, rec, run = family_runs[family]
    checks.assert_stats_match(run, rec.weights)


def test_stats_stay_exact_when_snapshot_buffers_are_recycled(tmp_path):
    """A snapshot every step: host buffers come back from the writer and are
    reused, while prev and W_0 keep their own data (update and init stats)."""
    model, rec = _train(tmp_path, "conv2d", steps=10, snapshot_freq=1)
    run = read_run(tmp_path)
    assert all(sorted(by_step) == list(range(11)) for by_step in run["stats"].values())
    checks.assert_stats_match(run, rec.weights)
    for tag, frames in run["frames"].items():
        for step, frame in frames.items():
            expected = reference_frame(rec.weights[step][tag], run["content"][tag]["layout"])
            np.testing.assert_array_equal(frame, expected.astype(np.float32))


def test_conv_kernels_form_kh_by_kw_tiles(family_runs):
    _, rec, run = family_runs["conv2d"]
    frame = run["frames"]["conv2d/kernel"][4]
    w = rec.weights[4]["conv2d/kernel"]
    kh, kw, cin, cout = w.shape
    assert frame.shape == (cin * kh, cout * kw)
    for i in range(cin):
        for o in range(cout):
            tile = frame[i * kh:(i + 1) * kh, o * kw:(o + 1) * kw]
            np.testing.assert_array_equal(tile, w[:, :, i, o])


def test_tags_follow_the_layer_tree(family_runs):
    def tags(family):
        return set(family_runs[family][2]["frames"])

    assert {"lstm/lstm_cell/kernel", "lstm/lstm_cell/recurrent_kernel",
            "lstm/lstm_cell/bias"} <= tags("lstm")
    assert {"mha/query/kernel", "mha/key/bias", "mha/attention_output/kernel"} <= tags("mha")
    assert tags("nested") == {"encoder/e1/kernel", "encoder/e1/bias", "encoder/e2/kernel",
                              "encoder/e2/bias", "head/kernel", "head/bias"}
    assert {"bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance"} <= tags("batchnorm")
    assert family_runs["gru"][2]["content"]["gru/gru_cell/bias"]["shape"] == [2, 12]
    assert {"dense/kernel", "dense_1/kernel", "dense_2/bias"} <= tags("mlp")


def test_batchnorm_moving_stats_change_and_are_recorded(family_runs):
    _, rec, run = family_runs["batchnorm"]
    frames = run["frames"]["bn/moving_mean"]
    assert not np.array_equal(frames[0], frames[4])  # updated by training, not trainable
    np.testing.assert_array_equal(frames[4][0], rec.weights[4]["bn/moving_mean"])


def test_structure_written_with_the_first_snapshot(family_runs):
    _, _, run = family_runs["branch_merge"]
    assert [step for step, _ in run["structure"]] == [0]
    doc = run["structure"][0][1]
    layers = {layer["path"]: layer for layer in doc["layers"]}
    assert layers["add"]["inbound"] == ["b1", "b2"]
    assert layers["concat"]["inbound"] == ["a", "add"]
    assert layers["b1"]["inbound"] == ["a"] and layers["b2"]["inbound"] == ["a"]
    assert layers["out"]["weights"][0] == {
        "name": "kernel", "tag": "out/kernel", "shape": [8, 2], "dtype": "float32", "trainable": True}
    assert doc["model"] == {"name": "branchy", "class": "Functional", "params": 82,
                            "trainable_params": 82,
                            "optimizer": {"class": "SGD", "epsilon": None}}  # SGD has no eps


def test_subclassed_model_gets_its_first_snapshot_after_the_first_batch(family_runs):
    _, rec, run = family_runs["subclassed"]
    assert [s for s, _ in run["structure"]] == [1]
    assert sorted(run["frames"]["hidden/kernel"]) == [1, 2, 4]


# --- schedule and steps ----------------------------------------------------------


def test_epoch_schedule_fresh_model_starts_at_step_0(tmp_path):
    km.train_run(tmp_path, epochs=3, steps=4)
    assert steps_of(tmp_path) == [0, 4, 8, 12]


def test_int_schedule_snapshots_when_a_multiple_is_crossed(tmp_path):
    km.train_run(tmp_path, epochs=2, steps=4, snapshot_freq=3)
    assert steps_of(tmp_path) == [0, 3, 6]


def test_log_schedule_is_dense_early_and_sparse_late(tmp_path):
    km.train_run(tmp_path, epochs=2, steps=8, snapshot_freq="log")
    assert steps_of(tmp_path) == [0, 1, 2, 3, 4, 5, 6, 8, 10, 13, 16]


def test_int_schedule_with_steps_per_execution(tmp_path):
    model, data = km.build("mlp")
    km.compile_model(model, steps_per_execution=2)
    km.train_run(tmp_path, model=(model, data), epochs=2, steps=4, snapshot_freq=3)
    # Hooks run at iterations 2, 4, 6, 8: multiples of 3 are crossed at 4 and 6.
    assert steps_of(tmp_path) == [0, 4, 6]


def test_second_fit_continues_without_a_duplicate(tmp_path):
    from tensorboard_nnviz import NNVizCallback

    model, (x, y) = km.build("mlp")
    km.compile_model(model)
    cb = NNVizCallback(str(tmp_path))
    _fit(model, x, y, [cb], epochs=2)
    _fit(model, x, y, [cb], epochs=1)
    run = read_run(tmp_path)
    assert sorted(run["frames"]["dense/kernel"]) == [0, 4, 8, 12]
    np.testing.assert_array_equal(run["frames"]["dense/kernel"][12],
                                  np.array(model.layers[0].kernel))


def test_recompile_with_a_new_optimizer_continues_after_the_last_step(tmp_path):
    from tensorboard_nnviz import NNVizCallback

    model, (x, y) = km.build("mlp")
    km.compile_model(model)
    cb = NNVizCallback(str(tmp_path))
    _fit(model, x, y, [cb], epochs=2)
    km.compile_model(model)  # iterations restart at 0
    _fit(model, x, y, [cb], epochs=1)
    assert steps_of(tmp_path) == [0, 4, 8, 9, 13]


def test_structure_names_the_optimizer_and_its_eps_again_after_a_recompile(tmp_path):
    import keras
    from tensorboard_nnviz import NNVizCallback

    model, (x, y) = km.build("mlp")
    model.compile(keras.optimizers.Adam(1e-3, epsilon=1e-3), "mse")
    cb = NNVizCallback(str(tmp_path))
    _fit(model, x, y, [cb], epochs=1)
    km.compile_model(model)  # SGD, without eps: written again
    _fit(model, x, y, [cb], epochs=1)
    # Through the loss-scale wrapper to the optimizer that holds eps.
    model.compile(keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3, epsilon=1e-5)),
                  "mse")
    _fit(model, x, y, [cb], epochs=1)
    run = read_run(tmp_path)
    assert [(s, doc["model"]["optimizer"]) for s, doc in run["structure"]] == [
        (0, {"class": "Adam", "epsilon": 1e-3}), (5, {"class": "SGD", "epsilon": None}),
        (10, {"class": "Adam", "epsilon": 1e-5})]


def test_new_callback_on_an_existing_log_dir_continues_after_its_last_step(tmp_path):
    km.train_run(tmp_path, epochs=2)
    km.train_run(tmp_path, epochs=2)  # a fresh model and a new callback
    run = read_run(tmp_path)
    assert sorted(run["frames"]["dense/kernel"]) == [0, 4, 8, 9, 13, 17]
    # One structure per callback, each at its first snapshot.
    assert [s for s, _ in run["structure"]] == [0, 9]


def test_structure_written_again_when_the_model_changes(tmp_path):
    import keras
    from tensorboard_nnviz import NNVizCallback

    model, (x, y) = km.build("mlp")
    km.compile_model(model)
    cb = NNVizCallback(str(tmp_path))
    _fit(model, x, y, [cb], epochs=1)
    grown = keras.Sequential(model.layers + [keras.layers.Dense(3, name="extra")],
                             name="grown")
    grown.build((None, 5))
    km.compile_model(grown)
    _fit(grown, x, y, [cb], epochs=1)
    run = read_run(tmp_path)
    assert [s for s, _ in run["structure"]] == [0, 5]
    assert run["structure"][1][1]["layers"][-1]["path"] == "extra"
    assert sorted(run["frames"]["extra/kernel"]) == [5, 9]


# --- options -------------------------------------------------------------------


def test_include_and_exclude_filter_tags(tmp_path):
    km.train_run(tmp_path / "inc", epochs=1, include="kernel$")
    km.train_run(tmp_path / "exc", epochs=1, exclude=r"^dense_1/")
    km.train_run(tmp_path / "both", epochs=1, include="dense", exclude="bias")
    assert sorted(read_run(tmp_path / "inc")["frames"]) == [
        "dense/kernel", "dense_1/kernel", "dense_2/kernel"]
    assert sorted(read_run(tmp_path / "exc")["frames"]) == [
        "dense/bias", "dense/kernel", "dense_2/bias", "dense_2/kernel"]
    assert sorted(read_run(tmp_path / "both")["frames"]) == [
        "dense/kernel", "dense_1/kernel", "dense_2/kernel"]


def test_max_cells_block_reduces_large_tensors_only(tmp_path):
    rec = km.recorder()
    big = km.mlp(units=(30, 6), inputs=40)
    km.train_run(tmp_path, model=big, epochs=1, max_cells=100, callbacks=[rec])
    run = read_run(tmp_path)
    content = run["content"]["dense/kernel"]  # 40 x 30 = 1200 cells
    br, bc = content["layout"]["block"]
    assert (br, bc) != (1, 1)
    frame = run["frames"]["dense/kernel"][4]
    assert frame.shape == (math.ceil(40 / br), math.ceil(30 / bc))
    assert frame.size <= 100
    w = rec.weights[4]["dense/kernel"].astype(np.float64)
    for r in range(frame.shape[0]):
        for c in range(frame.shape[1]):
            block = w[r * br:(r + 1) * br, c * bc:(c + 1) * bc]
            assert frame[r, c] == pytest.approx(block.mean(), rel=2 ** -11, abs=2 ** -25)
    # Small tensors (30 x 6 = 180 > 100: reduced; 6 x 3 and biases ≤ 100: exact).
    assert run["content"]["dense_2/kernel"]["layout"]["block"] == [1, 1]
    np.testing.assert_array_equal(run["frames"]["dense_2/kernel"][4],
                                  rec.weights[4]["dense_2/kernel"])
    # Stats stay at full resolution.
    assert run["stats"]["dense/kernel"][4]["l2"] == pytest.approx(np.linalg.norm(w), rel=1e-6)


def test_nan_and_inf_weights_are_counted_and_kept(tmp_path):
    model, data = km.build("mlp")
    km.compile_model(model, lr=0.0)
    bias = np.zeros(8, "float32")
    bias[[1, 5]] = np.nan
    bias[2] = np.inf
    model.layers[0].bias.assign(bias)
    km.train_run(tmp_path, model=(model, data), epochs=1)
    run = read_run(tmp_path)
    s = run["stats"]["dense/bias"][0]
    assert (s["nan"], s["inf"]) == (2, 1)
    assert s["mean"] == 0.0 and s["zero_frac"] == 1.0  # over the 5 finite entries
    frame = run["frames"]["dense/bias"][0][0]
    assert np.isnan(frame[[1, 5]]).all() and frame[2] == np.inf
    assert sorted(run["frames"]["dense/bias"]) == [0, 4]


def test_invalid_arguments_are_refused_when_the_callback_is_made(tmp_path):
    from tensorboard_nnviz import NNVizCallback

    assert_refused_when_made(NNVizCallback, "tensorboard_nnviz.NNVizCallback", tmp_path)


def test_each_snapshot_is_on_disk_while_training_goes_on(tmp_path):
    """A live TensorBoard sees each snapshot: the writer flushes every time
    (TensorBoard's own writer would hold events for up to 120 s)."""
    import keras
    from tensorboard_nnviz import NNVizCallback

    cb = NNVizCallback(str(tmp_path))
    seen = {}

    class Peek(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                cb.recorder.writer.flush()  # the worker is done; the file is still open
                seen["steps"] = steps_of(tmp_path)

    model, (x, y) = km.build("mlp")
    km.compile_model(model)
    _fit(model, x, y, [cb, Peek()], epochs=3)
    assert seen["steps"] == [0, 4, 8]
    assert steps_of(tmp_path) == [0, 4, 8, 12]


def test_an_error_while_taking_a_snapshot_does_not_stop_fit(tmp_path, monkeypatch):
    from tensorboard_nnviz.record import structure

    def broken(*args, **kwargs):
        raise KeyError("broken")

    monkeypatch.setattr(structure, "build_structure", broken)
    with pytest.warns(RuntimeWarning, match="could not take a weight snapshot .*broken"):
        model, cb, history = km.train_run(tmp_path, epochs=2)
    assert len(history.history["loss"]) == 2
    assert steps_of(tmp_path) == []
