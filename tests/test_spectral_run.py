"""Spectral stats as the writer records them (writer.py, spectral.py): real
Keras training checked against numpy's float64 SVD of the weights recorded
at each snapshot (tolerances: tests/spectral_reference.py), null where
undefined, the budget's nulls filled later, the `spectral=` option, and
runs recorded without spectral stats still opening with null columns."""

import os
import time

import numpy as np
import pytest

import keras_models as km
from tb_server import TensorBoardServer
from runs import read_run, write_events
from spectral_reference import assert_recorded_spectral
from tensorboard_nnviz.cli.local_provider import local_reader
from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.core import spectral
from tensorboard_nnviz.record import writer as writer_lib

V1_RUNS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "v1_runs")


def conv_dense_model():
    """A tiny conv net whose conv (27 pooled eigenvalues), dense (32) and
    dense_1 (24) kernels are fitted; out (2 eigenvalues) is too small."""
    import keras

    keras.utils.set_random_seed(7)
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(32, activation="relu", name="dense"),
        keras.layers.Dense(24, activation="relu", name="dense_1"),
        keras.layers.Dense(2, name="out"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 8, 8, 3)).astype("float32")
    y = np.stack([x[:, :4, :4].mean(axis=(1, 2, 3)), x[:, 4:, 4:, 0].std(axis=(1, 2))], 1)
    return model, x, y


def train_spectral_run(log_dir, epochs):
    """Trains `conv_dense_model` with NNVizCallback(spectral=True), a snapshot
    every 4 steps (8 steps an epoch); returns the true weights {step: {tag: array}}."""
    from tensorboard_nnviz import NNVizCallback

    model, x, y = conv_dense_model()
    rec = km.recorder()
    cb = NNVizCallback(str(log_dir), snapshot_freq=4, spectral=True)
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=[cb, rec])
    return rec.weights


def test_real_keras_training_records_the_svd_metrics(tmp_path):
    """Every matrix at every snapshot (spectral=True) matches numpy's SVD of
    the true weights; biases are null; training moves alpha."""
    weights = train_spectral_run(tmp_path, epochs=3)
    run = read_run(tmp_path)
    assert len(run["stats"]["conv/kernel"]) >= 6
    matrices = {"conv/kernel", "dense/kernel", "dense_1/kernel", "out/kernel"}
    seen = assert_recorded_spectral(run, weights, "keras", matrices)
    assert set(seen) == {"conv/kernel", "dense/kernel", "dense_1/kernel"}
    assert all(len(v) > 1 for v in seen.values())
    out = run["stats"]["out/kernel"]
    assert all(s["sv_max"] is not None and s["alpha"] is None for s in out.values())


def cpu_seconds(fn):
    start = time.thread_time()
    fn()
    return time.thread_time() - start


def weights(value, tag="d/kernel"):
    return [writer_lib.Weight(tag, value, "Dense", tag.split("/")[0], str(value.dtype))]


def write_and_read(tmp_path, snapshots, **kwargs):
    w = writer_lib.SnapshotWriter(str(tmp_path), **kwargs)
    for step, ws in enumerate(snapshots):
        w.write(step, ws, wall_time=1000.0 + step)
    w.close()
    return read_run(tmp_path)["stats"]


def test_nan_weights_give_null_metrics_and_training_goes_on(tmp_path):
    rng = np.random.default_rng(1)
    good = rng.standard_normal((30, 25)).astype("float32")
    bad = good.copy()
    bad[3, 4] = np.nan
    stats = write_and_read(tmp_path, [weights(good), weights(bad), weights(good * 2)],
                           spectral=True)["d/kernel"]
    assert stats[0]["sv_max"] == pytest.approx(np.linalg.norm(good.astype(float), 2), rel=1e-9)
    assert all(stats[1][f] is None for f in spectral.FIELDS) and stats[1]["nan"] == 1
    assert stats[2]["sv_max"] == pytest.approx(2 * stats[0]["sv_max"], rel=1e-6)


def test_spectral_false_records_null(tmp_path):
    w = np.random.default_rng(2).standard_normal((30, 25)).astype("float32")
    stats = write_and_read(tmp_path, [weights(w)] * 2, spectral=False)["d/kernel"]
    assert all(s[f] is None for s in stats.values() for f in spectral.FIELDS)
    assert stats[0]["l2"] is not None


