"""Writer background CPU per snapshot, divided by one memory pass over the weights.

For ResNet50 (keras.applications, weights=None) and the 784-1024-1024-10
MLP, feeds snapshots of the model's real weights (each step perturbed by
an Adam-sized update, so every stat and unit stat is computed) through
`SnapshotWriter` and reads the background CPU time per snapshot: the
process's CPU time across `write` + `flush` (the calling thread only waits
there), so it counts the worker thread (layout, full-resolution stats,
per-unit stats, encoding) and TensorBoard's event-writer thread
(serializing, checksums, the write). The denominator is one memory pass
over the same bytes: `np.add.reduce` over all the weights in one float32
array, on the same kind of clock (CPU time, fastest of 15; the wall
clock's fastest and median are printed too).

"Before" is the same measurement with the package as it was at a git
revision (default: the merge base with main), exported with `git archive`
into a temporary folder and run in a subprocess, so both sides see the same
weights and machine state. "numpy" is the current writer on its numpy path
(stats.py's fallback when numba is missing), in this process. Printed side
by side, as ratios:

    python benchmarks/writer_cpu.py [--before REV] [--snapshots 8] [--rounds 3]
                                    [--models resnet50,mlp] [--spectral auto]

Each round measures the three sides one after the other, and the figures
are the minimum (and median) over every round's snapshots: on a shared
machine, load that comes and goes then weighs on each side alike.

`--spectral` is the writer's `spectral=` option on every side (default
False: the recording itself; "auto" adds the budgeted spectral stats).

Also prints the split of the current worker's time (stats with units,
frames, the rest) from a profile of the same snapshots. Takes about a
minute per round on 2 shared cores. Not part of `make test`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def model_weights(name):
    """[(tag, array, layer_class, layer_name)] of a freshly built model."""
    import keras

    from tensorboard_nnviz.record import structure

    keras.utils.set_random_seed(0)
    if name == "resnet50":
        model = keras.applications.ResNet50(weights=None)
    else:
        model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(1024, activation="relu"),
                                  keras.layers.Dense(1024, activation="relu"), keras.layers.Dense(10)])
    return [(r.tag, keras.ops.convert_to_numpy(r.variable), r.layer_class, r.layer_name)
            for r in structure.weight_refs(model)]


def memory_pass(weights, repeats=15):
    """(CPU s, wall s, wall median s) of np.add.reduce over all the bytes."""
    flat = np.concatenate([w.ravel() for _, w, _, _ in weights]).astype(np.float32)
    cpu, wall = [], []
    for _ in range(repeats):
        c, t = time.thread_time(), time.perf_counter()
        np.add.reduce(flat)
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - t)
    return min(cpu), min(wall), statistics.median(wall)


def worker_cpu(weights, snapshots, spectral=False, numpy_path=False, after_first=None):
    """Worker CPU seconds of each snapshot after the first (which has no
    previous snapshot to compare with); `after_first` is called once the
    first is written."""
    from tensorboard_nnviz.record import stats as stats_lib
    from tensorboard_nnviz.record import writer as writer_lib

    rng = np.random.default_rng(0)
    noise = {tag: rng.standard_normal(w.shape).astype(w.dtype) * np.float32(1e-3)
             for tag, w, _, _ in weights}
    logdir = tempfile.mkdtemp(prefix="nnviz_writer_cpu_")
    kwargs = {} if spectral is None else {"spectral": spectral}  # revisions before the option
    writer = writer_lib.SnapshotWriter(logdir, **kwargs)
    saved = getattr(stats_lib, "_fused", None)
    if numpy_path:
        stats_lib._fused = False
    per_snapshot = []
    try:
        for step in range(snapshots + 1):
            batch = [writer_lib.Weight(tag, w + noise[tag] * step, cls, layer, str(w.dtype))
                     for tag, w, cls, layer in weights]
            before = time.process_time()
            writer.write(step, batch)
            writer.flush()  # the worker flushes the event file: written by then
            if step:
                per_snapshot.append(time.process_time() - before)
            elif after_first is not None:
                after_first()
    finally:
        writer.close()
        if numpy_path:
            stats_lib._fused = saved
    return per_snapshot


def split(weights, spectral, snapshots=3):
    """CPU seconds per snapshot inside stats.measure_many / measure (stats,
    unit sums and the frame, one pass) and the rest of the worker
    (encoding, writing, spectral stats), from the functions the worker
    calls."""
    from tensorboard_nnviz.record import stats as stats_lib

    spent = [0.0]
    depth = [0]  # measure_many may call measure: count the outer call only
    originals = {name: getattr(stats_lib, name) for name in ("measure", "measure_many")
                 if hasattr(stats_lib, name)}

    def timed(original):
        def call(*args, **kwargs):
            depth[0] += 1
            start = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                depth[0] -= 1
                if not depth[0]:
                    spent[0] += time.thread_time() - start
        return call

    for name, original in originals.items():
        setattr(stats_lib, name, timed(original))
    try:
        # The first snapshot (no prev, new tags) is not counted on either side.
        times = worker_cpu(weights, snapshots, spectral, after_first=lambda: spent.__setitem__(0, 0.0))
    finally:
        for name, original in originals.items():
            setattr(stats_lib, name, original)
    return spent[0] / snapshots, sum(times) / snapshots


def measure(models, snapshots, spectral, numpy_path=False):
    out = {}
    for name in models:
        weights = model_weights(name)
        cpu_pass, wall_pass, wall_median = memory_pass(weights)
        times = worker_cpu(weights, snapshots, spectral, numpy_path)
        out[name] = {"bytes": int(sum(w.nbytes for _, w, _, _ in weights)), "tensors": len(weights),
                     "pass_cpu": cpu_pass, "pass_wall": wall_pass, "pass_wall_median": wall_median,
                     "worker_min": min(times), "worker_median": statistics.median(times),
                     "times": times}
    return out


def merged(rounds):
    """`measure`'s answers of several rounds as one: the fastest pass, and
    the minimum and median over every round's snapshots."""
    out = {}
    for name in rounds[0]:
        runs = [r[name] for r in rounds]
        times = [t for r in runs for t in r.get("times", [r["worker_min"]])]
        out[name] = dict(runs[0], pass_cpu=min(r["pass_cpu"] for r in runs),
                         pass_wall=min(r["pass_wall"] for r in runs),
                         worker_min=min(times), worker_median=statistics.median(times))
    return out


