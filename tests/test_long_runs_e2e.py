"""Long runs, end to end: TensorBoard keeps one frame per weight in memory,
the plugin serves every frame of every step from the event files on disk.

A real `tensorboard` on both ingesters (`--load_fast=false` and `true`,
`--reload_interval 1`), one server each for the module, and two where the
plugin cannot read the logdir itself: `--logdir_spec` (Python ingester)
and `--grpc_data_provider` (an external RustBoard).
Frames are checked against the event files read independently with
TensorBoard's EventAccumulator (`runs.read_run`). The server runs with an
audit hook (tests/audit/sitecustomize.py) that logs every path the
plugin's code opens or lists: none may be outside the logdir.
"""

import os
import shutil
import time
import urllib.parse

import numpy as np
import pytest

from runs import (SyntheticWriter, frame_record_ends, read_run, start_event, synthetic_weight,
                  write_synthetic_run)
from tb_server import TensorBoardServer

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
AUDIT = os.path.join(HERE, "audit")
WEIGHTS = {"dense/kernel": (20, 30), "dense/bias": (30,), "big/kernel": (300, 200)}
UNICODE_RUN = "my run ✓/ü ß"  # a space, unicode, and a nested directory
OLD_RUNS = ("v1_blows_up", "v1_lr0_bn", "v2_synthetic")


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    base = tmp_path_factory.mktemp("long_runs")
    root = base / "logs"
    write_synthetic_run(str(root / "every"), list(range(0, 80, 2)), weights=WEIGHTS, max_cells=4096)
    write_synthetic_run(str(root / UNICODE_RUN), [0, 7, 9], weights={"d/kernel": (3, 4)})
    # A restart: a second event file begins with SessionLog.START at step 3
    # and writes steps 3.. again, with other weights (seed 1).
    first = SyntheticWriter(str(root / "restarted"))
    first.add_event(start_event(0))
    first.write(range(6))
    first.close()
    time.sleep(1.1)  # the second file's name (its time in seconds) sorts after the first's
    second = SyntheticWriter(str(root / "restarted"), seed=1, structure=False)
    second.add_event(start_event(3))
    second.write(range(3, 9))
    second.close()
    # The last snapshot's stats table written again, complete, with other
    # values (as the writer does when it adds the spectral stats at the
    # end): the later table of the step is the one shown.
    rewritten = SyntheticWriter(str(root / "rewritten"))
    rewritten.write(range(6))
    rewritten.add_event(_stats_table_event(5, list(rewritten.weights), 1.5))
    rewritten.close()
    # Runs written by earlier versions (frames under `nnviz`).
    for name in os.listdir(os.path.join(FIXTURES, "v1_runs")):
        shutil.copytree(os.path.join(FIXTURES, "v1_runs", name), root / ("v1_" + name))
    shutil.copytree(os.path.join(FIXTURES, "v2_runs", "synthetic"), root / "v2_synthetic")
    # A run whose last record is cut short (completed by a test), and a
    # run outside the logdir reached by a symbolic link inside it.
    write_synthetic_run(str(base / "whole"), [0, 1, 2], weights={"dense/kernel": (20, 20)})
    write_synthetic_run(str(base / "outside" / "run"), [0, 1], weights={"o/kernel": (2, 2)})
    os.symlink(base / "outside" / "run", root / "linked", target_is_directory=True)
    (name,) = os.listdir(base / "whole")
    data = (base / "whole" / name).read_bytes()
    os.makedirs(root / "cut")
    cut = frame_record_ends(data)[2] - 50  # inside step 2's frame record
    (root / "cut" / name).write_bytes(data[:cut])
    reference = {run: read_run(str(root / run)) for run in ("every", UNICODE_RUN) + OLD_RUNS}
    reference["whole"] = read_run(str(base / "whole"))
    return {"root": root, "base": base, "ref": reference, "cut": (root / "cut" / name, data, cut)}


def _stats_table_event(step, tags, value):
    from tensorboard.compat.proto import event_pb2

    from tensorboard_nnviz.core import format as fmt

    event = event_pb2.Event(step=step, wall_time=time.time() + 1)
    fmt.stats_table_value(tags, [{f: value for f in fmt.STAT_FIELDS} for _ in tags],
                          out=event.summary.value.add())
    return event


