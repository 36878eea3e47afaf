"""What recording the optimizer's quantities costs the Keras callback, per
snapshot, on this process's Keras backend (run it with each environment's
python: KERAS_BACKEND=jax .venv-jax/bin/python benchmarks/keras_quantities.py).

An MLP under Adam fits with a snapshot after every step, with
NNVizCallback(quantities=...) set to:

  weights   ()                                  the weights only
  default   the default ("grad", "v_rms"; grad exists on torch only)
  all       all four, every one with frames (quantity_frames=True)

interleaved and repeated; per snapshot it prints the minimum over runs of
the training thread's CPU time inside the callback's hooks (the copy, and
the quantities' read and scaling: `time.thread_time`, steady under load,
unlike wall time), the writer thread's CPU time, and the bytes written.

    python benchmarks/keras_quantities.py [--steps 20] [--repeats 3] [--models ...]
"""

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import callback_overhead  # noqa: E402  (benchmarks/, this script's folder)

MODELS = {"784-1024-1024-10": (1024, 1024), "784-64-64-10": (64, 64)}
CONFIGS = {"weights": ((), False), "default": (None, None),
           "all": (("grad", "m_hat", "v_rms", "momentum"), True)}


def fit(hidden, config, steps, data):
    """(hook thread-CPU s, writer CPU s, bytes, snapshots) of one fit."""
    import keras

    from tensorboard_nnviz import NNVizCallback

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,))]
                             + [keras.layers.Dense(u, activation="relu") for u in hidden]
                             + [keras.layers.Dense(10)])
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    quantities, frames = CONFIGS[config]
    kwargs = {} if quantities is None else {"quantities": quantities, "quantity_frames": frames}
    logdir = tempfile.mkdtemp(prefix="nnviz_q_")
    cb = NNVizCallback(logdir, snapshot_freq=1, spectral=False, **kwargs)
    spent = {"hooks": 0.0, "worker": 0.0}
    callback_overhead.instrument(cb, spent, clock=time.thread_time)
    x, y = data
    try:
        model.fit(x[:128 * steps], y[:128 * steps], batch_size=128, epochs=1, verbose=0,
                  callbacks=[cb])
        size = sum(os.path.getsize(os.path.join(root, f))
                   for root, _, files in os.walk(logdir) for f in files)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    return spent["hooks"], spent["worker"], size, steps + 1


def main():
    import keras

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((128 * args.steps, 784)).astype("float32"),
            rng.integers(0, 10, 128 * args.steps))
    names = args.models.split(",")
    for name in names:  # warm-up: compiled steps, first imports
        fit(MODELS[name], "all", 2, data)
    best = {}
    for rep in range(args.repeats):
        configs = list(CONFIGS)
        configs = configs[rep % 3:] + configs[:rep % 3]  # no fixed order
        for name in names:
            for config in configs:
                hooks, worker, size, snaps = fit(MODELS[name], config, args.steps, data)
                old = best.get((name, config))
                best[(name, config)] = (min(hooks, old[0]) if old else hooks,
                                        min(worker, old[1]) if old else worker, size, snaps)
    print("%s backend, %d steps with a snapshot after each (and at step 0), min of %d runs; "
          "load average %.1f" % (keras.backend.backend(), args.steps, args.repeats,
                                 os.getloadavg()[0]))
    print("| model | quantities | training thread CPU / snapshot | writer CPU / snapshot | "
          "bytes / snapshot | bytes ÷ weights only |")
    print("|---|---|---:|---:|---:|---:|")
    for name in names:
        base = best[(name, "weights")][2]
        for config in CONFIGS:
            hooks, worker, size, snaps = best[(name, config)]
            print("| %s | %s | %.1f ms | %.1f ms | %.0f kB | %.2f |" % (
                name, config, 1000 * hooks / snaps, 1000 * worker / snaps, size / snaps / 1000,
                size / base))


if __name__ == "__main__":
    main()
