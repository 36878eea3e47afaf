"""Writer CPU per snapshot with and without spectral stats, side by side.

For ResNet50 (keras.applications, weights=None) and the 784-1024-1024-10
MLP, feeds snapshots of the model's real weights (each perturbed by an
Adam-sized update) through `SnapshotWriter` with `spectral=False`,
`"auto"` and `True`, and reads the background CPU time per snapshot (the
process's CPU time across `write` + `flush`, as benchmarks/writer_cpu.py:
the worker thread and TensorBoard's event-writer thread). Snapshots carry
wall times `--interval` seconds apart, which is what "auto"'s share of the
time between snapshots sees. Also prints how many matrices "auto" filled
per snapshot, and `True` with BLAS left multi-threaded (threadpoolctl
disabled), to show what limiting BLAS to one thread saves.

    python benchmarks/spectral_writer.py [--snapshots 10] [--interval 1] [--models resnet50,mlp]

About three minutes on 2 shared cores. Not part of `make test`.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from writer_cpu import model_weights  # noqa: E402


def run(weights, option, snapshots, interval):
    """(CPU s per snapshot after the first, [matrices with sv_max per snapshot])."""
    from tensorboard_nnviz.record import writer as writer_lib

    rng = np.random.default_rng(0)
    noise = {tag: rng.standard_normal(w.shape).astype(w.dtype) * np.float32(1e-3)
             for tag, w, _, _ in weights}
    logdir = tempfile.mkdtemp(prefix="nnviz_spectral_writer_")
    writer = writer_lib.SnapshotWriter(logdir, spectral=option)
    filled, cpu = [], []
    original = writer_lib.fmt.stats_table_value

    def counting(tags, rows, *args, **kwargs):  # counts the matrices given metrics
        filled[-1] += sum(r.get("sv_max") is not None for r in rows)
        return original(tags, rows, *args, **kwargs)

    writer_lib.fmt.stats_table_value = counting
    try:
        for step in range(snapshots + 1):
            batch = [writer_lib.Weight(tag, w + noise[tag] * step, cls, layer, str(w.dtype))
                     for tag, w, cls, layer in weights]
            filled.append(0)
            before = time.process_time()
            writer.write(step, batch, wall_time=1e9 + step * interval)
            writer.flush()
            if step:
                cpu.append(time.process_time() - before)
    finally:
        writer_lib.fmt.stats_table_value = original
        writer.close()
    return cpu, filled


def matrix_count(weights):
    from tensorboard_nnviz.core import layout as layout_lib
    from tensorboard_nnviz.core import spectral

    count = 0
    for tag, w, cls, layer in weights:
        name = tag.rsplit("/", 1)[-1]
        layout = layout_lib.choose_layout(cls, name, w.shape, layer)
        count += spectral.plan(layout, w.shape, cls, name) is not None
    return count


def main():
    from tensorboard_nnviz.core import spectral

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snapshots", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--models", default="resnet50,mlp")
    args = parser.parse_args()
    print("load average %.1f %.1f %.1f; %d snapshots each, %.3g s apart; writer CPU per snapshot "
          "(min / median / mean: auto varies by snapshot, its mean is the cost)" % (os.getloadavg() + (args.snapshots, args.interval)))
    print("| model | matrices | spectral=False | \"auto\" | auto ÷ off (means) | matrices filled per "
          "snapshot (auto) | True | True ÷ off | True, BLAS multi-threaded |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        weights = model_weights(name)
        off, _ = run(weights, False, args.snapshots, args.interval)
        auto, filled = run(weights, "auto", args.snapshots, args.interval)
        full, _ = run(weights, True, args.snapshots, args.interval)
        spectral._controller = False  # no thread limit
        try:
            threaded, _ = run(weights, True, args.snapshots, args.interval)
        finally:
            spectral._controller = None
        ms = lambda t: "%.0f / %.0f / %.0f ms" % (min(t) * 1e3, statistics.median(t) * 1e3,
                                                  statistics.mean(t) * 1e3)
        print("| %s | %d | %s | %s | %.2f | %s | %s | %.2f | %s |" % (
            name, matrix_count(weights), ms(off), ms(auto),
            statistics.mean(auto) / statistics.mean(off),
            " ".join(map(str, filled[1:])), ms(full), min(full) / min(off), ms(threaded)))


if __name__ == "__main__":
    main()
