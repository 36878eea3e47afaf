"""Regenerates the README screenshots from a real logdir (the demo's).

    .venv/bin/python tools/screenshots.py /tmp/demo_logs [--out docs/screenshots]

Serves the logdir with a real `tensorboard` (Python ingester), opens
TensorBoard's own page at `#nnviz` in Debian's chromium (1400x1000) and
drives the panel through its controls as a user would:

- hero.png: the cnn run's first conv kernel (3x3 tiles) late in training,
  with the stats charts;
- compare_lr.png: mlp_tuned and mlp_high_lr side by side on one tensor at
  the first step where the high-lr run has NaN weights;
- delta.png: Δ from the first snapshot on mlp_tuned's first kernel (the
  rows of pixels that are blank in every digit never move);
- overview_demo.png: every tensor of the cnn run.

The logdir must hold the demo's runs (`python demo/digits.py --logdir D`).
"""

import argparse
import io
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from PIL import Image  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from tb_server import TensorBoardServer  # noqa: E402

import chromium  # noqa: E402
VIEWPORT = {"width": 1400, "height": 1000}
TIMEOUT_MS = 30000


class Tab:
    """TensorBoard's page at #nnviz and the panel's iframe inside it."""

    def __init__(self, browser, url, color_scheme="light"):
        self.page = browser.new_page(viewport=VIEWPORT, color_scheme=color_scheme)
        self.errors = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url + "/#nnviz")
        self.page.wait_for_selector("iframe", timeout=TIMEOUT_MS)
        self.frame = None
        for _ in range(400):
            self.frame = next((f for f in self.page.frames if "plugin_entry.html" in f.url), None)
            if self.frame is not None:
                break
            self.page.wait_for_timeout(50)
        assert self.frame is not None, "the nnviz tab did not open"
        self.frame.wait_for_function("() => Number(document.body.dataset.framesDrawn) > 0", timeout=TIMEOUT_MS)

    def runs(self, *names):
        """Selects exactly these runs, in the picker."""
        for box in self.frame.locator(".run-checkbox").all():
            want = box.get_attribute("data-run") in names
            if box.is_checked() != want:
                box.set_checked(want)
        self.frame.wait_for_function(
            "(n) => document.querySelectorAll('.heatmap-panel').length === n", arg=len(names), timeout=TIMEOUT_MS)

    def tensor(self, tag):
        self.frame.click('.weight[data-tag="%s"]' % tag)
        self.frame.wait_for_function(
            "(t) => document.querySelector('.tensor-title').textContent === t", arg=tag, timeout=TIMEOUT_MS)

    def step(self, step):
        """Moves the step control to `step` (a snapshot step) and waits for the frame."""
        index = self.frame.evaluate("(s) => window.nnviz.steps.indexOf(s)", step)
        assert index >= 0, "no snapshot at step %d" % step
        self.frame.locator("#step-slider").fill(str(index))
        self.drawn(step)

    def mode(self, mode):
        self.frame.select_option("#mode", mode)
        self.frame.wait_for_function(
            "(m) => document.body.dataset.drawnMode === m", arg=mode, timeout=TIMEOUT_MS)

    def drawn(self, step):
        self.frame.wait_for_function(
            "(s) => document.body.dataset.drawnStep === String(s)", arg=step, timeout=TIMEOUT_MS)

    def hover(self, r, c, index=0):
        """Puts the mouse over frame cell (r, c) of the index-th heatmap."""
        canvas = self.frame.locator(".heatmap-canvas").nth(index)
        box = canvas.bounding_box()
        geo = canvas.evaluate("(c) => ({x0: +c.dataset.x0, y0: +c.dataset.y0, cell: +c.dataset.cell})")
        self.page.mouse.move(box["x"] + geo["x0"] + (c + 0.5) * geo["cell"],
                             box["y"] + geo["y0"] + (r + 0.5) * geo["cell"])
        self.frame.wait_for_function(
            "([i, r, c]) => document.querySelectorAll('.readout')[i].dataset.col === String(c)"
            " && document.querySelectorAll('.readout')[i].dataset.row === String(r)",
            arg=[index, r, c], timeout=TIMEOUT_MS)

    def save(self, path):
        self.page.wait_for_timeout(300)  # let the last paint land
        png = self.page.screenshot()
        Image.open(io.BytesIO(png)).convert("RGB").save(path, optimize=True)
        assert not self.errors, self.errors
        self.page.close()
        print("wrote %s (%d KB)" % (path, os.path.getsize(path) // 1024))


def first_nan_step(server, run, tag):
    series = server.get_json("stats", {"run": run, "tag": tag})
    for step, nan in zip(series["steps"], series["nan"]):
        if nan:
            return step
    raise SystemExit("%s never has NaN in %s: not the demo's high-lr run?" % (run, tag))


def shoot(server, browser, out):
    runs = [r["run"] for r in server.get_json("runs")["runs"]]
    for needed in ("cnn", "mlp_tuned", "mlp_high_lr"):
        if needed not in runs:
            raise SystemExit("the logdir has no run %r (runs: %s)" % (needed, runs))
    cnn_steps = [r for r in server.get_json("runs")["runs"] if r["run"] == "cnn"][0]["steps"]

    # Hero: the first conv layer's 16 3x3 kernels, late in training.
    tab = Tab(browser, server.url)
    tab.runs("cnn")
    tab.tensor("conv1/kernel")
    late = cnn_steps[int(len(cnn_steps) * 0.8)]
    tab.step(late)
    tab.hover(1, 4)
    tab.save(os.path.join(out, "hero.png"))

    # Two learning rates, side by side, where the high one has blown up.
    tag = "hidden1/kernel"
    nan_step = first_nan_step(server, "mlp_high_lr", tag)
    tab = Tab(browser, server.url)
    tab.runs("mlp_high_lr", "mlp_tuned")
    tab.tensor(tag)
    tab.step(nan_step)
    # The scale of what is on screen (the NaN frame has no range), clipped
    # at the 1st/99th percentiles.
    tab.frame.select_option("#scale-mode", "frame")
    tab.frame.check("#clip")
    tab.frame.wait_for_function(
        "() => document.querySelector('.legend-note').textContent.includes('per frame, clipped')", timeout=TIMEOUT_MS)
    tab.hover(10, 20, index=1)
    tab.save(os.path.join(out, "compare_lr.png"))

    # Δ from the first snapshot.
    tab = Tab(browser, server.url)
    tab.runs("mlp_tuned")
    tab.tensor("hidden1/kernel")  # rows: the 64 pixels; blank rows never change
    tab.mode("delta_first")
    tab.save(os.path.join(out, "delta.png"))

    # Overview of the cnn run.
    tab = Tab(browser, server.url)
    tab.runs("cnn")
    tab.frame.select_option("#view", "overview")
    tab.frame.wait_for_function(
        "() => [...document.querySelectorAll('.tile-canvas')].every((c) => c.width > 0)", timeout=TIMEOUT_MS)
    tab.save(os.path.join(out, "overview_demo.png"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logdir", help="a logdir with the demo's runs (cnn, mlp_tuned, mlp_high_lr)")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "screenshots"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    with TensorBoardServer(args.logdir, load_fast=False) as server:
        server.wait_for(lambda: len(server.get_json("runs")["runs"]) >= 3)
        with sync_playwright() as p:
            browser = chromium.launch(p)
            try:
                shoot(server, browser, args.out)
            finally:
                browser.close()


if __name__ == "__main__":
    main()
