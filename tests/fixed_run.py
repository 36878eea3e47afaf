"""A run written from fixed weights and data on the current Keras backend.

    python tests/fixed_run.py FIXED.npz LOGDIR   # KERAS_BACKEND picks the backend

`tests/test_backends_agree.py` makes FIXED.npz once (`make_fixed`) and runs
this script with the python of each environment (.venv, .venv-jax,
.venv-torch): the same weights must give the same event contents on every
backend.

The model holds every layer family in one graph, so each backend compiles
once: Embedding → LSTM → GRU, Conv2D, MultiHeadAttention, a nested
Sequential, BatchNormalization and Dense.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

STEPS = 3  # optimizer steps, a snapshot after each (and one at step 0)
BATCH = 8


def build():
    import keras

    tokens = keras.Input((6,), dtype="int32", name="tokens")
    image = keras.Input((6, 6, 2), name="image")
    seq = keras.Input((5, 6), name="seq")
    layers = keras.layers
    a = layers.Embedding(20, 4, name="emb")(tokens)
    a = layers.LSTM(4, return_sequences=True, name="lstm")(a)
    a = layers.GRU(4, name="gru")(a)
    b = layers.Conv2D(3, (3, 2), name="conv")(image)
    b = layers.GlobalAveragePooling2D(name="pool")(b)
    c = layers.MultiHeadAttention(num_heads=2, key_dim=3, name="mha")(seq, seq)
    c = layers.GlobalAveragePooling1D(name="pool_seq")(c)
    encoder = keras.Sequential([keras.Input((13,)), layers.Dense(8, activation="tanh", name="e1")],
                               name="encoder")
    h = encoder(layers.Concatenate(name="concat")([a, b, c]))
    h = layers.BatchNormalization(name="bn")(h)
    out = layers.Dense(2, name="out")(h)
    return keras.Model([tokens, image, seq], out, name="families")


def make_fixed(path, seed=0):
    """Writes FIXED.npz: a value for each weight (by tag) and the training data."""
    from tensorboard_nnviz.record import structure

    rng = np.random.default_rng(seed)
    arrays = {}
    for ref in structure.weight_refs(build()):
        value = rng.uniform(-0.5, 0.5, tuple(ref.variable.shape)).astype("float32")
        if ref.tag.endswith("moving_variance"):
            value = np.abs(value) + 0.5
        arrays["w:" + ref.tag] = value
    n = STEPS * BATCH
    arrays["x:tokens"] = rng.integers(0, 20, (n, 6)).astype("int32")
    arrays["x:image"] = rng.standard_normal((n, 6, 6, 2)).astype("float32")
    arrays["x:seq"] = rng.standard_normal((n, 5, 6)).astype("float32")
    arrays["y"] = rng.standard_normal((n, 2)).astype("float32")
    np.savez(path, **arrays)


def write_run(fixed_path, logdir):
    """Trains the model from FIXED.npz's weights, a snapshot every step."""
    import keras

    from tensorboard_nnviz import NNVizCallback
    from tensorboard_nnviz.record import structure

    fixed = np.load(fixed_path)
    model = build()
    refs = structure.weight_refs(model)
    assert sorted("w:" + r.tag for r in refs) == sorted(k for k in fixed if k.startswith("w:"))
    for ref in refs:
        ref.variable.assign(fixed["w:" + ref.tag])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    x = [fixed["x:tokens"], fixed["x:image"], fixed["x:seq"]]
    model.fit(x, fixed["y"], batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
              # spectral=True: "auto" picks matrices by measured CPU time,
              # which differs between processes; every matrix is comparable.
              callbacks=[NNVizCallback(logdir, snapshot_freq=1, spectral=True)])


if __name__ == "__main__":
    write_run(sys.argv[1], sys.argv[2])
    import keras

    print("wrote", keras.backend.backend())
