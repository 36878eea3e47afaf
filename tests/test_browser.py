"""The panel in a real browser (Debian's chromium through Playwright) against
a real `tensorboard` serving runs written by the real callback.

Values read off the panel are checked against the weights the test trained
(recorded by a Keras callback next to NNVizCallback), not against the
panel's own arrays. One tensorboard (Python ingester) serves the module's
runs; the live test starts its own RustBoard one.
"""

import os
import re

import numpy as np
import pytest
from playwright.sync_api import sync_playwright

import keras_models
from runs import write_synthetic_run
from tb_server import TensorBoardServer

import chromium
RUN_A = "conv_a"
RUN_B = "conv_b <b>"  # a run name with markup in it: must show literally
RUN_BLOCKS = "mlp_blocks"  # max_cells=16: block-reduced frames
RUN_BRANCHY = "x_branchy"  # a functional model with branches and merges
RUN_WIDE = "w_first_conv"  # Conv2D on one channel: a row of 16 tiles, shown wrapped
RUN_LSTM = "y_lstm"  # gate groups
RUN_MHA = "y_mha"  # head groups
TAG = "conv2d/kernel"  # Conv2D (3, 2, 3, 4): kh, kw, in, out
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Pages as the tests leave them, for a look when debugging: set
# NNVIZ_TEST_SCREENSHOTS=<dir>. (The README's screenshots come from the demo's
# runs: tools/screenshots.py.)
SCREENSHOTS = os.environ.get("NNVIZ_TEST_SCREENSHOTS")
TIMEOUT_MS = 20000


# --- fixtures ------------------------------------------------------------------


def _train(logdir, seed, name="conv2d", epochs=3, steps=4, snapshot_freq=2, **kwargs):
    rec = keras_models.recorder()
    model = keras_models.build(name, seed=seed) if isinstance(name, str) else name(seed)
    keras_models.train_run(logdir, model=model, epochs=epochs, steps=steps, snapshot_freq=snapshot_freq,
                           callbacks=[rec], **kwargs)
    return rec.weights


def _first_conv(seed):
    """A first conv layer as in an image model: 16 kernels of 3x3 on one channel."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((6, 6, 1)), keras.layers.Conv2D(16, 3, name="conv2d"),
         keras.layers.GlobalAveragePooling2D(name="pool"), keras.layers.Dense(2, name="dense")],
        name="first_conv",
    )
    rng = np.random.default_rng(seed)
    return model, (rng.standard_normal((32, 6, 6, 1)).astype("float32"), rng.standard_normal((32, 2)).astype("float32"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Runs trained with NNVizCallback (two conv2d runs, a block-reduced
    MLP, a functional model, a first conv layer, an LSTM and an attention
    model); the true weights per run and step."""
    logdir = tmp_path_factory.mktemp("browser_logs")
    weights = {
        RUN_A: _train(os.path.join(logdir, RUN_A), seed=0),
        RUN_B: _train(os.path.join(logdir, RUN_B), seed=1),
        RUN_BLOCKS: _train(os.path.join(logdir, RUN_BLOCKS), seed=2, name="mlp", max_cells=16),
        RUN_BRANCHY: _train(os.path.join(logdir, RUN_BRANCHY), seed=3, name="branch_merge"),
        # Small ones: one epoch of two steps is enough to read a few cells.
        RUN_WIDE: _train(os.path.join(logdir, RUN_WIDE), seed=4, name=_first_conv, epochs=1, steps=2),
        RUN_LSTM: _train(os.path.join(logdir, RUN_LSTM), seed=5, name="lstm", epochs=1, steps=2),
        RUN_MHA: _train(os.path.join(logdir, RUN_MHA), seed=6, name="mha", epochs=1, steps=2),
    }
    return str(logdir), weights


@pytest.fixture(scope="module")
def tb(trained):
    with TensorBoardServer(trained[0], load_fast=False) as server:
        server.wait_for(lambda: len(server.get_json("runs")["runs"]) == 7)
        yield server


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = chromium.launch(p)
        yield b
        b.close()


class Panel:
    """The panel's frame in a page, with the console errors seen so far."""

    def __init__(self, page, frame, errors):
        self.page = page
        self.frame = frame
        self.errors = errors

    def wait_drawn(self, step=None):
        if step is None:
            self.frame.wait_for_function("() => Number(document.body.dataset.framesDrawn) > 0", timeout=TIMEOUT_MS)
        else:
            self.frame.wait_for_function(
                "(s) => document.body.dataset.drawnStep === String(s)", arg=step, timeout=TIMEOUT_MS
            )

    def wait_mode(self, mode):
        """Waits until a frame of `mode` has been drawn."""
        self.frame.wait_for_function(
            "(m) => document.body.dataset.drawnMode === m", arg=mode, timeout=TIMEOUT_MS
        )

    def wait_panels(self, n):
        self.frame.wait_for_function(
            "(n) => document.querySelectorAll('.heatmap-canvas:not([hidden])').length === n "
            "&& [...document.querySelectorAll('.heatmap-canvas')].every((c) => c.dataset.cell)",
            arg=n,
            timeout=TIMEOUT_MS,
        )

    def cell_center(self, r, c, index=0):
        """Centre of frame cell (r, c) of the index-th heatmap, in CSS px of its canvas."""
        return self.frame.evaluate("([i, r, c]) => window.nnviz.panels[i].panel.cellCenter(r, c)", [index, r, c])

    def cell_colors(self, index=0):
        """RGB of every frame cell's centre as drawn on the index-th canvas."""
        return self.frame.evaluate(
            """(i) => {
              const c = document.querySelectorAll('.heatmap-canvas')[i];
              const panel = window.nnviz.panels[i].panel;
              const {rows, cols} = c.dataset;
              const dpr = c.width / c.clientWidth;
              const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              const out = [];
              for (let r = 0; r < +rows; r++) for (let k = 0; k < +cols; k++) {
                const p = panel.cellCenter(r, k);
                const j = 4 * (Math.floor(p.y * dpr) * c.width + Math.floor(p.x * dpr));
                out.push([px[j], px[j + 1], px[j + 2], px[j + 3]]);
              }
              return out;
            }""",
            index,
        )

    def pixel(self, x, y, index=0):
        """RGBA at (x, y) CSS px of the index-th heatmap canvas."""
        return self.frame.evaluate(
            """([i, x, y]) => {
              const c = document.querySelectorAll('.heatmap-canvas')[i];
              const dpr = c.width / c.clientWidth;
              return [...c.getContext('2d').getImageData(Math.floor(x * dpr), Math.floor(y * dpr), 1, 1).data];
            }""",
            [index, x, y],
        )

    def hover_cell(self, r, c, index=0):
        """Moves the mouse over frame cell (r, c); returns the read-out text."""
        canvas = self.frame.locator(".heatmap-canvas").nth(index)
        box = canvas.bounding_box()
        p = self.cell_center(r, c, index)
        self.page.mouse.move(box["x"] + p["x"], box["y"] + p["y"])
        readout = self.frame.locator(".readout").nth(index)
        self.frame.wait_for_function(
            "([i, r, c]) => { const n = document.querySelectorAll('.readout')[i];"
            " return n.dataset.row === String(r) && n.dataset.col === String(c); }",
            arg=[index, r, c],
            timeout=TIMEOUT_MS,
        )
        return readout.text_content()

    def set_step_index(self, i):
        self.frame.locator("#step-slider").fill(str(i))

    def screenshot(self, name):
        if SCREENSHOTS:
            os.makedirs(SCREENSHOTS, exist_ok=True)
            self.page.screenshot(path=os.path.join(SCREENSHOTS, name), full_page=True)


