"""Whole-run answers on a long run: the dynamics map's first paint and the
first /findings, before and after, on both ingesters, side by side.

Two runs of `--tensors` weights (half 4x4 Dense kernels, half their
4-element biases: small, so writing is quick) x `--snapshots` snapshots,
each written by the real `SnapshotWriter` of its revision (healthy random
walks, spectral stats off): "before" with the package at `--before`
(default: the merge base with main, exported with `git archive`), "after"
with this checkout. Each is served by a real `tensorboard` running that
revision's plugin, on the Python ingester and on RustBoard, and measured:

- cold /findings: the first GET /findings?run=R after TensorBoard has
  loaded every snapshot and gone idle (nothing else asked before it but
  /runs), client side, gzip accepted as a browser does; by then the
  plugin has read the run's stats tables in the background, as
  TensorBoard read the run (disk_stats.DiskTables.preread);
- map first paint, in chromium (the panel's entry page), measured in the
  page from choosing the map to its first painted canvas:
  - "at page open": the map chosen the moment the panel's controls exist,
    on a fresh TensorBoard (nothing of the run read before); this includes
    the panel's own start (/runs, then /tags and /structure);
  - "panel up": a new page, the map chosen once the panel has drawn its
    first frame (the tensor view's requests done or under way, as for a
    user who opens the panel, then the map);
  and the time from opening the page to the panel's first frame.

Targets (issue 16): <= 1 s each on 320 x 1,000, both ingesters.

    .venv/bin/python benchmarks/whole_run.py [--tensors 320] [--snapshots 1000]
        [--before REV] [--keep DIR] [--repeat N]

Takes about 10 minutes at 320 x 1,000 (writing the two runs: 2 minutes on
2 cores; each of the eight TensorBoards loads a run of 200-300 MB).
"""

import argparse
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

RUN = "run"
TARGET_S = 1.0
RELOAD = 2  # TensorBoard's --reload_interval while loading


# --- the runs ------------------------------------------------------------------------


