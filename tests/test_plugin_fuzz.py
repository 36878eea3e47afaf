"""Arbitrary query strings and paths at every route: never a 500, errors are JSON.

Through TensorBoard's own WSGI app in-process (the real-server variant with
fewer examples is in test_plugin_e2e.py). TensorBoard's middlewares answer a
few things before our plugin sees them (e.g. a malformed
`tensorBoardFeatureFlags` parameter): those keys are not generated here.
"""

import json
import re
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug import test as wtest

from runs import write_damaged_run, write_synthetic_run
from test_units import write_damaged_units_run

PREFIX = "/data/plugin/nnviz"
ROUTES = ["runs", "structure", "tags", "stats", "frame", "units", "findings"]


@pytest.fixture(scope="module")
def client(tmp_path_factory, make_app):
    root = tmp_path_factory.mktemp("fuzz_logdir")
    write_synthetic_run(str(root / "a"), [0, 3, 9])
    write_damaged_run(str(root / "damaged"))
    write_damaged_units_run(str(root / "damaged_units"))
    app, _ = make_app(root)
    return wtest.Client(app)


_known = st.sampled_from(
    ["a", "damaged", "damaged_units", "dense/kernel", "dense/bias", "short/kernel", "future/kernel",
     "norm", "update", "0", "2", "3", "-1", "9" * 30, ""]
)
_values = st.one_of(_known, st.text(max_size=40), st.binary(max_size=20).map(lambda b: b.decode("latin-1")))
_keys = st.one_of(st.sampled_from(["run", "tag", "step", "stat"]), st.text(max_size=8))
_pairs = st.lists(st.tuples(_keys, _values), max_size=5).map(urllib.parse.urlencode)
# Raw strings: unescaped '&', '=', '%', '+', ';', broken %-escapes.
_raw = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60).map(
    lambda s: urllib.parse.quote(s, safe="=&%+;/?:@,$[]")
)
_queries = st.one_of(_pairs, _raw, st.binary(max_size=30).map(lambda b: urllib.parse.quote_from_bytes(b, safe="=&%")))


def _check(response, what):
    assert response.status_code < 500, (what, response.status_code, response.get_data()[:300])
    if response.status_code != 200:
        assert response.mimetype == "application/json", what
        doc = json.loads(response.get_data())
        assert set(doc) == {"error"} and isinstance(doc["error"], str) and doc["error"], what
    elif response.mimetype == "application/json":
        body = response.get_data(as_text=True)
        assert "NaN" not in body and "Infinity" not in body, what


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), query=_queries)
def test_query_strings(client, route, query):
    _check(client.get(PREFIX + "/" + route, query_string=query), (route, query))


_segments = st.lists(
    st.one_of(
        st.sampled_from(["..", ".", "", "%2e%2e", "%2f", "%5c", "%00", "..%2f", "index.js", "api.js", "x.css"]),
        st.text(max_size=12),
    ),
    min_size=1,
    max_size=5,
).map(lambda parts: "/".join(urllib.parse.quote(p, safe="%./") for p in parts))


def _reaches_plugin(path):
    # TensorBoard's router re-parses the decoded path as a URL ('#' and '?'
    # end it) and strips a trailing slash: what is left of "/data/plugin/nnviz/"
    # alone matches no plugin route and is TensorBoard's own text/plain 404.
    decoded = urllib.parse.unquote(path)
    return re.split(r"[#?]", decoded)[0] != ""


_segments = _segments.filter(_reaches_plugin)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=_segments)
def test_static_paths(client, path):
    response = client.get(PREFIX + "/" + path)
    _check(response, path)
    if response.status_code == 200:
        # Only the panel's own files, with an explicit type.
        assert response.mimetype in ("text/javascript", "text/css", "text/html", "application/json", "image/svg+xml", "image/png", "application/octet-stream"), path
