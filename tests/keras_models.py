"""Tiny Keras models of each layer family, and `train_run` to make real logdirs.

Every builder returns an uncompiled model with weights (except `subclassed`,
which is built by its first batch) and a `(x, y)` pair of synthetic data
whose first dimension is the number of samples. Shapes are kept tiny so a
fit takes well under a second.

    from tests.keras_models import train_run
    train_run(logdir)                         # Dense MLP, 2 epochs, 4 steps each
    train_run(logdir, model="conv2d", snapshot_freq=2)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from runs import read_run  # noqa: E402

SAMPLES = 32
BATCH = 8


def _keras():
    import keras

    return keras


def _data(x_shape, y_shape, n=SAMPLES, seed=0, x_int=None):
    rng = np.random.default_rng(seed)
    if x_int is not None:
        x = rng.integers(0, x_int, size=(n,) + tuple(x_shape))
    else:
        x = rng.standard_normal((n,) + tuple(x_shape)).astype("float32")
    y = rng.standard_normal((n,) + tuple(y_shape)).astype("float32")
    return x, y


def mlp(units=(8, 6), inputs=5, outputs=3):
    """Sequential Dense MLP: dense, dense_1, …"""
    keras = _keras()
    layers = [keras.Input((inputs,))]
    layers += [keras.layers.Dense(u, activation="tanh", name="dense" if i == 0 else "dense_%d" % i)
               for i, u in enumerate(units)]
    layers.append(keras.layers.Dense(outputs, name="dense_%d" % len(units)))
    return keras.Sequential(layers, name="mlp"), _data((inputs,), (outputs,))


def _pooled(input_shape, layer, pool, name, x_int=None):
    """Sequential: input → `layer` → global average `pool` → dense (2 outputs)."""
    keras = _keras()
    model = keras.Sequential(
        [keras.Input(input_shape, dtype="int32" if x_int else None), layer,
         pool(name="pool"), keras.layers.Dense(2, name="dense")],
        name=name,
    )
    return model, _data(input_shape, (2,), x_int=x_int)


def conv1d():
    layers = _keras().layers
    return _pooled((10, 3), layers.Conv1D(4, 3, name="conv1d"),
                   layers.GlobalAveragePooling1D, "conv1d_model")


def conv2d():
    layers = _keras().layers
    return _pooled((8, 8, 3), layers.Conv2D(4, (3, 2), name="conv2d"),
                   layers.GlobalAveragePooling2D, "conv2d_model")


def conv3d():
    layers = _keras().layers
    return _pooled((5, 5, 5, 2), layers.Conv3D(3, 2, name="conv3d"),
                   layers.GlobalAveragePooling3D, "conv3d_model")


def depthwise():
    layers = _keras().layers
    return _pooled((8, 8, 3), layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw"),
                   layers.GlobalAveragePooling2D, "depthwise_model")


def separable():
    layers = _keras().layers
    return _pooled((8, 8, 3), layers.SeparableConv2D(4, 3, depth_multiplier=2, name="sep"),
                   layers.GlobalAveragePooling2D, "separable_model")


def conv2d_transpose():
    layers = _keras().layers
    return _pooled((4, 4, 3), layers.Conv2DTranspose(5, (3, 2), name="convt"),
                   layers.GlobalAveragePooling2D, "convt_model")


def embedding():
    layers = _keras().layers
    return _pooled((6,), layers.Embedding(20, 4, name="emb"),
                   layers.GlobalAveragePooling1D, "embedding_model", x_int=20)


def _rnn(layer, name):
    keras = _keras()
    model = keras.Sequential(
        [keras.Input((5, 3)), layer, keras.layers.Dense(2, name="dense")], name=name + "_model"
    )
    return model, _data((5, 3), (2,))


def lstm():
    return _rnn(_keras().layers.LSTM(4, name="lstm"), "lstm")


def gru():
    """GRU with reset_after=True: its bias is (2, 3u)."""
    return _rnn(_keras().layers.GRU(4, reset_after=True, name="gru"), "gru")


def simple_rnn():
    return _rnn(_keras().layers.SimpleRNN(4, name="rnn"), "rnn")


def mha():
    keras = _keras()
    x = keras.Input((5, 6))
    y = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3, name="mha")(x, x)
    y = keras.layers.GlobalAveragePooling1D(name="pool")(y)
    y = keras.layers.Dense(2, name="dense")(y)
    return keras.Model(x, y, name="mha_model"), _data((5, 6), (2,))


def batchnorm():
    keras = _keras()
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(4, name="dense"),
         keras.layers.BatchNormalization(name="bn"), keras.layers.Dense(2, name="dense_1")],
        name="bn_model",
    )
    return model, _data((5,), (2,))


def branch_merge():
    """Functional: input → a → (b1, b2) → add(b1, b2), concat(a, add) → out."""
    keras = _keras()
    x = keras.Input((5,), name="inp")
    a = keras.layers.Dense(4, activation="tanh", name="a")(x)
    b1 = keras.layers.Dense(4, name="b1")(a)
    b2 = keras.layers.Dense(4, name="b2")(a)
    s = keras.layers.Add(name="add")([b1, b2])
    c = keras.layers.Concatenate(name="concat")([a, s])
    y = keras.layers.Dense(2, name="out")(c)
    return keras.Model(x, y, name="branchy"), _data((5,), (2,))


def nested():
    """A Functional model holding a Sequential `encoder` (with layer `e1`)."""
    keras = _keras()
    encoder = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(4, activation="tanh", name="e1"),
         keras.layers.Dense(3, name="e2")],
        name="encoder",
    )
    x = keras.Input((5,), name="inp")
    y = keras.layers.Dense(2, name="head")(encoder(x))
    return keras.Model(x, y, name="outer"), _data((5,), (2,))


def subclassed():
    """A subclassed model with no input shape: built by its first batch."""
    keras = _keras()

    class Tiny(keras.Model):
        def __init__(self):
            super().__init__(name="tiny")
            self.hidden = keras.layers.Dense(4, activation="tanh", name="hidden")
            self.out = keras.layers.Dense(2, name="out")

        def call(self, x):
            return self.out(self.hidden(x))

    return Tiny(), _data((5,), (2,))


BUILDERS = {
    "mlp": mlp,
    "conv1d": conv1d,
    "conv2d": conv2d,
    "conv3d": conv3d,
    "depthwise": depthwise,
    "separable": separable,
    "conv2d_transpose": conv2d_transpose,
    "embedding": embedding,
    "lstm": lstm,
    "gru": gru,
    "simple_rnn": simple_rnn,
    "mha": mha,
    "batchnorm": batchnorm,
    "branch_merge": branch_merge,
    "nested": nested,
    "subclassed": subclassed,
}


def build(name="mlp", seed=0):
    """Builds one of `BUILDERS` with a fixed Keras seed: `(model, (x, y))`."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    return BUILDERS[name]()


