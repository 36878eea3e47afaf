"""Training-time overhead of NNVizCallback next to Keras's TensorBoard callback,
on each Keras backend (TensorFlow, JAX, torch).

Keras reads KERAS_BACKEND once, at import, so each backend is measured in a
process of its own, with the python of its environment (`.venv`,
`.venv-jax`, `.venv-torch`, built by `make envs`); this script is the
driver that starts them one after another and prints their figures side
by side (`--backends` picks which). Within one backend's process,
interleaved (none, nnviz, keras, then rotated each round)
and keeping the minimum of several runs of each, this times `model.fit` of
an MLP on synthetic data with:

  none    no callback
  nnviz   NNVizCallback(snapshot_freq="epoch")
  keras   keras.callbacks.TensorBoard(histogram_freq=1, write_images=True)

and with --quantities also (what recording the optimizer's quantities adds):

  weights NNVizCallback(quantities=()): the weights only
  all     NNVizCallback(quantities=all four, quantity_frames=True)

(`nnviz` itself records the default quantities: README, "Gradients and
optimizer state"; on JAX and TensorFlow there is no `grad`.)

on 784-1024-1024-10 (wide) and 784-64-64-10 (the TensorBoard tutorial's
size). Overhead = fit time with the callback - fit time without, both by
the wall clock and by this process's CPU time (the CPU figure is steadier
when other processes share the cores). Printed: each overhead, ours as a
ratio of Keras's and as a fraction of the fit time, and the bytes each
callback wrote. A second table gives the direct cost, steadier under load:
the time spent inside each callback's hooks (and constructor), plus our
worker thread's CPU time while training ran (on_train_end waits for the
worker: that wait is counted once, as the hook's wall time; the table also
prints the figure counting it twice, hooks + all of the worker's CPU, as
this benchmark did before). Targets: ours <= 0.2 x Keras's and <= 2 % of fit
time on both models and every backend. Keras's TensorBoard callback needs
TensorFlow: on JAX and torch (no TensorFlow installed) it cannot run, and
the table says so. Takes about 6 minutes per backend on 2 cores.

    python benchmarks/callback_overhead.py [--backends tensorflow,jax,torch]
        [--samples 10000] [--epochs 3] [--repeats 5] [--models ...] [--spectral auto]
        [--quantities]
"""

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

MODELS = {"784-1024-1024-10": (1024, 1024), "784-64-64-10": (64, 64)}
CONFIGS = ("none", "nnviz", "keras")
QUANTITY_CONFIGS = ("weights", "all")  # --quantities
ALL_QUANTITIES = ("grad", "m_hat", "v_rms", "momentum")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVIRONMENTS = {"tensorflow": ".venv", "jax": ".venv-jax", "torch": ".venv-torch"}


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


SPECTRAL = {"spectral": "auto"}  # NNVizCallback's option (--spectral)


def callbacks_for(config, logdir):
    import keras

    from tensorboard_nnviz import NNVizCallback

    if config == "nnviz":
        return [NNVizCallback(logdir, snapshot_freq="epoch", spectral=SPECTRAL["spectral"])]
    if config == "weights":
        return [NNVizCallback(logdir, snapshot_freq="epoch", spectral=SPECTRAL["spectral"],
                              quantities=())]
    if config == "all":
        return [NNVizCallback(logdir, snapshot_freq="epoch", spectral=SPECTRAL["spectral"],
                              quantities=ALL_QUANTITIES, quantity_frames=True)]
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


def instrument(cb, spent, clock=time.perf_counter):
    """Adds the time of each of `cb`'s hooks by `clock` (wall time; or
    `time.thread_time`, the training thread's CPU) to spent["hooks"], our
    writer's worker CPU time to spent["worker"], and the part of it spent
    before on_train_end to spent["worker_training"]. on_train_end waits for
    the worker to finish: that wait is in "hooks" and the worker's CPU
    during it in "worker", so hooks + worker counts it twice, while hooks +
    worker_training counts each second once (the CPU the worker took from
    training while it ran, then the wall time training waited at the end).
    Of the worker's CPU, the spectral stats' goes to spent["spectral"].

    Only the hooks `cb`'s class overrides are wrapped: Keras's own no-op
    hooks cost nothing, and a wrapper timing one (a batch hook, at every
    batch) would count its own clock reads as the callback's cost."""
    import keras

    for name in HOOKS:
        if getattr(type(cb), name) is getattr(keras.callbacks.Callback, name):
            continue
        hook = getattr(cb, name)
        if name == "on_train_end":
            def timed(*args, _hook=hook, **kwargs):
                writer = getattr(getattr(cb, "recorder", None), "writer", None)
                if writer is not None:
                    spent["worker_training"] += writer.worker_cpu_seconds
                start = clock()
                try:
                    return _hook(*args, **kwargs)
                finally:
                    spent["hooks"] += clock() - start
                    if writer is not None:
                        spent["worker"] += writer.worker_cpu_seconds
                        spent["spectral"] += writer.spectral_cpu_seconds
        else:
            def timed(*args, _hook=hook, **kwargs):
                start = clock()
                try:
                    return _hook(*args, **kwargs)
                finally:
                    spent["hooks"] += clock() - start

        setattr(cb, name, timed)


