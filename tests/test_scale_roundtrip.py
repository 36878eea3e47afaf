"""A MobileNetV2-sized snapshot set through a real TensorBoard, both ingesters.

MobileNetV2 (alpha 0.35, 32x32 input, weights=None: the same tensor kinds
as the full model: Conv2D, DepthwiseConv2D, BatchNormalization, a
1280 x 1000 Dense) written by SnapshotWriter, three snapshots one lr-1e-3
step apart, then read back over HTTP:

- tensors of up to max_cells cells come back exact (bit for bit, float32),
- block-reduced ones within float16 rounding of the true block means:
  |served - true| <= 2**-11 |true| (2**-25 absolute below float16's normal
  range), and so their Δ within the sum of both frames' rounding,
- the event files grow by exactly the budget's bytes per snapshot.
"""

import os

import numpy as np
import pytest

from tb_server import TensorBoardServer
from tensorboard_nnviz.core import layout as layout_lib
from tensorboard_nnviz.record import budget
from tensorboard_nnviz.record import structure
from tensorboard_nnviz.record import writer as writer_lib

STEPS = (0, 1, 2)
F16_REL = 2.0 ** -11  # float16 unit roundoff
F16_ABS = 2.0 ** -25  # half the smallest float16 subnormal


def f16_tolerance(true):
    # float16 rounding of the block mean, which is itself rounded to float32
    # on the way (2**-24) and here compared with float64 block sums.
    return np.maximum((F16_REL + 2.0 ** -24) * np.abs(true), F16_ABS)


@pytest.fixture(scope="module")
def snapshot_set(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(32, 32, 3))
    refs = structure.weight_refs(model)
    base = [np.array(r.variable) for r in refs]
    rng = np.random.default_rng(0)
    steps_of = [rng.standard_normal(w.shape).astype(np.float32) * 1e-3 for w in base]
    truth = {}  # tag -> [weights at each step]
    logdir = tmp_path_factory.mktemp("scale_roundtrip")
    run = logdir / "mnv2"
    writer = writer_lib.SnapshotWriter(str(run), max_cells=65536)
    sizes = []
    try:
        for i, step in enumerate(STEPS):
            weights = []
            for r, w0, d in zip(refs, base, steps_of):
                w = w0 + np.float32(i) * d  # an Adam-sized step of lr 1e-3
                truth.setdefault(r.tag, []).append(w)
                weights.append(writer_lib.Weight(r.tag, w, r.layer_class, r.layer_name,
                                                 structure.dtype_name(r.variable)))
            writer.write(step, weights, structure.build_structure(model, refs) if i == 0 else None)
            writer.flush()
            sizes.append(sum(os.path.getsize(run / n) for n in os.listdir(run)))
    finally:
        writer.close()
    specs = {r.tag: budget.spec(r) for r in refs}
    return {"logdir": logdir, "truth": truth, "specs": specs, "sizes": sizes, "refs": refs}


def _true_frame(spec, w):
    layout = layout_lib.choose_layout(spec.layer_class, spec.tag.rsplit("/", 1)[-1], spec.shape,
                                      spec.layer_name)
    return layout_lib.make_frame(w.astype(np.float64), layout, 65536)  # float64 block sums


def test_the_set_has_the_tensor_kinds_of_mobilenetv2(snapshot_set):
    classes = {r.layer_class for r in snapshot_set["refs"]}
    assert {"Conv2D", "DepthwiseConv2D", "BatchNormalization", "Dense"} <= classes
    blocks = [budget.frame_size(s)[2] for s in snapshot_set["specs"].values()]
    assert sum(b != [1, 1] for b in blocks) >= 2  # Conv_1 (1x1x320x1280) and the Dense
    assert len(snapshot_set["specs"]) == 262


def test_event_files_grow_by_the_budget(snapshot_set):
    specs = list(snapshot_set["specs"].values())
    growth = np.diff(snapshot_set["sizes"]).tolist()
    assert growth == [budget.snapshot_bytes(specs, 65536, step=s) for s in STEPS[1:]]


@pytest.mark.parametrize("load_fast", [False, True], ids=["python", "rustboard"])
def test_frames_round_trip_with_the_documented_precision(snapshot_set, load_fast):
    truth, specs = snapshot_set["truth"], snapshot_set["specs"]
    with TensorBoardServer(snapshot_set["logdir"], load_fast=load_fast) as tb:
        tb.wait_for(lambda: [r["steps"] for r in tb.get_json("runs")["runs"]] == [list(STEPS)],
                    timeout=120)
        tags = {t["tag"]: t for t in tb.get_json("tags", {"run": "mnv2"})["tensors"]}
        assert set(tags) == set(truth)
        reduced, checked_kinds = [], set()
        for i, (tag, info) in enumerate(sorted(tags.items())):
            frame, block = _true_frame(specs[tag], truth[tag][-1])
            assert info["layout"]["block"] == block
            assert info["downsampled"] == (block != [1, 1])
            assert (info["rows"], info["cols"]) == frame.shape
            # Frames: every reduced tensor, and of the exact ones each kind
            # (layer class, weight name) once plus every 8th (keeps it quick).
            kind = (specs[tag].layer_class, tag.rsplit("/", 1)[-1])
            if block == [1, 1] and kind in checked_kinds and i % 8:
                continue
            checked_kinds.add(kind)
            got = _served(tb, tag, STEPS[-1], frame.shape)
            if block == [1, 1]:
                assert got.tobytes() == frame.tobytes(), tag  # exact float32
            else:
                reduced.append(tag)
                assert np.all(np.abs(got - frame) <= f16_tolerance(frame)), tag
                assert not np.array_equal(got, frame)  # it is float16 on disk
        assert len(reduced) >= 2
        for tag in reduced:  # Δ between consecutive snapshots
            frames = [_true_frame(specs[tag], w)[0] for w in truth[tag]]
            served = [_served(tb, tag, s, frames[0].shape) for s in STEPS]
            for a in range(len(STEPS) - 1):
                true_delta = frames[a + 1].astype(np.float64) - frames[a]
                delta = served[a + 1].astype(np.float64) - served[a]
                bound = f16_tolerance(frames[a + 1]) + f16_tolerance(frames[a])
                assert np.all(np.abs(delta - true_delta) <= bound), tag
                # These updates are far above float16's step: Δ keeps its picture.
                assert np.corrcoef(delta.ravel(), true_delta.ravel())[0, 1] > 0.99, tag


def _served(tb, tag, step, shape):
    r = tb.get("frame", {"run": "mnv2", "tag": tag, "step": step})
    assert r.status == 200, r.body[:300]
    assert int(r.headers.get("X-NNViz-Step")) == step
    return np.frombuffer(r.body, dtype="<f4").reshape(shape)
