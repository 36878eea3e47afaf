"""Process-level behaviour, each in a fresh Python: the atexit finaliser when
`fit` raises, lazy imports, and the chief decision from TF_CONFIG."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import keras_models as km
from runs import steps_of

TESTS = os.path.dirname(os.path.abspath(__file__))


def _python(code, env=None, timeout=120):
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=TESTS)


def test_fit_raising_still_writes_every_queued_snapshot(tmp_path):
    """Keras skips on_train_end when fit raises: the atexit finaliser writes
    what is still queued before the process ends."""
    proc = _python(
        """
        import sys, time
        import keras
        import keras_models as km
        from tensorboard_nnviz import NNVizCallback
        from tensorboard_nnviz.record import stats

        real = stats.measure
        def slow(*args, **kwargs):  # a worker far behind training
            time.sleep(0.1)
            return real(*args, **kwargs)
        stats.measure = slow

        cb = NNVizCallback(%r)

        class Boom(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 2:
                    print("queued", cb.recorder.writer._queue.qsize(), flush=True)
                    raise RuntimeError("boom")

        model, (x, y) = km.build("mlp")
        km.compile_model(model)
        model.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[cb, Boom()])
        """ % str(tmp_path)
    )
    assert proc.returncode != 0 and "RuntimeError: boom" in proc.stderr, proc.stderr[-2000:]
    queued = int(proc.stdout.split("queued")[1].split()[0])
    assert queued >= 1  # snapshots were still waiting when fit raised
    assert steps_of(tmp_path) == [0, 4, 8, 12]


def test_import_does_not_import_keras_or_tensorflow():
    proc = _python(
        """
        import sys
        import tensorboard_nnviz
        import tensorboard_nnviz.core.format, tensorboard_nnviz.record.structure
        import tensorboard_nnviz.record.writer, tensorboard_nnviz.core.layout, tensorboard_nnviz.record.stats
        heavy = sorted(m for m in sys.modules
                       if m.split(".")[0] in ("keras", "tensorflow", "tf_keras"))
        print("heavy:", heavy)
        assert not heavy
        """
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]


@pytest.mark.parametrize(
    "tf_config, chief",
    [
        (None, True),
        ("", True),
        ({"task": {"type": "worker", "index": 0}}, True),  # no cluster: one process
        ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, True),
        ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, False),
        ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}},
         True),
        ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]},
          "task": {"type": "worker", "index": 0}}, False),
        ({"cluster": {"worker": ["a:1"], "evaluator": ["e:1"]},
          "task": {"type": "evaluator", "index": 0}}, False),
        ({"cluster": {"worker": ["a:1"], "ps": ["p:1"]}, "task": {"type": "ps", "index": 0}},
         False),
    ],
)
def test_is_chief(tf_config, chief):
    from tensorboard_nnviz.record.callback import is_chief

    if isinstance(tf_config, dict):
        tf_config = json.dumps(tf_config)
    assert is_chief(tf_config) is chief


def test_a_non_chief_worker_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}))
    logdir = tmp_path / "logs"
    model, cb, history = km.train_run(logdir, epochs=1)
    assert len(history.history["loss"]) == 1
    assert not logdir.exists()


def test_bad_tf_config_is_a_clear_error():
    from tensorboard_nnviz.record.callback import is_chief

    with pytest.raises(ValueError, match="TF_CONFIG"):
        is_chief("{not json")