def time_fit(hidden, config, data, args):
    """(wall s, CPU s, hook s, worker CPU s, worker CPU s before
    on_train_end, of it spectral CPU s) of one fit, and the bytes written."""
    x, y = data
    model = build(hidden)
    logdir = tempfile.mkdtemp(prefix="nnviz_bench_")
    spent = {"hooks": 0.0, "worker": 0.0, "worker_training": 0.0, "spectral": 0.0}
    try:
        start, cpu = time.perf_counter(), time.process_time()
        cbs = callbacks_for(config, logdir)  # construction counts as a hook
        spent["hooks"] += time.perf_counter() - start
        for cb in cbs:
            instrument(cb, spent)
        model.fit(x, y, batch_size=args.batch, epochs=args.epochs, verbose=0, callbacks=cbs)
        # fit returns after on_train_end: our writer has drained by then.
        times = (time.perf_counter() - start, time.process_time() - cpu,
                 spent["hooks"], spent["worker"], spent["worker_training"], spent["spectral"])
        return times, dir_bytes(logdir)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)


def fmt_bytes(n):
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return "%.3g %s" % (n, unit)
        n /= 1000.0
    return "%.3g TB" % n


def keras_tb_unavailable():
    """Why Keras's TensorBoard callback cannot run here, or None if it can."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        return "needs TensorFlow (not installed)"
    return None


def measure(args):
    """Times every configuration on this process's Keras backend; returns the
    raw figures as a JSON-able dict."""
    import keras

    backend = keras.backend.backend()
    unavailable = keras_tb_unavailable()
    configs = tuple(c for c in CONFIGS if not (c == "keras" and unavailable))
    if args.quantities:
        configs += QUANTITY_CONFIGS
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((args.samples, 784)).astype("float32"),
            rng.integers(0, 10, args.samples))
    names = args.models.split(",")
    for name in names:  # warm-up: compiled step caches, first-use imports of each callback
        for config in configs:
            time_fit(MODELS[name], config, (data[0][:512], data[1][:512]), args)

    results = {"%s|%s" % (m, c): [] for m in names for c in configs}
    sizes = {}
    for rep in range(args.repeats):
        # Rotate the order each round so no configuration always runs
        # right after the same other one.
        order = configs[rep % len(configs):] + configs[:rep % len(configs)]
        for name in names:
            for config in order:
                gc.collect()
                t, size = time_fit(MODELS[name], config, data, args)
                results["%s|%s" % (name, config)].append(t)
                sizes["%s|%s" % (name, config)] = size
                print("  %s run %d %-18s %-6s %7.2f s wall %7.2f s CPU %6.3f s in hooks "
                      "%6.3f s worker CPU (%6.3f s before on_train_end, %6.3f s spectral)"
                      % ((backend, rep + 1, name, config) + t), flush=True)
    return {"backend": backend, "keras_tb_unavailable": unavailable, "results": results,
            "sizes": sizes, "load": os.getloadavg()[0]}


def run_backend(backend, args):
    """Runs this script for one backend in its own environment's python."""
    python = os.path.join(ROOT, ENVIRONMENTS[backend], "bin", "python")
    if not os.path.exists(python):
        sys.exit("%s is missing: `make envs` builds it" % python)
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = [python, os.path.abspath(__file__), "--measure", out.name,
                "--samples", str(args.samples), "--batch", str(args.batch),
                "--epochs", str(args.epochs), "--repeats", str(args.repeats),
                "--models", args.models, "--spectral", args.spectral]
        argv += ["--quantities"] if args.quantities else []
        subprocess.run(argv, check=True, env=dict(os.environ, KERAS_BACKEND=backend))
        with open(out.name) as f:
            return json.load(f)


def print_header(header):
    print(header)
    print("|" + "---|" * (header.count("|") - 1))


def rows(runs, names):
    """(model name, run, its results, its sizes, fit time without a
    callback), model by model, backend by backend."""
    for name in names:
        for run in runs:
            res = run["results"]
            yield name, run, res, run["sizes"], min(t[0] for t in res[name + "|none"])


def direct_cost(res, name, config):
    """Hooks + worker CPU of `config` on model `name`, each second counted
    once (`instrument`), min over runs."""
    return min(t[2] + t[4] for t in res[name + "|" + config])


def direct_cost_twice(res, name, config):
    """The same with the end wait counted twice, as this benchmark printed
    before (hooks + all of the worker's CPU)."""
    return min(t[2] + t[3] for t in res[name + "|" + config])


def pct(x, base):
    return "%+.1f%%" % (100 * x / base)