def test_budget_skips_are_null_and_filled_at_later_snapshots(tmp_path):
    """A budget of about one matrix per snapshot for four matrices: the
    others are null at that snapshot, and every matrix is filled within a
    few snapshots."""
    rng = np.random.default_rng(3)
    tags = ["l%d/kernel" % i for i in range(4)]
    values = {t: rng.standard_normal((200, 150)).astype("float32") for t in tags}
    # Each snapshot changes every weight (an unchanged one keeps its spectrum).
    scales = [np.float32(1 + 0.01 * s) for s in range(10)]
    snapshots = [[writer_lib.Weight(t, values[t] * scales[s], "Dense", t.split("/")[0], "float32")
                  for t in tags] for s in range(10)]
    plan = spectral.plan({"row_axes": [0], "col_axes": [1]}, (200, 150), "Dense", "kernel")
    with spectral.blas_single_thread():  # as the writer runs it
        one = min(cpu_seconds(lambda: spectral.compute(values["l0/kernel"], plan)) for _ in range(5))
    stats = write_and_read(tmp_path, snapshots, spectral=1.5 * one)
    filled = {t: [s for s, v in sorted(stats[t].items()) if v["sv_max"] is not None] for t in tags}
    assert all(filled[t] for t in tags), filled
    per_step = [sum(stats[t][s]["sv_max"] is not None for t in tags) for s in range(10)]
    # The first snapshot trusts an operation-count estimate; later ones the
    # measured times, and the budget skips.
    assert min(per_step[1:]) < len(tags), per_step
    for t in tags:
        for s in filled[t]:
            assert stats[t][s]["sv_max"] == pytest.approx(
                np.linalg.norm((values[t] * scales[s]).astype(float), 2), rel=1e-9)


def test_an_unchanged_matrix_keeps_its_spectrum_without_computing_it(tmp_path):
    """A frozen matrix beside one that trains and costs more than "auto"'s
    budget: after its first snapshot the frozen one has its spectrum at
    every snapshot, copied (its weights are the same), while the trained
    one has nulls between its ends; the writer computed the frozen one once."""
    rng = np.random.default_rng(4)
    frozen = rng.standard_normal((120, 90)).astype("float32")
    trained = rng.standard_normal((1024, 1024)).astype("float32")
    snapshots = [[writer_lib.Weight("frozen/kernel", frozen.copy(), "Dense", "frozen", "float32"),
                  writer_lib.Weight("trained/kernel", trained * np.float32(1 + 0.1 * s), "Dense",
                                    "trained", "float32")] for s in range(6)]
    computed = []
    real = writer_lib._spectral_metrics
    writer_lib._spectral_metrics = lambda tag, *a: computed.append(tag) or real(tag, *a)
    try:
        stats = write_and_read(tmp_path, snapshots, spectral="auto")
    finally:
        writer_lib._spectral_metrics = real
    want = np.linalg.norm(frozen.astype(float), 2)
    assert [stats["frozen/kernel"][s]["sv_max"] for s in range(6)] == pytest.approx([want] * 6,
                                                                                    rel=1e-9)
    assert len({stats["frozen/kernel"][s]["alpha"] for s in range(6)}) == 1
    assert computed.count("frozen/kernel") == 1, computed
    trained_sv = [stats["trained/kernel"][s]["sv_max"] for s in range(6)]
    assert trained_sv[0] is not None and trained_sv[-1] is not None  # the ends
    assert None in trained_sv[1:-1], trained_sv  # the budget skipped it between


@pytest.mark.parametrize("bad", ["sometimes", -1.0, 0, [1]])
def test_invalid_spectral_option_fails_before_training(tmp_path, bad):
    from tensorboard_nnviz import NNVizCallback

    with pytest.raises(ValueError, match="spectral must be"):
        NNVizCallback(str(tmp_path), spectral=bad)
    assert not os.listdir(tmp_path)  # nothing written


