"""The dynamics map in chromium on a ResNet50-sized run: redraw and hover.

Writes one run the size of ResNet50 (keras.applications, weights=None: its
real structure and 320 weight tags) with 1,000 snapshots of stats (steps 0,
10, ..., 9,990; synthetic values: update ratios scattered about 1e-3 per
step, norms drifting, a few tensors turning NaN near the end) and one frame
per tensor at step 0, as real event files. A real `tensorboard` serves it;
Debian's chromium opens the panel's dynamics map (320 rows x 1,000 columns).

Measured in the page (performance.now):

- redraw after a stat change: the `#map-stat` control changed to the next
  stat, through the map's own change handler until the canvas has executed
  its drawing (a 1-pixel getImageData forces that); p50 and p95 over the
  cycle of stats. "Cold": the stat's cell values and scale are computed
  (the map's per-stat cache emptied first; each stat's /stats?fields=
  answer fetched once before); "warm": a stat shown before
  (cached values and legend: colouring and painting only). The very first
  map also reads every JSON column into typed arrays once (in "switch to the
  map");
- hover: a mousemove on a random cell through the map's handler (read-out
  and cursor) until the overlay canvas has executed its drawing; p50 and
  p95. Also the same handler's time under real mouse moves sent by
  Playwright (the `nnviz-map-hover` entries it records).

Both are set against 16 ms (one frame at 60 Hz) and printed as ratios.
Browser paint and compositing after the handler are not included.

    .venv/bin/python benchmarks/map_render.py [--snapshots 1000] [--keep DIR]
        [--load-fast] [--repeats 40]

Not part of `make test`. Takes a few minutes, most of it writing the run
and TensorBoard loading it.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from playwright.sync_api import sync_playwright  # noqa: E402
from tb_server import TensorBoardServer  # noqa: E402

import chromium  # noqa: E402

TARGET_MS = 16.0
RUN = "resnet50"
STEP_GAP = 10


def resnet50_structure():
    """ResNet50's structure document and its weights' (tag, layer class, shape)."""
    import keras

    from tensorboard_nnviz.record import structure as structure_lib

    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3))
    doc = structure_lib.build_structure(model)
    weights = []
    for layer in doc["layers"]:
        for w in layer["weights"]:
            weights.append((w["tag"], layer["class"], w["name"], tuple(w["shape"])))
    return doc, weights


def synthetic_stats(n_tags, snapshots, seed=0):
    """[tag][field] -> list of floats/None over the snapshots."""
    rng = np.random.default_rng(seed)
    steps = np.arange(snapshots) * STEP_GAP
    out = []
    for t in range(n_tags):
        l2_0 = float(np.exp(rng.normal(1.0, 1.5)))
        per_step = float(np.exp(rng.normal(np.log(1e-3), 0.8)))
        ratio = per_step * np.sqrt(STEP_GAP) * np.exp(rng.normal(0, 0.3, snapshots)) * np.exp(-steps / 8000.0)
        ratio[0] = np.nan
        l2 = l2_0 * np.cumprod(1 + np.concatenate([[0], ratio[1:] * rng.normal(0.1, 1, snapshots - 1)]))
        init_l2 = l2_0 * np.minimum(1.0, np.cumsum(np.nan_to_num(ratio)) * 0.3)
        std = l2 / 50.0
        nan = np.zeros(snapshots)
        if t % 97 == 13:  # a few tensors turn NaN near the end
            nan[int(snapshots * 0.9):] = 100.0
            for arr in (ratio, l2, init_l2, std):
                arr[int(snapshots * 0.9):] = np.nan
        fields = {"l2": l2, "std": std, "update_ratio": ratio, "init_l2": init_l2, "nan": nan,
                  "inf": np.zeros(snapshots), "update_l2": ratio * l2, "init_cos": 1 - init_l2 / l2_0 / 10}
        out.append(fields)
    return steps, out


def write_run(run_dir, snapshots):
    """The run as the writer lays it out (format.py): each frame an event of
    its own, then per snapshot one event with the stats table (and, at the
    first, the structure last)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2

    from tensorboard_nnviz.core import format as fmt
    from tensorboard_nnviz.core import layout as layout_lib
    from tensorboard_nnviz.record import eventfiles

    doc, weights = resnet50_structure()
    steps, stats = synthetic_stats(len(weights), snapshots)
    writer = eventfiles.new_writer(run_dir)

    def add(step, values):
        writer.add_event(event_pb2.Event(step=int(step), wall_time=1.7e9 + float(step),
                                         summary=summary_pb2.Summary(value=values)))

    rng = np.random.default_rng(1)
    for tag, cls, name, shape in weights:
        layout = layout_lib.choose_layout(cls, name, shape, tag.rsplit("/", 1)[0])
        w = (rng.standard_normal(shape) * 0.05).astype(np.float32)
        frame, block = layout_lib.make_frame(w, layout, 65536)
        layout = dict(layout, block=[int(b) for b in block])
        content = fmt.frame_content(shape=list(shape), dtype="float32", layout=layout,
                                    rows=frame.shape[0], cols=frame.shape[1])
        add(steps[0], [fmt.frame_value(tag, fmt.encode_frame(frame), content)])
    tags = [tag for tag, *_ in weights]
    for i, step in enumerate(steps):
        rows = [{k: float(arr[i]) for k, arr in series.items()} for series in stats]
        values = [fmt.stats_table_value(tags, rows)]
        add(step, values + ([fmt.structure_value(doc)] if i == 0 else []))
    writer.close()
    return len(weights)