def print_tables(runs, args):
    names = args.models.split(",")
    print()
    print("%d samples, batch %d, %d epochs, snapshot/histograms every epoch, %d interleaved "
          "runs each; load average %s" % (
              args.samples, args.batch, args.epochs, args.repeats,
              ", ".join("%.1f (%s)" % (r["load"], r["backend"]) for r in runs)))
    print_header("| model | backend | clock | fit, no callback | NNViz overhead | "
                 "Keras TB overhead | NNViz / Keras | NNViz / fit |")
    for name in names:
        for run in runs:
            res = {k: v for k, v in run["results"].items()}
            for i, clock, pick in ((0, "wall, min", min), (1, "CPU, min", min),
                                   (0, "wall, median", statistics.median)):
                base = pick([t[i] for t in res[name + "|none"]])
                ours = pick([t[i] for t in res[name + "|nnviz"]]) - base
                if run["keras_tb_unavailable"]:
                    theirs_cell, ratio = "cannot run: " + run["keras_tb_unavailable"], "n/a"
                else:
                    theirs = pick([t[i] for t in res[name + "|keras"]]) - base
                    theirs_cell = "%+.2f s (%s)" % (theirs, pct(theirs, base))
                    ratio = "%.3f" % (ours / theirs) if theirs > 0 else "n/a"
                print("| %s | %s | %s | %.2f s | %+.2f s (%s) | %s | %s | %s |" % (
                    name, run["backend"], clock, base, ours, pct(ours, base), theirs_cell,
                    ratio, pct(ours, base)))
    print()
    print("Direct cost, min over runs: time inside each callback's hooks on the training "
          "thread, plus our writer thread's CPU time before on_train_end (Keras's callback "
          "works in its hooks). The wait at on_train_end is counted once, as wall time; the "
          "last columns count it twice (the hooks' wait and the worker's CPU during it), as "
          "this table did before.")
    print_header("| model | backend | fit, no callback | NNViz hooks + worker | NNViz / fit | "
                 "Keras TB hooks | NNViz / Keras | bytes NNViz | bytes Keras TB | "
                 "counted twice | twice / fit |")
    for name, run, res, sizes, base in rows(runs, names):
        ours = direct_cost(res, name, "nnviz")
        if run["keras_tb_unavailable"]:
            theirs_cell, ratio, their_bytes = "cannot run", "n/a", "n/a"
        else:
            theirs = min(t[2] for t in res[name + "|keras"])
            theirs_cell, ratio = "%.3f s" % theirs, "%.3f" % (ours / theirs)
            their_bytes = fmt_bytes(sizes[name + "|keras"])
        twice = direct_cost_twice(res, name, "nnviz")
        print("| %s | %s | %.2f s | %.3f s | %.1f%% | %s | %s | %s | %s | %.3f s | %.1f%% |" % (
            name, run["backend"], base, ours, 100 * ours / base, theirs_cell, ratio,
            fmt_bytes(sizes[name + "|nnviz"]), their_bytes, twice, 100 * twice / base))
    if args.quantities:
        print_quantity_table(runs, names)


def print_quantity_table(runs, names):
    """What the optimizer's quantities add to the weights-only recording:
    direct cost (hooks + worker CPU, min over runs) and bytes."""
    print()
    print("Quantities: direct cost (hooks + worker CPU, min over runs) and bytes written, "
          "weights only vs the default quantities vs all four with frames.")
    print_header("| model | backend | fit, no callback | weights only | default | all + frames | "
                 "default / weights | all / weights | bytes weights | bytes default | bytes all |")
    configs = ("weights", "nnviz", "all")
    for name, run, res, sizes, base in rows(runs, names):
        cost = {c: direct_cost(res, name, c) for c in configs}
        print("| %s | %s | %.2f s | %s | %.2f | %.2f | %s |" % (
            name, run["backend"], base,
            " | ".join("%.3f s (%.1f%%)" % (cost[c], 100 * cost[c] / base) for c in configs),
            cost["nnviz"] / cost["weights"], cost["all"] / cost["weights"],
            " | ".join(fmt_bytes(sizes[name + "|" + c]) for c in configs)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--spectral", default="auto",
                        help="NNVizCallback's spectral option: auto (default), True or False")
    parser.add_argument("--quantities", action="store_true",
                        help="also time NNVizCallback with no quantities and with all of them")
    parser.add_argument("--measure", metavar="OUT.json",
                        help="measure this process's backend only and write OUT.json "
                             "(what the driver runs in each environment)")
    args = parser.parse_args()
    SPECTRAL["spectral"] = {"True": True, "False": False}.get(args.spectral, args.spectral)
    if args.measure:
        result = measure(args)
        with open(args.measure, "w") as f:
            json.dump(result, f)
        return
    runs = [run_backend(b, args) for b in args.backends.split(",")]
    print_tables(runs, args)


if __name__ == "__main__":
    main()
