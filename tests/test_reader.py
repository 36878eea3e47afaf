"""NNVizReader on TensorBoard's in-process data provider (no HTTP).

Runs written now keep one frame per weight in TensorBoard's memory and the
reader reads the others from disk; runs written by earlier versions
(`legacy=True`: every frame under `nnviz`) are served through TensorBoard
as before. Both are checked.
"""

import os

import numpy as np
import pytest

from runs import (
    SyntheticWriter,
    frame_record_ends,
    start_event,
    read_run,
    synthetic_weight,
    truncate_event_file,
    write_damaged_run,
    write_newer_structure_run,
    write_synthetic_run,
)
from tensorboard_nnviz.cli.local_provider import local_data_provider
from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.core import layout as layout_lib
from tensorboard_nnviz.serve import errors
from tensorboard_nnviz.serve.reader import NNVizReader


class CountingProvider:
    """TensorBoard's real provider, counting the calls the reader makes."""

    def __init__(self, provider):
        self._provider = provider
        self.calls = {}

    def __getattr__(self, name):
        method = getattr(self._provider, name)

        def counted(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            return method(*args, **kwargs)

        return counted


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("reader_logdir")
    written = {
        "a": write_synthetic_run(str(root / "a"), list(range(0, 150))),
        "a_legacy": write_synthetic_run(str(root / "a_legacy"), list(range(0, 150)), legacy=True),
        "b": write_synthetic_run(str(root / "b"), [0, 5, 10], weights={"conv/kernel": (3, 3, 2, 4)}),
        "b_legacy": write_synthetic_run(str(root / "b_legacy"), [0, 5, 10],
                                        weights={"conv/kernel": (3, 3, 2, 4)}, legacy=True),
        "big": write_synthetic_run(str(root / "big"), [0, 1], weights={"big/kernel": (300, 500)}, max_cells=4096),
    }
    written["damaged"] = write_damaged_run(str(root / "damaged"))
    write_newer_structure_run(str(root / "newer_structure"))
    return root, written


@pytest.fixture(scope="module")
def reader(logdir):
    provider, eid = local_data_provider(str(logdir[0]))
    return NNVizReader(provider, logdir=str(logdir[0])), eid


def test_runs_lists_every_step_of_every_nnviz_run(reader):
    r, eid = reader
    runs = {x["run"]: x for x in r.runs_impl(None, eid)["runs"]}
    assert set(runs) == {"a", "a_legacy", "b", "b_legacy", "big", "damaged", "newer_structure"}
    # More than TensorBoard keeps in memory (1 frame per weight now, 10 by
    # default for an unknown plugin): all 150.
    for run in ("a", "a_legacy"):
        assert runs[run]["steps"] == list(range(150))
        assert runs[run]["tags"] == 2
    assert runs["b"] == {"run": "b", "steps": [0, 5, 10], "tags": 1, "frame_steps": "all"}
    assert runs["b_legacy"] == dict(runs["b"], run="b_legacy")
    assert runs["damaged"]["tags"] == 3


@pytest.mark.parametrize("run", ["b", "b_legacy"])
def test_tags_describe_frames(reader, run):
    r, eid = reader
    (conv,) = r.tags_impl(None, eid, run)["tensors"]
    assert conv == {
        "tag": "conv/kernel",
        "layer": "conv",
        "shape": [3, 3, 2, 4],
        "rows": 18,
        "cols": 4,
        "downsampled": False,
        "layout": {"row_axes": [0, 1, 2], "col_axes": [3], "block": [1, 1], "groups": [],
                   "unit_axes": [3]},
        "steps": [0, 5, 10],
        "quantities": ["weights"],  # a run without quantities
        "frame_quantities": ["weights"],
    }
    (big,) = r.tags_impl(None, eid, "big")["tensors"]
    assert big["downsampled"] is True
    assert big["rows"] * big["cols"] <= 4096
    assert big["layout"]["block"] != [1, 1]


@pytest.mark.parametrize("run", ["b", "b_legacy"])
def test_frame_is_the_largest_step_at_or_before(reader, logdir, run):
    r, eid = reader
    written = logdir[1][run]["conv/kernel"]
    for asked, served in [(0, 0), (4, 0), (5, 5), (9, 5), (10, 10), (10**12, 10), (None, 10)]:
        frame, step = r.frame_impl(None, eid, run, "conv/kernel", asked)
        assert step == served
        assert frame.dtype == np.float32
        np.testing.assert_array_equal(frame, written[served])
    with pytest.raises(errors.NotFoundError, match="no snapshot at or before step -1"):
        r.frame_impl(None, eid, run, "conv/kernel", -1)


@pytest.mark.parametrize("run", ["a", "a_legacy"])
def test_every_step_is_served_as_written(reader, logdir, run):
    r, eid = reader
    for tag, frames in logdir[1][run].items():
        for step, written in frames.items():
            frame, served = r.frame_impl(None, eid, run, tag, step)
            assert served == step
            np.testing.assert_array_equal(frame, written)


def test_downsampled_frame_matches_what_was_written(reader, logdir):
    r, eid = reader
    frame, step = r.frame_impl(None, eid, "big", "big/kernel", 1)
    np.testing.assert_array_equal(frame, logdir[1]["big"]["big/kernel"][1])
    # Block means of the true weights, stored in float16.
    (big,) = r.tags_impl(None, eid, "big")["tensors"]
    expected = layout_lib.block_mean(synthetic_weight("big/kernel", (300, 500), 1),
                                     big["layout"]["block"])
    np.testing.assert_allclose(frame, expected, rtol=2**-11, atol=2**-24)


def test_stats_one_tag_and_all_tags(reader):
    r, eid = reader
    one = r.stats_impl(None, eid, "a", "dense/kernel")
    assert one["steps"] == list(range(150))
    assert len(one["wall_times"]) == 150
    assert set(fmt.STAT_FIELDS) <= set(one)
    w = synthetic_weight("dense/kernel", (4, 3), 7)
    assert one["mean"][7] == pytest.approx(float(w.astype(np.float64).mean()))
    assert one["update_l2"][0] is None  # no previous snapshot: null, not NaN
    both = r.stats_impl(None, eid, "a")
    assert set(both) == {"dense/kernel", "dense/bias"}
    assert both["dense/kernel"] == one


def test_structure(reader):
    r, eid = reader
    doc = r.structure_impl(None, eid, "b")
    assert doc["layers"][0]["weights"][0]["tag"] == "conv/kernel"


def test_unknown_run_and_tag_are_not_found(reader):
    r, eid = reader
    for call in (
        lambda: r.tags_impl(None, eid, "nope"),
        lambda: r.structure_impl(None, eid, "nope"),
        lambda: r.stats_impl(None, eid, "nope"),
        lambda: r.stats_impl(None, eid, "nope", "dense/kernel"),
        lambda: r.frame_impl(None, eid, "nope", "dense/kernel"),
    ):
        with pytest.raises(errors.NotFoundError, match="unknown run 'nope'"):
            call()
    with pytest.raises(errors.NotFoundError, match="no weight tag 'x/kernel'"):
        r.frame_impl(None, eid, "a", "x/kernel")
    with pytest.raises(errors.NotFoundError, match="no stats for weight 'x/kernel'"):
        r.stats_impl(None, eid, "a", "x/kernel")


def test_damaged_items_fail_alone(reader, logdir):
    r, eid = reader
    written = logdir[1]["damaged"]
    # The healthy weight is served whole.
    frame, _ = r.frame_impl(None, eid, "damaged", "ok/kernel", 3)
    np.testing.assert_array_equal(frame, written["ok/kernel"][3])
    # A frame blob of the wrong length: that step fails, the others do not.
    with pytest.raises(errors.DataError, match="at step 2: frame blob has"):
        r.frame_impl(None, eid, "damaged", "short/kernel", 2)
    frame, _ = r.frame_impl(None, eid, "damaged", "short/kernel", 3)
    np.testing.assert_array_equal(frame, written["short/kernel"][3])
    # A newer format version: a clear message naming the upgrade.
    with pytest.raises(errors.DataError, match="upgrade tensorboard_nnviz"):
        r.frame_impl(None, eid, "damaged", "future/kernel", 0)
    tags = {t["tag"]: t for t in r.tags_impl(None, eid, "damaged")["tensors"]}
    assert "error" not in tags["ok/kernel"] and "error" not in tags["short/kernel"]
    assert "format version %d" % (fmt.FORMAT_VERSION + 1) in tags["future/kernel"]["error"]
    assert tags["future/kernel"]["steps"] == [0, 1, 2, 3]
    stats = r.stats_impl(None, eid, "damaged")
    assert "upgrade" in stats["future/kernel"]["error"]
    assert stats["short/kernel"]["mean"] == [None] * 4  # NaN stored → null
    assert stats["ok/kernel"]["steps"] == [0, 1, 2, 3]
    with pytest.raises(errors.DataError, match="upgrade"):
        r.stats_impl(None, eid, "damaged", "future/kernel")
    with pytest.raises(errors.DataError, match="model structure of run 'newer_structure'.*upgrade"):
        r.structure_impl(None, eid, "newer_structure")
    frame, _ = r.frame_impl(None, eid, "newer_structure", "d/kernel")
    assert frame.shape == (2, 2)


@pytest.mark.parametrize("run", ["a", "a_legacy"])
def test_units_of_every_step_are_served_as_written(reader, logdir, run):
    """Per-unit stats: from disk for runs written now (TensorBoard keeps
    one row per weight), through TensorBoard for earlier runs."""
    r, eid = reader
    written = read_run(str(logdir[0] / run))
    for tag, rows in written["units"].items():
        steps = r.stats_impl(None, eid, run, tag)["steps"]
        assert steps == sorted(rows) == list(range(150))
        for stat in ("norm", "update"):
            cells, block, served_steps = r.units_impl(None, eid, run, tag, stat)
            assert served_steps == steps and block == 1
            np.testing.assert_array_equal(cells, np.stack([rows[s][stat] for s in steps]))


def test_frame_reads_blob_keys_once_and_one_blob_per_frame(logdir):
    provider, eid = local_data_provider(str(logdir[0]))
    counting = CountingProvider(provider)
    r = NNVizReader(counting, logdir=str(logdir[0]))
    for step in range(0, 150, 7):
        r.frame_impl(None, eid, "a_legacy", "dense/kernel", step)
    assert counting.calls["read_blob_sequences"] == 1
    assert counting.calls["read_blob"] == len(range(0, 150, 7))
    # Within recheck_seconds the listing (which walks every step on the
    # Python ingester) is not asked again: once for the plugin name of
    # earlier versions, which has it, once for `nnviz_frames` to learn it
    # is not there.
    assert counting.calls["list_blob_sequences"] <= 2
    assert "read_tensors" not in counting.calls


def test_frames_from_disk_read_one_record_each_and_nothing_through_tensorboard(logdir, monkeypatch):
    from tensorboard_nnviz.serve import frame_index

    reads = []
    real_read = frame_index.read_frame
    monkeypatch.setattr(frame_index, "read_frame", lambda *a: reads.append(a) or real_read(*a))
    provider, eid = local_data_provider(str(logdir[0]))
    counting = CountingProvider(provider)
    r = NNVizReader(counting, logdir=str(logdir[0]))
    steps = list(range(0, 150, 7))
    for step in steps + steps:  # the second time from the shared cache
        frame, _ = r.frame_impl(None, eid, "a", "dense/kernel", step)
        np.testing.assert_array_equal(frame, logdir[1]["a"]["dense/kernel"][step])
    assert len(reads) == len(steps)
    assert len({location for location, _ in reads}) == len(steps)  # one record each
    # TensorBoard is asked which series there are, once; never for a frame.
    assert "read_blob" not in counting.calls and "read_blob_sequences" not in counting.calls
    assert counting.calls["list_blob_sequences"] <= 2


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


LAYOUTS = pytest.mark.parametrize("legacy", [False, True], ids=["disk", "legacy"])


@LAYOUTS
def test_frame_rechecks_after_the_window_and_tags_always(tmp_path, legacy):
    writer = SyntheticWriter(str(tmp_path / "live"), legacy=legacy).write([0, 1])
    provider, eid = local_data_provider(str(tmp_path))
    clock = FakeClock()
    r = NNVizReader(provider, recheck_seconds=0.3, clock=clock, logdir=str(tmp_path))
    assert r.frame_impl(None, eid, "live", "dense/kernel")[1] == 1
    writer.write([2])
    provider._multiplexer.Reload()  # what TensorBoard's reload thread does
    # /tags always checks, and refreshes the series frames use.
    (kernel,) = [t for t in r.tags_impl(None, eid, "live")["tensors"] if t["tag"] == "dense/kernel"]
    assert kernel["steps"] == [0, 1, 2]
    assert r.frame_impl(None, eid, "live", "dense/kernel")[1] == 2
    writer.write([3])
    writer.close()
    provider._multiplexer.Reload()
    clock.now += 0.29  # within the window: the cached series is trusted
    assert r.frame_impl(None, eid, "live", "dense/kernel")[1] == 2
    clock.now += 0.02
    assert r.frame_impl(None, eid, "live", "dense/kernel")[1] == 3


def test_a_vanished_blob_is_re_listed_not_a_404(tmp_path):
    """A run restarted from a checkpoint logs SessionLog.START at the restart
    step and TensorBoard purges the later steps: cached blob keys go stale;
    the reader re-lists once and serves the new data."""
    writer = SyntheticWriter(str(tmp_path / "restarted"), legacy=True)
    writer.add_event(start_event(0))
    writer.write([0, 1, 2, 3])
    provider, eid = local_data_provider(str(tmp_path))
    r = NNVizReader(provider, recheck_seconds=3600, logdir=str(tmp_path))
    assert r.frame_impl(None, eid, "restarted", "dense/kernel")[1] == 3
    writer.add_event(start_event(2))
    writer.seed = 1
    writer.write([2])
    writer.close()
    provider._multiplexer.Reload()
    frame, step = r.frame_impl(None, eid, "restarted", "dense/kernel", 3)
    assert step == 2
    np.testing.assert_array_equal(frame, synthetic_weight("dense/kernel", (4, 3), 2, seed=1))


@pytest.mark.parametrize("start", [True, False], ids=["session_start", "step_again"])
def test_a_restart_on_disk_follows_tensorboards_rule(tmp_path, start):
    """Steps written again replace what was there from that step on: after
    a SessionLog.START (the Python ingester's rule, for every tag) or by the
    step alone (RustBoard's rule, per tag)."""
    writer = SyntheticWriter(str(tmp_path / "restarted"))
    writer.add_event(start_event(0))
    writer.write([0, 1, 2, 3])
    provider, eid = local_data_provider(str(tmp_path))
    clock = FakeClock()
    r = NNVizReader(provider, recheck_seconds=1, clock=clock, logdir=str(tmp_path))
    assert r.frame_impl(None, eid, "restarted", "dense/kernel")[1] == 3
    if start:
        writer.add_event(start_event(2))
    writer.seed = 1
    writer.write([2])
    writer.close()
    clock.now += 1
    frame, step = r.frame_impl(None, eid, "restarted", "dense/kernel", 3)
    assert step == 2
    np.testing.assert_array_equal(frame, synthetic_weight("dense/kernel", (4, 3), 2, seed=1))
    tags = r.tags_impl(None, eid, "restarted")["tensors"]
    assert [t["steps"] for t in tags] == [[0, 1, 2], [0, 1, 2]]


@LAYOUTS
def test_new_steps_appear_after_reload(tmp_path, legacy):
    writer = SyntheticWriter(str(tmp_path / "live"), legacy=legacy).write([0, 1, 2])
    provider, eid = local_data_provider(str(tmp_path))
    counting = CountingProvider(provider)
    r = NNVizReader(counting, recheck_seconds=0, logdir=str(tmp_path))  # check on every request
    assert r.frame_impl(None, eid, "live", "dense/kernel")[1] == 2
    assert r.frame_impl(None, eid, "live", "dense/kernel", 50)[1] == 2
    writer.write([3, 4])
    writer.close()
    provider._multiplexer.Reload()
    frame, step = r.frame_impl(None, eid, "live", "dense/kernel", 50)
    assert step == 4
    np.testing.assert_array_equal(frame, synthetic_weight("dense/kernel", (4, 3), 4))
    assert r.runs_impl(None, eid)["runs"][0]["steps"] == [0, 1, 2, 3, 4]
    assert r.stats_impl(None, eid, "live", "dense/bias")["steps"] == [0, 1, 2, 3, 4]
    if legacy:  # first read, refresh, the bias for /runs
        assert counting.calls["read_blob_sequences"] == 3
    else:
        assert "read_blob_sequences" not in counting.calls


@LAYOUTS
def test_truncated_event_file_serves_what_came_before(tmp_path, legacy):
    run = tmp_path / "cut"
    write_synthetic_run(str(run), list(range(10)), weights={"dense/kernel": (20, 20)}, legacy=legacy)
    truncate_event_file(str(run), 0.55)
    provider, eid = local_data_provider(str(tmp_path))
    r = NNVizReader(provider, logdir=str(tmp_path))
    (entry,) = r.runs_impl(None, eid)["runs"]
    steps = entry["steps"]
    assert 0 < len(steps) < 10 and steps == list(range(len(steps)))
    frame, step = r.frame_impl(None, eid, "cut", "dense/kernel")
    assert step == steps[-1]
    np.testing.assert_array_equal(frame, synthetic_weight("dense/kernel", (20, 20), step))


def test_a_record_cut_short_is_served_once_it_is_whole(tmp_path):
    """A live run's last record, half written, is skipped; once the rest
    lands it is served (the index resumes at the record, not past it)."""
    whole = tmp_path / "whole"
    write_synthetic_run(str(whole), [0, 1, 2], weights={"dense/kernel": (20, 20)})
    (source,) = os.listdir(whole)
    with open(whole / source, "rb") as f:
        data = f.read()
    steps_at = frame_record_ends(data)  # {step: end offset of its frame record}
    cut = steps_at[2] - 100  # inside the frame record of step 2
    os.makedirs(tmp_path / "logs" / "live")
    live = tmp_path / "logs" / "live" / source
    live.write_bytes(data[:steps_at[1]])  # steps 0 and 1 whole
    provider, eid = local_data_provider(str(tmp_path / "logs"))
    clock = FakeClock()
    r = NNVizReader(provider, recheck_seconds=1, clock=clock, logdir=str(tmp_path / "logs"))
    assert r.frame_impl(None, eid, "live", "dense/kernel")[1] == 1
    with open(live, "ab") as f:
        f.write(data[steps_at[1]:cut])
    clock.now += 1
    assert r.frame_impl(None, eid, "live", "dense/kernel")[1] == 1
    with open(live, "ab") as f:
        f.write(data[cut:])
    clock.now += 1
    frame, step = r.frame_impl(None, eid, "live", "dense/kernel")
    assert step == 2
    np.testing.assert_array_equal(frame, synthetic_weight("dense/kernel", (20, 20), 2))


@LAYOUTS
def test_a_listed_series_without_data_is_served_empty(tmp_path, legacy):
    """A restart (SessionLog.START) purges the later steps of every tag; a
    weight the restarted run no longer writes stays listed with no data
    (its own stats series in version 2; no row of the stats tables left
    in version 3). Its stats, units and frames answer empty or 404, never
    a crash."""
    writer = SyntheticWriter(str(tmp_path / "restarted"), legacy=legacy)
    writer.add_event(start_event(0))
    writer.write([1, 2, 3])
    writer.add_event(start_event(1))
    writer.weights = {"dense/kernel": (4, 3)}  # the bias is no longer recorded
    writer.write([1, 2])
    writer.close()
    provider, eid = local_data_provider(str(tmp_path))
    r = NNVizReader(provider, logdir=str(tmp_path))
    stats = r.stats_impl(None, eid, "restarted")
    assert stats["dense/kernel"]["steps"] == [1, 2]
    if legacy:  # a stats series per weight: listed, empty
        assert stats["dense/bias"]["steps"] == [] and stats["dense/bias"]["mean"] == []
        assert r.stats_impl(None, eid, "restarted", "dense/bias")["alpha"] == []
        cells, block, steps = r.units_impl(None, eid, "restarted", "dense/bias", "norm")
        assert cells.shape == (0, 3) and steps == []
    else:  # the stats tables left name the kernel alone
        assert set(stats) == {"dense/kernel"}
        with pytest.raises(errors.NotFoundError, match="no stats for weight 'dense/bias'"):
            r.stats_impl(None, eid, "restarted", "dense/bias")
        with pytest.raises(errors.NotFoundError, match="no weight tag 'dense/bias'"):
            r.units_impl(None, eid, "restarted", "dense/bias", "norm")
    assert r.findings_impl(None, eid, "restarted")["findings"] == []
    tags = {t["tag"]: t for t in r.tags_impl(None, eid, "restarted")["tensors"]}
    assert tags["dense/bias"]["steps"] == [] and tags["dense/kernel"]["steps"] == [1, 2]
    with pytest.raises(errors.NotFoundError, match="has no snapshots"):
        r.frame_impl(None, eid, "restarted", "dense/bias")
