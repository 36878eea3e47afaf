"""The panel's quantity selector in a real browser against a real
`tensorboard` (both ingesters), on torch runs recorded by `watch` under Adam
(tests/quantity_runs.py): what the views show of each quantity is the live
optimizer's value at the snapshot step; a run recording the weights alone
shows no selector.

It imports the fixtures and helpers of tests/test_browser.py.
"""

import numpy as np
import pytest

import quantity_runs as qr
from tb_server import TensorBoardServer
from test_browser import TIMEOUT_MS, browser, no_errors, open_panel  # noqa: F401 (fixtures)
from test_browser_diagnosis import open_tensor, show_only

RUN = "adam"
PLAIN = "plain"
MOMENTS = "moments"  # v_rms alone, as a Keras run on TensorFlow records (no raw gradients there)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("quantity_logs")
    truth = qr.record_adam_mlp(str(logdir / RUN))
    qr.record_weights_only(str(logdir / PLAIN))
    moments = qr.record_adam_mlp(str(logdir / MOMENTS), seed=2, quantities=("v_rms",), frames=())
    return str(logdir), truth, moments


@pytest.fixture(scope="module", params=[False, True], ids=["python", "rustboard"])
def tb(recorded, request):
    with TensorBoardServer(recorded[0], load_fast=request.param) as server:
        server.wait_for(lambda: len(server.get_json("runs")["runs"]) == 3)
        yield server


@pytest.fixture
def panel(browser, tb):  # noqa: F811
    p = open_panel(browser, tb, direct=True)
    show_only(p, RUN)
    yield p
    p.page.close()
    no_errors(p)


def choose(panel, quantity):
    """Picks `quantity` in the selector; waits until the charts show it."""
    panel.frame.select_option("#quantity", quantity)
    panel.frame.wait_for_function(
        "(q) => document.querySelector('.charts').dataset.quantity === q && document.querySelector('.chart')",
        arg=quantity, timeout=TIMEOUT_MS)


def drawn_frame(panel):
    """The frame on the first heatmap panel once drawn: (rows, cols, data)."""
    panel.frame.wait_for_function("() => window.nnviz.panels[0]?.panel.state", timeout=TIMEOUT_MS)
    f = panel.frame.evaluate("() => { const f = window.nnviz.panels[0].panel.state.frame;"
                             " return [f.rows, f.cols, [...f.data]]; }")
    return f[0], f[1], np.asarray(f[2], dtype=np.float32).reshape(f[0], f[1])


def chart_value(panel, stat):
    """The read-out of chart `stat` at the current step, as a number."""
    card = panel.frame.locator(".chart-card", has=panel.frame.locator('svg[data-stat="%s"]' % stat))
    return float(card.locator(".chart-value .value").first.text_content())


def test_selector_offers_what_the_run_recorded_and_shows_the_live_gradient(panel, recorded):
    truth = recorded[1]
    control = panel.frame.locator("#quantity")
    assert control.is_visible()
    options = panel.frame.evaluate("() => [...document.querySelectorAll('#quantity option')].map((o) => o.value)")
    assert options == ["weights", "grad", "m_hat", "v_rms"]  # no momentum under Adam: not offered
    open_tensor(panel, qr.FIRST_TAG)
    choose(panel, "grad")
    panel.wait_drawn(qr.LAST)
    # The heatmap is the gradient at the last snapshot (Linear (out, in) laid out in × out).
    rows, cols, frame = drawn_frame(panel)
    np.testing.assert_array_equal(frame, truth["grad"][qr.FIRST_TAG].T)
    assert any("/frame?" in u and "quantity=grad" in u for u in panel.requests)
    # On a log scale of |x| with Adam's ε marked: the one the run recorded, not a default.
    legend = panel.frame.locator("#legend")
    assert legend.get_attribute("data-log") == "true"
    assert panel.frame.locator("#legend .tick.mark").text_content() == "ε"
    assert "ε = 1e-8: the run's Adam's" in legend.text_content()
    assert "default" not in legend.text_content()
    # The charts: the gradient's RMS, on a log axis with ε marked below it.
    rms = qr.rms(truth["grad"][qr.FIRST_TAG])
    assert chart_value(panel, "rms") == pytest.approx(rms, rel=6e-3)
    assert panel.frame.locator('svg.chart.log[data-stat="rms"] .mark-label').text_content() == "ε"
    assert chart_value(panel, "l2") == pytest.approx(float(np.linalg.norm(truth["grad"][qr.FIRST_TAG])), rel=6e-3)
    # The units map asks for the gradient's per-unit stats.
    panel.frame.wait_for_function("() => document.querySelector('.units-view').dataset.quantity === 'grad'",
                                  timeout=TIMEOUT_MS)
    assert any("/units?" in u and "quantity=grad" in u for u in panel.requests)
    assert panel.frame.locator(".units-canvas").count() == 1  # a row per snapshot of the gradient's stats
    assert panel.frame.locator(".units-view .error").count() == 0
    # The log scale turned off: a linear signed scale again.
    panel.frame.uncheck("#log-scale")
    panel.frame.wait_for_function("() => document.querySelector('#legend').dataset.log === 'false'",
                                  timeout=TIMEOUT_MS)
    assert not panel.frame.locator('svg.chart.log[data-stat="rms"]').count()


