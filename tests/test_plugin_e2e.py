"""End to end: a real `tensorboard` on a logdir written by the real callback.

Every test runs against both ingesters: `--load_fast=false` (Python) and
`--load_fast=true` (RustBoard), one server each for the whole module, both
with `--reload_interval 1` so runs written during the tests appear.
Answers are checked against the event files read independently with
TensorBoard's EventAccumulator (`runs.read_run`).
"""

import http.client
import os
import random
import threading
import time
import urllib.parse

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keras_models
from runs import read_run, steps_of, truncate_event_file, write_damaged_run, write_events
from tb_server import TensorBoardServer

PREFIX = "/data/plugin/nnviz"
BASE_RUNS = {"mlp", "conv", "long", "damaged", "cut"}  # and "live_*" runs written by tests


def _keras_scalars_and_other_plugins(run_dir):
    """Keras's own TensorBoard callback writes next to ours (`<run>/train`),
    and a scalar of another plugin goes into the run's own directory."""
    from tensorboard.plugins.scalar import summary_v2

    write_events(run_dir, [(s, list(summary_v2.scalar_pb("loss", 1.0 / (s + 1)).value)) for s in range(3)])


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    import keras

    root = tmp_path_factory.mktemp("e2e_logdir")
    keras_tb = keras.callbacks.TensorBoard(log_dir=str(root / "mlp"), histogram_freq=1)
    keras_models.train_run(str(root / "mlp"), epochs=2, steps=4, snapshot_freq=1, callbacks=[keras_tb])
    _keras_scalars_and_other_plugins(str(root / "mlp"))
    keras_models.train_run(str(root / "conv"), model="conv2d", epochs=1, steps=3, snapshot_freq=1)
    keras_models.train_run(str(root / "long"), epochs=1, steps=110, snapshot_freq=1)
    write_damaged_run(str(root / "damaged"))
    # A truncated event file: the reference is read before the cut.
    keras_models.train_run(str(root / "cut"), epochs=1, steps=12, snapshot_freq=1)
    truncate_event_file(str(root / "cut"), 0.6)
    reference = {r: read_run(str(root / r)) for r in ("mlp", "conv", "long", "cut")}
    assert os.path.isdir(root / "mlp" / "train"), "Keras's TensorBoard callback wrote nothing"
    return root, reference


@pytest.fixture(scope="module", params=[False, True], ids=["python", "rustboard"])
def tb(request, logdir):
    with TensorBoardServer(logdir[0], load_fast=request.param, extra_args=["--reload_interval", "1"]) as server:
        server.name = request.param and "rustboard" or "python"
        server.wait_for(lambda: BASE_RUNS <= {r["run"] for r in server.get_json("runs")["runs"]}, timeout=60)
        yield server


def test_ingester_is_the_one_asked_for(tb):
    assert tb.data_server_running() == (tb.name == "rustboard")
    listing = tb.get_json("/data/plugins_listing")["nnviz"]
    assert listing["enabled"] is True
    assert listing["loading_mechanism"] == {"type": "IFRAME", "module_path": PREFIX + "/index.js"}


def test_runs_only_nnviz_runs_with_all_steps(tb, logdir):
    ref = logdir[1]
    runs = {r["run"]: r for r in tb.get_json("runs")["runs"] if not r["run"].startswith("live_")}
    # Keras's "mlp/train" and the scalar in "mlp" are other plugins': ignored.
    assert set(runs) == BASE_RUNS
    for name in ("mlp", "conv", "long"):
        assert runs[name]["steps"] == steps_of(ref[name])
        assert runs[name]["tags"] == len(ref[name]["frames"])
    # More than 100 snapshots, all kept (TensorBoard's default keeps 10).
    assert runs["long"]["steps"] == list(range(111))