def pct(xs, p):
    return float(np.percentile(xs, p))


def measure(url, snapshots, repeats, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    t0 = time.perf_counter()
    page.goto(url + "/data/plugin_entry.html?name=nnviz")
    page.wait_for_function("() => Number(document.body.dataset.framesDrawn) > 0", timeout=600000)
    load_s = time.perf_counter() - t0
    frame = page.main_frame
    t0 = time.perf_counter()
    frame.select_option("#view", "map")
    frame.wait_for_function("() => document.querySelector('.map-canvas').dataset.rows", timeout=120000)
    first_map_s = time.perf_counter() - t0
    shape = frame.evaluate(
        "() => { const c = document.querySelector('.map-canvas'); return [+c.dataset.rows, +c.dataset.cols]; }")
    assert shape == [320, snapshots], shape
    # Each stat's columns come in their own request (/stats?fields=): fetched
    # once here, so the redraws below time the drawing only.
    for key in frame.evaluate("() => [...document.querySelector('#map-stat').options].map((o) => o.value)"):
        frame.select_option("#map-stat", key)
        frame.wait_for_function("(k) => document.querySelector('.map-canvas').dataset.stat === k", arg=key,
                                timeout=120000)
    redraw = {}
    for kind, cold in (("cold", True), ("warm", False)):
        redraw[kind] = frame.evaluate(
            """([repeats, cold]) => {
              const sel = document.querySelector('#map-stat');
              const canvas = document.querySelector('.map-canvas');
              const map = window.nnviz.page.dynamicsMap;
              const keys = [...sel.options].map((o) => o.value);
              const out = [];
              for (let i = 0; i < repeats; i++) {
                if (cold) map.byStat.clear();
                const t0 = performance.now();
                sel.value = keys[(keys.indexOf(sel.value) + 1) % keys.length];
                sel.dispatchEvent(new Event('change'));
                canvas.getContext('2d').getImageData(0, 0, 1, 1);
                out.push(performance.now() - t0);
              }
              return out;
            }""", [repeats * 5, cold])
    frame.select_option("#map-stat", "update_ratio")
    hover = frame.evaluate(
        """(n) => {
          const map = window.nnviz.page.dynamicsMap;
          const canvas = map.canvas;
          const box = canvas.getBoundingClientRect();
          let seed = 12345;
          const rand = (k) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % k; };
          const out = [];
          for (let i = 0; i < n; i++) {
            const p = map.cellCenter(rand(map.model.rows.length), rand(map.model.steps.length));
            const t0 = performance.now();
            canvas.dispatchEvent(new MouseEvent('mousemove', {clientX: box.left + p.x, clientY: box.top + p.y, bubbles: true}));
            map.overlay.getContext('2d').getImageData(0, 0, 1, 1);
            out.push(performance.now() - t0);
          }
          return out;
        }""", repeats * 10)
    # Real mouse moves: the handler's own entries.
    frame.evaluate("() => performance.clearMeasures('nnviz-map-hover')")
    box = frame.locator(".map-canvas").bounding_box()
    rng = random.Random(0)
    for _ in range(repeats * 5):
        p = frame.evaluate("([r, c]) => window.nnviz.page.dynamicsMap.cellCenter(r, c)",
                           [rng.randrange(320), rng.randrange(snapshots)])
        page.mouse.move(box["x"] + p["x"], box["y"] + p["y"])
    real = frame.evaluate("() => performance.getEntriesByName('nnviz-map-hover').map((e) => e.duration)")
    heap = frame.evaluate("() => performance.memory ? performance.memory.usedJSHeapSize : null")
    page.close()
    assert not errors, errors
    return {"load_s": load_s, "first_map_s": first_map_s, "redraw": redraw, "hover": hover, "real_hover": real,
            "heap": heap}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snapshots", type=int, default=1000)
    parser.add_argument("--keep", help="write the run here (reused when it is there already)")
    parser.add_argument("--load-fast", action="store_true", help="serve with RustBoard (default: the Python ingester)")
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    logdir = args.keep or tempfile.mkdtemp(prefix="nnviz_map_")
    run_dir = os.path.join(logdir, RUN)
    if not os.path.isdir(run_dir):
        t0 = time.perf_counter()
        n = write_run(run_dir, args.snapshots)
        size = sum(os.path.getsize(os.path.join(run_dir, f)) for f in os.listdir(run_dir))
        print("wrote %d tensors x %d snapshots in %.0f s (%.0f MB)" % (n, args.snapshots, time.perf_counter() - t0, size / 1e6))
    with TensorBoardServer(logdir, load_fast=args.load_fast, timeout=600) as tb:
        t0 = time.perf_counter()
        tb.wait_for(lambda: any(len(r["steps"]) >= 1 for r in tb.get_json("runs")["runs"]), timeout=1800, interval=2.0)
        tb.wait_for(lambda: len(tb.get_json("stats", {"run": RUN, "tag": "conv1_conv/kernel"})["steps"]) == args.snapshots,
                    timeout=1800, interval=5.0)
        ingest_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        body = tb.get("stats", {"run": RUN}, timeout=600).body
        stats_s = time.perf_counter() - t0
        assert len(json.loads(body)) == 320
        with sync_playwright() as p:
            browser = chromium.launch(p)
            try:
                m = measure(tb.url, args.snapshots, args.repeats, browser)
            finally:
                browser.close()
    load = open("/proc/loadavg").read().split()[:3]
    print("\nDynamics map, %d tensors x %d snapshots, chromium (%s ingester), load average %s"
          % (320, args.snapshots, "RustBoard" if args.load_fast else "Python", " ".join(load)))
    print("  TensorBoard ingest until every snapshot is listed: %.0f s" % ingest_s)
    print("  GET /stats?run=R: %.1f MB of JSON in %.1f s" % (len(body) / 1e6, stats_s))
    print("  panel open to first heatmap: %.1f s; switch to the map (first draw): %.2f s"
          % (m["load_s"], m["first_map_s"]))
    if m["heap"]:
        print("  JS heap in use: %.0f MB" % (m["heap"] / 1e6))
    rows = [
        ("redraw after a stat change, cold", m["redraw"]["cold"], 50),
        ("redraw after a stat change, warm", m["redraw"]["warm"], 50),
        ("hover (handler + overlay drawn)", m["hover"], 95),
        ("hover, real mouse moves (handler)", m["real_hover"], 95),
    ]
    print("\n  %-36s %8s %8s %8s %10s" % ("", "p50 ms", "p95 ms", "n", "target/16"))
    for name, xs, p in rows:
        figure = pct(xs, p)
        print("  %-36s %8.2f %8.2f %8d %10.2f  (p%d / 16 ms)" % (name, pct(xs, 50), pct(xs, 95), len(xs), figure / TARGET_MS, p))


if __name__ == "__main__":
    main()
