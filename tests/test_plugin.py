"""The plugin's routes through TensorBoard's own WSGI app (werkzeug client).

The app is TensorBoard's `TensorBoardWSGI` (its routing and middlewares)
around our plugin, loaded by `NNVizLoader` with a `TBContext` whose data
provider is TensorBoard's `MultiplexerDataProvider` over a real logdir.
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from tensorboard import errors as tb_errors
from werkzeug import test as wtest
from werkzeug import wrappers

from runs import write_damaged_run, write_events, write_newer_structure_run, write_synthetic_run
from tensorboard_nnviz.serve import http
from tensorboard_nnviz.serve import plugin as plugin_lib

PREFIX = "/data/plugin/nnviz"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin_logdir")
    written = {
        "a": write_synthetic_run(str(root / "a"), list(range(0, 120, 2))),
        "damaged": write_damaged_run(str(root / "damaged")),
    }
    write_newer_structure_run(str(root / "newer_structure"))
    return root, written


@pytest.fixture(scope="module")
def client(logdir, make_app):
    app, _ = make_app(logdir[0])
    return wtest.Client(app)


def get_json(client, path, status=200):
    r = client.get(PREFIX + path)
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "application/json"
    body = r.get_data(as_text=True)
    assert "NaN" not in body and "Infinity" not in body
    return json.loads(body)


def assert_error(client, path, status, match):
    doc = get_json(client, path, status)
    assert set(doc) == {"error"}
    assert match in doc["error"], doc


# --- routes ---------------------------------------------------------------------


def test_runs(client):
    runs = {r["run"]: r for r in get_json(client, "/runs")["runs"]}
    assert runs["a"] == {"run": "a", "steps": list(range(0, 120, 2)), "tags": 2, "frame_steps": "all"}
    assert runs["damaged"]["steps"] == [0, 1, 2, 3]


def test_tags(client):
    tensors = get_json(client, "/tags?run=a")["tensors"]
    assert [t["tag"] for t in tensors] == ["dense/bias", "dense/kernel"]
    kernel = tensors[1]
    assert (kernel["shape"], kernel["rows"], kernel["cols"]) == ([4, 3], 4, 3)
    assert kernel["layer"] == "dense" and kernel["downsampled"] is False
    assert kernel["steps"] == list(range(0, 120, 2))


def test_structure(client):
    doc = get_json(client, "/structure?run=a")
    assert [w["tag"] for w in doc["layers"][0]["weights"]] == ["dense/kernel", "dense/bias"]


def test_stats_one_tag_and_all(client):
    one = get_json(client, "/stats?run=a&tag=dense/kernel")
    assert one["steps"] == list(range(0, 120, 2))
    assert one["update_l2"][0] is None and one["update_l2"][1] > 0
    every = get_json(client, "/stats?run=a")
    assert every["dense/kernel"] == one and set(every) == {"dense/kernel", "dense/bias"}


def test_stats_fields_answer_only_those(client, logdir):
    every = get_json(client, "/stats?run=a")
    # The route writes numpy columns (NaN as null): the same JSON as the
    # reader's plain answer.
    from tensorboard_nnviz.cli import local_provider
    from tensorboard_nnviz.serve import reader as reader_lib

    provider, eid = local_provider.local_data_provider(str(logdir[0]))
    assert every == reader_lib.NNVizReader(provider).stats_impl(None, eid, "a")
    some = get_json(client, "/stats?run=a&fields=update_ratio,l2,update_ratio")
    assert set(some) == set(every)
    for tag, columns in some.items():
        assert list(columns) == ["steps", "wall_times", "update_ratio", "l2"]
        assert columns == {k: every[tag][k] for k in columns}
    one = get_json(client, "/stats?run=a&tag=dense/bias&fields=alpha")
    assert one == {k: every["dense/bias"][k] for k in ("steps", "wall_times", "alpha")}
    assert set(one["alpha"]) == {None}  # a vector has no spectral stats


def test_frame_bytes_and_headers(client, logdir):
    expected = logdir[1]["a"]["dense/kernel"]
    for query, served in [("&step=51", 50), ("&step=50", 50), ("", 118), ("&step=999999", 118)]:
        r = client.get(PREFIX + "/frame?run=a&tag=dense/kernel" + query)
        assert r.status_code == 200
        assert r.mimetype == "application/octet-stream"
        assert r.headers["X-NNViz-Rows"] == "4" and r.headers["X-NNViz-Cols"] == "3"
        assert r.headers["X-NNViz-Step"] == str(served)
        cells = np.frombuffer(r.get_data(), dtype="<f4").reshape(4, 3)
        np.testing.assert_array_equal(cells, expected[served])


# --- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,status,match",
    [
        ("/tags", 400, "missing parameter 'run'"),
        ("/tags?run=", 400, "missing parameter 'run'"),
        ("/tags?run=a&run=b", 400, "given 2 times"),
        ("/structure", 400, "missing parameter 'run'"),
        ("/stats", 400, "missing parameter 'run'"),
        ("/frame?run=a", 400, "missing parameter 'tag'"),
        ("/frame?tag=dense/kernel", 400, "missing parameter 'run'"),
        ("/frame?run=a&tag=dense/kernel&step=x", 400, "must be a 64-bit integer"),
        ("/frame?run=a&tag=dense/kernel&step=1.5", 400, "must be a 64-bit integer"),
        ("/frame?run=a&tag=dense/kernel&step=99999999999999999999", 400, "64-bit"),
        ("/frame?run=a&tag=dense/kernel&step=" + "9" * 5000, 400, "64-bit"),
        ("/tags?run=nope", 404, "unknown run 'nope'"),
        ("/structure?run=nope", 404, "unknown run 'nope'"),
        ("/stats?run=nope", 404, "unknown run 'nope'"),
        ("/stats?run=a&tag=nope", 404, "no stats for weight 'nope'"),
        ("/frame?run=nope&tag=dense/kernel", 404, "unknown run 'nope'"),
        ("/frame?run=a&tag=nope", 404, "no weight tag 'nope'"),
        ("/frame?run=a&tag=dense/kernel&step=-1", 404, "no snapshot at or before step -1"),
        ("/frame?run=damaged&tag=short/kernel&step=2", 422, "frame blob has"),
        ("/frame?run=damaged&tag=future/kernel", 422, "upgrade tensorboard_nnviz"),
        ("/stats?run=damaged&tag=future/kernel", 422, "upgrade tensorboard_nnviz"),
        ("/structure?run=newer_structure", 422, "upgrade tensorboard_nnviz"),
        ("/stats?run=a&fields=l2,l3", 400, "unknown stat field 'l3'; known: absmax, alpha"),
        ("/stats?run=a&tag=dense/kernel&fields=nope,l3", 400, "unknown stat fields 'nope', 'l3'"),
        ("/stats?run=a&fields=", 400, "parameter 'fields' names no field"),
        ("/stats?run=a&fields=l2,,std", 400, "must be comma-separated stat names"),
        ("/stats?run=a&fields=l2,", 400, "must be comma-separated stat names"),
        ("/stats?run=a&fields=l2%20", 400, "must be comma-separated stat names"),
        ("/stats?run=a&fields=" + "x" * 5000, 400, "must be comma-separated stat names"),
        ("/stats?run=a&fields=l2&fields=std", 400, "given 2 times"),
        ("/stats?run=nope&fields=l2", 404, "unknown run 'nope'"),
    ],
)
def test_errors_are_json(client, path, status, match):
    assert_error(client, path, status, match)


def test_damaged_items_leave_the_rest_served(client):
    tags = {t["tag"]: t for t in get_json(client, "/tags?run=damaged")["tensors"]}
    assert "upgrade" in tags["future/kernel"]["error"]
    assert "error" not in tags["ok/kernel"]
    stats = get_json(client, "/stats?run=damaged")
    assert "upgrade" in stats["future/kernel"]["error"]
    assert stats["short/kernel"]["mean"] == [None] * 4  # NaN on disk → null
    for step in (0, 1, 3):
        assert client.get(PREFIX + "/frame?run=damaged&tag=short/kernel&step=%d" % step).status_code == 200
    assert client.get(PREFIX + "/frame?run=newer_structure&tag=d/kernel").status_code == 200


def test_tensorboard_public_errors_become_json():
    """A provider's tensorboard.errors (text/plain in TensorBoard) come out
    as JSON with their own status, through the one adapter."""

    class Raising:
        @http.route
        def app(self, request):
            raise tb_errors.NotFoundError("blob gone")

    r = wtest.Client(Raising().app).get("/")
    assert r.status_code == 404
    assert r.mimetype == "application/json"
    assert "blob gone" in r.get_json()["error"]


def test_json_writes_non_finite_as_null():
    request = wrappers.Request(wtest.EnvironBuilder().get_environ())
    r = http.json_response(request, {"a": [float("nan"), float("inf"), -float("inf"), 1.5]})
    assert json.loads(r.get_data()) == {"a": [None, None, None, 1.5]}


def test_large_json_is_gzipped_for_clients_that_take_it():
    value = {"x": (np.arange(50000) / 7).tolist() + [float("nan")], "s": np.arange(3)}
    expected = {"x": value["x"][:-1] + [None], "s": [0, 1, 2]}
    plain = wrappers.Request(wtest.EnvironBuilder().get_environ())
    zipped = wrappers.Request(wtest.EnvironBuilder(headers={"Accept-Encoding": "gzip"}).get_environ())
    r = http.json_response(zipped, value)
    assert r.headers["Content-Encoding"] == "gzip" and r.mimetype == "application/json"
    assert json.loads(gzip.decompress(r.get_data())) == expected
    r = http.json_response(plain, value)
    assert "Content-Encoding" not in r.headers
    assert json.loads(b"".join(r.response)) == expected


# --- static assets ---------------------------------------------------------------


def test_every_panel_file_is_served_with_its_type(client):
    folder = plugin_lib.frontend_dir()
    names = sorted(os.path.relpath(os.path.join(root, f), folder).replace(os.sep, "/")
                   for root, _, files in os.walk(folder) for f in files)
    # The module TensorBoard loads (es_module_path) must exist, and the
    # panel's nested folders are served too.
    assert "index.js" in names and "model/colors.js" in names and "view/heatmap.js" in names
    expected = {".js": "text/javascript", ".css": "text/css"}
    for name in names:
        ext = os.path.splitext(name)[1]
        assert ext in expected, "%s: a kind of file the plugin has no content type for" % name
        r = client.get(PREFIX + "/" + name)
        assert r.status_code == 200, name
        assert r.mimetype == expected[ext], (name, r.mimetype)
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        with open(os.path.join(folder, name), "rb") as f:
            assert r.get_data() == f.read(), name


def test_the_tab_is_enabled_exactly_for_logdirs_with_nnviz_data(logdir, make_app, tmp_path):
    """TensorBoard's own plugin listing: the tab is an ES module in an
    iframe, enabled where a run has nnviz data and not where runs hold only
    other plugins' data."""
    from tensorboard.plugins.scalar import summary_v2

    write_events(str(tmp_path / "scalars"), [(0, list(summary_v2.scalar_pb("loss", 1.0).value))])
    for root, enabled in ((logdir[0], True), (tmp_path, False)):
        app, _ = make_app(root)
        listing = wtest.Client(app).get("/data/plugins_listing").get_json()["nnviz"]
        assert listing["enabled"] is enabled, root
        assert listing["loading_mechanism"] == {"type": "IFRAME", "module_path": PREFIX + "/index.js"}


