"""`watch` on real torch training, every module family.

Each family trains 4 SGD steps with a snapshot every 2; a second hook on the
optimizer, registered after watch's, keeps `state_dict()` copies at every
step. Every frame read back from the event files must equal the layout rule
applied to the true weights of its step, cell for cell; the stats must match
numpy on the same weights; the tags are the state_dict names with `.` → `/`.
"""

import math

import numpy as np
import pytest
import torch

import torch_models as tm

from tensorboard_nnviz.core import layout as layout_lib
from runs import read_run, reference_frame


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return {family: (model, truth, read_run(logdir / run))
            for family, (model, truth, logdir, run) in tm.train_families(tmp_path_factory.mktemp).items()}


def expected_tags(model):
    """The tag rule: named_parameters()/named_buffers() names, `.` → `/`,
    floating-point tensors only."""
    names = [n for n, _ in model.named_parameters()]
    names += [n for n, b in model.named_buffers() if b.is_floating_point()]
    return sorted(n.replace(".", "/") for n in names)


@pytest.mark.parametrize("family", tm.FAMILIES)
def test_tags_and_snapshot_steps(runs, family):
    model, truth, run = runs[family]
    assert sorted(run["frames"]) == expected_tags(model)
    for tag in run["frames"]:
        assert sorted(run["frames"][tag]) == [0, 2, 4], tag
        assert sorted(run["stats"][tag]) == [0, 2, 4], tag


@pytest.mark.parametrize("family", tm.FAMILIES)
def test_frames_equal_the_layout_of_the_true_weights(runs, family):
    model, truth, run = runs[family]
    moved = 0
    for tag, frames in run["frames"].items():
        content = run["content"][tag]
        layout = content["layout"]
        assert layout["block"] == [1, 1]
        assert content["shape"] == list(truth[0][tag].shape)
        for step, frame in frames.items():
            expected = reference_frame(truth[step][tag], layout).astype(np.float32)
            np.testing.assert_array_equal(frame, expected, err_msg="%s @ %d" % (tag, step))
        moved += not np.array_equal(frames[4], frames[0])
    assert moved > 0, "training changed some weights"


@pytest.mark.parametrize("family", tm.FAMILIES)
def test_stats_equal_numpy_on_the_true_weights(runs, family):
    model, truth, run = runs[family]
    for tag, by_step in run["stats"].items():
        for step, stats in by_step.items():
            w = truth[step][tag].astype(np.float64).ravel()
            w0 = truth[0][tag].astype(np.float64).ravel()
            expected = {
                "mean": w.mean(), "std": w.std(), "min": w.min(), "max": w.max(),
                "l2": np.linalg.norm(w), "absmax": np.abs(w).max(),
                "zero_frac": float(np.mean(np.abs(w) <= 1e-8)), "nan": 0, "inf": 0,
                "p01": np.percentile(w, 1), "p99": np.percentile(w, 99),
                "init_l2": np.linalg.norm(w - w0), "init_absmax": np.abs(w - w0).max(),
            }
            if np.linalg.norm(w) and np.linalg.norm(w0):
                expected["init_cos"] = w @ w0 / (np.linalg.norm(w) * np.linalg.norm(w0))
            if step:
                prev = truth[step - 2][tag].astype(np.float64).ravel()
                expected["update_l2"] = np.linalg.norm(w - prev)
                expected["update_absmax"] = np.abs(w - prev).max()
                if np.linalg.norm(prev):
                    expected["update_ratio"] = np.linalg.norm(w - prev) / np.linalg.norm(prev)
            else:
                assert stats["update_l2"] is None
            for k, v in expected.items():
                assert stats[k] == pytest.approx(v, rel=1e-6, abs=1e-9), (tag, step, k)


