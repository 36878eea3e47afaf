"""Bytes and writer CPU per snapshot with and without the quantities
recorded beside the weights (gradients, optimizer state).

For ResNet50 (keras.applications, weights=None) and the 784-1024-1024-10
MLP (writer_cpu.py's models), feeds snapshots through `SnapshotWriter`:
the model's real weights, each step perturbed by an Adam-sized update,
and beside each weight quantities of its shape (a gradient: fresh noise
every step; v_rms, m_hat, momentum: noise too; the writer's cost does not
depend on the values). Per configuration:

  weights          the weights only (what is recorded without quantities)
  +grad,v_rms      the default quantities, stats and per-unit stats only
  default          the same, with the gradient's frames (quantity_frames=("grad",))
  grad,v_rms all   both with frames
  all four all     grad, m_hat, v_rms, momentum, every one with frames

prints the bytes written per snapshot (event files, after the first) and
the writer's CPU per snapshot (process CPU across write + flush: the
worker and TensorBoard's event-writer thread; min and median), and both as
ratios to "weights".

    python benchmarks/quantities_cost.py [--snapshots 6] [--models resnet50,mlp]

Spectral stats off on every side (they are the weights' only). Not part
of `make test`.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from writer_cpu import model_weights  # noqa: E402

CONFIGS = (
    ("weights", (), ()),
    ("+grad,v_rms", ("grad", "v_rms"), ()),
    ("default", ("grad", "v_rms"), ("grad",)),
    ("grad,v_rms all", ("grad", "v_rms"), ("grad", "v_rms")),
    ("all four all", ("grad", "m_hat", "v_rms", "momentum"),
     ("grad", "m_hat", "v_rms", "momentum")),
)


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def run(weights, quantities, frames, snapshots):
    """(bytes per snapshot after the first, [CPU s per snapshot after the first])."""
    from tensorboard_nnviz.record import writer as writer_lib

    rng = np.random.default_rng(0)
    logdir = tempfile.mkdtemp(prefix="nnviz_quantities_")
    writer = writer_lib.SnapshotWriter(logdir, spectral=False, quantity_frames=frames)
    cpu, first = [], None
    try:
        for step in range(snapshots + 1):
            batch = []
            for tag, w, cls, layer in weights:
                update = rng.standard_normal(w.shape).astype(np.float32) * np.float32(1e-3)
                batch.append(writer_lib.Weight(tag, w + update * step, cls, layer, str(w.dtype)))
                for q in quantities:
                    value = rng.standard_normal(w.shape).astype(np.float32) * np.float32(1e-2)
                    if q == "v_rms":
                        np.abs(value, out=value)
                    batch.append(writer_lib.Weight(tag, value, cls, layer, "float32", q))
            before = time.process_time()
            writer.write(step, batch)
            writer.flush()
            if step:
                cpu.append(time.process_time() - before)
            else:
                first = dir_bytes(logdir)
    finally:
        writer.close()
        total = dir_bytes(logdir)
        shutil.rmtree(logdir, ignore_errors=True)
    return (total - first) / snapshots, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snapshots", type=int, default=6)
    parser.add_argument("--models", default="resnet50,mlp")
    args = parser.parse_args()
    rows = {}
    for name in args.models.split(","):
        weights = model_weights(name)
        for label, quantities, frames in CONFIGS:
            rows[(name, label)] = run(weights, quantities, frames, args.snapshots)
            print("  %-9s %-15s %.2f MB/snapshot, %.0f ms CPU" % (
                name, label, rows[(name, label)][0] / 1e6, 1e3 * min(rows[(name, label)][1])),
                flush=True)
    print()
    print("load average %s; %d snapshots each after the first; writer CPU = process CPU across "
          "write + flush" % (" ".join("%.1f" % v for v in os.getloadavg()), args.snapshots))
    header = ("| model | recorded | bytes / snapshot | × weights | writer CPU / snapshot "
              "(min / median) | × weights |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in args.models.split(","):
        base_bytes, base_cpu = rows[(name, "weights")][0], min(rows[(name, "weights")][1])
        for label, _, _ in CONFIGS:
            size, cpu = rows[(name, label)]
            print("| %s | %s | %.2f MB | %.2f× | %.0f / %.0f ms | %.2f× |" % (
                name, label, size / 1e6, size / base_bytes, 1e3 * min(cpu),
                1e3 * statistics.median(cpu), min(cpu) / base_cpu))


if __name__ == "__main__":
    main()
