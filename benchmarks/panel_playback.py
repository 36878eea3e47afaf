"""Panel playback in chromium: frames per second and first paint.

Writes one run holding a 256×256 tensor over 300 snapshot steps, serves it
with a real `tensorboard` (Python ingester and RustBoard, side by side),
opens the panel in Debian's chromium and reads the panel's own Performance
API entries: `nnviz-frame` measures fetch → decode → draw of one step,
`nnviz-first-paint` marks the first heatmap drawn after the tab opens.

    .venv/bin/python benchmarks/panel_playback.py [--steps 300] [--size 256]

Prints, per ingester: first paint (ms after navigation), playback fps with
a cold cache (frames fetched while playing, with prefetch) and a warm cache
(replay), the per-frame fetch-decode-draw time (median, p95), and the fps
at the 30 fps setting; then the RustBoard/Python ratios.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from playwright.sync_api import sync_playwright  # noqa: E402
from runs import write_synthetic_run  # noqa: E402
from tb_server import TensorBoardServer  # noqa: E402

import chromium  # noqa: E402
TAG = "big/kernel"


def play(frame, speed, last_step, timeout_ms):
    """Plays from the first step to the last at `speed`; returns (fps, frame ms list)."""
    frame.locator("#step-slider").fill("0")
    frame.wait_for_function("() => document.body.dataset.drawnStep === '0'", timeout=timeout_ms)
    frame.evaluate("() => performance.clearMeasures('nnviz-frame')")
    frame.select_option("#speed", speed)
    frame.click("#play")
    frame.wait_for_function(
        "(s) => document.body.dataset.drawnStep === String(s) && !window.nnviz.playing",
        arg=last_step,
        timeout=timeout_ms,
    )
    entries = frame.evaluate(
        "() => performance.getEntriesByName('nnviz-frame').map((e) => [e.startTime, e.duration])"
    )
    # The first entry is the step-0 frame drawn when play starts (cached);
    # fps over the frames that followed it.
    starts = [s + d for s, d in entries]
    fps = (len(starts) - 1) / ((starts[-1] - starts[0]) / 1000.0)
    return fps, [d for _, d in entries[1:]]


def measure(logdir, load_fast, steps, browser):
    with TensorBoardServer(logdir, load_fast=load_fast, timeout=300) as tb:
        tb.wait_for(
            lambda: any(len(r["steps"]) == steps for r in tb.get_json("runs")["runs"]), timeout=600, interval=1.0
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        t0 = time.perf_counter()
        page.goto(tb.url + "/data/plugin_entry.html?name=nnviz")
        page.wait_for_function("() => performance.getEntriesByName('nnviz-first-paint').length > 0", timeout=120000)
        wall_first_paint = (time.perf_counter() - t0) * 1000
        first_paint = page.evaluate("() => performance.getEntriesByName('nnviz-first-paint')[0].startTime")
        frame = page.main_frame
        last_step = steps - 1
        cold_fps, cold = play(frame, "max", last_step, 300000)
        warm_fps, warm = play(frame, "max", last_step, 300000)
        set30_fps, _ = play(frame, "30", last_step, 300000)
        # First paint inside TensorBoard's own page (the tab in its iframe).
        page2 = browser.new_page(viewport={"width": 1400, "height": 1000})
        t0 = time.perf_counter()
        page2.goto(tb.url + "/#nnviz")
        frame2 = None
        while frame2 is None:
            frame2 = next((f for f in page2.frames if "plugin_entry.html" in f.url), None)
            page2.wait_for_timeout(20)
        frame2.wait_for_function("() => performance.getEntriesByName('nnviz-first-paint').length > 0", timeout=120000)
        tb_first_paint = (time.perf_counter() - t0) * 1000
        page.close()
        page2.close()
        if errors:
            raise RuntimeError("page errors: %s" % errors)
    return {
        "first_paint_ms": first_paint,
        "first_paint_wall_ms": wall_first_paint,
        "first_paint_in_tensorboard_ms": tb_first_paint,
        "cold_fps": cold_fps,
        "warm_fps": warm_fps,
        "fps_at_30_setting": set30_fps,
        "cold_frame_ms_median": statistics.median(cold),
        "cold_frame_ms_p95": sorted(cold)[int(0.95 * (len(cold) - 1))],
        "warm_frame_ms_median": statistics.median(warm),
        "warm_frame_ms_p95": sorted(warm)[int(0.95 * (len(warm) - 1))],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--ingesters", default="python,rust", help="comma-separated: python, rust")
    parser.add_argument("--logdir", help="keep the written run here and reuse it on later calls")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nnviz_playback_") as tmp:
        logdir = args.logdir or tmp
        run_dir = os.path.join(logdir, "playback")
        if not os.path.isdir(run_dir):
            t0 = time.perf_counter()
            write_synthetic_run(run_dir, steps=list(range(args.steps)), weights={TAG: (args.size, args.size)})
            print("wrote %d steps of a %dx%d tensor in %.1f s" % (args.steps, args.size, args.size, time.perf_counter() - t0))
        results = {}
        with sync_playwright() as p:
            browser = chromium.launch(p)
            try:
                for name in args.ingesters.split(","):
                    results[name] = measure(logdir, name == "rust", args.steps, browser)
            finally:
                browser.close()
    keys = list(next(iter(results.values())).keys())
    names = list(results)
    print("\n%-32s" % "" + "".join("%14s" % n for n in names) + ("%14s" % "rust/python" if len(names) == 2 else ""))
    for k in keys:
        row = "%-32s" % k + "".join("%14.1f" % results[n][k] for n in names)
        if len(names) == 2 and results[names[0]][k]:
            row += "%14.2f" % (results[names[1]][k] / results[names[0]][k])
        print(row)


if __name__ == "__main__":
    main()
