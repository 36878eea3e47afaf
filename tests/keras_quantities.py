"""Traces of a tiny Keras model's optimizer quantities, step by step, and the
checks that rebuild each step from them (tests/backends/test_backend_quantities.py,
tests/torch/test_keras_torch_grads.py)."""

import keras
import numpy as np

from tensorboard_nnviz.record import quantities_keras as qk
from tensorboard_nnviz.record.callback import _host_view

LR = 0.01
STEPS = 6


class Trace(keras.callbacks.Callback):
    """After each batch: t, each kernel's weights and quantities."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def _record(self):
        model = self.model
        opt = qk.inner_optimizer(model.optimizer)
        reader = qk.Reader(model.optimizer, qk.NAMES, _host_view)
        entry = {"t": int(keras.ops.convert_to_numpy(opt.iterations))}
        for layer in model.layers:
            k = layer.kernel
            got = reader.read(k, lambda name, shape, dtype: np.empty(shape, dtype))
            entry[layer.name] = dict(got, w=np.array(keras.ops.convert_to_numpy(k)))
        self.steps.append(entry)

    def on_train_begin(self, logs=None):
        self._record()

    def on_train_batch_end(self, batch, logs=None):
        self._record()


def train(optimizer, steps=STEPS):
    """A 2-layer Dense model trained `steps` batches; the Trace's entries."""
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8 * steps, 5)).astype("float32")
    y = rng.standard_normal((8 * steps, 3)).astype("float32")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh", name="a"),
                              keras.layers.Dense(3, name="b")])
    model.compile(optimizer, "mse")
    trace = Trace()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False, callbacks=[trace])
    return trace.steps


def pairs(steps):
    """(previous, current) entries where the optimizer made a step."""
    return [(p, c) for p, c in zip(steps, steps[1:]) if c["t"] == p["t"] + 1]


def close(actual, expected, what):
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=2e-3, atol=2e-4 * scale, err_msg=what)


def grad_from_m(prev, cur, b1, t):
    """The gradient at step t, from m_t = b1 m_{t-1} + (1 - b1) g_t."""
    m_prev = prev["m_hat"] * (1 - b1 ** (t - 1)) if t > 1 else 0.0
    return (cur["m_hat"] * (1 - b1 ** t) - b1 * m_prev) / (1 - b1)


def check_second_moment(prev, cur, g, b2, t):
    v_prev = prev["v_rms"] ** 2 * (1 - b2 ** (t - 1)) if t > 1 else 0.0
    close(cur["v_rms"] ** 2 * (1 - b2 ** t), b2 * v_prev + (1 - b2) * g ** 2, "v at t=%d" % t)