def write_run(run_dir, tensors, snapshots):
    """Writes the run with whichever tensorboard_nnviz is on the path."""
    import numpy as np

    from tensorboard_nnviz.record import writer as writer_lib

    shapes = {}
    for i in range(tensors // 2):
        shapes["dense_%03d/kernel" % i] = (4, 4)
        shapes["dense_%03d/bias" % i] = (4,)
    structure = {"model": {"name": "long", "class": "Sequential"}, "layers": [
        {"path": "dense_%03d" % i, "class": "Dense", "params": 20, "trainable": True, "inbound": [],
         "output_shape": [None, 4],
         "weights": [{"name": n, "tag": "dense_%03d/%s" % (i, n), "shape": list(shapes["dense_%03d/%s" % (i, n)]),
                      "dtype": "float32"} for n in ("kernel", "bias")]}
        for i in range(tensors // 2)]}
    rng = np.random.default_rng(0)
    weights = {t: rng.standard_normal(s).astype(np.float32) for t, s in shapes.items()}
    writer = writer_lib.SnapshotWriter(run_dir, spectral=False, queue_size=8)
    for k in range(snapshots):
        if k:
            for t, s in shapes.items():
                weights[t] = weights[t] + rng.standard_normal(s).astype(np.float32) * np.float32(1e-3)
        snap = [writer_lib.Weight(t, w.copy(), "Dense", t.rpartition("/")[0], "float32") for t, w in weights.items()]
        writer.write(10 * k, snap, structure if k == 0 else None, wall_time=1.7e9 + 3.0 * k)
    writer.close()


def export(rev, folder):
    """The package and panel at git revision `rev`, in `folder`."""
    archive = subprocess.run(["git", "-C", REPO, "archive", rev, "tensorboard_nnviz", "frontend"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)


def with_code(code):
    return dict(os.environ, PYTHONPATH=code + os.pathsep + os.environ.get("PYTHONPATH", ""))


# --- measuring -------------------------------------------------------------------------


def timed_get(server, path):
    """Seconds to GET `path` (gzip accepted) and read the answer, and its bytes."""
    request = urllib.request.Request(server.url + "/data/plugin/nnviz/" + path, headers={"Accept-Encoding": "gzip"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as r:
        body = r.read()
        if r.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        assert r.status == 200, (path, r.status)
    return time.perf_counter() - start, body


def loaded(server, snapshots):
    """Waits until the panel lists every snapshot and TensorBoard is done
    loading the run (idle), and one reload more. /runs takes its steps from
    the plugin's index of the event files, which is built while the Python
    ingester still loads them: without the wait for idle, the page would be
    measured beside that loading (what a user meets who opens the panel
    the moment a run appears; not what is measured here)."""
    server.wait_for(lambda: any(len(r["steps"]) == snapshots for r in server.get_json("runs")["runs"]),
                    timeout=1800, interval=2.0)
    server.wait_idle()
    time.sleep(RELOAD + 1)


# Chooses the map the moment the panel's controls exist (before any data has
# come), and notes when (performance.now(): ms since navigation) and when
# the map's canvas is first painted.
_CHOOSE_MAP = """
new MutationObserver((_, waiting) => {
  const view = document.querySelector('#view');
  const canvas = document.querySelector('.map-canvas');
  if (!view || !canvas) return;
  waiting.disconnect();
  const times = window.nnvizMapTimes = {chosen: performance.now()};
  const painted = new MutationObserver(() => {
    if (!canvas.dataset.rows) return;
    painted.disconnect();
    times.painted = performance.now();
  });
  painted.observe(canvas, {attributes: true});
  view.value = 'map';
  view.dispatchEvent(new Event('change'));
}).observe(document, {childList: true, subtree: true});
"""


def map_at_page_open(server, browser):
    """Seconds from choosing the map at page open to its first painted
    canvas, and from opening the page; measured in the page."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.add_init_script(_CHOOSE_MAP)
        page.goto(server.url + "/data/plugin_entry.html?name=nnviz")
        page.wait_for_function("() => window.nnvizMapTimes && window.nnvizMapTimes.painted", timeout=900000)
        times = page.evaluate("() => window.nnvizMapTimes")
        rows = page.evaluate("() => +document.querySelector('.map-canvas').dataset.rows")
    finally:
        page.close()
    assert not errors, errors
    return (times["painted"] - times["chosen"]) / 1000.0, times["painted"] / 1000.0, rows


def map_with_panel_up(server, browser):
    """Seconds from opening the page to the panel's first frame, then from
    choosing the map to its first painted canvas; measured in the page."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(server.url + "/data/plugin_entry.html?name=nnviz")
        page.wait_for_function("() => Number(document.body.dataset.framesDrawn) > 0", timeout=900000)
        first_frame = page.evaluate("() => performance.now()")
        ms = page.evaluate("""() => new Promise((resolve) => {
            const canvas = document.querySelector('.map-canvas');
            const view = document.querySelector('#view');
            const start = performance.now();
            const painted = new MutationObserver(() => {
              if (!canvas.dataset.rows) return;
              painted.disconnect();
              resolve(performance.now() - start);
            });
            painted.observe(canvas, {attributes: true});
            view.value = 'map';
            view.dispatchEvent(new Event('change'));
          })""")
    finally:
        page.close()
    assert not errors, errors
    return ms / 1000.0, first_frame / 1000.0


def measure(code, logdir, snapshots, tensors, load_fast, browser):
    from tb_server import TensorBoardServer

    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = with_code(code)["PYTHONPATH"]
    extra = ("--reload_interval", str(RELOAD))
    try:
        with TensorBoardServer(logdir, load_fast=load_fast, extra_args=extra, timeout=600) as tb:
            loaded(tb, snapshots)
            findings_s, body = timed_get(tb, "findings?run=" + RUN)
            again_s, _ = timed_get(tb, "findings?run=" + RUN)
        with TensorBoardServer(logdir, load_fast=load_fast, extra_args=extra, timeout=600) as tb:
            loaded(tb, snapshots)
            paint_s, page_s, rows = map_at_page_open(tb, browser)
            up_s, first_frame_s = map_with_panel_up(tb, browser)
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    assert rows == tensors, rows
    return {"findings": findings_s, "findings_again": again_s, "findings_bytes": len(body), "paint": paint_s,
            "page": page_s, "up": up_s, "first_frame": first_frame_s}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tensors", type=int, default=320)
    parser.add_argument("--snapshots", type=int, default=1000)
    parser.add_argument("--before", help="git revision to compare with (default: merge base with main)")
    parser.add_argument("--keep", help="write the runs here (reused when there already)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure each side this many times, interleaved, on fresh TensorBoards; "
                             "the table gives the medians (the load of shared cores moves single figures)")
    parser.add_argument("--write-run", nargs=3, metavar=("DIR", "TENSORS", "SNAPSHOTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_run:  # a subprocess writing one run with its revision's writer
        write_run(args.write_run[0], int(args.write_run[1]), int(args.write_run[2]))
        return
    from playwright.sync_api import sync_playwright

    import chromium

    rev = args.before or subprocess.run(["git", "-C", REPO, "merge-base", "HEAD", "main"], check=True,
                                        capture_output=True, text=True).stdout.strip()
    root = args.keep or tempfile.mkdtemp(prefix="nnviz_whole_run_")
    before_code = tempfile.mkdtemp(prefix="nnviz_before_")
    try:
        export(rev, before_code)
        sides = {"before": before_code, "after": REPO}
        writing = []
        start = time.perf_counter()
        for name, code in sides.items():
            run_dir = os.path.join(root, name, RUN)
            if not os.path.isdir(run_dir):
                writing.append(subprocess.Popen(
                    [sys.executable, __file__, "--write-run", run_dir, str(args.tensors), str(args.snapshots)],
                    env=with_code(code)))
        for p in writing:
            assert p.wait() == 0, "writing a run failed"
        sizes = {n: sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(root, n)) for f in fs)
                 for n in sides}
        print("runs of %d tensors x %d snapshots (%s): before %.0f MB, after %.0f MB, written in %.0f s"
              % (args.tensors, args.snapshots, rev[:10], sizes["before"] / 1e6, sizes["after"] / 1e6,
                 time.perf_counter() - start))
        runs = {}
        with sync_playwright() as p:
            browser = chromium.launch(p)
            try:
                for _ in range(args.repeat):
                    for load_fast in (False, True):
                        for name, code in sides.items():
                            one = measure(code, os.path.join(root, name), args.snapshots, args.tensors, load_fast,
                                          browser)
                            runs.setdefault((load_fast, name), []).append(one)
                            print("  %s, %s: %s" % ("RustBoard" if load_fast else "Python", name,
                                                    {k: round(v, 3) for k, v in one.items()}), flush=True)
            finally:
                browser.close()
        results = {side: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for side, rs in runs.items()}
        load = open("/proc/loadavg").read().split()[:3]
        print("\nWhole-run answers, %d tensors x %d snapshots, load average %s%s"
              % (args.tensors, args.snapshots, " ".join(load),
                 ", medians of %d" % args.repeat if args.repeat > 1 else ""))
        print("| ingester | | before | after | after / before | after / target (%.0f s) |" % TARGET_S)
        print("|---|---|---:|---:|---:|---:|")
        for load_fast in (False, True):
            b, a = results[(load_fast, "before")], results[(load_fast, "after")]
            name = "RustBoard" if load_fast else "Python"
            for label, key in (("map first paint, panel up", "up"), ("map first paint, at page open", "paint"),
                               ("(from opening the page)", "page"), ("panel's first frame", "first_frame"),
                               ("/findings, cold", "findings"),
                               ("/findings, again", "findings_again")):
                target = "%.2f" % (a[key] / TARGET_S) if key in ("up", "paint", "findings") else ""
                print("| %s | %s | %.2f s | %.3f s | %.3f | %s |" % (name, label, b[key], a[key], a[key] / b[key], target))
    finally:
        shutil.rmtree(before_code, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
