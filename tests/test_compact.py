"""`compact`: a thinned copy of a finished run in a new directory."""

import hashlib
import os

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

import keras_models
from runs import read_run, steps_of
from tensorboard_nnviz.cli import compact as compact_lib

EPOCHS, STEPS = 3, 8  # snapshot_freq=1: steps 0 .. 24


def _digest(path):
    h = hashlib.sha256()
    for name in sorted(os.listdir(path)):
        p = os.path.join(path, name)
        if os.path.isfile(p):
            h.update(name.encode())
            with open(p, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def _scalars(run_dir):
    acc = ea.EventAccumulator(str(run_dir), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    """logdir/run: a real trained run, a snapshot every step, plus a plain
    TensorBoard scalar at every step in the same event directory."""
    root = tmp_path_factory.mktemp("compact")
    run = root / "run"
    keras_models.train_run(str(run), epochs=EPOCHS, steps=STEPS, snapshot_freq=1)
    events = EventFileWriter(str(run))
    for step in range(EPOCHS * STEPS + 1):
        value = summary_pb2.Summary.Value(tag="loss", simple_value=1.0 / (step + 1))
        events.add_event(event_pb2.Event(step=step, wall_time=1.0e9 + step,
                                         summary=summary_pb2.Summary(value=[value])))
    events.close()
    return root


def test_choose_steps_log_spacing_is_dense_early_and_keeps_the_ends():
    steps = list(range(0, 1001))
    kept = compact_lib.choose_steps(steps, 8, "log")
    assert len(kept) == 8
    assert kept[0] == 0 and kept[-1] == 1000
    # Log-spaced targets: (1001 ** (i / 7)) - 1.
    assert kept == [0, 2, 6, 18, 51, 138, 372, 1000]
    gaps = np.diff(kept)
    assert all(b >= a for a, b in zip(gaps, gaps[1:]))


def test_choose_steps_even_spacing():
    assert compact_lib.choose_steps(range(0, 101, 10), 3, "even") == [0, 50, 100]
    assert compact_lib.choose_steps(range(0, 1000, 1), 5, "even") == [0, 250, 499, 749, 999]  # 499.5: a tie goes to the earlier


def test_choose_steps_returns_exactly_keep_even_when_targets_collide():
    # Log-spaced snapshots already: log targets fall on the same early
    # snapshots; each still takes a different one.
    steps = [0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144]
    for keep in range(2, len(steps) + 1):
        kept = compact_lib.choose_steps(steps, keep, "log")
        assert len(kept) == keep
        assert kept[0] == 0 and kept[-1] == 144
        assert set(kept) <= set(steps)


def test_choose_steps_keeps_everything_when_asked_for_more():
    assert compact_lib.choose_steps([5, 1, 3], 10) == [1, 3, 5]


@pytest.mark.parametrize("keep", [1, 0, -2, 2.5, True, "3"])
def test_choose_steps_rejects_bad_keep(keep):
    with pytest.raises(compact_lib.CompactError, match="keep must be"):
        compact_lib.choose_steps([1, 2, 3], keep)


def test_choose_steps_rejects_bad_spacing():
    with pytest.raises(compact_lib.CompactError, match="spacing"):
        compact_lib.choose_steps([1, 2, 3], 2, "linear")


def test_compact_keeps_chosen_snapshots_byte_for_byte_and_everything_else(logdir, tmp_path):
    source = logdir / "run"
    before = _digest(source)
    out = tmp_path / "thin"
    result = compact_lib.compact(str(logdir), "run", 6, str(out))

    all_steps = list(range(EPOCHS * STEPS + 1))
    assert result["steps"] == all_steps
    want = compact_lib.choose_steps(all_steps, 6, "log")
    assert result["kept"] == want and len(want) == 6 and want[0] == 0 and want[-1] == 24
    assert _digest(source) == before  # the source is untouched

    original = read_run(str(source))
    thinned = read_run(str(out))
    assert set(thinned["frames"]) == set(original["frames"]) and thinned["frames"]
    for tag, frames in thinned["frames"].items():
        assert sorted(frames) == want, tag
        for step in want:
            assert frames[step].tobytes() == original["frames"][tag][step].tobytes()
            assert thinned["stats"][tag][step] == original["stats"][tag][step]
            for stat in ("norm", "update"):
                np.testing.assert_array_equal(thinned["units"][tag][step][stat],
                                              original["units"][tag][step][stat])
        assert sorted(thinned["units"][tag]) == want, tag  # units of dropped steps go too
        assert thinned["content"][tag] == original["content"][tag]
    assert thinned["structure"] == original["structure"]
    # Non-nnviz events are all kept, dropped steps included.
    assert _scalars(out)["loss"] == _scalars(source)["loss"]
    assert len(_scalars(out)["loss"]) == len(all_steps)
    assert result["bytes_out"] < result["bytes_in"]


def test_compact_output_is_served_by_the_plugin_reader(logdir, tmp_path):
    from tensorboard_nnviz.cli import local_provider

    out = tmp_path / "logs" / "thin"
    result = compact_lib.compact(str(logdir), "run", 4, str(out), spacing="even")
    reader, provider, eid = local_provider.local_reader(str(tmp_path / "logs"))
    runs = reader.runs_impl(None, eid)["runs"]
    assert [(r["run"], r["steps"]) for r in runs] == [("thin", result["kept"])]
    assert result["kept"] == [0, 8, 16, 24]


def _refused(logdir, run, out, match):
    before = _digest(logdir / "run")
    listing = sorted(os.listdir(out)) if os.path.isdir(out) else None
    with pytest.raises(compact_lib.CompactError, match=match):
        compact_lib.compact(str(logdir), run, 3, str(out))
    assert _digest(logdir / "run") == before
    assert (sorted(os.listdir(out)) if os.path.isdir(out) else None) == listing


def test_compact_refuses_to_write_in_place(logdir):
    _refused(logdir, "run", logdir / "run", "in place")
    _refused(logdir, "run", logdir / "." / "run", "in place")


def test_compact_refuses_a_non_empty_output(logdir, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _refused(logdir, "run", out, "not empty")


def test_compact_refuses_a_missing_run_or_one_without_snapshots(logdir, tmp_path):
    _refused(logdir, "nope", tmp_path / "a", "not found")
    plain = logdir / "plain"
    events = EventFileWriter(str(plain))
    events.add_event(event_pb2.Event(step=1, summary=summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag="loss", simple_value=1.0)])))
    events.close()
    _refused(logdir, "plain", tmp_path / "b", "no nnviz snapshots")


def test_compact_into_an_existing_empty_directory(logdir, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    result = compact_lib.compact(str(logdir), "run", 2, str(out))
    assert result["kept"] == [0, 24]
    assert steps_of(str(out)) == [0, 24]


def test_nnviz_compact_command(logdir, tmp_path, capsys):
    from tensorboard_nnviz.cli import commands as cli

    out = tmp_path / "cli_thin"
    assert cli.main(["compact", str(logdir), "--run", "run", "--keep", "3", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "kept 3 snapshots: 0, " in printed and "of 25" in printed and str(out) in printed
    assert steps_of(str(out)) == compact_lib.choose_steps(range(25), 3)
    # Refusals exit 2 with one line saying why; nothing is written.
    assert cli.main(["compact", str(logdir), "--run", "run", "--keep", "3", "-o", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert cli.main(["compact", str(logdir), "--run", "run", "--keep", "1", "-o",
                     str(tmp_path / "x")]) == 2
    assert "keep must be" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