def test_tags_structure_stats_and_frames_match_the_event_files(tb, logdir):
    for run in ("mlp", "conv"):
        ref = logdir[1][run]
        tensors = {t["tag"]: t for t in tb.get_json("tags", {"run": run})["tensors"]}
        assert set(tensors) == set(ref["frames"])
        structure = tb.get_json("structure", {"run": run})
        assert structure == ref["structure"][-1][1]
        assert {w["tag"] for layer in structure["layers"] for w in layer["weights"]} == set(tensors)
        all_stats = tb.get_json("stats", {"run": run})
        assert set(all_stats) == set(tensors)
        for tag, info in tensors.items():
            content = ref["content"][tag]
            assert info["shape"] == content["shape"] and info["layout"] == content["layout"]
            assert (info["rows"], info["cols"]) == (content["rows"], content["cols"])
            assert info["steps"] == sorted(ref["frames"][tag])
            one = tb.get_json("stats", {"run": run, "tag": tag})
            assert one == all_stats[tag]
            assert one["steps"] == sorted(ref["stats"][tag])
            for i, step in enumerate(one["steps"]):
                for field, value in ref["stats"][tag][step].items():
                    assert one[field][i] == value
            for step in info["steps"]:
                frame, served = tb.frame(run, tag, step)
                assert served == step
                np.testing.assert_array_equal(frame, ref["frames"][tag][step])
                # Exact frames: their mean is the full-resolution mean.
                assert float(frame.astype(np.float64).mean()) == pytest.approx(
                    one["mean"][one["steps"].index(step)], rel=1e-5, abs=1e-7
                )


def test_frame_step_rule(tb, logdir):
    tag = sorted(logdir[1]["long"]["frames"])[0]
    assert tb.frame("long", tag)[1] == 110
    assert tb.frame("long", tag, 10**15)[1] == 110
    assert tb.frame("long", tag, 57)[1] == 57
    r = tb.get("frame", {"run": "long", "tag": tag, "step": -1})
    assert r.status == 404 and "no snapshot at or before step -1" in r.json()["error"]


def test_errors_are_json_on_the_real_server(tb):
    cases = [
        ("tags", {}, 400),
        ("frame", {"run": "mlp", "tag": "dense/kernel", "step": "ten"}, 400),
        ("tags", {"run": "mlp/train"}, 404),  # Keras's scalars: not ours
        ("frame", {"run": "nope", "tag": "dense/kernel"}, 404),
        ("stats", {"run": "mlp", "tag": "nope"}, 404),
        ("frame", {"run": "damaged", "tag": "short/kernel", "step": 2}, 422),
        ("frame", {"run": "damaged", "tag": "future/kernel"}, 422),
    ]
    for route, params, status in cases:
        r = tb.get(route, params)
        assert r.status == status, (route, params, r.status, r.body)
        assert r.content_type == "application/json" and set(r.json()) == {"error"}


def test_damaged_data_leaves_the_rest_served(tb, logdir):
    tags = {t["tag"]: t for t in tb.get_json("tags", {"run": "damaged"})["tensors"]}
    assert "upgrade tensorboard_nnviz" in tags["future/kernel"]["error"]
    assert "error" not in tags["ok/kernel"]
    stats = tb.get_json("stats", {"run": "damaged"})
    assert "error" in stats["future/kernel"] and stats["ok/kernel"]["steps"] == [0, 1, 2, 3]
    assert tb.frame("damaged", "short/kernel", 3)[1] == 3


def test_truncated_event_file_serves_what_came_before(tb, logdir):
    ref = logdir[1]["cut"]  # EventAccumulator's reading of the cut file
    full = list(range(13))
    runs = {r["run"]: r for r in tb.get_json("runs")["runs"]}
    steps = runs["cut"]["steps"]
    assert steps == steps_of(ref) and 0 < len(steps) < len(full) and steps == full[: len(steps)]
    for t in tb.get_json("tags", {"run": "cut"})["tensors"]:
        for step in t["steps"]:
            np.testing.assert_array_equal(tb.frame("cut", t["tag"], step)[0], ref["frames"][t["tag"]][step])


