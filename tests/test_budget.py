"""Budget arithmetic: frame sizes, precision policy, bytes per snapshot, the log line."""

import os

import numpy as np
import pytest
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

import runs
from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.core import layout as layout_lib
from tensorboard_nnviz.record import budget
from tensorboard_nnviz.record import fast_crc
from tensorboard_nnviz.record import schedule
from tensorboard_nnviz.record import stats as stats_lib
from tensorboard_nnviz.record import writer as writer_lib

fast_crc.install()  # as the writer does: TensorBoard's pure-Python CRC takes seconds per MB

# (tag, shape, layer class, layer name): exact and reduced, tiled and grouped.
SPECS = [
    budget.TensorSpec("dense/kernel", (784, 64), "Dense", "dense"),  # the tutorial's: exact
    budget.TensorSpec("dense/bias", (64,), "Dense", "dense"),
    budget.TensorSpec("conv/kernel", (3, 3, 128, 256), "Conv2D", "conv"),  # 295k: reduced
    budget.TensorSpec("fc/kernel", (2048, 1000), "Dense", "fc"),  # 2M: reduced
    budget.TensorSpec("lstm/lstm_cell/kernel", (300, 1024), "LSTMCell", "lstm/lstm_cell"),
    budget.TensorSpec("bn/moving_mean", (512,), "BatchNormalization", "bn"),
]


def _array(s, seed=0):
    return np.random.default_rng(seed).standard_normal(s.shape).astype(np.float32) * 0.05


@pytest.mark.parametrize("s", SPECS, ids=lambda s: s.tag)
def test_frame_size_is_the_writers_frame(s):
    layout = layout_lib.choose_layout(s.layer_class, s.tag.rsplit("/", 1)[-1], s.shape, s.layer_name)
    frame, block = layout_lib.make_frame(_array(s), layout, 65536)
    rows, cols, got_block = budget.frame_size(s, 65536)
    assert (rows, cols) == frame.shape
    assert got_block == block
    assert rows * cols <= 65536


def test_tensors_that_fit_stay_exact_float32_and_reduced_ones_float16():
    assert budget.frame_size(SPECS[0])[2] == [1, 1]  # 784 x 64 = 50,176 cells
    assert budget.frame_encoding([1, 1]) == fmt.ENCODING_F32
    assert budget.frame_encoding([2, 3]) == fmt.ENCODING_F16
    assert budget.frame_size(SPECS[2])[2] != [1, 1]
    # 4 bytes per exact cell, 2 per reduced one (+ the same per-value
    # overhead), and 2 float32 per unit (norm, update) for 256 or 512 units.
    exact = budget.tensor_bytes(budget.TensorSpec("a/kernel", (256, 256), "Dense", "a"))
    reduced = budget.tensor_bytes(budget.TensorSpec("a/kernel", (512, 512), "Dense", "a"))
    assert exact - reduced == 65536 * 4 - 65536 * 2 - 2 * 4 * (512 - 256)


def test_max_cells_moves_the_bytes():
    small = budget.snapshot_bytes(SPECS, 16384)
    default = budget.snapshot_bytes(SPECS, 65536)
    assert small < default
    assert budget.frame_cells(SPECS, 16384) <= 16384 * len(SPECS)
    f32 = budget.snapshot_bytes(SPECS, 65536, fmt.ENCODING_F32)
    reduced_cells = sum(r * c for r, c, b in (budget.frame_size(s) for s in SPECS) if b != [1, 1])
    assert f32 - default == 2 * reduced_cells


def test_spec_accepts_shapes_and_weight_refs():
    assert budget.spec((3, 4)) == budget.TensorSpec("w", (3, 4), "", "", "float32")

    class Var:
        shape = (5, 6)
        dtype = "float16"

    class Ref:  # structure.WeightRef's fields
        tag, variable, layer_class, layer_name = "d/kernel", Var(), "Dense", "d"

    assert budget.spec(Ref()) == budget.TensorSpec("d/kernel", (5, 6), "Dense", "d", "float16")
    assert budget.tensor_bytes((3, 4)) > 12 * 4


def _event_file(d):
    names = [n for n in os.listdir(d) if "tfevents" in n]
    assert len(names) == 1
    return os.path.join(d, names[0])


