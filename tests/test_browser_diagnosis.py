"""The panel's diagnosis views in a real browser against a real `tensorboard`:
the findings list (/findings) and the units map (/units), on runs with faults
planted by construction and trained with the real callback; values read off
the panel are checked against the weights the test recorded.

It imports the fixtures and helpers of tests/test_browser.py. The run of
format version 1 is a fixture written by that version's writer
(tests/fixtures/v1_runs).
"""

import os
import shutil

import numpy as np
import pytest

import keras_models
from tb_server import TensorBoardServer
from test_browser import (  # noqa: F401 (fixtures)
    TIMEOUT_MS,
    assert_3_digits,
    browser,
    no_errors,
    open_panel,
)

RUN_DEAD = "dead"  # a ReLU layer whose units 2 and 5 never fire
RUN_NAN = "nan"  # learning rate 100: NaN/Inf after about 11 steps
RUN_LSTM = "lstm"  # gate groups over the units
RUN_OLD = "old"  # written in format version 1: no unit data
V1_RUN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "v1_runs", "blows_up")
DEAD_UNITS = [2, 5]


def _dead_units_model(seed):
    """Dense(8, relu) whose units 2 and 5 start with a bias of -50: they never
    fire, so their kernel columns get no gradient, while the others move."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(8, activation="relu", name="hidden"), keras.layers.Dense(3, name="out")],
        name="dead",
    )
    bias = model.get_layer("hidden").bias
    b = np.array(bias)
    b[DEAD_UNITS] = -50.0
    bias.assign(b)
    return model, keras_models._data((5,), (3,), seed=seed)


def _train(logdir, model, epochs=3, steps=4, snapshot_freq=2, lr=0.05):
    rec = keras_models.recorder()
    model, data = model
    keras_models.compile_model(model, lr=lr)
    keras_models.train_run(logdir, model=(model, data), epochs=epochs, steps=steps, snapshot_freq=snapshot_freq,
                           callbacks=[rec])
    return rec.weights


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("diagnosis_logs")
    weights = {
        RUN_DEAD: _train(os.path.join(logdir, RUN_DEAD), _dead_units_model(0)),
        RUN_NAN: _train(os.path.join(logdir, RUN_NAN), keras_models.build("mlp", seed=0), snapshot_freq=1, lr=100.0),
        RUN_LSTM: _train(os.path.join(logdir, RUN_LSTM), keras_models.build("lstm", seed=5), epochs=1, steps=2),
    }
    shutil.copytree(V1_RUN, os.path.join(logdir, RUN_OLD))
    return str(logdir), weights


@pytest.fixture(scope="module", params=[False, True], ids=["python", "rustboard"])
def tb(trained, request):
    with TensorBoardServer(trained[0], load_fast=request.param) as server:
        server.wait_for(lambda: len(server.get_json("runs")["runs"]) == 4)
        yield server


@pytest.fixture
def panel(browser, tb):  # noqa: F811
    p = open_panel(browser, tb, direct=True)
    yield p
    p.page.close()
    no_errors(p)


def show_only(panel, run):
    """Selects `run` alone (the first run, picked at start, unticked)."""
    first = panel.frame.locator(".run-checkbox").first.get_attribute("data-run")
    panel.frame.check('.run-checkbox[data-run="%s"]' % run)
    if first != run:
        panel.frame.uncheck('.run-checkbox[data-run="%s"]' % first)
    panel.frame.wait_for_function(
        "(r) => [...document.querySelectorAll('.run-checkbox:checked')].map((b) => b.dataset.run).join() === r",
        arg=run, timeout=TIMEOUT_MS,
    )


def open_tensor(panel, tag):
    panel.frame.click('.weight[data-tag="%s"]' % tag)
    panel.frame.wait_for_function(
        "(t) => document.querySelector('.tensor-title').textContent === t", arg=tag, timeout=TIMEOUT_MS)


def wait_units(panel, tag, stat):
    panel.frame.wait_for_function(
        "(s) => document.querySelector('.units-view').dataset.shown === s", arg="%s|%s" % (tag, stat),
        timeout=TIMEOUT_MS)


def hover_unit(panel, unit, col, index=0):
    """Moves the mouse over unit `unit` at step index `col`; returns the read-out."""
    canvas = panel.frame.locator(".units-canvas").nth(index)
    canvas.scroll_into_view_if_needed()  # below the charts
    box = canvas.bounding_box()
    p = panel.frame.evaluate("([i, u, c]) => window.nnviz.page.unitsView.panels[i].cellCenter(u, c)", [index, unit, col])
    panel.page.mouse.move(box["x"] + p["x"], box["y"] + p["y"])
    panel.frame.wait_for_function(
        "([i, u, c]) => { const n = document.querySelectorAll('.units-readout')[i];"
        " return n.dataset.unit === String(u) && n.dataset.step !== undefined; }",
        arg=[index, unit, col], timeout=TIMEOUT_MS)
    return panel.frame.locator(".units-readout").nth(index).text_content()


def value_of(text):
    return float(text.rsplit("= ", 1)[1])


def snapshot_steps(tb, run, tag):
    return tb.get_json("stats", {"run": run, "tag": tag})["steps"]


def test_findings_list_jumps_to_the_first_nan(panel, tb, trained):
    weights = trained[1][RUN_NAN]
    show_only(panel, RUN_NAN)
    first = panel.frame.locator('.findings-run[data-run="%s"] .finding' % RUN_NAN).first
    first.wait_for(timeout=TIMEOUT_MS)
    # Ordered by severity: the earliest NaN/Inf of any tensor comes first.
    assert first.get_attribute("data-kind") == "nonfinite"
    tag, step = first.get_attribute("data-tag"), int(first.get_attribute("data-step"))
    steps = snapshot_steps(tb, RUN_NAN, tag)
    true_first = min(s for s in steps if not np.isfinite(weights[s][tag]).all())
    assert step == true_first
    assert all(min([s for s in steps if not np.isfinite(weights[s][t]).all()] or [1 << 30]) >= step for t in weights[0])
    assert first.locator(".finding-when").text_content() == "first at step %d" % step
    counts = panel.frame.locator('.findings-run[data-run="%s"] .severity-count.sev-error' % RUN_NAN).text_content()
    assert int(counts.split()[0]) >= 1
    # Keyboard: the line is a button; Enter opens the tensor at that step.
    first.focus()
    panel.page.keyboard.press("Enter")
    panel.wait_drawn(step)
    assert panel.frame.locator(".tensor-title").text_content() == tag
    assert panel.frame.locator("#step-label").text_content().startswith("step %d " % step)
    panel.wait_panels(1)
    nan_cells = int(np.isnan(weights[step][tag]).sum())
    specials = panel.frame.locator(".legend-specials .special.present").all_text_contents()
    if nan_cells:
        assert "NaN (%d)" % nan_cells in specials, specials


def test_units_map_hovers_to_the_right_unit(panel, tb, trained):
    weights = trained[1][RUN_DEAD]
    tag = "hidden/kernel"
    show_only(panel, RUN_DEAD)
    open_tensor(panel, tag)
    steps = snapshot_steps(tb, RUN_DEAD, tag)
    panel.frame.select_option("#units-stat", "norm")
    wait_units(panel, tag, "norm")
    canvas = panel.frame.locator(".units-canvas")
    assert canvas.get_attribute("data-rows") == "8" and canvas.get_attribute("data-cols") == str(len(steps))
    k = len(steps) - 1
    for unit in (0, 3, 7):
        text = hover_unit(panel, unit, k)
        assert text.startswith("unit %d · step %d · norm = " % (unit, steps[k])), text
        assert_3_digits(value_of(text), float(np.linalg.norm(weights[steps[k]][tag][:, unit].astype(np.float64))))
    panel.frame.select_option("#units-stat", "update")
    wait_units(panel, tag, "update")
    text = hover_unit(panel, 3, k)
    true = np.linalg.norm(weights[steps[k]][tag][:, 3].astype(np.float64) - weights[steps[k - 1]][tag][:, 3])
    assert_3_digits(value_of(text), float(true))
    assert hover_unit(panel, 2, k).endswith("update = 0")  # a dead unit
    assert "undefined (first snapshot)" in hover_unit(panel, 3, 0)


def test_dead_units_finding_marks_its_units(panel, tb):
    show_only(panel, RUN_DEAD)
    line = panel.frame.locator('.finding[data-kind="dead_units"][data-tag="hidden/kernel"]')
    line.wait_for(timeout=TIMEOUT_MS)
    step = int(line.get_attribute("data-step"))
    line.click()
    panel.wait_drawn(step)
    assert panel.frame.locator(".tensor-title").text_content() == "hidden/kernel"
    panel.frame.wait_for_function(
        "() => document.querySelector('.units-canvas') && document.querySelector('.units-canvas').dataset.highlight",
        timeout=TIMEOUT_MS)
    assert panel.frame.locator(".units-canvas").get_attribute("data-highlight") == ",".join(map(str, DEAD_UNITS))
    assert panel.frame.locator(".units-marked").text_content().startswith("dead units: 2 units marked")


def test_units_map_marks_gates(panel, tb):
    tag = "lstm/lstm_cell/kernel"
    show_only(panel, RUN_LSTM)
    open_tensor(panel, tag)
    wait_units(panel, tag, "update")
    canvas = panel.frame.locator(".units-canvas")
    assert canvas.get_attribute("data-groups") == "i,f,c,o"
    text = hover_unit(panel, 6, 1)  # 16 units, 4 per gate
    assert text.startswith("unit 6 · gate f · step "), text


def test_a_run_recorded_before_unit_stats_says_so(panel, tb):
    show_only(panel, RUN_OLD)
    panel.wait_panels(1)
    card = panel.frame.locator('.units-panel[data-run="%s"]' % RUN_OLD)
    card.wait_for(timeout=TIMEOUT_MS)
    assert card.get_attribute("data-state") == "no-units"
    assert "recorded before per-unit stats" in card.text_content()
    assert card.locator(".error").count() == 0
    # The rest of the tensor view works.
    assert panel.frame.locator(".heatmap-panel .error").count() == 0