@pytest.fixture(scope="module")
def stats_through_tensorboard(logdir):
    """{run: /stats of every weight} read by the plugin's reader through an
    in-process TensorBoard (Python ingester) alone, not from disk."""
    from tensorboard_nnviz.cli.local_provider import local_data_provider
    from tensorboard_nnviz.serve.reader import NNVizReader

    provider, eid = local_data_provider(str(logdir["root"]))
    reader = NNVizReader(provider)  # no logdir: nothing read from disk
    return {run: reader.stats_impl(None, eid, run) for run in ("every", "restarted", "rewritten", "cut")}


@pytest.fixture(scope="module", params=[False, True], ids=["python", "rustboard"])
def tb(request, logdir):
    name = "rustboard" if request.param else "python"
    log = logdir["base"] / ("opened_" + name)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([AUDIT, os.environ.get("PYTHONPATH", "")]),
               NNVIZ_OPEN_LOG=str(log))
    with TensorBoardServer(logdir["root"], load_fast=request.param, env=env,
                           extra_args=["--reload_interval", "1"]) as server:
        server.name, server.opened_log = name, log
        server.wait_for(lambda: {"every", "restarted", "cut", UNICODE_RUN} | set(OLD_RUNS)
                        <= {r["run"] for r in server.get_json("runs")["runs"]}, timeout=90)
        yield server


def assert_every_frame_served(tb, run, ref):
    tensors = {t["tag"]: t for t in tb.get_json("tags", {"run": run})["tensors"]}
    assert set(tensors) == set(ref["frames"])
    for tag, frames in ref["frames"].items():
        assert tensors[tag]["steps"] == sorted(frames)
        for step, written in frames.items():
            frame, served = tb.frame(run, tag, step)
            assert served == step
            np.testing.assert_array_equal(frame, written)


def units_of(tb, run, tag, stat):
    r = tb.get("units", {"run": run, "tag": tag, "stat": stat})
    assert r.status == 200, (run, tag, r.status, r.body[:300])
    rows, cols = int(r.headers["X-NNViz-Rows"]), int(r.headers["X-NNViz-Cols"])
    return np.frombuffer(r.body, dtype="<f4").reshape(rows, cols)


def test_every_step_of_every_tag_is_served_as_written(tb, logdir):
    runs = {r["run"]: r for r in tb.get_json("runs")["runs"]}
    assert runs["every"]["steps"] == list(range(0, 80, 2))
    assert runs["every"]["frame_steps"] == "all"
    assert_every_frame_served(tb, "every", logdir["ref"]["every"])
    stats = tb.get_json("stats", {"run": "every", "tag": "big/kernel"})
    assert stats["steps"] == list(range(0, 80, 2))
    # Per-unit stats too: TensorBoard keeps one row per weight, the plugin
    # reads every row from disk.
    for tag, rows in logdir["ref"]["every"]["units"].items():
        for stat in ("norm", "update"):
            np.testing.assert_array_equal(units_of(tb, "every", tag, stat),
                                          np.stack([rows[s][stat] for s in sorted(rows)]))


def test_run_names_with_spaces_and_unicode(tb, logdir):
    assert_every_frame_served(tb, UNICODE_RUN, logdir["ref"][UNICODE_RUN])


@pytest.mark.parametrize("run", OLD_RUNS)
def test_runs_of_earlier_versions_open_as_before(tb, logdir, run):
    runs = {r["run"]: r for r in tb.get_json("runs")["runs"]}
    assert runs[run]["frame_steps"] == "all"
    assert_every_frame_served(tb, run, logdir["ref"][run])
    assert tb.get_json("findings", {"run": run})["findings"] is not None


def test_a_second_event_file_after_a_restart(tb):
    """Steps 3-5 written again after SessionLog.START: the second file's
    frames, as TensorBoard's stats show them."""
    tensors = {t["tag"]: t for t in tb.get_json("tags", {"run": "restarted"})["tensors"]}
    stats = tb.get_json("stats", {"run": "restarted", "tag": "dense/kernel"})
    assert stats["steps"] == list(range(9))
    for tag, shape in (("dense/kernel", (4, 3)), ("dense/bias", (3,))):
        assert tensors[tag]["steps"] == list(range(9))
        for step in range(9):
            frame, served = tb.frame("restarted", tag, step)
            assert served == step
            expected = synthetic_weight(tag, shape, step, seed=0 if step < 3 else 1)
            np.testing.assert_array_equal(frame.ravel(), expected.ravel())


