"""The panel on a long run (chromium via Playwright, a real TensorBoard):
with `--logdir` every step plays, its frames read from disk; under
`--logdir_spec`, where the plugin cannot read the logdir itself, the panel
says that only the frames TensorBoard kept can be shown."""

import numpy as np
import pytest

from runs import write_synthetic_run
from tb_server import TensorBoardServer
# browser: test_browser's fixture.
from test_browser import TIMEOUT_MS, browser, no_errors, open_panel  # noqa: F401

STEPS = list(range(0, 60, 3))
NOTE = "only the frames TensorBoard kept in memory can be shown"


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser_long")
    written = write_synthetic_run(str(root / "long"), STEPS, weights={"dense/kernel": (6, 5)})
    return root, written


def status_text(panel):
    return panel.frame.locator(".status").text_content()


def test_every_step_plays_from_disk_without_a_note(browser, logdir):
    root, written = logdir
    with TensorBoardServer(root) as tb:
        tb.wait_for(lambda: tb.get_json("runs")["runs"])
        panel = open_panel(browser, tb, direct=True)
        try:
            panel.wait_drawn(STEPS[-1])
            assert NOTE not in status_text(panel)
            assert panel.frame.evaluate("() => window.nnviz.steps") == STEPS
            panel.frame.locator("#step-slider").fill("0")
            panel.wait_drawn(0)
            # Play: every step is fetched (with prefetch) and drawn, in order.
            panel.frame.evaluate("() => { window.drawnSteps = []; new MutationObserver(() => "
                                 "window.drawnSteps.push(+document.body.dataset.drawnStep))"
                                 ".observe(document.body, {attributes: true, attributeFilter: ['data-drawn-step']}); }")
            panel.frame.click("#play")
            panel.wait_drawn(STEPS[-1])
            drawn = panel.frame.evaluate("() => window.drawnSteps")
            assert sorted(set(drawn)) == STEPS and drawn == sorted(drawn), drawn
            requested = {int(u.rsplit("step=", 1)[1]) for u in panel.requests if "/frame?" in u}
            assert requested == set(STEPS)
            # The drawn frame is the one written at that step.
            shown = panel.frame.evaluate(
                "() => Array.from(window.nnviz.panels[0].panel.state.frame.data)")
            np.testing.assert_allclose(shown, written["dense/kernel"][STEPS[-1]].ravel(), rtol=1e-6)
        finally:
            panel.page.close()
        no_errors(panel)


def test_under_logdir_spec_the_panel_says_only_kept_frames_show(browser, logdir):
    root, _ = logdir
    with TensorBoardServer("spec:%s" % root, logdir_flag="--logdir_spec") as tb:
        tb.wait_for(lambda: tb.get_json("runs")["runs"])
        panel = open_panel(browser, tb, direct=True)
        try:
            panel.wait_drawn(STEPS[-1])
            panel.frame.wait_for_function("(n) => document.querySelector('.status').textContent.includes(n)",
                                          arg=NOTE, timeout=TIMEOUT_MS)
            assert status_text(panel).startswith("Run spec/long: ")
            assert panel.frame.evaluate("() => window.nnviz.steps") == [STEPS[-1]]
        finally:
            panel.page.close()
        no_errors(panel)