def test_layouts_on_disk_are_torchs(runs):
    """Spot checks of what the writer stored (layout_torch's table has the rest)."""
    content = {f: r[2]["content"] for f, r in runs.items()}
    conv = content["conv2d"]["0/weight"]["layout"]
    assert (conv["row_axes"], conv["col_axes"], conv["unit_axes"]) == ([1, 2], [0, 3], [0])
    lstm = content["lstm"]["rnn/weight_hh_l1_reverse"]["layout"]
    assert lstm["groups"] == [{"axis": "cols", "size": 4, "names": ["i", "f", "g", "o"]}]
    gru = content["gru"]["rnn/bias_ih_l0_reverse"]["layout"]
    assert gru["groups"][0]["names"] == ["r", "z", "n"]
    mha = content["mha"]["mha/in_proj_weight"]["layout"]
    assert mha["groups"][0]["names"] == ["q head 0", "q head 1", "k head 0", "k head 1",
                                         "v head 0", "v head 1"]
    out_proj = content["mha"]["mha/out_proj/weight"]["layout"]
    assert out_proj["groups"] == [{"axis": "rows", "size": 4, "names": ["head 0", "head 1"]}]
    assert content["depthwise"]["0/weight"]["layout"]["groups"][0]["names"] == ["in 0", "in 1", "in 2"]
    # TransformerEncoderLayer's children: attention, linears and norms.
    tr = content["transformer"]
    assert tr["layers/1/self_attn/in_proj_weight"]["layout"]["groups"][0]["size"] == 4
    assert tr["layers/0/linear1/weight"]["layout"]["row_axes"] == [1]
    assert tr["layers/0/norm2/weight"]["layout"]["col_axes"] == [0]


def test_structure_lists_every_module_in_order(runs):
    model, truth, run = runs["batchnorm"]
    (step, doc), = run["structure"]
    assert step == 0
    paths = [layer["path"] for layer in doc["layers"]]
    assert paths == [n.replace(".", "/") for n, _ in model.named_modules() if n]
    bn = doc["layers"][1]
    assert (bn["class"], bn["params"], bn["trainable"]) == ("BatchNorm2d", 6, True)
    weights = {w["name"]: w for w in bn["weights"]}
    assert weights["weight"]["trainable"] and not weights["running_mean"]["trainable"]
    # num_batches_tracked is listed (so the layer list can say it is not
    # recorded) but has no frames.
    assert weights["num_batches_tracked"]["dtype"] == "int64"
    assert "1/num_batches_tracked" not in run["frames"]
    assert doc["model"]["params"] == sum(p.numel() for p in model.parameters())
    assert doc["model"]["framework"] == "torch"
    flat = doc["layers"][2]
    assert (flat["class"], flat["params"], flat["trainable"], flat["weights"]) == (
        "Flatten", 0, False, [])


def test_structure_inbound_edges_from_fx(runs):
    doc = runs["residual"][2]["structure"][0][1]
    inbound = {layer["path"]: layer["inbound"] for layer in doc["layers"]}
    # relu (a function) sits between stem and the branches; + merges them.
    assert inbound == {"stem": [], "left": ["stem"], "right": ["stem"], "head": ["left", "right"]}
    # A Sequential traces as a chain.
    seq = runs["linear"][2]["structure"][0][1]
    assert [layer["inbound"] for layer in seq["layers"]] == [[], ["0"], ["1"]]


def test_untraceable_model_has_no_edges_but_keeps_its_tree(tmp_path):
    torch.manual_seed(0)
    model = tm.Untraceable()
    tm.train(model, torch.ones(2, 5), tmp_path, steps=1)
    doc = read_run(tmp_path)["structure"][0][1]
    assert [(layer["path"], layer["inbound"]) for layer in doc["layers"]] == [("a", []), ("b", [])]


def test_block_reduced_frames_of_a_large_conv(tmp_path):
    """A Conv2d above max_cells: block means of the true layout, kernel tiles kept."""
    torch.manual_seed(0)
    model = torch.nn.Conv2d(16, 32, 3)
    truth, _ = tm.train(model, torch.randn(2, 16, 5, 5), tmp_path, steps=2, max_cells=512)
    run = read_run(tmp_path)
    layout = run["content"]["weight"]["layout"]
    assert layout["block"] != [1, 1]
    assert 3 % layout["block"][0] == 0 or layout["block"][0] % 3 == 0  # whole tiles
    w = truth[2]["weight"]
    expected = layout_lib.block_mean(reference_frame(w, layout).astype(np.float32), layout["block"])
    np.testing.assert_allclose(run["frames"]["weight"][2], expected, rtol=2 ** -10, atol=2 ** -24)
    assert run["content"]["weight"]["rows"] * run["content"]["weight"]["cols"] <= 512
    assert run["stats"]["weight"][2]["l2"] == pytest.approx(
        math.sqrt(float(np.sum(w.astype(np.float64) ** 2))), rel=1e-9)
