"""NNVizCallback under tf.distribute.MirroredStrategy on two logical CPUs.

The strategy needs its logical devices configured before TensorFlow starts,
so the training runs in a subprocess; this process reads the event files.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.backend.event_processing import io_wrapper

from runs import read_run, steps_of

TESTS = os.path.dirname(os.path.abspath(__file__))

SCRIPT = """
import sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

import keras
import keras_models as km
from tensorboard_nnviz import NNVizCallback

def run(logdir, strategy):
    with strategy.scope():
        model, (x, y) = km.build("mlp")
        km.compile_model(model)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
              callbacks=[NNVizCallback(logdir, snapshot_freq=2)])

mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert mirrored.num_replicas_in_sync == 2
run(sys.argv[1], mirrored)
run(sys.argv[2], tf.distribute.get_strategy())  # one device
print("done")
"""


def _events_per_step(logdir):
    """{(summary tag, step): count} over every event file of the run."""
    counts = {}
    files = 0
    for name in sorted(os.listdir(logdir)):
        path = os.path.join(logdir, name)
        if not io_wrapper.IsSummaryEventsFile(path):
            continue
        nnviz = False
        for event in event_file_loader.EventFileLoader(path).Load():
            for value in event.summary.value:
                if value.tag.startswith("nnviz/"):
                    nnviz = True
                    key = (value.tag, event.step)
                    counts[key] = counts.get(key, 0) + 1
        files += nnviz
    return counts, files


def test_mirrored_strategy_snapshots_equal_one_device(tmp_path):
    mirrored, single = tmp_path / "mirrored", tmp_path / "single"
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(mirrored), str(single)],
        capture_output=True, text=True, timeout=240, cwd=TESTS,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr[-3000:]

    counts, files = _events_per_step(mirrored)
    assert files == 1  # one writer
    assert set(counts.values()) == {1}  # no step written twice

    a, b = read_run(mirrored), read_run(single)
    assert sorted(a["frames"]) == sorted(b["frames"]) and len(a["frames"]) == 6
    assert steps_of(mirrored) == steps_of(single) == [0, 2, 4, 6, 8]
    for tag in b["frames"]:
        for step, frame in b["frames"][tag].items():
            np.testing.assert_allclose(a["frames"][tag][step], frame, rtol=1e-5, atol=1e-6,
                                       err_msg="%s step %d" % (tag, step))
        assert a["content"][tag] == b["content"][tag]
    # Training did move the weights, so the comparison is not trivial.
    assert not np.allclose(b["frames"]["dense/kernel"][0], b["frames"]["dense/kernel"][8])
