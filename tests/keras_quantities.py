"""Traces of a tiny Keras model's optimizer quantities, step by step, and the
checks that rebuild each step from them (tests/backends/test_backend_quantities.py,
tests/torch/test_keras_torch_grads.py)."""

import keras
import numpy as np

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.record import quantities_keras as qk
from tensorboard_nnviz.record import structure
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
        opt = structure.inner_optimizer(model.optimizer)
        reader = qk.Reader(model.optimizer, fmt.QUANTITIES, _host_view)
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


def check_adam_step(prev, cur, t, what="step", amsgrad=False):
    """Keras's Adam step from the quantities alone: it adds eps to sqrt(v)
    before the bias correction, so the step is
    lr * m_hat / (v_rms + eps / sqrt(1 - b2^t)); and v follows the g that m
    implies (not under AMSGrad, whose v_rms is of the running max)."""
    eps_hat = 1e-7 / np.sqrt(1 - 0.999 ** t)
    close(cur["w"] - prev["w"], -LR * cur["m_hat"] / (cur["v_rms"] + eps_hat), "%s %d" % (what, t))
    if not amsgrad:
        check_second_moment(prev, cur, grad_from_m(prev, cur, 0.9, t), 0.999, t)


def check_second_moment(prev, cur, g, b2, t):
    v_prev = prev["v_rms"] ** 2 * (1 - b2 ** (t - 1)) if t > 1 else 0.0
    close(cur["v_rms"] ** 2 * (1 - b2 ** t), b2 * v_prev + (1 - b2) * g ** 2, "v at t=%d" % t)



def live_quantities():
    """A Keras callback holding, at NNVizCallback's hooks, each trained
    weight's quantities computed here from the live optimizer (put it after
    NNVizCallback): `values[t][(tag, name)]`, t = the inner optimizer's
    iterations. Written from Keras's slot attributes directly, not through
    the reader under test."""
    import keras_models as km

    values = {}

    def record(model):
        outer = model.optimizer
        scaled = isinstance(outer, keras.optimizers.LossScaleOptimizer)
        opt = outer.inner_optimizer if scaled else outer
        t = int(keras.ops.convert_to_numpy(opt.iterations))
        if t == 0:
            return
        # The scale of the last step's grads (growth every 2000 steps: not yet).
        scale = float(keras.ops.convert_to_numpy(outer.dynamic_scale)) if scaled else 1.0
        out = values.setdefault(t, {})
        for r in structure.weight_refs(model):
            if not r.variable.trainable:
                continue
            i = opt._get_variable_index(r.variable)
            if isinstance(opt, keras.optimizers.Adam):
                m = keras.ops.convert_to_numpy(opt._momentums[i]).astype(np.float64)
                v = keras.ops.convert_to_numpy(opt._velocities[i]).astype(np.float64)
                out[r.tag, "m_hat"] = m / (1 - opt.beta_1 ** t)
                out[r.tag, "v_rms"] = np.sqrt(v / (1 - opt.beta_2 ** t))
            if isinstance(opt, keras.optimizers.SGD) and opt.momentum:
                out[r.tag, "momentum"] = keras.ops.convert_to_numpy(opt.momentums[i])
            grad = getattr(r.variable.value, "grad", None)
            if grad is not None and not opt.gradient_accumulation_steps:
                out[r.tag, "grad"] = grad.detach().numpy().astype(np.float64) / scale

    callback = km.at_hooks(record)
    callback.values = values
    return callback