def _spectral_arg(value):
    return {"False": False, "True": True, "none": None}.get(value, value)


def before(rev, models, snapshots, spectral):
    """`measure` with the package at git revision `rev`, in a subprocess."""
    folder = tempfile.mkdtemp(prefix="nnviz_before_")
    archive = subprocess.run(["git", "-C", REPO, "archive", rev, "tensorboard_nnviz"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    env = dict(os.environ, PYTHONPATH=folder + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, __file__, "--json", "--models", ",".join(models),
                          "--snapshots", str(snapshots), "--spectral", str(spectral)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default=None,
                        help="git revision to compare with (default: merge base with main)")
    parser.add_argument("--snapshots", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of before / numpy / fused, alternating")
    parser.add_argument("--models", default="resnet50,mlp")
    parser.add_argument("--spectral", default="False",
                        help="the writer's spectral option on every side (False, True, auto)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    models = args.models.split(",")
    spectral = _spectral_arg(args.spectral)
    if args.json:  # the subprocess of `before`
        try:
            print(json.dumps(measure(models, args.snapshots, spectral)))
        except TypeError:  # a revision whose writer has no spectral option
            print(json.dumps(measure(models, args.snapshots, None)))
        return
    rev = args.before or subprocess.run(["git", "-C", REPO, "merge-base", "HEAD", "main"], check=True,
                                        capture_output=True, text=True).stdout.strip()
    # Rounds alternate the sides, so load that comes and goes (a shared
    # machine) weighs on each alike; the minimum is the least disturbed.
    rounds = {"old": [], "numpy": [], "new": []}
    loads = []
    for _ in range(args.rounds):
        rounds["old"].append(before(rev, models, args.snapshots, args.spectral))
        rounds["numpy"].append(measure(models, args.snapshots, spectral, numpy_path=True))
        rounds["new"].append(measure(models, args.snapshots, spectral))
        loads.append(os.getloadavg()[0])
    old, numpy, new = (merged(rounds[k]) for k in ("old", "numpy", "new"))
    print("load average %.1f-%.1f over %d rounds; %d snapshots each per round, spectral=%s, worker "
          "CPU per snapshot (min / median over the rounds), memory pass = np.add.reduce over the "
          "same bytes (fastest of 15 per round)"
          % (min(loads), max(loads), args.rounds, args.snapshots, spectral))
    header = ("| model | tensors | MB | pass CPU | before %s | ÷ pass | now, numpy path | ÷ pass | "
              "now, fused | ÷ pass | fused / before |" % rev[:7])
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in models:
        o, u, n = old[name], numpy[name], new[name]
        p = n["pass_cpu"]
        print("| %s | %d | %.0f | %.1f ms | %.0f / %.0f ms | %.1f× | %.0f / %.0f ms | %.1f× | "
              "%.0f / %.0f ms | %.1f× | %.2f |" % (
                  name, n["tensors"], n["bytes"] / 1e6, p * 1e3,
                  o["worker_min"] * 1e3, o["worker_median"] * 1e3, o["worker_min"] / p,
                  u["worker_min"] * 1e3, u["worker_median"] * 1e3, u["worker_min"] / p,
                  n["worker_min"] * 1e3, n["worker_median"] * 1e3, n["worker_min"] / p,
                  n["worker_min"] / o["worker_min"]))
    print()
    print("Where the current worker's CPU goes (per snapshot):")
    for name in models:
        measured, total = split(model_weights(name), spectral)
        p = new[name]["pass_cpu"]
        print("  %-9s stats, units and frames (measure_many) %.0f ms (%.1f×), the rest %.0f ms "
              "(%.1f×)" % (
            name, measured * 1e3, measured / p, (total - measured) * 1e3, (total - measured) / p))


if __name__ == "__main__":
    main()