def test_stats_read_from_disk_equal_stats_read_through_tensorboard(tb, logdir, stats_through_tensorboard):
    """The server reads the stats tables from the event files; the same
    answer as TensorBoard's datums give, for a restart that wrote steps
    again, a step whose table was written twice and a truncated tail."""
    for run, expected in stats_through_tensorboard.items():
        if run == "cut" and os.path.getsize(logdir["cut"][0]) != logdir["cut"][2]:
            continue  # completed by another test meanwhile
        assert tb.get_json("stats", {"run": run}) == expected, run
    assert tb.get_json("stats", {"run": "rewritten", "tag": "dense/kernel", "fields": "l2"})["l2"][-1] == 1.5


def test_a_truncated_last_record_is_served_once_whole(tb, logdir):
    path, data, cut = logdir["cut"]
    ref = logdir["ref"]["whole"]
    if os.path.getsize(path) == cut:  # the first server: still cut short
        runs = {r["run"]: r for r in tb.get_json("runs")["runs"]}
        assert runs["cut"]["steps"] == [0, 1]
        assert tb.frame("cut", "dense/kernel")[1] == 1
        with open(path, "ab") as f:
            f.write(data[cut:])
    tb.wait_for(lambda: tb.frame("cut", "dense/kernel")[1] == 2, timeout=30)
    np.testing.assert_array_equal(tb.frame("cut", "dense/kernel", 2)[0],
                                  ref["frames"]["dense/kernel"][2])


def test_a_run_appended_while_it_is_served(tb, logdir):
    run = "live_" + tb.name
    writer = SyntheticWriter(str(logdir["root"] / run), weights={"w/kernel": (6, 5)})
    try:
        writer.write([0, 1])
        tb.wait_for(lambda: {r["run"]: r["steps"] for r in tb.get_json("runs")["runs"]}.get(run) == [0, 1])
        for batch in ([2, 3], list(range(4, 30))):
            writer.write(batch)
            last = batch[-1]
            tb.wait_for(lambda: tb.get_json("tags", {"run": run})["tensors"][0]["steps"][-1] == last)
            tb.wait_for(lambda: tb.frame(run, "w/kernel")[1] == last, timeout=10)
        for step in range(30):
            frame, served = tb.frame(run, "w/kernel", step)
            assert served == step
            np.testing.assert_array_equal(frame, writer.written["w/kernel"][step])
    finally:
        writer.close()


def test_no_path_outside_the_logdir_is_opened_for_a_request(tb, logdir):
    """Hostile run and tag names, and a run reached through a symbolic link
    out of the logdir: nothing the plugin opens or lists is outside it."""
    root = os.path.realpath(logdir["root"])
    for run in ("..", "../outside/run", "/etc", "/tmp", "every/../..", "linked", "linked/..",
                "every/../../outside/run", "%2e%2e", "..\\..", "every\0"):
        for route, params in (("tags", {"run": run}), ("runs", {}),
                              ("frame", {"run": run, "tag": "o/kernel", "step": 0}),
                              ("frame", {"run": run, "tag": "../../../etc/passwd"}),
                              ("stats", {"run": run}), ("units", {"run": run, "tag": "o/kernel",
                                                                   "stat": "norm"})):
            r = tb.get(route, params)
            assert r.status in (200, 400, 404), (route, params, r.status, r.body[:300])
    runs = {r["run"]: r for r in tb.get_json("runs")["runs"]}
    if "linked" in runs:  # RustBoard follows the link; the plugin reads no file there
        assert runs["linked"]["frame_steps"] == "kept"
        assert tb.frame("linked", "o/kernel")[1] == 1
    with open(tb.opened_log, encoding="utf-8", errors="surrogateescape") as f:
        opened = [line.rstrip("\n").split("\t", 1) for line in f]
    assert any(path.startswith(os.path.join(root, "every")) for _, path in opened), \
        "the audit hook saw no read of the logdir: it is not working"
    outside = [(event, path) for event, path in opened
               if os.path.commonpath([root, os.path.realpath(path)]) != root]
    assert outside == []


# --- where the plugin cannot read the logdir itself ------------------------------------


