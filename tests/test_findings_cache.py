"""Findings kept per run and extended step by step (findings_cache.py) equal
findings computed from scratch (findings.compute) at every point of a
growing run, with planted faults, on TensorBoard's multiplexer reloading
the run's event files as they grow; and after a restart that rewrites steps.

The run is written by the real SnapshotWriter (stats table, per-unit
stats, spectral stats); the reference reads the stats back through a
fresh reader's /stats answer, as a client would.
"""

import time

import numpy as np
import pytest
from tensorboard import context
from tensorboard.compat.proto import event_pb2
from tensorboard.backend.event_processing import data_ingester
from tensorboard.backend.event_processing import data_provider
from tensorboard.backend.event_processing import plugin_event_multiplexer

from runs import synthetic_structure, write_events
from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.record import eventfiles
from tensorboard_nnviz.record import writer as writer_lib
from tensorboard_nnviz.serve import findings as F
from tensorboard_nnviz.serve import reader as reader_lib

SHAPES = {
    "ok/kernel": (6, 5),
    "grow/kernel": (4, 4),  # multiplied by 3 per snapshot from step 12: exploding
    "nan/kernel": (3, 3),  # a NaN from step 18
    "frozen/kernel": (4, 2),  # never changes: frozen
    "dead/kernel": (5, 8),  # units 0..2 stop moving at step 4: dead units
    "wide/kernel": (24, 24),  # a random matrix: spectral stats (alpha)
}


def weight(tag, step, rng):
    """The planted weights at `step`."""
    base = np.random.default_rng(abs(hash(tag)) % 2**32).standard_normal(SHAPES[tag]).astype(np.float32)
    if tag == "frozen/kernel":
        return base
    w = base + rng.standard_normal(SHAPES[tag]).astype(np.float32) * 0.05 * step
    if tag == "grow/kernel" and step >= 12:
        w = base * np.float32(3.0 ** (step - 11))
    if tag == "nan/kernel" and step >= 18:
        w[0, 0] = np.nan
    if tag == "dead/kernel" and step >= 4:
        w[:, :3] = base[:, :3]
    return w


class Logdir:
    """A run written snapshot by snapshot, read by one multiplexer that
    reloads (as TensorBoard does) and by fresh ones."""

    def __init__(self, root):
        self.root = str(root)
        self.run = str(root / "run")
        self.rng = np.random.default_rng(0)
        self.writer = None
        self.multiplexer = self._multiplexer()

    def _multiplexer(self):
        # As the plugin's loader sets it: frames and units beyond the latest
        # are read from disk (the readers get the logdir).
        guidance = dict(data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE, **fmt.SAMPLES_PER_PLUGIN)
        mux = plugin_event_multiplexer.EventMultiplexer(
            size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE, tensor_size_guidance=guidance)
        mux.AddRunsFromDirectory(self.root)
        return mux

    def open(self):
        self.writer = writer_lib.SnapshotWriter(self.run, spectral=True)
        self.structure = synthetic_structure(SHAPES)

    def write(self, step):
        weights = [writer_lib.Weight(t, weight(t, step, self.rng), "Dense", t.rpartition("/")[0], "float32")
                   for t in SHAPES]
        self.writer.write(step, weights, self.structure)
        self.structure = None
        self.writer.flush()

    def close(self):
        self.writer.close()

    def write_steps(self, steps):
        """Writes `steps` as one training process would, then closes."""
        self.open()
        try:
            for step in steps:
                self.write(step)
        finally:
            self.close()

    def provider(self, fresh=False):
        mux = self._multiplexer() if fresh else self.multiplexer
        mux.AddRunsFromDirectory(self.root)
        mux.Reload()
        return data_provider.MultiplexerDataProvider(mux, self.root)

    def reader(self, fresh=False):
        """An NNVizReader of this logdir, as the plugin makes one."""
        return reader_lib.NNVizReader(self.provider(fresh), logdir=self.root)