def test_static_files_and_traversal_on_the_real_server(tb):
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "frontend")
    name = sorted(f for f in os.listdir(folder) if f.endswith(".js"))[0]
    r = tb.get(PREFIX + "/" + name)
    assert r.status == 200 and r.content_type.startswith("text/javascript")
    assert tb.get("/data/plugin_entry.html", {"name": "nnviz"}).status == 200
    conn = http.client.HTTPConnection("127.0.0.1", tb.port, timeout=10)
    try:
        for raw in ("../../setup.py", "%2e%2e/%2e%2e/setup.py", "..%2f..%2fsetup.py", "..%5c..%5csetup.py",
                    "%2fetc%2fpasswd", "/etc/passwd", "a/%00", "..%252f..%252fsetup.py"):
            conn.request("GET", PREFIX + "/" + raw)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 404, (raw, resp.status)
            assert b"setup(" not in body and b"root:" not in body
    finally:
        conn.close()


def test_a_run_written_while_the_server_is_up_gains_steps(tb, logdir):
    """Real training with the callback while 16 clients fetch frames: it
    holds at batch 5 until the server shows the first steps, then goes on,
    paced, while the clients fetch."""
    import keras

    run = "live_" + tb.name
    seen = threading.Event()

    def pace(batch, logs):
        if batch == 5:
            seen.wait(timeout=60)
        time.sleep(0.04)

    trainer = threading.Thread(
        target=keras_models.train_run,
        args=(str(logdir[0] / run),),
        kwargs=dict(epochs=1, steps=80, snapshot_freq=1, callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=pace)]),
    )
    trainer.start()
    try:
        first = tb.wait_for(lambda: _run_steps(tb, run), timeout=60)
        seen.set()
        errors, fetched = _fetch_frames_concurrently(tb, run, trainer, clients=16)
    finally:
        seen.set()
        trainer.join()
    assert first[-1] <= 6  # held at batch 5
    assert not errors, errors[:5]
    assert fetched >= 16
    final = tb.wait_for(lambda: (s := _run_steps(tb, run)) and s[-1] == 80 and s, timeout=30)
    assert final == list(range(81))


def _run_steps(tb, run):
    runs = {r["run"]: r["steps"] for r in tb.get_json("runs")["runs"]}
    return runs.get(run)


def _fetch_frames_concurrently(tb, run, trainer, clients):
    errors = []
    fetched = [0]
    lock = threading.Lock()
    tags = [t["tag"] for t in tb.get_json("tags", {"run": run})["tensors"]]

    def client(seed):
        rng = random.Random(seed)
        while trainer.is_alive() or fetched[0] < clients:
            tag = rng.choice(tags)
            try:
                steps = tb.get_json("tags", {"run": run})["tensors"]
                steps = next(t["steps"] for t in steps if t["tag"] == tag)
                step = rng.choice(steps + [None])
                frame, served = tb.frame(run, tag, step)
                assert step is None or served == step
                assert frame.size > 0 and np.isfinite(frame).all()
            except Exception as e:  # collected, reported by the test
                with lock:
                    errors.append(repr(e))
                return
            with lock:
                fetched[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors, fetched[0]


# --- fuzz: arbitrary query strings never give a 500 ------------------------------

_ROUTES = ["runs", "structure", "tags", "stats", "frame", "units", "findings"]
_values = st.one_of(
    st.sampled_from(["mlp", "conv", "damaged", "dense/kernel", "dense_1/bias", "norm", "update", "0", "-1",
                     "1e3", ""]),
    st.text(max_size=30),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
_pairs = st.lists(
    st.tuples(st.sampled_from(["run", "tag", "step", "stat", "x"]), _values), max_size=4
).map(lambda kv: urllib.parse.urlencode(kv))
_raw = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40).map(
    lambda s: urllib.parse.quote(s, safe="=&%+;/?:@,$")
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(route=st.sampled_from(_ROUTES), query=st.one_of(_pairs, _raw))
def test_fuzz_query_strings_on_the_real_server(tb, route, query):
    conn = http.client.HTTPConnection("127.0.0.1", tb.port, timeout=30)
    try:
        conn.request("GET", PREFIX + "/" + route + "?" + query)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status < 500, (route, query, body)
    if resp.status != 200:
        assert resp.getheader("Content-Type") == "application/json", (route, query, body)
        assert b'"error"' in body