def old_stats_events(fields):
    """Two snapshots of one weight whose stats series names only `fields`
    (as a writer before the spectral stats wrote them)."""
    layout = {"row_axes": [0], "col_axes": [1], "groups": [], "block": [1, 1], "unit_axes": [1]}
    frame_content = fmt.frame_content(shape=[3, 2], dtype="float32", layout=layout, rows=3, cols=2)
    stats_content = fmt.stats_content(fields)
    events = []
    for step in (0, 1):
        value = fmt.stats_value("d/kernel", {"mean": 0.5}, stats_content)
        value.tensor.tensor_shape.dim[0].size = len(fields)
        value.tensor.tensor_content = value.tensor.tensor_content[: 8 * len(fields)]
        blob = fmt.encode_frame(np.ones((3, 2), np.float32))
        events.append((step, [fmt.frame_value("d/kernel", blob, frame_content), value]))
    return events


def test_runs_without_spectral_fields_open_with_null_columns(tmp_path):
    """Format version 1 runs (fixtures) and version-2 runs written before the
    spectral fields: their /stats columns have the four fields, all null."""
    old = [f for f in fmt.STAT_FIELDS if f not in spectral.FIELDS]
    write_events(str(tmp_path / "v2_old"), old_stats_events(old))
    for name in os.listdir(V1_RUNS):
        os.symlink(os.path.join(V1_RUNS, name), tmp_path / ("v1_" + name))
    reader, provider, eid = local_reader(str(tmp_path))
    for run in ("v2_old", "v1_blows_up"):
        for tag, columns in reader.stats_impl(None, eid, run).items():
            n = len(columns["steps"])
            assert n >= 2 and columns["mean"][0] is not None, (run, tag)
            for f in spectral.FIELDS:
                assert columns[f] == [None] * n, (run, tag, f)


def test_auto_gives_every_matrix_its_spectrum_at_the_first_and_last_snapshots(tmp_path):
    """spectral="auto" on a 1024x1536 kernel followed by a 1536x2 one, four
    snapshots (one per epoch and the first): the costly kernel must not
    keep the small one from ever being measured. Both have their spectrum
    at the first and the last snapshot as the plugin serves them (the last
    one's, for a matrix the budget skipped, is written at the end of fit)."""
    import keras

    from tensorboard_nnviz import NNVizCallback

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((1024,)), keras.layers.Dense(1536, name="wide"),
                              keras.layers.Dense(2, name="narrow")])
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 1024)).astype("float32")
    y = rng.standard_normal((32, 2)).astype("float32")
    rec = km.recorder()
    cb = NNVizCallback(str(tmp_path), spectral="auto")
    model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[cb, rec])
    reader, _, eid = local_reader(str(tmp_path))
    answers = [reader.stats_impl(None, eid, ".")]
    # The end's table rewrites the last step: RustBoard keeps only the later
    # table of a step, the Python ingester both; each must serve the later.
    frame_steps = [{t["tag"]: t["steps"] for t in reader.tags_impl(None, eid, ".")["tensors"]}]
    for load_fast in (False, True):
        with TensorBoardServer(str(tmp_path), load_fast=load_fast) as tb:
            tb.wait_for(lambda: tb.get_json("runs")["runs"])
            answers.append(tb.get_json("stats", {"run": "."}))
            frame_steps.append({t["tag"]: t["steps"]
                                for t in tb.get_json("tags", {"run": "."})["tensors"]})
            # The end's stats-only event leaves the frames and units read
            # from disk as they were: every snapshot, once.
            r = tb.get("units", {"run": ".", "tag": "wide/kernel", "stat": "norm"})
            assert r.status == 200 and int(r.headers["X-NNViz-Rows"]) == 4
    for tags in frame_steps:
        assert tags["wide/kernel"] == tags["narrow/kernel"] == answers[0]["wide/kernel"]["steps"]
    for stats in answers:
        for tag in ("wide/kernel", "narrow/kernel"):
            columns = stats[tag]
            assert len(columns["steps"]) == 4, columns["steps"]
            for i in (0, -1):
                step = columns["steps"][i]
                want = np.linalg.norm(rec.weights[step][tag].astype(np.float64), 2)
                assert columns["sv_max"][i] == pytest.approx(want, rel=1e-6), (tag, step)
            assert columns["l2"][-1] == pytest.approx(  # the rest of the row is there too
                np.linalg.norm(rec.weights[columns["steps"][-1]][tag].astype(np.float64)), rel=1e-6)