def from_scratch(logdir):
    """findings.compute over a fresh reader's /stats, /structure and /units."""
    r = logdir.reader(fresh=True)
    columns = r.stats_impl(None, "", "run")
    structure = r.structure_impl(None, "", "run")
    units = {}
    for tag in F.needs_units(columns, structure):
        cells, block, steps = r.units_impl(None, "", "run", tag, "update")
        units[tag] = {"steps": steps, "update": list(cells), "block": block,
                      "units": int(np.prod(SHAPES[tag][1:]))}
    return F.compute(columns, structure, units)


def test_findings_extended_step_by_step_equal_a_fresh_computation(tmp_path):
    logdir = Logdir(tmp_path)
    logdir.open()
    served = logdir.reader()
    kinds_seen = set()
    try:
        for step in range(40):
            logdir.write(step)
            logdir.provider()  # TensorBoard reloads its multiplexer
            got = served.findings_impl(None, "", "run")["findings"]
            assert got == from_scratch(logdir), "step %d" % step
            kinds_seen.update((f["kind"], f["tag"]) for f in got)
    finally:
        logdir.close()
    # The planted faults were found along the way (so the comparison compared findings).
    assert {("exploding", "grow/kernel"), ("nonfinite", "nan/kernel"), ("frozen", "frozen/kernel"),
            ("dead_units", "dead/kernel")} <= kinds_seen, kinds_seen
    assert not any(t == "ok/kernel" for _, t in kinds_seen), kinds_seen


def session_start(run_dir, step):
    """An event file of its own holding a SessionLog START at `step` (the
    second one tells TensorBoard's Python ingester that a restart drops
    what it held from `step` on); the next file is named a second later."""
    events = eventfiles.new_writer(run_dir)
    events.add_event(event_pb2.Event(step=step, wall_time=time.time(),
                                     session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))
    events.close()
    time.sleep(1.1)


def test_a_restart_that_rewrites_steps_is_folded_again(tmp_path):
    logdir = Logdir(tmp_path)
    session_start(logdir.run, 0)
    logdir.write_steps(range(12))
    served = logdir.reader()
    before = served.findings_impl(None, "", "run")["findings"]
    stats_before = served.stats_impl(None, "", "run", "dead/kernel", ["l2"])
    # A new process restarts from step 6.
    time.sleep(1.1)
    session_start(logdir.run, 6)
    logdir.rng = np.random.default_rng(1)
    logdir.write_steps(range(6, 20))
    logdir.provider()  # TensorBoard reloads its multiplexer
    after = served.findings_impl(None, "", "run")["findings"]
    stats_after = served.stats_impl(None, "", "run", "dead/kernel", ["l2"])
    assert stats_after["steps"] == list(range(20))
    assert stats_after["l2"][:6] == stats_before["l2"][:6] and stats_after["l2"][6:12] != stats_before["l2"][6:]
    assert after == from_scratch(logdir)
    assert after != before


@pytest.mark.parametrize("fields", [["l2"], ["update_ratio", "nan", "inf"], ["alpha"]])
def test_fields_answer_only_those_columns(tmp_path, fields):
    logdir = Logdir(tmp_path)
    logdir.write_steps(range(5))
    r = logdir.reader()
    full = r.stats_impl(None, "", "run")
    some = r.stats_impl(None, "", "run", fields=fields)
    assert set(some) == set(SHAPES)
    for tag, columns in some.items():
        assert set(columns) == {"steps", "wall_times", *fields}
        assert columns == {k: full[tag][k] for k in columns}
    one = r.stats_impl(None, "", "run", "ok/kernel", fields)
    assert one == some["ok/kernel"]
    with pytest.raises(reader_lib.BadRequestError, match="unknown stat field 'l3'"):
        r.stats_impl(None, "", "run", fields=["l2", "l3"])
    # Written as one stats table per snapshot (format version 3), not per weight.
    tensors = r._list_tensors(context.RequestContext(), "", "run")
    assert fmt.STATS_TABLE_TAG in tensors and not any(t.startswith(fmt.STATS_PREFIX) for t in tensors)


