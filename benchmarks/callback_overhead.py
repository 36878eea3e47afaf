"""Training-time overhead of NNVizCallback next to Keras's TensorBoard callback.

In one process, interleaved (none, nnviz, keras, then rotated each round)
and keeping the minimum of several runs of each, this times `model.fit` of
an MLP on synthetic data with:

  none    no callback
  nnviz   NNVizCallback(snapshot_freq="epoch")
  keras   keras.callbacks.TensorBoard(histogram_freq=1, write_images=True)

on 784-1024-1024-10 (wide) and 784-64-64-10 (the TensorBoard tutorial's
size). Overhead = fit time with the callback - fit time without, both by
the wall clock and by this process's CPU time (the CPU figure is steadier
when other processes share the cores). Printed: each overhead, ours as a
ratio of Keras's and as a fraction of the fit time, and the bytes each
callback wrote. A second table gives the direct cost, steadier under load:
the time spent inside each callback's hooks (and constructor), plus our
worker thread's CPU time. Targets: ours <= 0.2 x Keras's and <= 10 % of fit
time on both models. Takes about 6 minutes on 2 cores.

    python benchmarks/callback_overhead.py [--samples 10000] [--epochs 3] [--repeats 5]
"""

import argparse
import gc
import os
import shutil
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

MODELS = {"784-1024-1024-10": (1024, 1024), "784-64-64-10": (64, 64)}
CONFIGS = ("none", "nnviz", "keras")


def build(hidden, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    layers = [keras.Input((784,))]
    layers += [keras.layers.Dense(u, activation="relu") for u in hidden]
    layers.append(keras.layers.Dense(10))
    model = keras.Sequential(layers)
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def callbacks_for(config, logdir):
    import keras

    from tensorboard_nnviz import NNVizCallback

    if config == "nnviz":
        return [NNVizCallback(logdir, snapshot_freq="epoch")]
    if config == "keras":
        return [keras.callbacks.TensorBoard(logdir, histogram_freq=1, write_images=True)]
    return []


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


HOOKS = ("set_model", "on_train_begin", "on_epoch_begin", "on_epoch_end",
         "on_train_batch_begin", "on_train_batch_end", "on_train_end")


def instrument(cb, spent):
    """Adds the wall time of each of `cb`'s hooks (the training thread) to
    spent["hooks"], and our writer's worker CPU time to spent["worker"]
    (the two overlap where on_train_end waits for the worker: counted twice)."""
    for name in HOOKS:
        hook = getattr(cb, name)

        def timed(*args, _hook=hook, _name=name, **kwargs):
            writer = getattr(cb, "_writer", None)
            start = time.perf_counter()
            try:
                return _hook(*args, **kwargs)
            finally:
                spent["hooks"] += time.perf_counter() - start
                if _name == "on_train_end" and writer is not None:
                    spent["worker"] += writer.worker_cpu_seconds

        setattr(cb, name, timed)


def time_fit(hidden, config, data, args):
    """(wall s, CPU s, hook s, worker CPU s) of one fit, and the bytes written."""
    x, y = data
    model = build(hidden)
    logdir = tempfile.mkdtemp(prefix="nnviz_bench_")
    spent = {"hooks": 0.0, "worker": 0.0}
    try:
        start, cpu = time.perf_counter(), time.process_time()
        cbs = callbacks_for(config, logdir)  # construction counts as a hook
        spent["hooks"] += time.perf_counter() - start
        for cb in cbs:
            instrument(cb, spent)
        model.fit(x, y, batch_size=args.batch, epochs=args.epochs, verbose=0, callbacks=cbs)
        # fit returns after on_train_end: our writer has drained by then.
        times = (time.perf_counter() - start, time.process_time() - cpu,
                 spent["hooks"], spent["worker"])
        return times, dir_bytes(logdir)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)


def fmt_bytes(n):
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return "%.3g %s" % (n, unit)
        n /= 1000.0
    return "%.3g TB" % n


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    data = (rng.standard_normal((args.samples, 784)).astype("float32"),
            rng.integers(0, 10, args.samples))
    names = args.models.split(",")
    for name in names:  # warm-up: TF graph caches, first-use imports of each callback
        for config in CONFIGS:
            time_fit(MODELS[name], config, (data[0][:512], data[1][:512]), args)

    results = {(m, c): [] for m in names for c in CONFIGS}
    sizes = {}
    for rep in range(args.repeats):
        # Rotate the order each round so no configuration always runs
        # right after the same other one.
        order = CONFIGS[rep % 3:] + CONFIGS[:rep % 3]
        for name in names:
            for config in order:
                gc.collect()
                t, size = time_fit(MODELS[name], config, data, args)
                results[(name, config)].append(t)
                sizes[(name, config)] = size
                print("  run %d %-18s %-6s %7.2f s wall %7.2f s CPU %6.3f s in hooks "
                      "%6.3f s worker CPU" % ((rep + 1, name, config) + t), flush=True)

    print()
    print("%d samples, batch %d, %d epochs, snapshot/histograms every epoch, %d interleaved "
          "runs each; load average %.1f" % (args.samples, args.batch, args.epochs, args.repeats,
                                            os.getloadavg()[0]))
    header = ("| model | clock | fit, no callback | NNViz overhead | Keras TB overhead | "
              "NNViz / Keras | NNViz / fit |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in names:
        for i, clock, pick in ((0, "wall, min", min), (1, "CPU, min", min),
                               (0, "wall, median", statistics.median)):
            base = pick([t[i] for t in results[(name, "none")]])
            ours = pick([t[i] for t in results[(name, "nnviz")]]) - base
            theirs = pick([t[i] for t in results[(name, "keras")]]) - base
            ratio = "%.3f" % (ours / theirs) if theirs > 0 else "n/a"
            print("| %s | %s | %.2f s | %+.2f s (%+.1f%%) | %+.2f s (%+.0f%%) | %s | %+.1f%% |" % (
                name, clock, base, ours, 100 * ours / base, theirs, 100 * theirs / base, ratio,
                100 * ours / base))
    print()
    print("Direct cost, min over runs: time inside each callback's hooks on the training "
          "thread, plus our writer thread's CPU time (Keras's callback works in its hooks).")
    header = ("| model | fit, no callback | NNViz hooks + worker | Keras TB hooks | "
              "NNViz / Keras | NNViz / fit | bytes NNViz | bytes Keras TB |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in names:
        base = min(t[0] for t in results[(name, "none")])
        ours = min(t[2] + t[3] for t in results[(name, "nnviz")])
        theirs = min(t[2] for t in results[(name, "keras")])
        print("| %s | %.2f s | %.3f s | %.3f s | %.3f | %.1f%% | %s | %s |" % (
            name, base, ours, theirs, ours / theirs, 100 * ours / base,
            fmt_bytes(sizes[(name, "nnviz")]), fmt_bytes(sizes[(name, "keras")])))


if __name__ == "__main__":
    main()