class _DataServer:
    """RustBoard's data server on its own (what `--grpc_data_provider`
    names), started as a user would, keeping every `nnviz` sample."""

    def __init__(self, logdir, port_file):
        import subprocess

        import tensorboard_data_server

        self.port_file = port_file
        self.proc = subprocess.Popen(
            [tensorboard_data_server.server_binary(), "--logdir", str(logdir), "--port", "0",
             "--port-file", str(port_file), "--reload", "1", "--samples-per-plugin", "nnviz=all",
             "--die-after-stdin"], stdin=subprocess.PIPE)

    def address(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if os.path.exists(self.port_file) and open(self.port_file).read().strip():
                return "localhost:" + open(self.port_file).read().strip()
            time.sleep(0.1)
        raise TimeoutError("the data server wrote no port")

    def stop(self):
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc.stdin.close()


@pytest.fixture(scope="module", params=["logdir_spec", "grpc_data_provider"])
def tb_fallback(request, logdir):
    """TensorBoard where the plugin cannot read the logdir: `--logdir_spec`
    (Python ingester: RustBoard takes no spec) and `--grpc_data_provider`
    (an external RustBoard)."""
    server = None
    if request.param == "logdir_spec":
        args, prefix = ("spec:%s" % logdir["root"], "--logdir_spec"), "spec/"
    else:
        server = _DataServer(logdir["root"], logdir["base"] / "port")
        args, prefix = (server.address(), "--grpc_data_provider"), ""
    try:
        with TensorBoardServer(args[0], logdir_flag=args[1],
                               extra_args=["--reload_interval", "1"]) as tb:
            tb.prefix = prefix
            tb.wait_for(lambda: {prefix + "every", prefix + "v2_synthetic"}
                        <= {r["run"] for r in tb.get_json("runs")["runs"]}, timeout=90)
            yield tb
    finally:
        if server is not None:
            server.stop()


def test_without_the_logdir_only_the_kept_frames_are_served(tb_fallback, logdir):
    """TensorBoard kept only some frames of a run written now (the latest,
    by the plugin's default; an external data server its own number), and
    the plugin says so; runs of earlier versions keep every frame."""
    run = tb_fallback.prefix + "every"
    runs = {r["run"]: r for r in tb_fallback.get_json("runs")["runs"]}
    ref = logdir["ref"]["every"]
    assert runs[run]["frame_steps"] == "kept"
    kept = runs[run]["steps"]
    assert kept[-1] == 78 and len(kept) <= 10 and set(kept) <= set(range(0, 80, 2))
    if tb_fallback.prefix:  # TensorBoard's own ingester, with the plugin's default
        assert kept == [78]
    for t in tb_fallback.get_json("tags", {"run": run})["tensors"]:
        assert set(t["steps"]) <= set(kept)
        for step in t["steps"]:
            frame, served = tb_fallback.frame(run, t["tag"], step)
            assert served == step
            np.testing.assert_array_equal(frame, ref["frames"][t["tag"]][step])
    assert tb_fallback.get_json("stats", {"run": run, "tag": "dense/kernel"})["steps"] == \
        list(range(0, 80, 2))
    # Per-unit stats: a row for the kept steps only, NaN for the others.
    units = units_of(tb_fallback, run, "dense/kernel", "norm")
    rows = ref["units"]["dense/kernel"]
    assert units.shape[0] == 40
    present = [step for i, step in enumerate(range(0, 80, 2)) if not np.isnan(units[i]).all()]
    for step in present:
        np.testing.assert_array_equal(units[step // 2], rows[step]["norm"])
    assert present[-1] == 78
    if tb_fallback.prefix:
        assert present == [78]
    old = tb_fallback.prefix + "v2_synthetic"
    assert runs[old]["frame_steps"] == "all"
    assert_every_frame_served(tb_fallback, old, logdir["ref"]["v2_synthetic"])


def test_url_quoting_of_run_names_reaches_the_run(tb, logdir):
    """The panel quotes run names in URLs: the server's own unquoting is
    what reaches the plugin (a `%2F` in a name is a `/`)."""
    quoted = "/data/plugin/nnviz/tags?run=" + urllib.parse.quote(UNICODE_RUN, safe="")
    r = tb.get(quoted)
    assert r.status == 200 and r.json()["tensors"][0]["tag"] == "d/kernel"
