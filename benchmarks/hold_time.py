"""Hold time: how long a snapshot holds the training thread, vs the copy floor.

For ResNet50 (keras.applications, weights=None, 64x64 input) and
MobileNetV2 (96x96), trains with `NNVizCallback(snapshot_freq=1)` (a
snapshot after every step) on this process's Keras backend (KERAS_BACKEND:
tensorflow, jax or torch) and prints per snapshot:

- hold: time inside the callback's snapshot on the training thread, less
  the time it waited for the writer's full queue (by design training waits
  when the worker falls behind: nothing is dropped; that wait is printed
  apart, it is not the copy's cost); on JAX it includes Keras's
  `jax_state_sync` (putting the step's arrays back into the variables, for
  any callback that reads the model), not the wait for the step itself,
- wait: that time blocked on the writer's queue,

next to two floors, each timed 9 times before the fit and 9 after (they
move with malloc's state: whether freed pages get reused or fresh ones are
faulted in); the table gives the lowest:

- read floor: `[np.array(v) for v in model.weights]` (copies freed at
  once), the obvious read through Keras; on TensorFlow it copies twice;
- copy floor: one copy of every weight's bytes into memory that is already
  mapped (`np.copyto` from host copies made beforehand), the least any
  read can cost on any backend;

and the callback's own read of every weight into mapped buffers, outside
`fit` (`callback._copy_to_host`: the per-backend read, without the
model-level work of a snapshot). All three are minima of 18 runs: under
load the in-fit hold's p50 mostly measures preemption, its min is
printed too.

`--distribution data|model` (JAX only) trains under Keras's distribution
API on 8 virtual CPU devices: `DataParallel`, or `ModelParallel` with a
LayoutMap sharding every conv and Dense kernel 4 ways over output
channels (a mesh of 2 x 4), so each snapshot gathers the kernels shard by
shard. The copy floor is the same bytes copied once.

`--idle` lets the writer catch up before each snapshot (outside the timed
window), as with sparse snapshots; by default the worker is busy with the
previous snapshots while the next is copied, the worst case for the copy.

Usage (with each environment's python; KERAS_BACKEND picks the backend):
  python benchmarks/hold_time.py [--models resnet50,mobilenetv2] [--snapshots 10] [--idle]
  KERAS_BACKEND=jax .venv-jax/bin/python benchmarks/hold_time.py --distribution model

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


def distribution(kind):
    """Keras's distribution over this process's 8 virtual CPU devices."""
    import jax
    import keras

    devices = jax.devices()
    assert len(devices) == 8, devices
    if kind == "data":
        return keras.distribution.DataParallel(devices=devices)
    mesh = keras.distribution.DeviceMesh((2, 4), ["batch", "model"], devices)
    layout = keras.distribution.LayoutMap(mesh)
    # Output channels of the convs; a depthwise kernel (kh, kw, in, 1) has
    # one output per input channel, nothing to split.
    layout["^(?!.*depthwise).*conv.*/kernel"] = (None, None, None, "model")
    layout[".*(predictions|logits)/kernel"] = (None, "model")
    return keras.distribution.ModelParallel(layout_map=layout, batch_dim_name="batch")


def measure(name, snapshots, idle, logdir, kind=None):
    import keras

    from tensorboard_nnviz import NNVizCallback
    from tensorboard_nnviz.record import callback as callback_lib

    if kind:
        keras.distribution.set_distribution(distribution(kind))
    keras.utils.set_random_seed(0)
    cls, shape = MODELS[name]
    model = getattr(keras.applications, cls)(weights=None, input_shape=shape)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    holds, waits = [], []

    class Timed(NNVizCallback):
        def _snapshot(self, *args, **kwargs):
            if idle:
                self.recorder.writer.flush()
            # JAX dispatches a step asynchronously: any read of its weights
            # first waits for the step to finish. That is the step's time,
            # not the copy's, so it is waited for here, outside the hold.
            state = getattr(self._model, "_jax_state", None)
            if state:
                import jax

                jax.block_until_ready(state)
            write, blocked = self.recorder.writer.write, [0.0]

            def timed_write(*a, **k):  # blocks while the writer's queue is full
                t_w = time.perf_counter()
                try:
                    return write(*a, **k)
                finally:
                    blocked[0] += time.perf_counter() - t_w

            self.recorder.writer.write = timed_write
            t = time.perf_counter()
            try:
                super()._snapshot(*args, **kwargs)
            finally:
                total = time.perf_counter() - t
                self.recorder.writer.write = write
            holds.append(total - blocked[0])
            waits.append(blocked[0])

    # np.array(KerasVariable) warns that Keras's __array__ takes no `copy`.
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    host = [np.array(keras.ops.convert_to_numpy(v)) for v in model.weights]
    mapped = [np.empty_like(h) for h in host]
    pool = {}

    def take(tag, shape, dtype):  # like the writer's pool, buffers already mapped
        if tag not in pool:
            pool[tag] = np.empty(shape, dtype)
        return pool[tag]

    def floor_times():
        reads, copies, ours = [], [], []
        for _ in range(9):
            t = time.perf_counter()
            [np.array(v) for v in model.weights]  # freed at once
            reads.append(time.perf_counter() - t)
            t = time.perf_counter()
            for dst, src in zip(mapped, host):
                np.copyto(dst, src)
            copies.append(time.perf_counter() - t)
            t = time.perf_counter()
            for i, v in enumerate(model.weights):  # the callback's read of every weight
                callback_lib._copy_to_host(v, i, take)
            ours.append(time.perf_counter() - t)
        return reads, copies, ours

    reads, copies, ours = floor_times()
    steps = snapshots - 1  # plus the one at on_train_begin
    batch = 8 if kind else 4  # split over the devices
    x = np.random.default_rng(0).standard_normal((batch * steps,) + shape).astype("float32")
    y = np.arange(batch * steps) % 1000
    t_fit = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0,
              callbacks=[Timed(logdir, snapshot_freq=1)])
    fit_s = time.perf_counter() - t_fit
    more_reads, more_copies, more_ours = floor_times()
    nbytes = sum(h.nbytes for h in host)
    if kind:
        keras.distribution.set_distribution(None)
    return {"model": cls, "tensors": len(model.weights), "mb": nbytes / 1e6, "holds": holds,
            "waits": waits, "floors": reads + more_reads, "copies": copies + more_copies,
            "ours": ours + more_ours,
            "fit_s": fit_s}


def ms(xs):
    return [round(x * 1e3, 1) for x in xs]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,mobilenetv2")
    parser.add_argument("--snapshots", type=int, default=10)
    parser.add_argument("--idle", action="store_true",
                        help="let the writer catch up before each snapshot")
    parser.add_argument("--distribution", choices=["data", "model"],
                        help="JAX only: Keras's distribution API on 8 virtual CPU devices")
    args = parser.parse_args(argv)
    if args.distribution:
        if os.environ.get("KERAS_BACKEND") != "jax":
            parser.error("--distribution needs KERAS_BACKEND=jax")
        # Read by JAX when it starts, so before Keras is imported.
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_force_host_platform_device_count=8").strip()
    import keras

    backend = keras.backend.backend()
    if args.distribution:
        backend += ", %s parallel on 8 CPU devices" % args.distribution
    print("hold time on %s, snapshot every step%s; load average %.2f at start" % (
        backend, " (writer idle at each snapshot)" if args.idle else "", os.getloadavg()[0]))
    rows = []
    with tempfile.TemporaryDirectory(prefix="nnviz_hold_") as tmp:
        for name in args.models.split(","):
            r = measure(name, args.snapshots, args.idle, os.path.join(tmp, name),
                        args.distribution)
            rows.append(r)
            print("  %s: holds (ms) %s; waits for the writer (ms) %s; read floors (ms) %s; "
                  "copy floors (ms) %s; fit %.1f s; load average %.2f" % (
                      r["model"], ms(r["holds"]), ms(r["waits"]), ms(r["floors"]),
                      ms(r["copies"]), r["fit_s"], os.getloadavg()[0]))
    print()
    print("| backend | model | tensors | MB | copy floor | np.array(v) | our read | "
          "our read / copy floor | hold min | hold p50 (max) | hold p50 / copy floor "
          "| wait for writer p50 (max) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        hold, copy, ours = statistics.median(r["holds"]), min(r["copies"]), min(r["ours"])
        print("| %s | %s | %d | %.1f | %.1f ms | %.1f ms | %.1f ms | %.2fx | %.1f ms "
              "| %.1f ms (%.1f) | %.2fx | %.0f ms (%.0f) |" % (
                  backend, r["model"], r["tensors"], r["mb"], copy * 1e3,
                  min(r["floors"]) * 1e3, ours * 1e3, ours / copy, min(r["holds"]) * 1e3,
                  hold * 1e3, max(r["holds"]) * 1e3, hold / copy,
                  statistics.median(r["waits"]) * 1e3, max(r["waits"]) * 1e3))
    print("\nload average %.2f at the end" % os.getloadavg()[0])


if __name__ == "__main__":
    main()
