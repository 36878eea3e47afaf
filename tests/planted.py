"""Real training runs with faults planted by construction, for the findings tests.

    runs = train_planted(logdir)   # {run name: what the test should find}

Each run is a tiny Keras model trained a few dozen steps with
`NNVizCallback` (and a `keras_models.recorder()` keeping the true weights)
into `logdir/<run name>`:

- dead_relu: a ReLU layer whose units DEAD_UNITS start with a bias of
  -100, so they never fire and never get a gradient;
- zero_branch: a trainable Dense branch multiplied by zero (Rescaling(0)):
  its weights get zero gradient;
- huge_lr: SGD at a learning rate that sends the weights to Inf/NaN;
- lr_zero: SGD at learning rate 0 (with BatchNorm, whose moving statistics
  still move): nothing learns;
- bfloat16: Keras's pure "bfloat16" dtype policy with Adam at 1e-3: every
  update is lost to rounding, nothing learns;
- healthy: tanh and leaky-ReLU layers, no fault;
- healthy_bn_frozen: BatchNorm and a layer with trainable=False, no fault.
"""

import os

import numpy as np

import keras_models as km

DEAD_UNITS = [1, 5, 9, 12]
SAMPLES = 32
BATCH = 8


def _data(inputs, outputs, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((SAMPLES, inputs)).astype("float32") * scale
    y = rng.standard_normal((SAMPLES, outputs)).astype("float32") * scale
    return x, y


def _fit(logdir, name, model, optimizer, data, epochs, snapshot_freq=2):
    import keras

    from tensorboard_nnviz import NNVizCallback

    model.compile(optimizer=optimizer, loss="mse")
    rec = km.recorder()
    x, y = data
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
              callbacks=[NNVizCallback(os.path.join(logdir, name), snapshot_freq=snapshot_freq), rec])
    keras.backend.clear_session()
    return rec


def dead_relu(logdir):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu", name="hidden"),
                              keras.layers.Dense(3, name="out")], name="dead_relu")
    bias = np.zeros(16, "float32")
    bias[DEAD_UNITS] = -100.0  # pre-activations stay below 0 for every input
    model.get_layer("hidden").bias.assign(bias)
    return _fit(logdir, "dead_relu", model, keras.optimizers.SGD(0.05), _data(6, 3), epochs=6)


def zero_branch(logdir):
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((5,), name="x")
    main = keras.layers.Dense(4, activation="tanh", name="main")(x)
    branch = keras.layers.Dense(4, name="branch")(x)
    muted = keras.layers.Rescaling(0.0, name="mute")(branch)  # zero gradient upstream
    y = keras.layers.Dense(2, name="out")(keras.layers.Add(name="add")([main, muted]))
    return _fit(logdir, "zero_branch", keras.Model(x, y, name="zero_branch"),
                keras.optimizers.Adam(1e-2), _data(5, 2), epochs=6)


def huge_lr(logdir):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu", name="dense"),
                              keras.layers.Dense(3, name="out")], name="huge_lr")
    return _fit(logdir, "huge_lr", model, keras.optimizers.SGD(3.0), _data(5, 3, scale=10.0),
                epochs=4, snapshot_freq=1)


def lr_zero(logdir):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, name="dense"),
                              keras.layers.BatchNormalization(name="bn"),
                              keras.layers.Dense(3, name="out")], name="lr_zero")
    return _fit(logdir, "lr_zero", model, keras.optimizers.SGD(0.0), _data(5, 3), epochs=3)


def bfloat16(logdir):
    import keras

    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("bfloat16")
    try:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh", name="dense"),
                                  keras.layers.Dense(3, name="out")], name="bf16")
        return _fit(logdir, "bfloat16", model, keras.optimizers.Adam(1e-3), _data(6, 3), epochs=2)
    finally:
        keras.config.set_dtype_policy(policy)


def healthy(logdir):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="tanh", name="tanh"),
                              keras.layers.Dense(16, activation="leaky_relu", name="leaky"),
                              keras.layers.Dense(3, name="out")], name="healthy")
    return _fit(logdir, "healthy", model, keras.optimizers.SGD(0.05, momentum=0.9), _data(6, 3), epochs=6)


def healthy_bn_frozen(logdir):
    import keras

    keras.utils.set_random_seed(0)
    frozen = keras.layers.Dense(4, activation="leaky_relu", name="frozen")
    frozen.trainable = False
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, name="dense"),
                              keras.layers.BatchNormalization(name="bn"), frozen,
                              keras.layers.Dense(2, name="out")], name="bn_frozen")
    return _fit(logdir, "healthy_bn_frozen", model, keras.optimizers.Adam(1e-2), _data(5, 2), epochs=6)


RUNS = {f.__name__: f for f in (dead_relu, zero_branch, huge_lr, lr_zero, bfloat16, healthy,
                                 healthy_bn_frozen)}


def train_planted(logdir):
    """Trains every planted run into `logdir`; returns {run: recorder}."""
    return {name: train(str(logdir)) for name, train in RUNS.items()}


def first_nonfinite_step(recorder, tag):
    """The first recorded step at which the true weight held NaN or Inf."""
    for step in sorted(recorder.weights):
        if not np.isfinite(recorder.weights[step][tag].astype(np.float64)).all():
            return step
    return None
