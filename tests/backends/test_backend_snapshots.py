"""The callback's test models train on this Keras backend (TensorFlow, JAX or
torch: the Makefile runs this folder in each environment) and their
snapshots are checked against the weights recorded during training: frames
cell for cell, stats against numpy, steps and tags.

Across backends the runs agree because each one equals the true weights
here; tests/test_backends_agree.py also compares the event files of the
three backends with one another, from the same fixed weights.
"""

import keras
import numpy as np
import pytest

import keras_models as km
import snapshot_checks as checks
from runs import read_run, steps_of

BACKEND = keras.backend.backend()

# One model per layer family: Dense, Conv, LSTM/GRU, attention, Embedding,
# BatchNorm, a nested model and a subclassed one.
FAMILIES = ["mlp", "conv2d", "lstm", "gru", "mha", "embedding", "batchnorm", "nested",
            "subclassed"]


@pytest.fixture(scope="module")
def family_runs(tmp_path_factory):
    """Every family trained 1 epoch of 4 steps with a snapshot every 2 steps."""
    return km.record_runs(FAMILIES, tmp_path_factory.mktemp, snapshot_freq=2)


def _first_step(family):
    # Keras on JAX and torch builds a model symbolically before
    # on_train_begin, so a subclassed model has weights at step 0; on
    # TensorFlow it is built by its first batch, and its first snapshot
    # follows that batch (step 1).
    return 1 if family == "subclassed" and BACKEND == "tensorflow" else 0


@pytest.mark.parametrize("family", FAMILIES)
def test_every_weight_recorded_at_the_scheduled_steps(family_runs, family):
    from tensorboard_nnviz.record import structure

    model, rec, run = family_runs[family]
    tags = [r.tag for r in structure.weight_refs(model)]
    assert len(tags) == len(model.weights)  # trainable and not, none missed
    assert sorted(run["frames"]) == sorted(run["stats"]) == sorted(tags)
    for tag in tags:
        assert sorted(run["frames"][tag]) == [_first_step(family), 2, 4], tag
        assert sorted(run["stats"][tag]) == [_first_step(family), 2, 4], tag
    assert [s for s, _ in run["structure"]] == [_first_step(family)]


@pytest.mark.parametrize("family", FAMILIES)
def test_frames_equal_the_weights_recorded_during_training(family_runs, family):
    _, rec, run = family_runs[family]
    checks.assert_frames_match(run, rec.weights)
    # Training moved the weights, so the comparison is not of constants.
    first = run["frames"][sorted(run["frames"])[0]]
    assert not np.array_equal(first[_first_step(family)], first[4])


@pytest.mark.parametrize("family", FAMILIES)
def test_stats_match_numpy(family_runs, family):
    _, rec, run = family_runs[family]
    checks.assert_stats_match(run, rec.weights)


def test_tags_are_the_same_on_every_backend(family_runs):
    def tags(family):
        return sorted(family_runs[family][2]["frames"])

    assert tags("lstm") == ["dense/bias", "dense/kernel", "lstm/lstm_cell/bias",
                            "lstm/lstm_cell/kernel", "lstm/lstm_cell/recurrent_kernel"]
    assert tags("gru") == ["dense/bias", "dense/kernel", "gru/gru_cell/bias",
                           "gru/gru_cell/kernel", "gru/gru_cell/recurrent_kernel"]
    assert tags("mha") == sorted(["dense/kernel", "dense/bias"] + [
        "mha/%s/%s" % (p, v) for p in ("query", "key", "value", "attention_output")
        for v in ("kernel", "bias")])
    assert tags("nested") == ["encoder/e1/bias", "encoder/e1/kernel", "encoder/e2/bias",
                              "encoder/e2/kernel", "head/bias", "head/kernel"]
    assert tags("batchnorm") == ["bn/beta", "bn/gamma", "bn/moving_mean", "bn/moving_variance",
                                 "dense/bias", "dense/kernel", "dense_1/bias", "dense_1/kernel"]
    assert tags("embedding") == ["dense/bias", "dense/kernel", "emb/embeddings"]
    assert tags("subclassed") == ["hidden/bias", "hidden/kernel", "out/bias", "out/kernel"]


def test_batchnorm_moving_stats_are_recorded_as_training_moves_them(family_runs):
    _, rec, run = family_runs["batchnorm"]
    frames = run["frames"]["bn/moving_mean"]
    assert not np.array_equal(frames[0], frames[4])  # not trainable, moved by training
    np.testing.assert_array_equal(frames[4][0], rec.weights[4]["bn/moving_mean"])


def test_epoch_schedule_and_a_second_fit_continue_the_steps(tmp_path):
    """Steps come from the optimizer's iterations, read on this backend."""
    from tensorboard_nnviz import NNVizCallback

    model, (x, y) = km.build("mlp")
    km.compile_model(model)
    cb = NNVizCallback(str(tmp_path))
    model.fit(x, y, batch_size=km.BATCH, epochs=2, shuffle=False, verbose=0, callbacks=[cb])
    model.fit(x, y, batch_size=km.BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[cb])
    km.compile_model(model)  # a new optimizer: its iterations restart at 0
    model.fit(x, y, batch_size=km.BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[cb])
    run = read_run(tmp_path)
    assert sorted(run["frames"]["dense/kernel"]) == [0, 4, 8, 12, 13, 17]
    np.testing.assert_array_equal(run["frames"]["dense/kernel"][17],
                                  np.asarray(keras.ops.convert_to_numpy(model.layers[0].kernel)))


def test_steps_per_execution(tmp_path):
    model, data = km.build("mlp")
    if BACKEND == "torch":
        # Keras refuses it on torch before training starts: nothing is recorded.
        km.compile_model(model, steps_per_execution=2)
        with pytest.raises(ValueError, match="steps_per_execution"):
            km.train_run(tmp_path, model=(model, data), epochs=2, steps=4, snapshot_freq=3)
        assert steps_of(tmp_path) == []
        return
    km.compile_model(model, steps_per_execution=2)
    rec = km.recorder()
    km.train_run(tmp_path, model=(model, data), epochs=2, steps=4, snapshot_freq=3,
                 callbacks=[rec])
    # Hooks run at iterations 2, 4, 6, 8: multiples of 3 are crossed at 4 and 6.
    assert steps_of(tmp_path) == [0, 4, 6]
    checks.assert_frames_match(read_run(tmp_path), rec.weights)