def open_panel(browser, server, color_scheme="light", direct=False, query="", viewport=(1400, 1000), wait=True,
               url=None):
    """Opens the nnviz tab: inside TensorBoard's page (its iframe), or the
    plugin's entry page directly; `url`: a page that holds TensorBoard's
    page (a notebook's output), opened in place of TensorBoard's own."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]}, color_scheme=color_scheme)
    errors = []
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append("console: %s %s" % (m.text, m.location.get("url"))) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append("page error: %s" % e))
    if direct:
        page.goto(server.url + "/data/plugin_entry.html?name=nnviz" + query)
        frame = page.main_frame
    else:
        page.goto(url or server.url + "/#nnviz")
        page.wait_for_selector("iframe", timeout=TIMEOUT_MS)
        frame = None
        for _ in range(200):
            frame = next((f for f in page.frames if "plugin_entry.html" in f.url), None)
            if frame is not None:
                break
            page.wait_for_timeout(50)
        assert frame is not None, [f.url for f in page.frames]
    panel = Panel(page, frame, errors)
    panel.requests = requests
    panel.server_url = server.url
    if wait:
        panel.wait_drawn()
    return panel


# The 404 the panel expects and shows as a note (chromium still logs each
# failed request): /units of a run recorded before per-unit stats.
EXPECTED_404 = re.compile(r"status of 404 .*/data/plugin/nnviz/units\?")


def no_errors(p, direct=True):
    # The entry page opened directly has no favicon: TensorBoard's 404, not the panel's.
    errors = [e for e in p.errors if not (direct and "favicon.ico" in e) and not EXPECTED_404.search(e)]
    assert errors == [], errors
    if direct:
        # Nothing but the plugin's own routes and files: no CDN, no fonts, no other host.
        allowed = (p.server_url + "/data/plugin/nnviz/", p.server_url + "/data/plugin_entry.html", p.server_url + "/favicon.ico")
        assert [u for u in p.requests if not u.startswith(allowed)] == []
        assert any("/data/plugin/nnviz/frame?" in u for u in p.requests)


@pytest.fixture
def panel(browser, tb):
    """The panel opened through its entry page (what TensorBoard's iframe loads)."""
    p = open_panel(browser, tb, direct=True)
    yield p
    p.page.close()
    no_errors(p)


@pytest.fixture
def tb_panel(browser, tb):
    """The panel inside TensorBoard's own page, in its iframe."""
    p = open_panel(browser, tb)
    yield p
    p.page.close()
    no_errors(p, direct=False)


# --- helpers on the true weights -------------------------------------------------------


def conv_cell(kh, kw, cin, cout, shape=(3, 2, 3, 4)):
    """Frame cell of kernel[kh, kw, cin, cout] under the conv layout
    (docs/architecture.md): rows [2, 0] (in, kh), cols [3, 1] (out, kw)."""
    return cin * shape[0] + kh, cout * shape[1] + kw


def readout_value(text):
    m = re.search(r"= (\S+)", text)
    assert m, text
    return float(m.group(1))


def assert_3_digits(shown, true):
    assert abs(shown - true) <= 0.0051 * abs(true) + 1e-12, (shown, true)


def last_step(server, run):
    return [r for r in server.get_json("runs")["runs"] if r["run"] == run][0]["steps"][-1]


# --- tests -------------------------------------------------------------------------------


def test_heatmap_paints_and_the_step_control_changes_it(tb_panel, tb):
    panel = tb_panel
    last = last_step(tb, RUN_A)
    panel.wait_drawn(last)  # opens at the latest snapshot
    panel.wait_panels(1)
    latest = panel.cell_colors()
    assert len(latest) == 9 * 8  # (3 in × 3 kh) rows, (4 out × 2 kw) cols
    assert all(px[3] == 255 for px in latest), "every cell is painted opaque"
    assert len({tuple(px) for px in latest}) > 10, "cells differ in colour"
    assert panel.frame.locator("#step-label").text_content().startswith("step %d" % last)
    # Conv tiles: a grey separator every kw = 2 columns and kh = 3 rows,
    # none inside a tile.
    def pixel(x_cells, y_cells):
        geo = panel.frame.evaluate("() => window.nnviz.panels[0].panel.geometry")
        return panel.pixel(geo["x0"] + x_cells * geo["cell"], geo["y0"] + y_cells * geo["cell"])

    grey = [158, 158, 158, 255]  # --separator (light scheme)
    assert [pixel(x, 0.5) for x in (2, 4, 6)] == [grey] * 3
    assert [pixel(0.5, y) for y in (3, 6)] == [grey] * 2
    assert grey not in latest, "the separator colour is not a cell colour here"
    # Inside a tile (between kw = 0 and kw = 1, kh = 0 and kh = 1): no line.
    assert pixel(1, 0.5) in (latest[0], latest[1])
    assert pixel(0.5, 1) in (latest[0], latest[8])
    panel.set_step_index(0)
    panel.wait_drawn(0)
    first = panel.cell_colors()
    assert first != latest, "moving the step control changes the picture"
    assert panel.frame.locator("#step-label").text_content().startswith("step 0")
    # Keyboard: arrows step through snapshots.
    panel.frame.locator("body").click(position={"x": 5, "y": 5})
    panel.page.keyboard.press("ArrowRight")
    panel.wait_drawn(2)
    panel.screenshot("panel.png")


def test_hover_shows_true_conv_index_and_value(panel, tb, trained):
    weights = trained[1][RUN_A]
    last = last_step(tb, RUN_A)
    panel.wait_drawn(last)
    panel.wait_panels(1)
    true = weights[last][TAG]
    assert true.shape == (3, 2, 3, 4)
    for index in [(1, 1, 2, 3), (2, 0, 0, 1), (0, 1, 1, 0)]:
        text = panel.hover_cell(*conv_cell(*index))
        assert text.startswith("kernel[%s] = " % ", ".join(map(str, index))), text
        assert_3_digits(readout_value(text), float(true[index]))


def test_each_mode_draws_the_true_differences(panel, tb, trained):
    weights = trained[1]
    last = last_step(tb, RUN_A)
    panel.wait_drawn(last)
    index = (2, 1, 1, 2)
    r, c = conv_cell(*index)
    steps = sorted(s for s in weights[RUN_A] if s in tb.get_json("runs")["runs"][0]["steps"])
    expected = {
        "values": weights[RUN_A][last][TAG][index],
        "delta_first": weights[RUN_A][last][TAG][index] - weights[RUN_A][0][TAG][index],
        "delta_prev": weights[RUN_A][last][TAG][index] - weights[RUN_A][steps[-2]][TAG][index],
    }
    pictures = {}
    for mode, value in expected.items():
        panel.frame.select_option("#mode", mode)
        panel.wait_mode(mode)
        panel.wait_panels(1)
        text = panel.hover_cell(r, c)
        assert "kernel[2, 1, 1, 2]" in text, text
        assert_3_digits(readout_value(text), float(value))
        pictures[mode] = panel.cell_colors()
        assert len({tuple(px) for px in pictures[mode]}) > 5, mode
    assert pictures["values"] != pictures["delta_first"]
    # Run A − run B at the same step.
    panel.frame.check('.run-checkbox[data-run="%s"]' % RUN_B)
    panel.frame.select_option("#mode", "diff")
    panel.wait_mode("diff")
    panel.wait_panels(1)
    assert panel.frame.locator(".panel-title").text_content() == "%s − %s" % (RUN_A, RUN_B)
    text = panel.hover_cell(r, c)
    diff = weights[RUN_A][last][TAG][index] - weights[RUN_B][last][TAG][index]
    assert_3_digits(readout_value(text), float(diff))
    assert len({tuple(px) for px in panel.cell_colors()}) > 5
    panel.screenshot("diff.png")


def test_two_runs_side_by_side_share_step_and_scale(panel, tb, trained):
    panel.frame.check('.run-checkbox[data-run="%s"]' % RUN_B)
    panel.wait_panels(2)
    titles = panel.frame.locator(".heatmap-panel .panel-title").all_text_contents()
    assert titles == [RUN_A, RUN_B]
    boxes = [panel.frame.locator(".heatmap-canvas").nth(i).bounding_box() for i in range(2)]
    assert boxes[0]["x"] + boxes[0]["width"] <= boxes[1]["x"], "side by side"
    assert abs(boxes[0]["y"] - boxes[1]["y"]) < 2
    a, b = panel.cell_colors(0), panel.cell_colors(1)
    assert a != b
    # One shared scale: the same colour means the same value in both panels.
    last = last_step(tb, RUN_A)
    index = (0, 0, 0, 0)
    wa = trained[1][RUN_A][last][TAG]
    wb = trained[1][RUN_B][last][TAG]
    assert_3_digits(readout_value(panel.hover_cell(*conv_cell(*index), index=1)), float(wb[index]))
    # The other panel reads out the same cell, with its own run's value.
    other = panel.frame.locator(".readout").nth(0).text_content()
    assert other.startswith("kernel[0, 0, 0, 0] = "), other
    assert_3_digits(readout_value(other), float(wa[index]))
    # Fixed over all steps: the largest |w| of either run at any snapshot.
    snapshot_steps = tb.get_json("runs")["runs"][0]["steps"]
    bound = max(np.abs(trained[1][run][s][TAG]).max() for run in (RUN_A, RUN_B) for s in snapshot_steps)
    lo, hi = (float(panel.frame.locator("#legend").get_attribute(k)) for k in ("data-lo", "data-hi"))
    assert hi == pytest.approx(bound, rel=1e-6) and lo == -hi
    # Synced step: moving the one step control moves both panels.
    panel.set_step_index(1)
    panel.wait_drawn(2)
    steps = panel.frame.locator(".heatmap-canvas").evaluate_all("(cs) => cs.map((c) => c.dataset.step)")
    assert steps == ["2", "2"]
    panel.screenshot("compare.png")


def test_run_name_with_markup_is_shown_as_text(panel):
    names = panel.frame.locator(".run-list .run-name").all_text_contents()
    assert RUN_B in names
    assert panel.frame.locator(".run-list b").count() == 0
    panel.frame.check('.run-checkbox[data-run="%s"]' % RUN_B)
    panel.wait_panels(2)
    assert panel.frame.locator(".heatmap-panel b").count() == 0
    assert RUN_B in panel.frame.locator(".heatmap-panel .panel-title").all_text_contents()


def test_layer_list_stats_charts_and_overview(panel, tb, trained):
    weights = trained[1][RUN_A]
    last = last_step(tb, RUN_A)
    panel.wait_drawn(last)
    layers = panel.frame.locator(".layer-row").evaluate_all("(rs) => rs.map((r) => r.dataset.path)")
    assert layers[:3] == ["conv2d", "pool", "dense"], layers  # model order
    head = panel.frame.locator('.layer-row[data-path="conv2d"] .layer-meta').text_content()
    assert "Conv2D" in head and "76 params" in head, head
    # Layers coloured by a dynamics stat at the current step: the true values.
    steps = tb.get_json("runs")["runs"][0]["steps"]
    for tag in ("conv2d/kernel", "dense/kernel"):
        w, prev = weights[last][tag].astype(np.float64), weights[steps[-2]][tag].astype(np.float64)
        badge = panel.frame.locator('.weight[data-tag="%s"] .stat-text' % tag).text_content()
        assert_3_digits(float(badge), np.linalg.norm(w - prev) / np.linalg.norm(prev))  # update ratio
    panel.frame.select_option("#layer-stat", "init_l2")
    for tag in ("conv2d/kernel", "conv2d/bias"):
        expected = np.linalg.norm(weights[last][tag].astype(np.float64) - weights[0][tag])
        badge = panel.frame.locator('.weight[data-tag="%s"] .stat-text' % tag)
        assert_3_digits(float(badge.text_content()), expected)
    # Eight stat charts with one line each (the six of every tensor, and
    # σ_max and stable rank of this matrix; its 18 pooled eigenvalues are too
    # few for alpha: test_browser_spectral.py); the read-out under each is
    # the run's value at the current step.
    assert panel.frame.locator(".chart-card").count() == 8
    l2 = panel.frame.locator(".chart-card").first.locator(".chart-value .value").text_content()
    assert_3_digits(float(l2), np.linalg.norm(weights[last][TAG].astype(np.float64)))
    # Clicking a chart moves the step.
    chart = panel.frame.locator(".chart").first
    box = chart.bounding_box()
    chart.click(position={"x": box["width"] * 46 / 300 + 1, "y": box["height"] / 2})
    panel.wait_drawn(0)
    # Another tensor from the list.
    panel.frame.click('.weight[data-tag="dense/kernel"]')
    panel.frame.wait_for_function("() => document.querySelector('.tensor-title').textContent === 'dense/kernel'")
    panel.wait_panels(1)
    # Overview: a tile per tensor, each opening its view.
    panel.frame.select_option("#view", "overview")
    tiles = panel.frame.locator(".tile")
    tiles.first.wait_for()
    assert tiles.count() == 4
    panel.screenshot("overview.png")
    panel.frame.click('.tile[data-tag="conv2d/bias"]')
    panel.frame.wait_for_function("() => document.querySelector('.tensor-title').textContent === 'conv2d/bias'")
    panel.wait_panels(1)


def test_play_advances_through_snapshots(panel, tb):
    panel.set_step_index(0)
    panel.wait_drawn(0)
    panel.frame.select_option("#speed", "max")
    panel.frame.click("#play")
    last = last_step(tb, RUN_A)
    panel.wait_drawn(last)
    assert panel.frame.locator("#play").get_attribute("aria-label") == "play", "stops at the end"
    drawn = int(panel.frame.evaluate("() => document.body.dataset.framesDrawn"))
    assert drawn >= 7


def test_dark_scheme(browser, tb):
    p = open_panel(browser, tb, color_scheme="dark", direct=True)
    try:
        p.wait_panels(1)
        bg = p.frame.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert bg == "rgb(48, 48, 48)", bg
        p.screenshot("dark.png")
    finally:
        p.page.close()
    no_errors(p)


def test_rustboard_and_live_steps_and_damaged_frame(browser, tmp_path):
    """--load_fast=true: a run written while the page is open appears and
    grows without a reload; a damaged frame is reported in place."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from tensorboard_nnviz.core import format as fmt

    logdir = tmp_path / "live"
    logdir.mkdir()
    with TensorBoardServer(str(logdir), load_fast=True, extra_args=("--reload_interval", "1")) as server:
        p = open_panel(browser, server, direct=True, query="&nnviz_poll_ms=300", wait=False)
        try:
            # No data yet: said plainly; the run appears once it is written.
            p.frame.locator(".status .note").wait_for(timeout=TIMEOUT_MS)
            assert "No nnviz data yet" in p.frame.locator(".status").text_content()
            write_synthetic_run(str(logdir / "grow"), steps=[0, 1])
            p.wait_drawn(1)
            assert p.frame.locator(".run-list .run-name").all_text_contents() == ["grow"]
            write_synthetic_run(str(logdir / "grow"), steps=[2, 3], structure=False)
            p.wait_drawn(3)  # followed the latest step
            assert p.frame.locator("#step-slider").get_attribute("max") == "3"
            # A damaged frame at step 4: shown in place, the rest keeps working.
            content = fmt.frame_content(shape=[4, 3], dtype="float32",
                                        layout={"row_axes": [0], "col_axes": [1], "block": [1, 1], "groups": []},
                                        rows=4, cols=3)
            writer = EventFileWriter(str(logdir / "grow"))
            writer.add_event(event_pb2.Event(step=4, wall_time=1.0, summary=summary_pb2.Summary(
                value=[fmt.frame_value("dense/kernel", b"NNVZ damaged", content)])))
            writer.close()
            p.frame.wait_for_function("() => document.querySelector('#step-slider').max === '4'", timeout=TIMEOUT_MS)
            p.wait_drawn(4)
            p.frame.locator(".heatmap-panel .error").wait_for(timeout=TIMEOUT_MS)
            message = p.frame.locator(".heatmap-panel .error").text_content()
            assert "frame" in message and "HTTP 4" in message, message
            p.set_step_index(3)
            p.wait_drawn(3)
            assert p.frame.locator(".heatmap-panel .error").count() == 0
            # NaN and ±Inf cells at step 5: their own colours, named in the legend.
            frame = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
            frame[0, 1], frame[2, 2], frame[3, 0] = np.nan, np.inf, -np.inf
            writer = EventFileWriter(str(logdir / "grow"))
            writer.add_event(event_pb2.Event(step=5, wall_time=2.0, summary=summary_pb2.Summary(
                value=[fmt.frame_value("dense/kernel", fmt.encode_frame(frame), content)])))
            writer.close()
            # Looking at an earlier step: the new one appears, the view stays put.
            p.frame.wait_for_function("() => document.querySelector('#step-slider').max === '5'", timeout=TIMEOUT_MS)
            assert p.frame.evaluate("() => document.body.dataset.drawnStep") == "3"
            p.set_step_index(5)
            p.wait_drawn(5)
            p.wait_panels(1)
            specials = p.frame.locator(".legend-specials .special.present").all_text_contents()
            assert specials == ["NaN (1)", "+Inf (1)", "−Inf (1)"], specials
            colors = p.cell_colors()
            assert colors[0 * 3 + 1][:3] == [255, 0, 255]  # NaN
            assert colors[2 * 3 + 2][:3] == [0, 230, 118]  # +Inf
            assert colors[3 * 0 + 9][:3] == [255, 234, 0]  # -Inf
            assert "= NaN" in p.hover_cell(0, 1)
        finally:
            p.page.close()
    expected_404 = [e for e in p.errors if "favicon" not in e and "status of 422" not in e and not EXPECTED_404.search(e)]
    assert expected_404 == [], p.errors


def test_downsampled_cell_names_its_block_and_mean(panel, tb, trained):
    panel.frame.check('.run-checkbox[data-run="%s"]' % RUN_BLOCKS)
    panel.frame.uncheck('.run-checkbox[data-run="%s"]' % RUN_A)
    panel.frame.click('.weight[data-tag="dense/kernel"]')
    panel.frame.wait_for_function(
        "() => document.querySelector('.tensor-title').textContent === 'dense/kernel'"
        " && document.querySelector('.heatmap-panel .panel-title').textContent === 'mlp_blocks'"
    )
    panel.wait_panels(1)
    tensor = [t for t in tb.get_json("tags", {"run": RUN_BLOCKS})["tensors"] if t["tag"] == "dense/kernel"][0]
    assert tensor["downsampled"] and tensor["shape"] == [5, 8]
    br, bc = tensor["layout"]["block"]
    last = last_step(tb, RUN_BLOCKS)
    w = trained[1][RUN_BLOCKS][last]["dense/kernel"]
    r, c = tensor["rows"] - 1, tensor["cols"] - 1  # an edge block
    text = panel.hover_cell(r, c)
    r0, c0 = r * br, c * bc
    r1, c1 = min(r0 + br, 5) - 1, min(c0 + bc, 8) - 1
    assert text.startswith("kernel[%d, %d] … kernel[%d, %d] (mean of %d×%d block" % (r0, c0, r1, c1, r1 - r0 + 1, c1 - c0 + 1)), text
    assert_3_digits(readout_value(text), float(w[r0 : r1 + 1, c0 : c1 + 1].mean()))


def test_downsampled_tensor_is_scaled_from_its_block_means(panel, tb, trained):
    """A block-reduced frame's colour scale comes from its block means (a
    high percentile of |mean| at sampled steps), not from the full-resolution
    min/max, which would leave the picture near-blank; the legend says so."""
    show_only(panel, RUN_BLOCKS, "dense/kernel")
    tensor = [t for t in tb.get_json("tags", {"run": RUN_BLOCKS})["tensors"] if t["tag"] == "dense/kernel"][0]
    br, bc = tensor["layout"]["block"]
    steps = tensor["steps"]
    assert len(steps) <= 8, "every step is sampled (the panel samples 8)"
    weights = trained[1][RUN_BLOCKS]

    def block_means(w):
        rows, cols = -(-w.shape[0] // br), -(-w.shape[1] // bc)
        return np.array([[w[i * br:(i + 1) * br, j * bc:(j + 1) * bc].astype(np.float64).mean()
                          for j in range(cols)] for i in range(rows)])

    expected = max(np.percentile(np.abs(block_means(weights[s]["dense/kernel"])), 99.9) for s in steps)
    full = max(np.abs(weights[s]["dense/kernel"]).max() for s in steps)
    panel.frame.wait_for_function("() => document.querySelector('#legend .legend-note').textContent.includes('block means')")
    note = panel.frame.locator("#legend .legend-note").text_content()
    assert note.startswith("Colour scale (signed, centred on 0): fixed over %d sampled steps" % len(steps)), note
    lo, hi = (float(panel.frame.locator("#legend").get_attribute(k)) for k in ("data-lo", "data-hi"))
    # Frames are stored as float16: the served means differ from the true ones by its rounding.
    assert hi == pytest.approx(expected, rel=2e-3) and lo == -hi
    assert hi < 0.8 * full, (hi, full)
    # The picture uses the colour range: the largest block mean sits near its end.
    last = panel.frame.evaluate(
        "() => { const f = window.nnviz.panels[0].panel.state.frame.data;"
        " return Math.max(...Array.from(f, Math.abs)); }")
    assert last / hi > 0.5, (last, hi)


def test_zoom_keeps_hover_on_the_right_cell(panel, tb, trained):
    panel.wait_panels(1)
    canvas = panel.frame.locator(".heatmap-canvas")
    before = float(canvas.get_attribute("data-cell"))
    canvas.focus()
    panel.page.keyboard.press("+")
    panel.page.keyboard.press("+")
    panel.frame.wait_for_function("(b) => +document.querySelector('.heatmap-canvas').dataset.cell > b * 1.5", arg=before)
    last = last_step(tb, RUN_A)
    index = (1, 0, 1, 1)  # near the middle: still on screen after zooming in
    text = panel.hover_cell(*conv_cell(*index))
    assert text.startswith("kernel[1, 0, 1, 1] = "), text
    assert_3_digits(readout_value(text), float(trained[1][RUN_A][last][TAG][index]))
    panel.frame.click('button[aria-label="reset zoom"]')
    panel.frame.wait_for_function("(b) => +document.querySelector('.heatmap-canvas').dataset.cell === b", arg=before)


def test_per_frame_scale_with_percentile_clipping(panel, tb, trained):
    panel.wait_panels(1)
    last = last_step(tb, RUN_A)
    w = trained[1][RUN_A][last][TAG].astype(np.float64)
    panel.frame.select_option("#scale-mode", "frame")
    panel.frame.check("#clip")
    panel.frame.wait_for_function("() => document.querySelector('#legend .legend-note').textContent.includes('per frame, clipped')")
    hi = float(panel.frame.locator("#legend").get_attribute("data-hi"))
    assert hi == pytest.approx(max(abs(np.percentile(w, 1)), abs(np.percentile(w, 99))), rel=1e-5)
    assert hi < np.abs(w).max()
    # Magnitudes on a sequential map: 0 … 99th percentile of |w|.
    panel.frame.select_option("#color-kind", "magnitude")
    panel.frame.wait_for_function("() => document.querySelector('#cmap').value === 'viridis'")
    panel.frame.wait_for_function("() => document.querySelector('#legend .legend-note').textContent.includes('|x|')")
    lo = float(panel.frame.locator("#legend").get_attribute("data-lo"))
    hi = float(panel.frame.locator("#legend").get_attribute("data-hi"))
    assert lo == 0 and hi == pytest.approx(np.percentile(np.abs(w), 99), rel=1e-5)


def test_layer_list_shows_branches_and_merges(panel):
    panel.frame.check('.run-checkbox[data-run="%s"]' % RUN_BRANCHY)
    panel.frame.uncheck('.run-checkbox[data-run="%s"]' % RUN_A)
    panel.frame.wait_for_function("() => document.querySelector('.layers-card h2').textContent === 'Layers · branchy'")
    rows = panel.frame.locator(".layer-row")
    paths = rows.evaluate_all("(rs) => rs.map((r) => r.dataset.path)")
    assert paths == ["inp", "a", "b1", "b2", "add", "concat", "out"], paths
    flow = {p: panel.frame.locator('.layer-row[data-path="%s"] .flow' % p).all_text_contents() for p in paths}
    assert flow["a"] == ["branch → 3"]  # a feeds b1, b2 and concat
    assert flow["add"] == ["merge ← 2"] and flow["concat"] == ["merge ← 2"]
    assert flow["b1"] == [] and flow["out"] == []
    assert panel.frame.locator('.layer-row[data-path="add"] .flow').get_attribute("title") == "merges b1, b2"
    panel.wait_panels(1)
    panel.screenshot("branches.png")


def show_only(panel, run, tag):
    """Shows one run (the first one unticked) and one of its tensors."""
    panel.frame.check('.run-checkbox[data-run="%s"]' % run)
    panel.frame.uncheck('.run-checkbox[data-run="%s"]' % RUN_A)
    panel.frame.wait_for_function(
        "(r) => document.querySelector('.heatmap-panel .panel-title').textContent === r", arg=run, timeout=TIMEOUT_MS
    )
    panel.frame.click('.weight[data-tag="%s"]' % tag)
    panel.frame.wait_for_function(
        "(t) => document.querySelector('.tensor-title').textContent === t", arg=tag, timeout=TIMEOUT_MS
    )
    panel.wait_panels(1)


def test_wide_first_conv_kernel_wraps_into_a_grid_of_tiles(panel, tb, trained):
    """16 kernels of 3x3 on one channel (a 3 x 48 frame) are shown as bands
    of whole tiles; hovering a cell of a lower band still names its index."""
    show_only(panel, RUN_WIDE, TAG)
    tensor = [t for t in tb.get_json("tags", {"run": RUN_WIDE})["tensors"] if t["tag"] == TAG][0]
    assert tensor["shape"] == [3, 3, 1, 16] and (tensor["rows"], tensor["cols"]) == (3, 48)
    canvas = panel.frame.locator(".heatmap-canvas")
    bands = int(canvas.get_attribute("data-bands"))
    assert bands >= 2
    cell = float(canvas.get_attribute("data-cell"))
    assert cell > canvas.bounding_box()["width"] / 48 * 1.2, "bigger cells than one long strip"
    last = last_step(tb, RUN_WIDE)
    w = trained[1][RUN_WIDE][last][TAG]
    # Kernel 13 (out), kh 1, kw 2: layout row in*3 + kh = 1, col out*3 + kw = 41.
    first, lower = panel.cell_center(1, 0), panel.cell_center(1, 41)
    assert lower["y"] > first["y"] + 3 * cell, "kernel 13 sits in a lower band"
    text = panel.hover_cell(1, 41)
    assert text.startswith("kernel[1, 2, 0, 13] = "), text
    assert_3_digits(readout_value(text), float(w[1, 2, 0, 13]))
    # Every cell is painted where the panel says it is, in distinct colours.
    colors = panel.cell_colors()
    assert all(px[3] == 255 for px in colors) and len({tuple(px) for px in colors}) > 30


def test_gate_and_head_groups_are_marked_and_named_on_hover(panel, tb, trained):
    """LSTM gates and attention heads: group lines and names on the picture,
    and the hover read-out names the gate or head of the cell, from the
    layout groups the server sends."""
    tag = "lstm/lstm_cell/kernel"
    show_only(panel, RUN_LSTM, tag)
    tensor = [t for t in tb.get_json("tags", {"run": RUN_LSTM})["tensors"] if t["tag"] == tag][0]
    group = tensor["layout"]["groups"][0]
    assert tensor["shape"] == [3, 16] and group["axis"] == "cols" and group["names"] == ["i", "f", "c", "o"]
    canvas = panel.frame.locator(".heatmap-canvas")
    assert canvas.get_attribute("aria-label").endswith("column groups: gate i, gate f, gate c, gate o")
    w = trained[1][RUN_LSTM][last_step(tb, RUN_LSTM)][tag]
    for c in (1, 6, 9, 14):
        text = panel.hover_cell(2, c)
        gate = group["names"][c // group["size"]]
        assert text.startswith("kernel[2, %d] = " % c) and text.endswith("· gate %s" % gate), text
        assert_3_digits(readout_value(text), float(w[2, c]))
    # A line in the text colour between gates, and each gate's name above it.
    geo = panel.frame.evaluate("() => window.nnviz.panels[0].panel.geometry")
    ink = [33, 33, 33, 255]  # --text (light scheme)
    for k in (1, 2, 3):
        assert panel.pixel(geo["x0"] + 4 * k * geo["cell"], geo["y0"] + 1.5 * geo["cell"]) == ink
    label_ink = panel.frame.evaluate(
        """() => {
          const c = document.querySelector('.heatmap-canvas');
          const g = window.nnviz.panels[0].panel.geometry;
          const dpr = c.width / c.clientWidth;
          const counts = [];
          for (let k = 0; k < 4; k++) {
            const x = Math.floor((g.x0 + (4 * k + 1) * g.cell) * dpr);
            const w = Math.floor(2 * g.cell * dpr);
            const px = c.getContext('2d').getImageData(x, Math.floor((g.y0 - 15) * dpr), w, Math.floor(10 * dpr)).data;
            let n = 0;
            for (let j = 3; j < px.length; j += 4) if (px[j] > 128) n++;
            counts.push(n);
          }
          return counts;
        }"""
    )
    assert all(n > 5 for n in label_ink), label_ink
    # Heads: the query kernel (d, heads, hd) groups columns, the output
    # kernel (heads, hd, d) groups rows.
    panel.frame.check('.run-checkbox[data-run="%s"]' % RUN_MHA)
    panel.frame.uncheck('.run-checkbox[data-run="%s"]' % RUN_LSTM)
    last = last_step(tb, RUN_MHA)
    for tag, (r, c), index in [("mha/query/kernel", (1, 4), (1, 1, 1)), ("mha/attention_output/kernel", (4, 2), (1, 1, 2))]:
        panel.frame.click('.weight[data-tag="%s"]' % tag)
        panel.frame.wait_for_function(
            "(t) => document.querySelector('.tensor-title').textContent === t"
            " && document.querySelector('.heatmap-panel .panel-title').textContent === 'y_mha'",
            arg=tag, timeout=TIMEOUT_MS,
        )
        panel.wait_panels(1)
        text = panel.hover_cell(r, c)
        assert text.startswith("kernel[%s] = " % ", ".join(map(str, index))) and text.endswith("· head 1"), text
        assert_3_digits(readout_value(text), float(trained[1][RUN_MHA][last][tag][index]))
        assert "groups: head 0, head 1" in panel.frame.locator(".heatmap-canvas").get_attribute("aria-label")


def test_stats_charts_are_keyboard_operable(panel, tb):
    """Tab reaches the charts after the heatmap; arrows, Home and End on a
    chart move the step (once per key), as clicking it does."""
    steps = [r for r in tb.get_json("runs")["runs"] if r["run"] == RUN_A][0]["steps"]
    panel.wait_drawn(steps[-1])
    panel.frame.locator(".heatmap-canvas").focus()
    panel.page.keyboard.press("Tab")
    focused = panel.frame.evaluate(
        "() => document.activeElement === document.querySelector('.chart') && document.activeElement.getAttribute('role')"
    )
    assert focused == "slider", focused
    chart = panel.frame.locator(".chart").first
    assert chart.get_attribute("aria-valuenow") == str(steps[-1])
    panel.page.keyboard.press("ArrowLeft")
    panel.wait_drawn(steps[-2])
    assert panel.frame.locator("#step-slider").input_value() == str(len(steps) - 2)
    panel.page.keyboard.press("Home")
    panel.wait_drawn(steps[0])
    panel.page.keyboard.press("ArrowRight")
    panel.wait_drawn(steps[1])
    assert chart.get_attribute("aria-valuenow") == str(steps[1])
    assert chart.get_attribute("aria-valuetext").startswith("step %d: %s " % (steps[1], RUN_A))
    panel.page.keyboard.press("End")
    panel.wait_drawn(steps[-1])
    # Still focused: the charts are not rebuilt by a step change.
    assert panel.frame.evaluate("() => document.activeElement === document.querySelector('.chart')")


def _leak_metrics(cdp):
    """After a full garbage collection: live HeatmapPanel objects, window
    `mouseup` listeners, and chromium's counts of JS event listeners and
    DOM nodes and its used JS heap."""
    cdp.send("HeapProfiler.collectGarbage")

    def evaluate(expression):
        return cdp.send("Runtime.evaluate", {"expression": expression, "objectGroup": "leak"})["result"]["objectId"]

    proto = evaluate("window.nnviz.panels[0].panel.constructor.prototype")
    live = cdp.send("Runtime.queryObjects", {"prototypeObjectId": proto, "objectGroup": "leak"})["objects"]["objectId"]
    panels = cdp.send("Runtime.callFunctionOn", {
        "objectId": live, "functionDeclaration": "function () { return this.length; }", "returnByValue": True,
    })["result"]["value"]
    listeners = cdp.send("DOMDebugger.getEventListeners", {"objectId": evaluate("window")})["listeners"]
    # What was handed to this session would keep the panels alive.
    cdp.send("Runtime.releaseObjectGroup", {"objectGroup": "leak"})
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return {
        "panels": panels,
        "window_mouseup": sum(1 for l in listeners if l["type"] == "mouseup"),
        "listeners": metrics["JSEventListeners"],
        "nodes": metrics["Nodes"],
        "heap": metrics["JSHeapUsedSize"],
    }


def test_run_selection_changes_do_not_leak_panels_or_listeners(panel):
    """50 run-selection changes (each rebuilds the heatmap panels): the
    panels and listeners alive afterwards are those on screen, not one set
    per change."""
    cdp = panel.page.context.new_cdp_session(panel.page)
    cdp.send("Performance.enable")
    box = '.run-checkbox[data-run="%s"]' % RUN_B

    def change(k):
        # Odd changes show two panels (RUN_A and RUN_B), even ones one.
        (panel.frame.check if k % 2 else panel.frame.uncheck)(box)
        panel.wait_panels(2 if k % 2 else 1)

    start = _leak_metrics(cdp)  # one panel (RUN_A)
    for k in range(1, 11):
        change(k)
    warm = _leak_metrics(cdp)
    for k in range(11, 51):
        change(k)
    after = _leak_metrics(cdp)
    print("\nleak metrics at the start: %s\nafter 10 changes: %s\nafter 50 changes: %s" % (start, warm, after))
    assert panel.frame.locator(".heatmap-panel").count() == 1
    assert after["panels"] == 1, after  # the one on screen
    # The window's mouseup listeners (Playwright adds one of its own): as at the start.
    assert after["window_mouseup"] == start["window_mouseup"], (start, after)
    # 40 more changes add no listeners and no nodes (a few of slack for
    # focus and timers).
    assert after["listeners"] - warm["listeners"] <= 10, (warm, after)
    assert after["nodes"] - warm["nodes"] <= 50, (warm, after)


# --- the dynamics map --------------------------------------------------------------------


def open_map(panel):
    panel.frame.select_option("#view", "map")
    panel.frame.wait_for_function("() => document.querySelector('.map-canvas').dataset.rows", timeout=TIMEOUT_MS)


def map_rows(panel):
    return panel.frame.evaluate("() => window.nnviz.page.dynamicsMap.model.rows.map((r) => [r.run, r.tag])")


def hover_map_cell(panel, row, col):
    """Moves the mouse over cell (row, col) of the map; returns the read-out."""
    canvas = panel.frame.locator(".map-canvas")
    box = canvas.bounding_box()
    p = panel.frame.evaluate("([r, c]) => window.nnviz.page.dynamicsMap.cellCenter(r, c)", [row, col])
    panel.page.mouse.move(box["x"] + p["x"], box["y"] + p["y"])
    panel.frame.wait_for_function(
        "([r, c]) => { const n = document.querySelector('.map-readout');"
        " return n.dataset.row === String(r) && n.dataset.col === String(c); }",
        arg=[row, col], timeout=TIMEOUT_MS,
    )
    return panel.frame.locator(".map-readout").text_content()


def model_order_tags(server, run):
    recorded = {t["tag"] for t in server.get_json("tags", {"run": run})["tensors"]}
    layers = server.get_json("structure", {"run": run})["layers"]
    return [w["tag"] for layer in layers for w in layer["weights"] if w["tag"] in recorded]


def map_value(text):
    m = re.search(r" = (\S+)", text)
    assert m, text
    return float(m.group(1))


def norm(x):
    return float(np.linalg.norm(x.astype(np.float64)))


def test_dynamics_map_draws_one_row_per_tensor_with_the_true_values(panel, tb, trained):
    weights = trained[1][RUN_A]
    steps = [r for r in tb.get_json("runs")["runs"] if r["run"] == RUN_A][0]["steps"]
    open_map(panel)
    tags = model_order_tags(tb, RUN_A)
    assert len(tags) == 4
    assert map_rows(panel) == [[RUN_A, t] for t in tags]
    canvas = panel.frame.locator(".map-canvas")
    assert canvas.get_attribute("data-rows") == "4" and canvas.get_attribute("data-cols") == str(len(steps))
    # Every row is painted at the last step (its update ratio is defined there).
    colors = panel.frame.evaluate(
        """(n) => {
          const c = document.querySelector('.map-canvas');
          const m = window.nnviz.page.dynamicsMap;
          const dpr = c.width / c.clientWidth;
          const ctx = c.getContext('2d');
          const out = [];
          for (let r = 0; r < n; r++) {
            const p = m.cellCenter(r, m.model.steps.length - 1);
            out.push([...ctx.getImageData(Math.floor(p.x * dpr), Math.floor(p.y * dpr), 1, 1).data]);
          }
          return out;
        }""", 4)
    assert all(px[3] == 255 for px in colors), colors
    # Hover: the tag, the step and the update ratio of the true weights.
    k = len(steps) - 1
    for row, tag in enumerate(tags):
        text = hover_map_cell(panel, row, k)
        assert text.startswith("%s · step %d · update ratio" % (tag, steps[k])), text
        w, prev = weights[steps[k]][tag], weights[steps[k - 1]][tag]
        assert_3_digits(map_value(text), norm(w - prev) / norm(prev))
    # The first snapshot has no update ratio: said so, and the cell is left blank.
    assert "undefined (first snapshot" in hover_map_cell(panel, 0, 0)
    # Another stat: the distance from init relative to ‖W₀‖.
    panel.frame.select_option("#map-stat", "rel_init")
    panel.frame.wait_for_function("() => document.querySelector('.map-canvas').dataset.stat === 'rel_init'")
    text = hover_map_cell(panel, 2, k)
    assert text.startswith("%s · step %d · distance from init" % (tags[2], steps[k])), text
    w, w0 = weights[steps[k]][tags[2]], weights[steps[0]][tags[2]]
    assert_3_digits(map_value(text), norm(w - w0) / norm(w0))
    # The update ratio's legend marks the ~1e-3-per-step reference for the
    # snapshots' spacing (k steps: 1e-3·√k) and explains it.
    panel.frame.select_option("#map-stat", "update_ratio")
    panel.frame.wait_for_function("() => document.querySelector('.map-canvas').dataset.stat === 'update_ratio'")
    gap = steps[1] - steps[0]
    reference = float(panel.frame.locator("#map-legend").get_attribute("data-reference"))
    assert reference == pytest.approx(1e-3 * np.sqrt(gap))
    assert "√k" in panel.frame.locator(".map-reference").text_content()
    panel.screenshot("map.png")


def test_dynamics_map_click_opens_that_tensor_at_that_step(panel, tb, trained):
    steps = [r for r in tb.get_json("runs")["runs"] if r["run"] == RUN_A][0]["steps"]
    open_map(panel)
    tags = model_order_tags(tb, RUN_A)
    row, col = tags.index("dense/kernel"), 2
    canvas = panel.frame.locator(".map-canvas")
    p = panel.frame.evaluate("([r, c]) => window.nnviz.page.dynamicsMap.cellCenter(r, c)", [row, col])
    canvas.click(position={"x": p["x"], "y": p["y"]})
    panel.wait_drawn(steps[col])
    panel.wait_panels(1)
    assert panel.frame.locator("#view").input_value() == "tensor"
    assert panel.frame.locator(".tensor-title").text_content() == "dense/kernel"
    assert panel.frame.locator("#step-label").text_content().startswith("step %d " % steps[col])
    # The heatmap shows dense/kernel at that step: its true value under the mouse.
    text = panel.hover_cell(1, 1)
    assert text.startswith("kernel[1, 1] = "), text
    assert_3_digits(readout_value(text), float(trained[1][RUN_A][steps[col]]["dense/kernel"][1, 1]))


def test_dynamics_map_is_keyboard_operable(panel, tb):
    steps = [r for r in tb.get_json("runs")["runs"] if r["run"] == RUN_A][0]["steps"]
    open_map(panel)
    tags = model_order_tags(tb, RUN_A)
    # Tab from the stat control reaches the map; the cursor starts on the
    # first tensor at the last step.
    panel.frame.locator("#map-stat").focus()
    panel.page.keyboard.press("Tab")
    assert panel.frame.evaluate("() => document.activeElement === document.querySelector('.map-canvas')")
    readout = panel.frame.locator(".map-readout")
    assert readout.text_content().startswith("%s · step %d" % (tags[0], steps[-1]))
    panel.page.keyboard.press("ArrowDown")
    panel.page.keyboard.press("ArrowLeft")
    panel.page.keyboard.press("ArrowLeft")
    assert readout.text_content().startswith("%s · step %d" % (tags[1], steps[-3]))
    # The page's own arrow keys did not move the step meanwhile.
    assert panel.frame.locator("#step-label").text_content().startswith("step %d " % steps[-1])
    panel.page.keyboard.press("Home")
    panel.page.keyboard.press("ArrowRight")
    assert readout.text_content().startswith("%s · step %d" % (tags[1], steps[1]))
    panel.page.keyboard.press("Enter")
    panel.wait_drawn(steps[1])
    assert panel.frame.locator(".tensor-title").text_content() == tags[1]
    assert panel.frame.locator("#step-label").text_content().startswith("step %d " % steps[1])


def test_dynamics_map_stacks_runs_on_one_scale(panel, tb):
    panel.frame.check('.run-checkbox[data-run="%s"]' % RUN_B)
    open_map(panel)
    panel.frame.wait_for_function("() => document.querySelector('.map-canvas').dataset.rows === '8'")
    rows = map_rows(panel)
    assert rows == [[RUN_A, t] for t in model_order_tags(tb, RUN_A)] + [[RUN_B, t] for t in model_order_tags(tb, RUN_B)]
    # One scale over both runs: the 1st-99th percentile of every positive
    # update ratio of either run (taken on the log scale the map draws).
    ratios = []
    for run in (RUN_A, RUN_B):
        for series in tb.get_json("stats", {"run": run}).values():
            ratios += [v for v in series["update_ratio"] if v is not None and v > 0]
    lo, hi = (float(panel.frame.locator("#map-legend").get_attribute(k)) for k in ("data-lo", "data-hi"))
    logs = np.log10(ratios)
    assert lo == pytest.approx(10 ** np.percentile(logs, 1)) and hi == pytest.approx(10 ** np.percentile(logs, 99))
    # The second run's rows start below the first's, under its own name.
    top_b = panel.frame.evaluate("() => window.nnviz.page.dynamicsMap.cellCenter(4, 0).y")
    bottom_a = panel.frame.evaluate("() => window.nnviz.page.dynamicsMap.cellCenter(3, 0).y")
    assert top_b > bottom_a + 10
    text = hover_map_cell(panel, 4, 1)
    assert text.startswith("%s · conv2d/kernel · step" % RUN_B), text
