"""The spectral stats in the panel (chromium via Playwright, a real
TensorBoard): a run trained with spectral=True shows σ_max, stable rank,
alpha and alpha_weighted charts for a matrix (alpha with its 2 and 6 marks
and their reasons), none for a bias, and the map colours rows by alpha."""

import pytest

from spectral_reference import reference_metrics, slices
from tb_server import TensorBoardServer
# browser and panel: test_browser's fixtures (panel opens this module's tb).
from test_browser import (TIMEOUT_MS, assert_3_digits, browser, hover_map_cell, map_value,  # noqa: F401
                          open_map, panel)
from test_spectral_run import train_spectral_run

RUN = "spectral"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("browser_spectral")
    return str(logdir), train_spectral_run(logdir / RUN, epochs=2)


@pytest.fixture(scope="module")
def tb(trained):
    with TensorBoardServer(trained[0], load_fast=False) as server:
        server.wait_for(lambda: len(server.get_json("runs")["runs"]) == 1)
        yield server


def open_tensor(panel, tag):
    panel.frame.click('.weight[data-tag="%s"]' % tag)
    panel.frame.wait_for_function("(t) => document.querySelector('.tensor-title').textContent === t",
                                  arg=tag, timeout=TIMEOUT_MS)


def chart_titles(panel):
    # The tensor's charts are drawn once its stats have come (their own request).
    panel.frame.wait_for_function("() => document.querySelector('.chart-title')", timeout=TIMEOUT_MS)
    return panel.frame.locator(".chart-title").evaluate_all("(ts) => ts.map((t) => t.firstChild.textContent)")


def test_alpha_chart_with_its_marks_and_the_map_stat(panel, tb, trained):
    weights = trained[1]
    last = tb.get_json("runs")["runs"][0]["steps"][-1]
    open_tensor(panel, "dense/kernel")
    panel.wait_drawn(last)
    titles = chart_titles(panel)
    assert titles[6:] == ["spectral norm σ_max", "stable rank ‖W‖²_F / σ²_max",
                          "power-law alpha of the spectrum", "alpha weighted α·log₁₀ λ_max"], titles
    want = reference_metrics(slices(weights[last]["dense/kernel"], "keras"))
    cards = panel.frame.locator(".chart-card")
    for k, field in ((6, "sv_max"), (7, "stable_rank"), (8, "alpha"), (9, "alpha_weighted")):
        shown = cards.nth(k).locator(".chart-value .value").text_content()
        assert_3_digits(float(shown), want[field])
    # alpha's axis: dashed lines at 2 and 6, their bands, the reasons as tooltips.
    alpha = cards.nth(8)
    assert "2–6" in alpha.locator(".chart-title").get_attribute("title")
    assert alpha.locator(".mark-line").count() == 2
    assert alpha.locator(".mark-label").all_text_contents() == ["< 2", "> 6"]
    tips = alpha.locator(".mark > title").all_text_contents()
    assert "over-fitting" in tips[0] and "little structure" in tips[1], tips
    ys = alpha.locator(".mark-line").evaluate_all("(ls) => ls.map((l) => +l.getAttribute('y1'))")
    assert ys[0] > ys[1]  # 2 below 6
    panel.screenshot("spectral_charts.png")
    # A bias is not a matrix: no spectral charts.
    open_tensor(panel, "dense/bias")
    panel.frame.wait_for_function("() => document.querySelectorAll('.chart-card').length === 6",
                                  timeout=TIMEOUT_MS)
    # The map coloured by alpha: the matrices' rows read the true alpha.
    open_map(panel)
    panel.frame.select_option("#map-stat", "alpha")
    panel.frame.wait_for_function("() => document.querySelector('.map-canvas').dataset.stat === 'alpha'",
                                  timeout=TIMEOUT_MS)
    rows = panel.frame.evaluate("() => window.nnviz.page.dynamicsMap.model.rows.map((r) => r.tag)")
    steps = panel.frame.evaluate("() => window.nnviz.page.dynamicsMap.model.steps")
    row = rows.index("dense/kernel")
    text = hover_map_cell(panel, row, len(steps) - 1)
    assert text.startswith("dense/kernel · step %d · power-law alpha" % steps[-1]), text
    assert_3_digits(map_value(text), want["alpha"])
    panel.screenshot("spectral_map.png")