def test_snapshot_bytes_is_exact_on_disk(tmp_path):
    """Events written by hand with the format module and the policy, laid
    out as the writer does (one event per frame and per units value, then
    one with the stats table): the file grows by exactly `snapshot_bytes` per
    snapshot."""
    events = EventFileWriter(str(tmp_path))
    events.flush()
    path = _event_file(tmp_path)
    sizes = [os.path.getsize(path)]
    for step in (5, 300, 70000):
        stats = []
        for s in SPECS:
            w = _array(s, step)
            layout = layout_lib.choose_layout(s.layer_class, s.tag.rsplit("/", 1)[-1], s.shape, s.layer_name)
            frame, block = layout_lib.make_frame(w, layout, 65536)
            content = fmt.frame_content(shape=s.shape, dtype="float32", layout=dict(layout, block=block),
                                        rows=frame.shape[0], cols=frame.shape[1])
            frame_value = fmt.frame_value(s.tag, fmt.encode_frame(frame, budget.frame_encoding(block)), content)
            events.add_event(event_pb2.Event(step=step, wall_time=1.8e9 + step,
                                             summary=summary_pb2.Summary(value=[frame_value])))
            measured = stats_lib.measure(w, unit_axes=layout["unit_axes"])
            stats.append(measured.stats)
            units = stats_lib.unit_count(s.shape, layout["unit_axes"])
            block = stats_lib.unit_block(units, fmt.MAX_UNITS)
            content = fmt.units_content(unit_axes=layout["unit_axes"], units=units, block=block)
            units_value = fmt.units_value(s.tag, stats_lib.block_units(measured.norm, block), None, content)
            events.add_event(event_pb2.Event(step=step, wall_time=1.8e9 + step,
                                             summary=summary_pb2.Summary(value=[units_value])))
        values = [fmt.stats_table_value([s.tag for s in SPECS], stats)]
        events.add_event(event_pb2.Event(step=step, wall_time=1.8e9 + step,
                                         summary=summary_pb2.Summary(value=values)))
        events.flush()
        sizes.append(os.path.getsize(path))
    events.close()
    growth = np.diff(sizes).tolist()
    assert growth == [budget.snapshot_bytes(SPECS, step=s) for s in (5, 300, 70000)]
    # Only the step's varint differs, in each of the snapshot's events.
    events_per_snapshot = 2 * len(SPECS) + 1
    assert growth[0] == growth[1] - events_per_snapshot == growth[2] - 2 * events_per_snapshot


def test_the_writer_stores_what_the_budget_says(tmp_path):
    """SnapshotWriter's own events: exact tensors float32, reduced float16,
    and exactly `snapshot_bytes` per snapshot."""
    writer = writer_lib.SnapshotWriter(str(tmp_path), max_cells=65536)
    weights = [writer_lib.Weight(s.tag, _array(s), s.layer_class, s.layer_name, "float32") for s in SPECS]
    try:
        writer.write(0, weights, {"model": {}, "layers": []})
        writer.flush()
        path = _event_file(tmp_path)
        before = os.path.getsize(path)
        writer.write(200, [w._replace(value=w.value + 1e-3) for w in weights])
        writer.flush()
        after = os.path.getsize(path)
    finally:
        writer.close()
    assert after - before == budget.snapshot_bytes(SPECS, 65536, step=200)


def test_expected_snapshots():
    assert budget.expected_snapshots(schedule.parse("epoch"), epochs=10, steps_per_epoch=None) == 11
    assert budget.expected_snapshots(schedule.parse(100), epochs=5, steps_per_epoch=300) == 16
    assert budget.expected_snapshots(schedule.parse(100), epochs=5, steps_per_epoch=None) is None
    assert budget.expected_snapshots(schedule.parse("log"), epochs=10, steps_per_epoch=100) == 1 + 28  # 1 2 3 4 5 6 8 10 13 .. 794 1000
    # A second fit starting at 1000 iterations: crossings of 100 from there.
    assert budget.expected_snapshots(schedule.parse(100), epochs=1, steps_per_epoch=250, start=1000) == 3
    assert budget.expected_snapshots(schedule.parse("epoch"), epochs=3, first=False) == 3


def test_budget_message():
    msg = budget.budget_message(320, 8_014_226, 101)
    assert msg == ("nnviz: recording 320 tensors, 8.01 MB per snapshot, "
                   "~101 snapshots expected for this fit (~809 MB)")
    assert budget.budget_message(4, 950) == "nnviz: recording 4 tensors, 950 B per snapshot"
    assert "\n" not in msg


@pytest.mark.parametrize("n, text", [(0, "0 B"), (999, "999 B"), (1000, "1 kB"), (12_566_000, "12.6 MB"),
                                     (1_260_000_000, "1.26 GB")])
def test_format_bytes(n, text):
    assert budget.format_bytes(n) == text


def test_callback_logs_one_budget_line_per_fit(tmp_path, caplog):
    import logging

    import keras_models
    from tensorboard_nnviz.record import structure

    with caplog.at_level(logging.INFO, logger="tensorboard_nnviz"):
        model, cb, _ = keras_models.train_run(str(tmp_path), epochs=2, steps=10, snapshot_freq=5)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("nnviz: recording")]
    refs = structure.weight_refs(model)
    per_snapshot = budget.snapshot_bytes(refs, 65536)
    # 20 steps, a snapshot every 5 and the first: 5.
    assert lines == [budget.budget_message(len(refs), per_snapshot, 5)]
    assert runs.steps_of(str(tmp_path)) == [0, 5, 10, 15, 20]
