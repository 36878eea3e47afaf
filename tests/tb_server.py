"""A real `tensorboard` subprocess for end-to-end tests and benchmarks.

    with TensorBoardServer(logdir, load_fast=True) as tb:
        runs = tb.get_json("/data/plugin/nnviz/runs")
        tb.wait_for(lambda: tb.get_json(...)["runs"])

The server runs on a free localhost port; leaving the `with` block kills the
whole process tree (TensorBoard and, with `load_fast=True`, its RustBoard
`tensorboard-data-server` child).

Also here, for tests that need data without training a model (written with
TensorBoard's own EventFileWriter and the format module):
- `write_synthetic_run(run_dir, steps)` / `SyntheticWriter(run_dir)`: a
  healthy run; use one `SyntheticWriter` to add steps later (one event file,
  as a training process writes: a second file in the same second can sort
  before the first and be skipped by the Python ingester);
- `write_damaged_run`, `write_newer_structure_run`, `truncate_event_file`,
  `newer_content`, `write_events`: crafted damage.
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
import zlib

import numpy as np
import psutil

PLUGIN_PREFIX = "/data/plugin/nnviz"


def _free_port():
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
    """

    def __init__(self, logdir, load_fast=False, extra_args=(), timeout=90):
        self.logdir = str(logdir)
        self.load_fast = bool(load_fast)
        self.extra_args = list(extra_args)
        self.timeout = timeout
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
        self.port = _free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        argv = _tensorboard_argv() + [
            "--logdir",
            self.logdir,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--load_fast=%s" % ("true" if self.load_fast else "false"),
        ]
        argv += self.extra_args
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
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


# --- synthetic data ------------------------------------------------------------


def synthetic_weight(tag, shape, step, seed=0):
    """The deterministic weight `write_synthetic_run` writes for (tag, step)."""
    rng = np.random.default_rng([zlib.crc32(tag.encode("utf-8")), seed])
    base = rng.standard_normal(shape).astype(np.float32)
    return base + np.float32(0.01 * step)


class SyntheticWriter:
    """Writes nnviz snapshots into one run without Keras, as a training
    process would: one event file, flushed after every snapshot.

    Frames are laid out rows [0..n-2], cols [n-1] (a Dense-like layout), exact
    when small enough, block-reduced with layout.make_frame otherwise.

    Args:
      logdir: the run's directory.
      weights: {tag: shape}; default a 4x3 Dense kernel and its bias.
      structure: write the model structure first.
      seed: varies the weights (see `synthetic_weight`).
    """

    def __init__(self, logdir, weights=None, structure=True, max_cells=65536, seed=0, wall_time=None):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.weights = weights or {"dense/kernel": (4, 3), "dense/bias": (3,)}
        self.max_cells = max_cells
        self.seed = seed
        self.wall_time = wall_time
        self.written = {tag: {} for tag in self.weights}  # {tag: {step: frame}}
        self._prev = {}
        self._init = {}
        self._structure = structure
        os.makedirs(logdir, exist_ok=True)
        self._writer = EventFileWriter(str(logdir))

    def add_event(self, event):
        self._writer.add_event(event)
        self._writer.flush()

    def write(self, steps):
        from tensorboard.compat.proto import event_pb2, summary_pb2

        from tensorboard_nnviz import format as fmt

        for step in steps:
            values = []
            if self._structure:
                values.append(fmt.structure_value(_synthetic_structure(self.weights)))
                self._structure = False
            for tag, shape in self.weights.items():
                w = synthetic_weight(tag, shape, step, self.seed)
                frame, layout = _frame_of(w, self.max_cells)
                content = fmt.frame_content(
                    shape=list(shape), dtype="float32", layout=layout, rows=frame.shape[0], cols=frame.shape[1]
                )
                values.append(fmt.frame_value(tag, fmt.encode_frame(frame), content))
                stats = _simple_stats(w, self._prev.get(tag), self._init.setdefault(tag, w))
                values.append(fmt.stats_value(tag, stats))
                self._prev[tag] = w
                self.written[tag][step] = frame
            self.add_event(_event(event_pb2, summary_pb2, step, self.wall_time, values))
        return self

    def close(self):
        self._writer.close()


def write_synthetic_run(logdir, steps, **kwargs):
    """Writes nnviz snapshots at `steps` into `logdir` (one run, one event
    file; see `SyntheticWriter`). Returns {tag: {step: frame}} written."""
    writer = SyntheticWriter(logdir, **kwargs)
    try:
        writer.write(steps)
    finally:
        writer.close()
    return writer.written


def _event(event_pb2, summary_pb2, step, wall_time, values):
    return event_pb2.Event(
        step=int(step),
        wall_time=time.time() if wall_time is None else wall_time,
        summary=summary_pb2.Summary(value=values),
    )