def compile_model(model, lr=0.05, steps_per_execution=1):
    keras = _keras()
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=lr),
        loss="mse",
        steps_per_execution=steps_per_execution,
    )
    return model


def train_run(logdir, model=None, epochs=2, steps=4, callbacks=(), **callback_kwargs):
    """Trains a tiny model with `NNVizCallback(logdir, **callback_kwargs)`.

    Args:
      logdir: the callback's log_dir (one run).
      model: a name in `BUILDERS` (default "mlp"), or a `(model, (x, y))`
        pair; an uncompiled model is compiled with SGD and mse.
      epochs: epochs of `fit`.
      steps: optimizer steps per epoch (batch size 8).
      callbacks: extra callbacks passed to `fit` after ours.
      callback_kwargs: `snapshot_freq`, `max_cells`, `include`, `exclude`.

    Returns:
      `(model, callback, history)`.
    """
    from tensorboard_nnviz import NNVizCallback

    if model is None or isinstance(model, str):
        model, (x, y) = build(model or "mlp")
    else:
        model, (x, y) = model
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", True):
        compile_model(model)
    n = steps * BATCH
    reps = -(-n // len(x))
    x = np.concatenate([x] * reps)[:n]
    y = np.concatenate([y] * reps)[:n]
    cb = NNVizCallback(logdir, **callback_kwargs)
    history = model.fit(
        x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
        callbacks=[cb] + list(callbacks),
    )
    return model, cb, history


def record_runs(families, mktemp, epochs=1, steps=4, **callback_kwargs):
    """Trains each family in `BUILDERS` with `train_run` and a `recorder()`.

    Args:
      families: names in `BUILDERS`.
      mktemp: makes a fresh directory from a name, e.g. pytest's
        `tmp_path_factory.mktemp`.
      epochs, steps, callback_kwargs: as for `train_run`.

    Returns:
      `{family: (model, recorder, read_run(logdir))}`.
    """
    runs = {}
    for family in families:
        logdir = mktemp(family)
        rec = recorder()
        model, _, _ = train_run(str(logdir), model=family, epochs=epochs, steps=steps,
                                callbacks=[rec], **callback_kwargs)
        runs[family] = (model, rec, read_run(logdir))
    return runs


def at_hooks(record):
    """A Keras callback calling `record(model)` at NNVizCallback's hooks:
    train begin, after every batch and at each epoch end."""
    keras = _keras()

    class AtHooks(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            record(self.model)

        def on_train_batch_end(self, batch, logs=None):
            record(self.model)

        def on_epoch_end(self, epoch, logs=None):
            record(self.model)

    return AtHooks()


def recorder():
    """A Keras callback recording the true weights at NNVizCallback's hooks.

    Put it after NNVizCallback in `callbacks`; its `weights[iterations]` is
    `{tag: np.ndarray}` at train begin, after every batch and at each epoch
    end (a later hook at the same iteration overwrites the same values).
    """
    from tensorboard_nnviz.record import structure

    weights = {}

    def record(model):
        if model.weights:
            it = int(np.asarray(model.optimizer.iterations))
            weights[it] = {r.tag: np.array(r.variable) for r in structure.weight_refs(model)}

    callback = at_hooks(record)
    callback.weights = weights
    return callback
