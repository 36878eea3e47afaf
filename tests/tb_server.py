"""A real `tensorboard` subprocess for end-to-end tests and benchmarks.

    with TensorBoardServer(logdir, load_fast=True) as tb:
        runs = tb.get_json("/data/plugin/nnviz/runs")
        tb.wait_for(lambda: tb.get_json(...)["runs"])

The server runs on a free localhost port (`free_port`); leaving the `with`
block kills the whole process tree (TensorBoard and, with `load_fast=True`,
its RustBoard `tensorboard-data-server` child).

Runs to serve without training a model: runs.py.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import psutil

PLUGIN_PREFIX = "/data/plugin/nnviz"


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tensorboard_argv():
    exe = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    if os.path.exists(exe):
        return [exe]
    return [sys.executable, "-m", "tensorboard.main"]


class Response:
    """Status, headers (case-insensitive `get`) and body of one request."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def content_type(self):
        return self.headers.get("Content-Type", "")

    def json(self):
        return json.loads(self.body.decode("utf-8"))


class TensorBoardServer:
    """Context manager around a `tensorboard --logdir` subprocess.

    Args:
      logdir: the directory to serve.
      load_fast: False for the Python ingester, True for RustBoard (the
        `--load_fast=true` data server; startup fails loudly if missing).
      extra_args: more command-line flags, e.g. `("--reload_interval", "1")`.
      timeout: seconds to wait for the server to answer.
      path_prefix: TensorBoard's `--path_prefix` (as behind a proxy): `url`
        ends with it.
      executable: the `tensorboard` to run (default: this Python's).
      env: the environment to run it in (default: this process's).
      logdir_flag: "--logdir"; "--logdir_spec" or "--grpc_data_provider"
        (then `logdir` is the spec or the data server's address).
    """

    def __init__(self, logdir, load_fast=False, extra_args=(), timeout=90, path_prefix="", executable=None,
                 env=None, logdir_flag="--logdir"):
        self.logdir = str(logdir)
        self.logdir_flag = logdir_flag
        self.load_fast = bool(load_fast)
        self.extra_args = list(extra_args)
        self.timeout = timeout
        self.path_prefix = path_prefix
        self.executable = executable
        self.env = os.environ if env is None else env
        self.port = None
        self.url = None
        self._proc = None
        self._log = None

    # --- lifecycle -------------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d%s" % (self.port, self.path_prefix)
        argv = ([self.executable] if self.executable else _tensorboard_argv()) + [
            self.logdir_flag,
            self.logdir,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--load_fast=%s" % ("true" if self.load_fast else "false"),
        ]
        if self.path_prefix:
            argv += ["--path_prefix", self.path_prefix]
        argv += self.extra_args
        env = dict(self.env, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        self._log = tempfile.NamedTemporaryFile(
            prefix="tensorboard_", suffix=".log", delete=False
        )
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,  # RustBoard's child exits when this closes
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # own process group: kill the whole tree
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self):
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    "tensorboard exited with %s:\n%s" % (self._proc.returncode, self.log())
                )
            try:
                if self.get("/data/plugins_listing").status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise TimeoutError("tensorboard did not answer in %ss:\n%s" % (self.timeout, self.log()))
        if self.load_fast and not self.data_server_running():
            raise RuntimeError("RustBoard (tensorboard-data-server) is not running:\n" + self.log())

    def cpu_seconds(self):
        """CPU seconds used so far by TensorBoard and its children (RustBoard)."""
        procs = [psutil.Process(self._proc.pid)]
        procs += procs[0].children(recursive=True)
        total = 0.0
        for p in procs:
            try:
                times = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def wait_idle(self, cpu=0.1, seconds=2, timeout=1800):
        """Waits until TensorBoard has used less than `cpu` of a core in
        each of `seconds` consecutive seconds: done loading what it found."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < seconds:
            if time.monotonic() > deadline:
                raise TimeoutError("tensorboard stayed busy for %ss" % timeout)
            before = self.cpu_seconds()
            time.sleep(1.0)
            quiet = quiet + 1 if self.cpu_seconds() - before < cpu else 0

    def stop(self):
        if self._proc is None:
            return
        try:
            procs = [psutil.Process(self._proc.pid)]
            procs += procs[0].children(recursive=True)
        except psutil.NoSuchProcess:
            procs = []
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for p in procs:  # children that left the process group
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=10)
        self._proc.wait(timeout=10)
        if self._proc.stdin:
            self._proc.stdin.close()
        self._proc = None
        self._log.close()
        try:
            os.unlink(self._log.name)
        except OSError:
            pass

    def log(self):
        """TensorBoard's output so far (for failure messages)."""
        try:
            with open(self._log.name, "rb") as f:
                return f.read().decode("utf-8", "replace")[-20000:]
        except (OSError, AttributeError):
            return ""

    def data_server_running(self):
        """True when a RustBoard `tensorboard-data-server` child is alive."""
        if self._proc is None:
            return False
        try:
            children = psutil.Process(self._proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return False
        # The binary is <site-packages>/tensorboard_data_server/bin/server.
        return any(_is_data_server(c) for c in children)

    # --- requests --------------------------------------------------------------

    def get(self, path, params=None, timeout=30):
        """GETs `path` (absolute, or relative to the nnviz plugin when it
        does not start with '/'); never raises for HTTP error statuses."""
        if not path.startswith("/"):
            path = PLUGIN_PREFIX + "/" + path
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return Response(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers, e.read())

    def get_json(self, path, params=None):
        r = self.get(path, params)
        if r.status != 200:
            raise AssertionError("%s -> %d %s" % (path, r.status, r.body[:500]))
        return r.json()

    def frame(self, run, tag, step=None):
        """GET /frame → (float32 frame, step served); AssertionError unless 200."""
        import numpy as np

        params = {"run": run, "tag": tag}
        if step is not None:
            params["step"] = step
        r = self.get("frame", params)
        assert r.status == 200, (run, tag, step, r.status, r.body[:300])
        assert r.content_type == "application/octet-stream"
        rows, cols = int(r.headers["X-NNViz-Rows"]), int(r.headers["X-NNViz-Cols"])
        return np.frombuffer(r.body, dtype="<f4").reshape(rows, cols), int(r.headers["X-NNViz-Step"])

    def rss(self):
        """Resident bytes of the whole process tree (RustBoard is a child)."""
        procs = [psutil.Process(self._proc.pid)]
        total = 0
        for p in procs + procs[0].children(recursive=True):
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def wait_for(self, predicate, timeout=60, interval=0.25):
        """Polls `predicate()` until truthy (returns it) or times out."""
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            try:
                value = predicate()
                if value:
                    return value
            except (AssertionError, OSError, ValueError, KeyError) as e:
                last_error = e
            time.sleep(interval)
        raise TimeoutError("condition not met in %ss (last error: %r)\n%s" % (timeout, last_error, self.log()[-3000:]))


def _is_data_server(process):
    try:
        argv = process.cmdline()
    except psutil.Error:
        return False
    return bool(argv) and "tensorboard_data_server" in argv[0] and "--die-after-stdin" in argv