def test_a_run_continued_across_the_stats_table_reads_as_one(tmp_path):
    """Steps 0..4 with per-weight stats vectors (format 2, as written before
    the table), then 5..9 by this writer: one series per weight, and the
    findings of the whole."""
    from tensorboard_nnviz.record import stats as stats_lib

    run = tmp_path / "run"
    rng = np.random.default_rng(3)
    old, prev = [], {}
    for step in range(5):
        values = []
        for tag in SHAPES:
            w = weight(tag, step, rng)
            measured = stats_lib.measure(w, prev.get(tag), unit_axes=[1])
            prev[tag] = w
            content = fmt.stats_content()
            content = content.replace(b'"version": %d' % fmt.FORMAT_VERSION, b'"version": 2')
            values.append(fmt.stats_value(tag, measured.stats, content))
        old.append((step, values))
    write_events(str(run), old)
    time.sleep(1.1)  # the next event file sorts after this one
    logdir = Logdir(tmp_path)
    logdir.write_steps(range(5, 10))
    r = logdir.reader()
    stats = r.stats_impl(None, "", "run")
    assert set(stats) == set(SHAPES)
    for tag, columns in stats.items():
        assert columns["steps"] == list(range(10)), tag
        assert all(v is not None for v in columns["l2"]), tag
    # The frozen weight is the same at every step, in both formats.
    norm = float(np.linalg.norm(weight("frozen/kernel", 0, rng).astype(np.float64)))
    assert stats["frozen/kernel"]["l2"] == [pytest.approx(norm, rel=1e-6)] * 10
    # Each process measures updates from its own first snapshot.
    assert stats["frozen/kernel"]["update_l2"] == ([None] + [0.0] * 4) * 2
    assert r.findings_impl(None, "", "run")["findings"] == from_scratch(logdir)


@pytest.mark.parametrize("load_fast", [False, True], ids=["python", "rustboard"])
def test_findings_of_a_run_appended_while_served_equal_a_fresh_computation(tmp_path, load_fast):
    """A real TensorBoard on each ingester serves the run while the writer
    appends to it: after each batch, /findings (kept and extended by the
    plugin) equals findings.compute over what /stats, /structure and /units
    answer for the whole run."""
    from tb_server import TensorBoardServer

    logdir = Logdir(tmp_path)
    logdir.open()
    kinds_seen = set()
    try:
        with TensorBoardServer(str(tmp_path), load_fast=load_fast, extra_args=("--reload_interval", "1")) as tb:
            for batch in range(4):
                steps = range(10 * batch, 10 * batch + 10)
                for step in steps:
                    logdir.write(step)
                last = steps[-1]
                tb.wait_for(lambda: tb.get_json("stats", {"run": "run", "tag": "ok/kernel", "fields": "l2"})
                            ["steps"][-1:] == [last], timeout=60)
                served = tb.get_json("findings", {"run": "run"})["findings"]
                assert served == from_http(tb), "after step %d" % last
                kinds_seen.update((f["kind"], f["tag"]) for f in served)
    finally:
        logdir.close()
    assert {("exploding", "grow/kernel"), ("nonfinite", "nan/kernel"), ("frozen", "frozen/kernel"),
            ("dead_units", "dead/kernel")} <= kinds_seen, kinds_seen


def from_http(tb):
    """findings.compute over the whole run as the HTTP API answers it."""
    columns = tb.get_json("stats", {"run": "run"})
    structure = tb.get_json("structure", {"run": "run"})
    units = {}
    for tag in F.needs_units(columns, structure):
        r = tb.get("units", {"run": "run", "tag": tag, "stat": "update"})
        rows, cols = int(r.headers["X-NNViz-Rows"]), int(r.headers["X-NNViz-Cols"])
        cells = np.frombuffer(r.body, "<f4").reshape(rows, cols)
        units[tag] = {"steps": columns[tag]["steps"], "update": list(cells),
                      "block": int(r.headers["X-NNViz-Unit-Block"]), "units": int(np.prod(SHAPES[tag][1:]))}
    return F.compute(columns, structure, units)