TRAVERSALS = [
    "../setup.py",
    "../../setup.py",
    "%2e%2e/setup.py",
    "%2e%2e%2fsetup.py",
    "..%2fsetup.py",
    ".%2e/setup.py",
    "%2E%2E%2Fsetup.py",
    "..%5csetup.py",
    "..\\setup.py",
    "%252e%252e%252fsetup.py",
    "/" + os.path.join(REPO, "setup.py").lstrip("/"),
    "%2f" + os.path.join(REPO, "setup.py").lstrip("/").replace("/", "%2f"),
    "....//setup.py",
    "./../setup.py",
    "x/../../setup.py",
    "%00",
    "index.js%00.js",
    "..%00/setup.py",
    "../tensorboard_nnviz/reader.py",
    "../tests/tb_server.py",
    "..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "../../../../../../etc/passwd",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_path_traversal(client, path):
    r = client.get(PREFIX + "/" + path)
    assert r.status_code in (400, 404), (path, r.status_code)
    body = r.get_data()
    assert b"setup(" not in body and b"root:" not in body and b"import " not in body


def test_unknown_static_types_are_not_served(client, tmp_path):
    assert client.get(PREFIX + "/does-not-exist.js").status_code == 404
    r = client.get(PREFIX + "/README")
    assert r.status_code == 404 and r.mimetype == "application/json"


# --- loader -----------------------------------------------------------------------


def test_fix_flags_keeps_every_nnviz_sample_and_one_frame_and_units_row_unless_user_set():
    loader = plugin_lib.NNVizLoader()
    flags = argparse.Namespace(samples_per_plugin={"images": 5})
    loader.fix_flags(flags)
    assert flags.samples_per_plugin == {"images": 5, "nnviz": 0, "nnviz_frames": 1, "nnviz_units": 1}
    flags = argparse.Namespace(samples_per_plugin={"nnviz": 50, "nnviz_frames": 0})
    loader.fix_flags(flags)
    assert flags.samples_per_plugin == {"nnviz": 50, "nnviz_frames": 0, "nnviz_units": 1}


def test_fix_flags_through_tensorboard_argument_parsing():
    """TensorBoard finds the loader through the entry point and runs fix_flags."""
    from tensorboard import program

    for argv, expected in [
        (["tensorboard", "--logdir=x"], (0, 1)),
        (["tensorboard", "--logdir=x", "--samples_per_plugin=nnviz=7,images=3"], (7, 1)),
        (["tensorboard", "--logdir=x", "--samples_per_plugin=nnviz_frames=0"], (0, 0)),
    ]:
        tb = program.TensorBoard()  # default plugins + entry points
        assert any(isinstance(p, plugin_lib.NNVizLoader) for p in tb.plugin_loaders)
        tb.configure(argv)
        samples = tb.flags.samples_per_plugin
        assert (samples["nnviz"], samples["nnviz_frames"]) == expected


_NO_TF = textwrap.dedent(
    """
    import sys, importlib.abc

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                raise ImportError("blocked: " + name)

    sys.meta_path.insert(0, Block())
    from werkzeug import test as wtest
    from tensorboard.backend import application
    from tensorboard.plugins import base_plugin
    from tensorboard_nnviz.cli.local_provider import local_data_provider
    from tensorboard_nnviz.serve import plugin

    provider, _ = local_data_provider(sys.argv[1])
    p = plugin.NNVizLoader().load(base_plugin.TBContext(data_provider=provider, logdir=sys.argv[1]))
    client = wtest.Client(application.TensorBoardWSGI([p], data_provider=provider))
    runs = client.get("/data/plugin/nnviz/runs").get_json()["runs"]
    frame = client.get("/data/plugin/nnviz/frame?run=a&tag=dense/kernel&step=3")  # from disk
    loaded = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")]
    print(len(runs), frame.status_code, frame.headers["X-NNViz-Step"], loaded)
    """
)


def test_plugin_works_without_tensorflow_or_keras(logdir):
    out = subprocess.run(
        [sys.executable, "-c", _NO_TF, str(logdir[0])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "200", "2", "[]"], out.stdout + out.stderr