def test_a_quantity_without_frames_says_so_and_keeps_its_charts(panel, recorded):
    choose(panel, "m_hat")
    open_tensor(panel, qr.HEAD_TAG)
    note = panel.frame.locator(".heatmap-panel .panel-message")
    note.filter(has_text="without frames").wait_for(timeout=TIMEOUT_MS)
    assert "recorded the Adam m̂ (1st moment) of %s without frames" % qr.HEAD_TAG in note.text_content()
    assert panel.frame.locator(".heatmap-panel .error").count() == 0  # a note, not a failure
    # m_hat is signed: no log scale offered.
    assert not panel.frame.locator("#log-scale").is_visible()
    assert chart_value(panel, "rms") == pytest.approx(qr.rms(recorded[1]["m_hat"][qr.HEAD_TAG]), rel=6e-3)
    # The choice holds from tensor to tensor.
    open_tensor(panel, qr.FIRST_TAG)
    assert panel.frame.locator("#quantity").input_value() == "m_hat"
    assert chart_value(panel, "rms") == pytest.approx(qr.rms(recorded[1]["m_hat"][qr.FIRST_TAG]), rel=6e-3)


def test_layer_list_is_coloured_by_gradient_rms(panel, recorded):
    panel.frame.wait_for_function("(r) => document.querySelector('.layer-list').dataset.colouredRun === r",
                                  arg=RUN, timeout=TIMEOUT_MS)
    assert panel.frame.locator("#layer-stat").input_value() == "grad_rms"

    def badge(tag):
        return float(panel.frame.locator('.weight[data-tag="%s"] .stat-badge' % tag).get_attribute("data-value"))

    grad = recorded[1]["grad"]
    for tag in (qr.FIRST_TAG, qr.HEAD_TAG):
        assert badge(tag) == pytest.approx(qr.rms(grad[tag]), rel=1e-6)
    # Decades apart across depth: a log colouring, growing layer by layer
    # from the first (the deep sigmoid MLP's vanishing gradient).
    assert panel.frame.locator(".layer-list").get_attribute("data-colour") == "grad_rms log"
    kernels = ["%d/weight" % (2 * i) for i in range(qr.DEPTH + 1)]
    widths = [float(panel.frame.locator('.weight[data-tag="%s"] .stat-bar' % t).evaluate("(n) => n.style.width")[:-2])
              for t in kernels]
    assert widths == sorted(widths) and widths[0] < 10 < 30 < widths[-1], widths
    assert badge(qr.FIRST_TAG) < 1e-2 * badge(qr.HEAD_TAG)


def test_without_gradients_the_layer_list_reads_v_rms(browser, tb, recorded):  # noqa: F811
    p = open_panel(browser, tb, direct=True)
    show_only(p, MOMENTS)
    p.frame.wait_for_function("(r) => document.querySelector('.layer-list').dataset.colouredRun === r",
                              arg=MOMENTS, timeout=TIMEOUT_MS)
    assert p.frame.locator("#layer-stat").input_value() == "grad_rms"
    value = float(p.frame.locator('.weight[data-tag="%s"] .stat-badge' % qr.FIRST_TAG).get_attribute("data-value"))
    assert value == pytest.approx(qr.rms(recorded[2]["v_rms"][qr.FIRST_TAG]), rel=1e-6)
    assert any("run=%s" % MOMENTS in u and "quantity=v_rms" in u for u in p.requests)
    p.page.close()
    no_errors(p)


def test_a_vanishing_gradient_finding_opens_the_gradient(panel, recorded):
    line = panel.frame.locator('.findings-run[data-run="%s"] .finding[data-kind="vanishing_gradients"]' % RUN).first
    line.wait_for(timeout=TIMEOUT_MS)
    # Earliest layer first; named in the panel's words.
    assert line.get_attribute("data-tag") == qr.FIRST_TAG
    assert line.locator(".finding-kind").text_content() == "vanishing gradients"
    assert panel.frame.locator("#quantity").input_value() == "weights"
    line.click()
    choose_done = "() => document.querySelector('.charts').dataset.quantity === 'grad'"
    panel.frame.wait_for_function(choose_done, timeout=TIMEOUT_MS)
    assert panel.frame.locator(".tensor-title").text_content() == qr.FIRST_TAG
    assert panel.frame.locator("#quantity").input_value() == "grad"
    panel.frame.wait_for_function("() => window.nnviz.panels[0]?.panel.state", timeout=TIMEOUT_MS)
    step = int(panel.frame.evaluate("() => window.nnviz.step"))
    assert step == int(line.get_attribute("data-step"))


def test_dynamics_map_of_a_quantity(panel):
    choose(panel, "v_rms")
    panel.frame.select_option("#view", "map")
    panel.frame.wait_for_function(
        "() => { const c = document.querySelector('.map-canvas');"
        " return c && !c.hidden && c.dataset.quantity === 'v_rms'; }", timeout=TIMEOUT_MS)
    assert "of the √v̂ (Adam RMS of g)" in panel.frame.locator("#map-legend").text_content()
    assert any("/stats?" in u and "fields=" in u and "quantity=v_rms" in u for u in panel.requests)


def test_a_run_of_weights_alone_has_no_selector(browser, tb):  # noqa: F811
    p = open_panel(browser, tb, direct=True)
    show_only(p, PLAIN)
    p.frame.wait_for_function("(r) => document.querySelector('.layer-list').dataset.colouredRun === r"
                              " && document.querySelector('.charts .chart')", arg=PLAIN, timeout=TIMEOUT_MS)
    assert not p.frame.locator("#quantity").is_visible()
    assert p.frame.locator("#layer-stat").input_value() == "update_ratio"
    options = p.frame.evaluate("() => [...document.querySelectorAll('#layer-stat option')].map((o) => o.value)")
    assert "grad_rms" not in options
    # Nothing of the plain run is asked for by quantity (the first run, opened at start, has them).
    plain = [u for u in p.requests if "run=%s" % PLAIN in u]
    assert plain and not any("quantity=" in u for u in plain)
    p.page.close()
    no_errors(p)