def assert_stats_close(stats, truth):
    """`stats[tag][step]` (a written quantity's stats) equal numpy's on
    `truth[step][tag]` to float32 rounding: the recorder computes a
    quantity in float32 (m * 1/(1 - b1^t)), the truth is float64."""
    import pytest

    for tag, by_step in stats.items():
        steps = sorted(by_step)
        first = truth[steps[0]][tag]
        for i, step in enumerate(steps):
            s, q = by_step[step], truth[step][tag]
            size = float(np.abs(q).max())
            for field, value in (("mean", q.mean()), ("std", q.std()), ("min", q.min()),
                                 ("max", q.max()), ("l2", np.linalg.norm(q)),
                                 ("absmax", np.abs(q).max()), ("p01", np.percentile(q, 1)),
                                 ("p99", np.percentile(q, 99))):
                assert s[field] == pytest.approx(value, rel=1e-5, abs=1e-6 * size), (tag, step,
                                                                                     field)
            assert s["nan"] == 0 and s["inf"] == 0
            assert s["init_l2"] == pytest.approx(np.linalg.norm(q - first), rel=1e-4,
                                                 abs=1e-6 * size * np.sqrt(q.size))
            if i:
                prev = truth[steps[i - 1]][tag]
                assert s["update_l2"] == pytest.approx(np.linalg.norm(q - prev), rel=1e-4,
                                                       abs=1e-6 * size * np.sqrt(q.size))


DEPTH = 8


def deep_mlp(logdir, healthy=False, steps=48, snapshot_freq=4, spike_at=None):
    """An 8-layer MLP (d0 … d7, then `out`) trained under Adam with
    NNVizCallback's default quantities into `logdir`.

    Sigmoid with Keras's default (Glorot) init: each layer shrinks the
    gradient flowing back by its sigmoid's slope (at most 1/4), so the first
    layers' gradient RMS ends orders of magnitude below the last ones'
    (d0 about 1e-5 of `out`), while Adam's steps, scale-free, keep every
    update ratio within a small factor. `healthy`: the twin with ReLU, He
    init and LayerNorm after each layer, whose gradients stay of one order.
    `spike_at`: a fresh batch at every step (one epoch), the targets of the
    batch of step `spike_at` multiplied by 1e4: one gradient spike, which
    Adam applies with a bounded step.
    """
    from tensorboard_nnviz import NNVizCallback

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    rows = 64 if spike_at is None else 8 * steps
    x = rng.standard_normal((rows, 10)).astype("float32")
    y = rng.standard_normal((rows, 4)).astype("float32")
    if spike_at is not None:
        y[8 * (spike_at - 1):8 * spike_at] *= 1e4
    layers = [keras.Input((10,))]
    for i in range(DEPTH):
        if healthy:
            layers += [keras.layers.Dense(16, activation="relu", kernel_initializer="he_normal",
                                          name="d%d" % i),
                       keras.layers.LayerNormalization(name="ln%d" % i)]
        else:
            layers.append(keras.layers.Dense(16, activation="sigmoid", name="d%d" % i))
    layers.append(keras.layers.Dense(4, name="out"))
    model = keras.Sequential(layers, name="healthy_twin" if healthy else "deep_sigmoid")
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    model.fit(x, y, batch_size=8, epochs=steps * 8 // len(x), verbose=0, shuffle=False,
              callbacks=[NNVizCallback(str(logdir), snapshot_freq=snapshot_freq)])
    return model


def small_gradients(logdir, epsilon, steps=24, snapshot_freq=4):
    """A 3-layer tanh MLP under Adam(epsilon=`epsilon`) whose loss is the
    MSE × 1e-5: every layer's gradient RMS (and v_rms) lies near 1e-6,
    within an order of the others', below eps 1e-4 and above the defaults
    (Keras 1e-7, torch 1e-8)."""
    from tensorboard_nnviz import NNVizCallback

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 10)).astype("float32")
    y = rng.standard_normal((64, 4)).astype("float32")
    model = keras.Sequential([keras.Input((10,)),
                              keras.layers.Dense(16, activation="tanh", name="d0"),
                              keras.layers.Dense(16, activation="tanh", name="d1"),
                              keras.layers.Dense(4, name="out")], name="small_gradients")

    def loss(y_true, y_pred):
        return 1e-5 * keras.ops.mean(keras.ops.square(y_true - y_pred))

    model.compile(keras.optimizers.Adam(1e-3, epsilon=epsilon), loss)
    model.fit(x, y, batch_size=8, epochs=steps * 8 // len(x), verbose=0, shuffle=False,
              callbacks=[NNVizCallback(str(logdir), snapshot_freq=snapshot_freq)])
    return model