def _frame_of(w, max_cells):
    n = w.ndim
    layout = {"row_axes": list(range(n - 1)), "col_axes": [n - 1], "groups": []}
    from tensorboard_nnviz.layout import make_frame

    frame, block = make_frame(w, layout, max_cells)
    return frame, dict(layout, block=[int(b) for b in block])


def _simple_stats(w, prev, init):
    from tensorboard_nnviz import format as fmt

    w64 = w.astype(np.float64)
    stats = {k: None for k in fmt.STAT_FIELDS}
    stats.update(
        mean=float(w64.mean()),
        std=float(w64.std()),
        min=float(w64.min()),
        max=float(w64.max()),
        l2=float(np.linalg.norm(w64)),
        absmax=float(np.abs(w64).max()),
        p01=float(np.percentile(w64, 1)),
        p99=float(np.percentile(w64, 99)),
        zero_frac=float(np.mean(np.abs(w64) <= 1e-8)),
        nan=0.0,
        inf=0.0,
    )
    if prev is not None:
        d = w64 - prev
        stats.update(update_l2=float(np.linalg.norm(d)), update_absmax=float(np.abs(d).max()))
    return stats


def _synthetic_structure(weights):
    layers = {}
    for tag, shape in weights.items():
        path, name = tag.rsplit("/", 1)
        layer = layers.setdefault(
            path,
            {
                "path": path,
                "class": "Dense",
                "params": 0,
                "trainable": True,
                "inbound": [],
                "output_shape": [None, int(shape[-1])],
                "weights": [],
            },
        )
        layer["weights"].append({"name": name, "tag": tag, "shape": list(shape), "dtype": "float32"})
        layer["params"] += int(np.prod(shape))
    return {"model": {"name": "synthetic", "class": "Sequential"}, "layers": list(layers.values())}


def newer_content(content):
    """`content` (plugin_data.content bytes) claiming the next format version."""
    from tensorboard_nnviz import format as fmt

    doc = json.loads(content)
    doc["version"] = fmt.FORMAT_VERSION + 1
    return json.dumps(doc).encode("utf-8")


def write_events(logdir, events):
    """Writes `[(step, [Summary.Value])]` as one event file in `logdir`."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    os.makedirs(logdir, exist_ok=True)
    writer = EventFileWriter(str(logdir))
    try:
        for step, values in events:
            writer.add_event(_event(event_pb2, summary_pb2, step, None, values))
    finally:
        writer.close()


def write_damaged_run(logdir):
    """A run with one healthy weight (`ok/kernel`), one whose frame at step 2
    has the wrong length (`short/kernel`), one whose frame and stats series
    are of a newer format version (`future/kernel`), and stats of `short/kernel`
    with a NaN. Returns {tag: {step: frame}} of the well-formed frames."""
    from tensorboard_nnviz import format as fmt

    frames = {"ok/kernel": {}, "short/kernel": {}}
    events = []
    for step in (0, 1, 2, 3):
        values = []
        for tag in ("ok/kernel", "short/kernel", "future/kernel"):
            w = synthetic_weight(tag, (3, 2), step)
            frame, layout = _frame_of(w, 65536)
            content = fmt.frame_content(shape=[3, 2], dtype="float32", layout=layout, rows=3, cols=2)
            blob = fmt.encode_frame(frame)
            stats = _simple_stats(w, None, w)
            stats_content = fmt.stats_content()
            if tag == "short/kernel" and step == 2:
                blob = blob[:-4]
            elif tag in frames:
                frames[tag][step] = frame
            if tag == "short/kernel":
                stats["mean"] = float("nan")
            if tag == "future/kernel":
                content = newer_content(content)
                stats_content = newer_content(stats_content)
            values.append(fmt.frame_value(tag, blob, content))
            values.append(fmt.stats_value(tag, stats, stats_content))
        events.append((step, values))
    write_events(logdir, events)
    return frames


def write_newer_structure_run(logdir):
    """A healthy one-weight run whose structure is of a newer format version."""
    from tensorboard.compat.proto import event_pb2, summary_pb2

    from tensorboard_nnviz import format as fmt

    writer = SyntheticWriter(logdir, weights={"d/kernel": (2, 2)}, structure=False)
    try:
        doc = _synthetic_structure(writer.weights)
        value = fmt.structure_value(doc, newer_content(fmt.structure_content()))
        writer.add_event(_event(event_pb2, summary_pb2, 0, None, [value]))
        writer.write([0, 1])
    finally:
        writer.close()


def truncate_event_file(run_dir, fraction=0.6):
    """Cuts the run's (single) event file to `fraction` of its bytes, through
    the middle of a record. Returns the new size."""
    (name,) = [f for f in os.listdir(run_dir) if "tfevents" in f]
    path = os.path.join(run_dir, name)
    size = int(os.path.getsize(path) * fraction)
    with open(path, "r+b") as f:
        f.truncate(size)
    return size
