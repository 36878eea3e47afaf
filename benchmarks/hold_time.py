"""Hold time: how long a snapshot holds the training thread, vs the copy floor.

For ResNet50 (keras.applications, weights=None, 64x64 input) and
MobileNetV2 (96x96), trains with `NNVizCallback(snapshot_freq=1)` (a
snapshot after every step) and prints per snapshot:

- hold: time inside the callback's snapshot on the training thread, less
  the time it waited for the writer's full queue (by design training waits
  when the worker falls behind: nothing is dropped; that wait is printed
  apart, it is not the copy's cost),
- wait: that time blocked on the writer's queue,

next to the floor: `[np.array(v) for v in model.weights]` (copies freed at
once), 9 runs before the fit and 9 after; the table divides by the lowest.
The floor moves with malloc's state (whether freed pages get reused or
fresh ones are faulted in), so it is measured on both sides of the fit.

`--idle` lets the writer catch up before each snapshot (outside the timed
window), as with sparse snapshots; by default the worker is busy with the
previous snapshots while the next is copied, the worst case for the copy.

Usage:
  python benchmarks/hold_time.py [--models resnet50,mobilenetv2] [--snapshots 10] [--idle]

Takes about 1-2 minutes on 2 shared cores. Not part of `make test`.
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import warnings  # noqa: E402

import numpy as np  # noqa: E402

MODELS = {
    "resnet50": ("ResNet50", (64, 64, 3)),
    "mobilenetv2": ("MobileNetV2", (96, 96, 3)),
}


def measure(name, snapshots, idle, logdir):
    import keras

    from tensorboard_nnviz import NNVizCallback

    keras.utils.set_random_seed(0)
    cls, shape = MODELS[name]
    model = getattr(keras.applications, cls)(weights=None, input_shape=shape)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    holds, waits = [], []

    class Timed(NNVizCallback):
        def _snapshot(self, *args, **kwargs):
            if idle:
                self._writer.flush()
            write, blocked = self._writer.write, [0.0]

            def timed_write(*a, **k):  # blocks while the writer's queue is full
                t_w = time.perf_counter()
                try:
                    return write(*a, **k)
                finally:
                    blocked[0] += time.perf_counter() - t_w

            self._writer.write = timed_write
            t = time.perf_counter()
            try:
                super()._snapshot(*args, **kwargs)
            finally:
                total = time.perf_counter() - t
                self._writer.write = write
            holds.append(total - blocked[0])
            waits.append(blocked[0])

    # np.array(KerasVariable) warns that Keras's __array__ takes no `copy`.
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    def floor_times():
        times = []
        for _ in range(9):
            t = time.perf_counter()
            [np.array(v) for v in model.weights]  # freed at once
            times.append(time.perf_counter() - t)
        return times

    floors = floor_times()
    steps = snapshots - 1  # plus the one at on_train_begin
    x = np.random.default_rng(0).standard_normal((4 * steps,) + shape).astype("float32")
    y = np.arange(4 * steps) % 1000
    t_fit = time.perf_counter()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[Timed(logdir, snapshot_freq=1)])
    fit_s = time.perf_counter() - t_fit
    floors += floor_times()
    nbytes = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)
    return {"model": cls, "tensors": len(model.weights), "mb": nbytes / 1e6, "holds": holds,
            "waits": waits, "floors": floors, "fit_s": fit_s}


def ms(xs):
    return [round(x * 1e3, 1) for x in xs]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,mobilenetv2")
    parser.add_argument("--snapshots", type=int, default=10)
    parser.add_argument("--idle", action="store_true",
                        help="let the writer catch up before each snapshot")
    args = parser.parse_args(argv)
    print("hold time, snapshot every step%s; load average %.2f at start" % (
        " (writer idle at each snapshot)" if args.idle else "", os.getloadavg()[0]))
    rows = []
    with tempfile.TemporaryDirectory(prefix="nnviz_hold_") as tmp:
        for name in args.models.split(","):
            r = measure(name, args.snapshots, args.idle, os.path.join(tmp, name))
            rows.append(r)
            print("  %s: holds (ms) %s; waits for the writer (ms) %s; floors (ms) %s; fit %.1f s; "
                  "load average %.2f" % (r["model"], ms(r["holds"]), ms(r["waits"]),
                                         ms(r["floors"]), r["fit_s"], os.getloadavg()[0]))
    print()
    print("| model | tensors | MB | floor min (p50) | hold p50 (max) | hold p50 / floor min "
          "| wait for writer p50 (max) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        hold, floor = statistics.median(r["holds"]), min(r["floors"])
        print("| %s | %d | %.1f | %.1f ms (%.1f) | %.1f ms (%.1f) | %.2fx | %.0f ms (%.0f) |" % (
            r["model"], r["tensors"], r["mb"], floor * 1e3, statistics.median(r["floors"]) * 1e3,
            hold * 1e3, max(r["holds"]) * 1e3, hold / floor,
            statistics.median(r["waits"]) * 1e3, max(r["waits"]) * 1e3))
    print("\nload average %.2f at the end" % os.getloadavg()[0])


if __name__ == "__main__":
    main()
