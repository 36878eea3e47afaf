"""Torch runs in a real `tensorboard` (both ingesters) and in the panel in
real chromium: the same routes and panel as for Keras runs.

Answers are checked against the true weights, kept by a second optimizer
hook at every step (torch_models.train), not against the writer's output.
"""

import collections

import lightning
import numpy as np
import pytest
import torch
from torch import nn

import keras_models as km
import torch_models as tm
from tb_server import TensorBoardServer
from test_browser import TIMEOUT_MS, assert_3_digits, browser, open_panel, readout_value  # noqa: F401
from runs import reference_frame

CNN, LSTM, LIGHTNING = "torch_cnn", "torch_lstm", "lightning/version_0"
KERAS = "keras_conv"  # Keras (on torch) with the same conv layer: compared side by side


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(collections.OrderedDict([
        ("conv2d", nn.Conv2d(3, 4, (3, 2))),  # named as keras_models' conv2d layer
        ("bn", nn.BatchNorm2d(4)),
        ("relu", nn.ReLU()),
        ("pool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(4, 2)),
    ]))


class _Lit(lightning.LightningModule):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def training_step(self, batch, batch_idx):
        loss = self.fc(batch[0]).pow(2).mean()
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from lightning.pytorch.loggers import TensorBoardLogger

    from tensorboard_nnviz.lightning import NNVizCallback

    root = tmp_path_factory.mktemp("torch_tb")
    truth = {}
    truth[CNN], _ = tm.train(_cnn(), torch.randn(4, 3, 6, 5), root / CNN, lr=0.2)
    rec = km.recorder()
    km.train_run(str(root / KERAS), model="conv2d", epochs=1, steps=4, snapshot_freq=2,
                 callbacks=[rec])
    truth[KERAS] = rec.weights
    model, batch = tm.build("lstm")
    truth[LSTM], _ = tm.train(model, batch, root / LSTM)
    data = torch.utils.data.TensorDataset(torch.randn(8, 3))
    lightning.Trainer(max_epochs=2, accelerator="cpu", logger=TensorBoardLogger(str(root), name="lightning"),
                      callbacks=[NNVizCallback(snapshot_freq=2)], enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
                      ).fit(_Lit(), torch.utils.data.DataLoader(data, batch_size=4))
    return root, truth


@pytest.fixture(scope="module", params=[False, True], ids=["python", "rustboard"])
def tb(request, trained):
    with TensorBoardServer(trained[0], load_fast=request.param) as server:
        server.wait_for(lambda: len(server.get_json("runs")["runs"]) == 4)
        yield server


def test_runs_tags_and_layouts(tb):
    runs = {r["run"]: r for r in tb.get_json("runs")["runs"]}
    assert set(runs) == {CNN, LSTM, LIGHTNING, KERAS}
    assert runs[CNN]["steps"] == [0, 2, 4] and runs[CNN]["tags"] == 8
    assert runs[LIGHTNING]["steps"] == [0, 2, 4]
    tensors = {t["tag"]: t for t in tb.get_json("tags", {"run": CNN})["tensors"]}
    assert sorted(tensors) == sorted(["conv2d/weight", "conv2d/bias", "bn/weight", "bn/bias",
                                      "bn/running_mean", "bn/running_var", "fc/weight", "fc/bias"])
    conv = tensors["conv2d/weight"]
    assert conv["shape"] == [4, 3, 3, 2] and (conv["rows"], conv["cols"]) == (9, 8)
    assert conv["layer"] == "conv2d"
    layout = conv["layout"]
    assert (layout["row_axes"], layout["col_axes"], layout["unit_axes"]) == ([1, 2], [0, 3], [0])
    lstm = {t["tag"]: t for t in tb.get_json("tags", {"run": LSTM})["tensors"]}
    assert lstm["rnn/weight_ih_l1_reverse"]["layout"]["groups"][0]["names"] == ["i", "f", "g", "o"]


def test_frames_and_stats_are_the_true_weights(tb, trained):
    truth = trained[1]
    for run in (CNN, LSTM):
        for t in tb.get_json("tags", {"run": run})["tensors"]:
            stats = tb.get_json("stats", {"run": run, "tag": t["tag"]})
            assert stats["steps"] == [0, 2, 4]
            for i, step in enumerate(stats["steps"]):
                w = truth[run][step][t["tag"]]
                r = tb.get("frame", {"run": run, "tag": t["tag"], "step": step})
                assert r.status == 200 and r.headers.get("X-NNViz-Step") == str(step)
                frame = np.frombuffer(r.body, "<f4").reshape(t["rows"], t["cols"])
                np.testing.assert_array_equal(frame, reference_frame(w, t["layout"]))
                assert stats["l2"][i] == pytest.approx(np.linalg.norm(w.astype(np.float64)), rel=1e-6)


def test_structure_and_lightnings_scalars_in_the_same_run(tb):
    doc = tb.get_json("structure", {"run": CNN})
    assert [(layer["path"], layer["class"]) for layer in doc["layers"]] == [
        ("conv2d", "Conv2d"), ("bn", "BatchNorm2d"), ("relu", "ReLU"), ("pool", "AdaptiveAvgPool2d"),
        ("flatten", "Flatten"), ("fc", "Linear")]
    assert [layer["inbound"] for layer in doc["layers"]][:2] == [[], ["conv2d"]]
    scalars = tb.get_json("/data/plugin/scalars/tags")
    assert "train_loss" in scalars[LIGHTNING]


# --- the panel -------------------------------------------------------------------


def _show(panel, run, tag):
    """Shows only `run`, and its tensor `tag`."""
    panel.frame.check('.run-checkbox[data-run="%s"]' % run)
    for other in panel.frame.locator(".run-checkbox:checked").evaluate_all(
            "(cs) => cs.map((c) => c.dataset.run)"):
        if other != run:
            panel.frame.uncheck('.run-checkbox[data-run="%s"]' % other)
    panel.frame.wait_for_function(
        "(r) => document.querySelector('.heatmap-panel .panel-title').textContent === r",
        arg=run, timeout=TIMEOUT_MS)
    panel.frame.click('.weight[data-tag="%s"]' % tag)
    panel.frame.wait_for_function(
        "(t) => document.querySelector('.tensor-title').textContent === t", arg=tag, timeout=TIMEOUT_MS)
    panel.wait_panels(1)


def test_conv2d_hover_reads_torchs_own_index_and_value(browser, tb, trained):
    """A torch Conv2d weight (out, in, kh, kw): the read-out names
    weight[o, i, y, x] in torch's order, with the true value."""
    panel = open_panel(browser, tb, direct=True)
    try:
        _show(panel, CNN, "conv2d/weight")
        panel.wait_drawn(4)
        w = trained[1][CNN][4]["conv2d/weight"]
        assert w.shape == (4, 3, 3, 2)
        for o, i, y, x in [(3, 2, 1, 1), (0, 1, 2, 0), (2, 0, 0, 1)]:
            text = panel.hover_cell(i * 3 + y, o * 2 + x)  # rows in × kh, cols out × kw
            assert text.startswith("weight[%d, %d, %d, %d] = " % (o, i, y, x)), text
            assert_3_digits(readout_value(text), float(w[o, i, y, x]))
        # The layer list: torch's class names and parameter counts.
        head = panel.frame.locator('.layer-row[data-path="conv2d"] .layer-meta').text_content()
        assert "Conv2d" in head and "76 params" in head, head
        # LSTM gates, in torch's order i f g o, named on hover.
        tag = "rnn/weight_ih_l0"
        _show(panel, LSTM, tag)
        w = trained[1][LSTM][4][tag]  # (4 * 4, 3): gates down axis 0
        for gate_row in (1, 6, 9, 14):
            text = panel.hover_cell(2, gate_row)  # rows in, cols gates × hidden
            assert text.startswith("weight_ih_l0[%d, 2] = " % gate_row), text
            assert text.endswith("· gate %s" % "ifgo"[gate_row // 4]), text
            assert_3_digits(readout_value(text), float(w[gate_row, 2]))
        errors = [e for e in panel.errors if "favicon.ico" not in e]
        assert errors == []
    finally:
        panel.page.close()


def test_a_keras_run_and_a_torch_run_side_by_side(browser, tb, trained):
    """The same conv layer in Keras (kernel (kh, kw, in, out)) and in torch
    (weight (out, in, kh, kw)): one picture, one cell, each run's own index."""
    panel = open_panel(browser, tb, direct=True)
    try:
        _show(panel, KERAS, "conv2d/kernel")
        panel.frame.check('.run-checkbox[data-run="%s"]' % CNN)
        panel.wait_panels(2)
        titles = panel.frame.locator(".heatmap-panel .panel-title").all_text_contents()
        assert sorted(titles) == sorted([KERAS, CNN])
        k, t = titles.index(KERAS), titles.index(CNN)
        panel.wait_drawn(4)
        wk, wt = trained[1][KERAS][4]["conv2d/kernel"], trained[1][CNN][4]["conv2d/weight"]
        assert wk.shape == (3, 2, 3, 4) and wt.shape == (4, 3, 3, 2)
        for o, i, y, x in [(3, 2, 1, 1), (1, 0, 2, 0)]:
            panel.hover_cell(i * 3 + y, o * 2 + x, index=k)
            keras_text = panel.frame.locator(".readout").nth(k).text_content()
            torch_text = panel.frame.locator(".readout").nth(t).text_content()
            assert keras_text.startswith("kernel[%d, %d, %d, %d] = " % (y, x, i, o)), keras_text
            assert torch_text.startswith("weight[%d, %d, %d, %d] = " % (o, i, y, x)), torch_text
            assert_3_digits(readout_value(keras_text), float(wk[y, x, i, o]))
            assert_3_digits(readout_value(torch_text), float(wt[o, i, y, x]))
        # One stats chart line per run.
        assert panel.frame.locator(".chart-card").first.locator(".chart-value .value").count() == 2
        assert [e for e in panel.errors if "favicon.ico" not in e] == []
    finally:
        panel.page.close()
