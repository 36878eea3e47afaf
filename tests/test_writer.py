"""SnapshotWriter and the callback's failure handling: a full disk, an
unwritable log_dir, a slow worker; event files read back with TensorBoard."""

import time
import warnings

import numpy as np
import pytest
from tensorboard.summary.writer.event_file_writer import EventFileWriter

import keras_models as km
from runs import full_disk_at, read_run, steps_of
from tensorboard_nnviz.record import eventfiles
from tensorboard_nnviz.record import writer as writer_lib


def _weights(seed, shapes=(("dense/kernel", (5, 4)), ("dense/bias", (4,)))):
    rng = np.random.default_rng(seed)
    return [
        writer_lib.Weight(tag, rng.standard_normal(shape).astype("float32"), "Dense", "dense",
                          "float32")
        for tag, shape in shapes
    ]


def test_unwritable_log_dir_is_a_clear_error_before_training(tmp_path):
    from tensorboard_nnviz import NNVizCallback

    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match="cannot write to log_dir .*a_file/logs"):
        NNVizCallback(str(blocker / "logs"))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_failed_writes_warn_once_and_training_goes_on(tmp_path, monkeypatch):
    """Writing steps 8 and 12 fails as on a full disk; fit finishes and the
    snapshots before and after the failure are on disk. After two failures
    in a row the writer skips one snapshot (16) before retrying."""
    full_disk_at(monkeypatch, 8, 12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, cb, history = km.train_run(tmp_path, epochs=5)
    ours = [w for w in caught
            if "tensorboard_nnviz.NNVizCallback could not write" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert "No space left on device" in str(ours[0].message)
    assert len(history.history["loss"]) == 5
    assert steps_of(tmp_path) == [0, 4, 20]
    assert cb.recorder.writer is None  # closed by on_train_end


def test_a_slow_worker_makes_the_caller_wait_and_nothing_is_dropped(tmp_path):
    delay = 0.05

    def slow_writer(log_dir):
        events = EventFileWriter(log_dir)
        add = events.add_event

        def slow_add(event):
            time.sleep(delay)
            add(event)

        events.add_event = slow_add
        return events

    w = writer_lib.SnapshotWriter(str(tmp_path), queue_size=1, event_writer_factory=slow_writer)
    start = time.monotonic()
    for step in range(6):
        w.write(step, _weights(step))
        assert w._queue.qsize() <= 1
    blocked = time.monotonic() - start
    w.close()
    # With one slot, write() returned only once the worker had taken the
    # snapshot before last: at least 4 snapshots were written meanwhile.
    assert blocked >= 4 * delay
    run = read_run(tmp_path)
    assert sorted(run["frames"]["dense/kernel"]) == list(range(6))
    for step in range(6):
        np.testing.assert_array_equal(run["frames"]["dense/kernel"][step],
                                      _weights(step)[0].value)


def test_nan_and_inf_never_crash_the_writer(tmp_path):
    w = writer_lib.SnapshotWriter(str(tmp_path))
    bad = np.full((3, 4), np.nan, "float32")
    bad[0, 0] = np.inf
    w.write(0, [writer_lib.Weight("d/kernel", bad, "Dense", "d", "float32")])
    w.write(1, [writer_lib.Weight("d/kernel", np.ones((3, 4), "float32"), "Dense", "d",
                                  "float32")])
    w.close()
    run = read_run(tmp_path)
    s0, s1 = run["stats"]["d/kernel"][0], run["stats"]["d/kernel"][1]
    assert (s0["nan"], s0["inf"]) == (11, 1)
    assert s0["mean"] is None and s0["l2"] is None  # no finite entry: null, not NaN
    assert s1["mean"] == 1.0 and s1["nan"] == 0
    frame = run["frames"]["d/kernel"][0]
    assert frame[0, 0] == np.inf and np.isnan(frame[1:]).all()


def test_frames_and_units_are_events_of_their_own_before_the_snapshots_stats(tmp_path):
    """The layout the plugin's index reads (format.py): per weight an event
    with its frame under `nnviz_frames` and one with its per-unit stats
    under `nnviz_units`, then one with the stats table and (last) the
    structure under `nnviz`."""
    w = writer_lib.SnapshotWriter(str(tmp_path))
    w.write(0, _weights(0), structure={"model": {"name": "m"}, "layers": []})
    w.write(3, _weights(1))
    w.close()
    events = [e for e in eventfiles.read_events(str(tmp_path)) if e.HasField("summary")]
    layout = [(e.step, [(v.metadata.plugin_data.plugin_name, v.tag) for v in e.summary.value])
              for e in events]
    for step in (0, 3):
        of_step = [values for s, values in layout if s == step]
        assert of_step[:4] == [[("nnviz_frames", "nnviz/frame/dense/kernel")],
                               [("nnviz_units", "nnviz/units/dense/kernel")],
                               [("nnviz_frames", "nnviz/frame/dense/bias")],
                               [("nnviz_units", "nnviz/units/dense/bias")]]
        snapshot, *ends = of_step[4:]
        assert snapshot == [("nnviz", "nnviz/stats_table")] + (
            [("nnviz", "nnviz/structure")] if step == 0 else [])
        # At close, spectral "auto" may write the last snapshot's table again
        # (a stats-only event, which the index skips unread).
        assert ends in ([], [[("nnviz", "nnviz/stats_table")]]) and (step == 3 or not ends)


def test_structure_and_update_stats_carry_over_to_a_reopened_writer(tmp_path):
    w = writer_lib.SnapshotWriter(str(tmp_path))
    w.write(0, _weights(0), structure={"model": {"name": "m"}, "layers": []})
    w.close()
    w2 = writer_lib.SnapshotWriter(str(tmp_path), state=w.state)
    w2.write(5, _weights(1))
    w2.close()
    run = read_run(tmp_path)
    assert [s for s, _ in run["structure"]] == [0]
    a, b = _weights(0)[0].value.astype(np.float64), _weights(1)[0].value.astype(np.float64)
    s = run["stats"]["dense/kernel"][5]
    assert s["update_l2"] == pytest.approx(np.linalg.norm(b - a), rel=1e-6)
    assert s["init_l2"] == pytest.approx(np.linalg.norm(b - a), rel=1e-6)
    assert steps_of(tmp_path) == [0, 5]
    assert eventfiles.read_last_step(str(tmp_path)) == 5


def test_recycled_buffers_keep_update_and_init_stats_exact(tmp_path):
    """Pooled snapshots, as the callback writes them: each weight copied into
    a buffer from `writer.pool`, which the worker hands back once a newer
    snapshot replaced it as prev (never W_0). Buffers are reused, and every
    snapshot's frames and update/init stats still match numpy, with the
    worker idle or behind, and across a reopened writer."""
    rng = np.random.default_rng(0)
    truth = [{"dense/kernel": rng.standard_normal((6, 5)).astype("float32"),
              "dense/bias": rng.standard_normal(5).astype("float32")}]
    for _ in range(11):
        truth.append({t: v + np.float32(0.1) * rng.standard_normal(v.shape).astype("float32")
                      for t, v in truth[-1].items()})
    handed_out = {}  # id -> buffer (kept, so ids stay unique)

    def slow_writer(log_dir):  # keeps snapshots queued while the next is copied
        events = EventFileWriter(log_dir)
        add = events.add_event
        events.add_event = lambda event: (time.sleep(0.02), add(event))
        return events

    def write(w, step):
        weights = []
        for tag, value in truth[step].items():
            buf = w.pool.take(tag, value.shape, value.dtype)
            handed_out[id(buf)] = buf
            np.copyto(buf, value)
            weights.append(writer_lib.Weight(tag, buf, "Dense", "dense", "float32"))
        w.write(step, weights, pooled=True)

    w = writer_lib.SnapshotWriter(str(tmp_path), queue_size=1, event_writer_factory=slow_writer)
    for step in range(8):
        write(w, step)
        if step % 4 == 3:
            w.flush()  # the worker catches up now and then
    w.close()
    w2 = writer_lib.SnapshotWriter(str(tmp_path), state=w.state)
    for step in range(8, 12):
        write(w2, step)
    w2.close()
    assert len(handed_out) < 2 * len(truth), "no buffer was handed out twice"
    run = read_run(tmp_path)
    for tag in truth[0]:
        assert sorted(run["stats"][tag]) == list(range(12))
        w0 = truth[0][tag].astype(np.float64)
        for step, values in enumerate(truth):
            wt = values[tag].astype(np.float64)
            s = run["stats"][tag][step]
            np.testing.assert_array_equal(run["frames"][tag][step].ravel(), values[tag].ravel())
            assert s["mean"] == pytest.approx(wt.mean(), rel=1e-6)
            assert s["init_l2"] == pytest.approx(np.linalg.norm(wt - w0), rel=1e-6, abs=1e-12)
            if step == 0:
                assert s["update_l2"] is None
            else:
                prev = truth[step - 1][tag].astype(np.float64)
                assert s["update_l2"] == pytest.approx(np.linalg.norm(wt - prev), rel=1e-6)


@pytest.mark.filterwarnings("ignore:NNVizCallback could not write")
def test_lost_snapshots_cost_no_work_and_leave_stats_true_to_the_disk(tmp_path, monkeypatch):
    """Steps 0, 2 and 3 fail to be written; after two failures in a row the
    writer skips step 4 without laying it out. The update stats of each
    snapshot on disk measure from the snapshot before it on disk, and W_0
    is the first snapshot on disk, with pooled buffers recycled meanwhile."""
    rng = np.random.default_rng(1)
    truth = [rng.standard_normal((6, 5)).astype("float32")]
    for _ in range(6):
        truth.append(truth[-1] + rng.standard_normal((6, 5)).astype("float32"))

    def flaky_writer(log_dir):
        events = EventFileWriter(log_dir)
        add = events.add_event

        def add_event(event):
            if event.step in (0, 2, 3):
                raise OSError(28, "No space left on device")
            add(event)

        events.add_event = add_event
        return events

    measured = []
    for name in ("measure", "measure_many"):  # one tensor alone, or small ones together
        original = getattr(writer_lib.stats_lib, name)
        monkeypatch.setattr(writer_lib.stats_lib, name,
                            lambda *args, f=original, **kw: measured.append(1) or f(*args, **kw))
    w = writer_lib.SnapshotWriter(str(tmp_path), event_writer_factory=flaky_writer)
    for step, value in enumerate(truth):
        buf = w.pool.take("d/kernel", value.shape, value.dtype)
        np.copyto(buf, value)
        w.write(step, [writer_lib.Weight("d/kernel", buf, "Dense", "d", "float32")], pooled=True)
        w.flush()
    w.close()
    assert w.failed_steps == [0, 2, 3, 4]
    assert len(measured) == 6  # every step but the skipped one
    stats = read_run(tmp_path)["stats"]["d/kernel"]
    assert sorted(stats) == [1, 5, 6]
    t = [v.astype(np.float64) for v in truth]
    assert stats[1]["update_l2"] is None and stats[1]["init_l2"] == 0
    for step, prev in ((5, 1), (6, 5)):
        assert stats[step]["update_l2"] == pytest.approx(np.linalg.norm(t[step] - t[prev]), rel=1e-6)
        assert stats[step]["init_l2"] == pytest.approx(np.linalg.norm(t[step] - t[1]), rel=1e-6)


def test_write_after_close_is_an_error(tmp_path):
    w = writer_lib.SnapshotWriter(str(tmp_path))
    w.close()
    w.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        w.write(0, _weights(0))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_structure_lost_to_a_failed_write_comes_with_the_next_snapshot(tmp_path, monkeypatch):
    full_disk_at(monkeypatch, 0)
    w = writer_lib.SnapshotWriter(str(tmp_path))
    with pytest.warns(RuntimeWarning, match="could not write the weight snapshot at step 0"):
        w.write(0, _weights(0), structure={"model": {"name": "m"}, "layers": []})
        w.flush()
    w.write(1, _weights(1))
    w.close()
    assert w.failed_steps == [0]
    run = read_run(tmp_path)
    assert [(s, doc["model"]["name"]) for s, doc in run["structure"]] == [(1, "m")]
    assert steps_of(tmp_path) == [1]


def test_quantities_are_measured_like_their_weight_against_their_own_history(tmp_path):
    """A gradient beside a weight: its stats (update and init against the
    gradient's own earlier snapshots), per-unit stats and frame equal what
    the same values give as a weight; a quantity without frames has none;
    quantities get no spectral stats; the weights' table is unchanged."""
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((5, 4)).astype("float32") for _ in range(3)]
    writer = writer_lib.SnapshotWriter(str(tmp_path / "q"), spectral=True,
                                       quantity_frames=("grad",))
    plain = writer_lib.SnapshotWriter(str(tmp_path / "w"), spectral=False)
    for step, g in enumerate(grads):
        weights = _weights(step)
        writer.write(step, weights + [
            writer_lib.Weight("dense/kernel", g.copy(), "Dense", "dense", "float32", "grad"),
            writer_lib.Weight("dense/kernel", np.abs(g), "Dense", "dense", "float32", "v_rms")])
        plain.write(step, [writer_lib.Weight("dense/kernel", g.copy(), "Dense", "dense",
                                             "float32")])
    writer.close()
    plain.close()
    run, alone = read_run(tmp_path / "q"), read_run(tmp_path / "w")
    assert sorted(run["stats"]) == ["dense/bias", "dense/kernel"]
    assert run["stats"]["dense/kernel"][2]["sv_max"] is not None
    assert sorted(run["qstats"]) == [("dense/kernel", "grad"), ("dense/kernel", "v_rms")]
    for step in range(3):
        got, want = run["qstats"][("dense/kernel", "grad")][step], alone["stats"]["dense/kernel"][step]
        assert got == want
        np.testing.assert_array_equal(run["qframes"][("dense/kernel", "grad")][step],
                                      alone["frames"]["dense/kernel"][step])
        for f in ("norm", "update"):
            np.testing.assert_array_equal(run["qunits"][("dense/kernel", "grad")][step][f],
                                          alone["units"]["dense/kernel"][step][f])
    g2 = run["qstats"][("dense/kernel", "grad")][2]
    assert g2["update_l2"] == pytest.approx(np.linalg.norm(grads[2] - grads[1]), rel=1e-6)
    assert g2["init_l2"] == pytest.approx(np.linalg.norm(grads[2] - grads[0]), rel=1e-6)
    assert g2["sv_max"] is None
    assert ("dense/kernel", "v_rms") not in run["qframes"]
    assert sorted(run["qunits"]) == [("dense/kernel", "grad"), ("dense/kernel", "v_rms")]
