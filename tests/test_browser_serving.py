"""The panel where users meet it beyond a local TensorBoard, in a real
browser (Debian's chromium through Playwright):

- served by a `tensorboard` from the wheel, installed (not editable) with
  its dependencies in a fresh venv: the nested panel files ship;
- under TensorBoard's `--path_prefix`, as JupyterHub's and Colab's proxies
  reach it;
- inside the output `%tensorboard` shows in a notebook (TensorBoard's own
  tensorboard/notebook.py writes it), on a local Jupyter and behind a
  JupyterHub-style proxy, with and without a path prefix.

Each shows the weights of a run written by the real writer: a cell read off
the panel is checked against the frame written.
"""

import os
import shutil
import subprocess
import sys
import threading
import types
import urllib.error
import urllib.request
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runs import write_synthetic_run
from tb_server import TensorBoardServer
from test_browser import assert_3_digits, browser, no_errors, open_panel, readout_value  # noqa: F401 (browser: a fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = "mlp"
PREFIX = "/user/ada/tensorboard"  # a proxy's path to TensorBoard


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    """One run written by the real writer; {tag: {step: frame}} as written."""
    root = tmp_path_factory.mktemp("serving_logs")
    written = write_synthetic_run(str(root / RUN), steps=[0, 1, 2])
    return str(root), written


def no_errors_but_fonts(p):
    """`no_errors`, but for TensorBoard's own page asking for its fonts at
    /font-roboto/ whatever its path prefix (tensorflow/tensorboard#1885):
    behind a proxy they 404 and the page falls back to another font."""
    p.errors = [e for e in p.errors if not ("status of 404" in e and "/font-roboto/" in e)]
    no_errors(p, direct=False)


def shows_the_written_weights(panel, written):
    """The panel drew the run's latest step, and a cell reads as written."""
    panel.wait_drawn(2)
    tag = panel.frame.evaluate("() => window.nnviz.tag")
    text = panel.hover_cell(0, 1)
    assert_3_digits(readout_value(text), float(written[tag][2][0, 1]))


# --- the wheel ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from a copy of this checkout (a build leaves build/ and
    *.egg-info beside the sources)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis",
        "node_modules", "demo_logs", "bench_logs", "test-artifacts"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
          "-w", str(tmp / "dist"), str(src)])
    [name] = os.listdir(tmp / "dist")
    return str(tmp / "dist" / name)


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh venv (no system site-packages) with the wheel and its
    dependencies installed by pip as a user would; its bin/ folder."""
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = str(venv / "bin" / "python")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", wheel])
    return str(venv / "bin")


def _run(argv, env=None, cwd=None):
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    assert done.returncode == 0, "%s failed:\n%s\n%s" % (argv, done.stdout[-3000:], done.stderr[-3000:])
    return done.stdout


def _outside_this_checkout():
    """This process's environment without the PYTHONPATH that puts the
    checkout first: the venv must run what the wheel installed."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_the_wheel_holds_the_panel_the_http_docs_and_every_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = []
    for base, packaged in (("frontend", "tensorboard_nnviz/frontend"), ("tensorboard_nnviz", "tensorboard_nnviz")):
        for folder, dirs, files in os.walk(os.path.join(ROOT, base)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            rel = os.path.relpath(folder, os.path.join(ROOT, base))
            for f in files:
                if base == "frontend" or f.endswith((".py", ".md")):
                    expected.append(os.path.normpath(os.path.join(packaged, rel, f)))
    assert "tensorboard_nnviz/serve/http_api.md" in expected
    assert any(e.startswith("tensorboard_nnviz/frontend/view/") for e in expected)
    assert sorted(set(expected) - names) == []
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "frontend/"))]


def test_the_installed_wheel_serves_the_panel(installed, logdir, browser):  # noqa: F811
    env = _outside_this_checkout()
    where = _run([os.path.join(installed, "python"), "-c",
                  "import tensorboard_nnviz.serve.plugin as p; print(p.__file__); print(p.frontend_dir())"],
                 env=env, cwd="/")
    venv = os.path.dirname(installed)
    assert all(line.startswith(venv + os.sep) for line in where.split()), where
    # The command line from the wheel too.
    assert "dense/kernel" in _run([os.path.join(installed, "nnviz"), "inspect", logdir[0]], env=env, cwd="/")
    with TensorBoardServer(logdir[0], load_fast=True, executable=os.path.join(installed, "tensorboard"),
                           env=env) as server:
        p = open_panel(browser, server)
        try:
            shows_the_written_weights(p, logdir[1])
            base = server.url + "/data/plugin/nnviz/"
            loaded = {u[len(base):].split("?")[0] for u in p.requests if u.startswith(base)}
            for folder in ("model", "data", "view"):
                files = sorted(os.listdir(os.path.join(ROOT, "frontend", folder)))
                assert set(folder + "/" + f for f in files) <= loaded, (folder, sorted(loaded))
            assert {"index.js", "app.js", "style.css"} <= loaded
        finally:
            p.page.close()
        no_errors(p, direct=False)


# --- behind a path prefix ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tb(logdir):
    with TensorBoardServer(logdir[0], load_fast=False) as server:
        yield server


@pytest.fixture(scope="module", params=[False, True], ids=["python", "rustboard"])
def tb_prefixed(request, logdir):
    """TensorBoard with `--path_prefix`, on both ingesters (`url` ends with the prefix)."""
    with TensorBoardServer(logdir[0], load_fast=request.param, path_prefix=PREFIX) as server:
        yield server


