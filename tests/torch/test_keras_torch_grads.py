"""Keras on the torch backend: the `grad` quantity (record/quantities_keras.py)
is the gradient the optimizer applied (unscaled, clipped), the one backend
where it outlives the train step (`variable.value.grad`).

The environment runs Keras on torch (KERAS_BACKEND=torch, the Makefile's
test-torch target).
"""

import keras
import numpy as np
import pytest

import keras_quantities as kq


@pytest.mark.parametrize("kind", ["plain", "loss_scale", "loss_scale_factor", "clipnorm",
                                  "global_clipnorm", "clipvalue"])
def test_torch_grad_is_what_sgd_applied(kind):
    make = {
        "plain": lambda: keras.optimizers.SGD(kq.LR),
        "loss_scale": lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(kq.LR),
                                                                  dynamic_growth_steps=2),
        "loss_scale_factor": lambda: keras.optimizers.SGD(kq.LR, loss_scale_factor=128.0),
        "clipnorm": lambda: keras.optimizers.SGD(kq.LR, clipnorm=0.05),
        "global_clipnorm": lambda: keras.optimizers.SGD(kq.LR, global_clipnorm=0.05),
        "clipvalue": lambda: keras.optimizers.SGD(kq.LR, clipvalue=0.01),
    }[kind]
    steps = kq.train(make())
    pairs = kq.pairs(steps)
    assert len(pairs) == kq.STEPS
    for prev, cur in pairs:
        for name in ("a", "b"):
            p, c = prev[name], cur[name]
            kq.close(c["w"] - p["w"], -kq.LR * c["grad"], "%s step %d" % (kind, cur["t"]))


def test_torch_grad_follows_adams_first_moment():
    steps = kq.train(keras.optimizers.Adam(kq.LR))
    for prev, cur in kq.pairs(steps):
        kq.close(cur["a"]["grad"], kq.grad_from_m(prev["a"], cur["a"], 0.9, cur["t"]),
                 "step %d" % cur["t"])


@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_step_divides_by_v_rms(centered):
    # What the step divides by, without eps (centered: sqrt(v - mean_g^2)).
    steps = kq.train(keras.optimizers.RMSprop(kq.LR, centered=centered))
    for prev, cur in kq.pairs(steps):
        p, c = prev["a"], cur["a"]
        expected = -kq.LR * c["grad"] / np.sqrt(c["v_rms"] ** 2 + 1e-7)
        kq.close(c["w"] - p["w"], expected, "step %d" % cur["t"])