def test_the_panel_under_a_path_prefix(tb_prefixed, logdir, browser):  # noqa: F811
    """Every request of the panel stays under the prefix: a proxy that
    forwards only its own path serves the whole panel. (TensorBoard's own
    page asks for its fonts at /font-roboto/, outside the prefix.)"""
    assert tb_prefixed.url.endswith(PREFIX)
    p = open_panel(browser, tb_prefixed)
    try:
        shows_the_written_weights(p, logdir[1])
        ours = [u for u in p.requests if "/data/plugin/nnviz/" in u or "/data/plugin_entry.html" in u]
        assert any("/data/plugin/nnviz/view/" in u for u in ours)
        assert [u for u in ours if not u.startswith(tb_prefixed.url + "/data/")] == []
    finally:
        p.page.close()
    no_errors_but_fonts(p)


# --- in a notebook ------------------------------------------------------------------------


def notebook_output(port, monkeypatch, proxy_url=None):
    """The HTML `%tensorboard` shows in a Jupyter notebook for TensorBoard on
    `port`: tensorboard.notebook's own (an iframe of TensorBoard's page, at
    the notebook's host on `port`, or at $TENSORBOARD_PROXY_URL behind a
    proxy), taken where IPython would display it."""
    from tensorboard import notebook

    shown = []
    display = types.ModuleType("IPython.display")
    display.HTML = lambda html: html
    display.display = shown.append
    ipython = types.ModuleType("IPython")
    ipython.display = display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    if proxy_url is None:
        monkeypatch.delenv("TENSORBOARD_PROXY_URL", raising=False)
    else:
        monkeypatch.setenv("TENSORBOARD_PROXY_URL", proxy_url)
    notebook._display_ipython(port, height=900, display_handle=None)
    [html] = shown
    assert "<iframe" in html, html
    return html


class NotebookServer:
    """The notebook server's part: the page holding a cell's output at
    /notebooks/output.html, and, as jupyter-server-proxy does, `prefix`
    forwarded to TensorBoard at `upstream` (`strip`: without the prefix)."""

    def __init__(self, output, upstream=None, prefix=None, strip=False):
        self.page = ('<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
                     '<title>notebook</title></head><body><div class="output">%s</div></body></html>' % output)
        self.upstream = upstream
        self.prefix = prefix
        self.strip = strip
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NotebookHandler)
        self._httpd.owner = self
        self.url = "http://127.0.0.1:%d" % self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()
        return False


class _NotebookHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        self._answer()

    def do_POST(self):
        self._answer()

    def log_message(self, *args):
        pass

    def _answer(self):
        owner = self.server.owner
        if self.path == "/notebooks/output.html":
            self._send(200, [("Content-Type", "text/html; charset=utf-8")], owner.page.encode("utf-8"))
        elif owner.prefix and self.path.startswith(owner.prefix + "/"):
            self._forward(owner)
        else:
            self._send(404, [("Content-Type", "text/plain")], b"not found")

    def _forward(self, owner):
        path = self.path[len(owner.prefix):] if owner.strip else self.path
        length = int(self.headers.get("Content-Length") or 0)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        request = urllib.request.Request(owner.upstream + path, data=self.rfile.read(length) if length else None,
                                         headers=headers, method=self.command)
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                status, reply, body = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, reply, body = e.code, e.headers, e.read()
        skip = ("connection", "transfer-encoding", "content-length")
        self._send(status, [(k, v) for k, v in reply.items() if k.lower() not in skip], body)

    def _send(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def shows_the_run_in_a_notebook(browser, output, server, written, upstream=None, prefix=None, strip=False):  # noqa: F811
    """Opens the notebook page holding `output` (its server proxying `prefix`
    to `upstream`, see NotebookServer): the panel, inside TensorBoard's page
    inside the output, loads through the proxy and shows the run."""
    with NotebookServer(output, upstream=upstream, prefix=prefix, strip=strip) as notebook:
        tensorboard_url = notebook.url + prefix if prefix else server.url
        p = open_panel(browser, server, url=notebook.url + "/notebooks/output.html")
        try:
            assert p.frame.url.startswith(tensorboard_url + "/data/plugin_entry.html"), p.frame.url
            shows_the_written_weights(p, written)
        finally:
            p.page.close()
    no_errors_but_fonts(p)


def test_the_panel_in_a_local_notebook(tb, logdir, browser, monkeypatch):  # noqa: F811
    """Jupyter on this machine: the output frames TensorBoard's own port."""
    shows_the_run_in_a_notebook(browser, notebook_output(tb.port, monkeypatch), tb, logdir[1])


def test_the_panel_in_a_notebook_behind_a_proxy(tb, logdir, browser, monkeypatch):  # noqa: F811
    """JupyterHub: TensorBoard reached through the notebook server's proxy,
    which strips its own path (TENSORBOARD_PROXY_URL=/user/ada/proxy/%PORT%/)."""
    output = notebook_output(tb.port, monkeypatch, proxy_url="/user/ada/proxy/%PORT%/")
    shows_the_run_in_a_notebook(browser, output, tb, logdir[1], upstream=tb.url,
                                prefix="/user/ada/proxy/%d" % tb.port, strip=True)


def test_the_panel_in_a_notebook_behind_a_proxy_with_a_path_prefix(tb_prefixed, logdir, browser,  # noqa: F811
                                                                 monkeypatch):
    """A proxy that forwards its path unchanged: TensorBoard started with
    that path as `--path_prefix`."""
    output = notebook_output(tb_prefixed.port, monkeypatch, proxy_url=PREFIX + "/")
    shows_the_run_in_a_notebook(browser, output, tb_prefixed, logdir[1], upstream=tb_prefixed.url[: -len(PREFIX)],
                                prefix=PREFIX)
