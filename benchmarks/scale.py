"""Scale: real architectures over 100 snapshots, and /frame at 10-1000 snapshots.

For ResNet50 (keras.applications, weights=None, 64x64 input) and
MobileNetV2 (96x96 input), prints:

- tensors, frame cells and bytes per snapshot (budget.py, exact),
- event-file bytes of 100 snapshots: 10 written through `SnapshotWriter`
  (host copies of the model's weights, perturbed between snapshots like
  an lr-1e-3 update; its time per snapshot is reported), 90 more replayed
  from its last event with perturbed frames (see `write_snapshots`),
- the time a snapshot holds the training thread (`NNVizCallback` in a real
  `fit`, hook time), and its hand-off (that time less any wait on the
  writer's full queue), next to the floor: `np.array` of every variable
  (copies freed at once, and copies kept as a snapshot's are),
- TensorBoard's resident memory (the whole process tree: RustBoard is a
  child) once the run is loaded, on both ingesters, and the time from the
  `tensorboard` command until the first `/data/plugin/nnviz/frame` is served,
- the time `compact` takes to keep 10 of the 100 snapshots,

then `/frame` p50 on one tensor at 10, 100 and 1000 snapshots (both
ingesters, requests interleaved).

Usage:
  python benchmarks/scale.py [--models resnet50,mobilenetv2] [--snapshots 100]
                             [--reduced f16|f32] [--keep DIR] [--skip-frame-latency]
                             [--skip-hold] [--latency-only]

`--reduced f32` stores block-reduced frames as float32 instead of the
default (budget.REDUCED_ENCODING), for the side-by-side figure.
Takes about 8 minutes on 2 shared cores. Not part of `make test`.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import psutil

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from tb_server import TensorBoardServer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import long_runs  # noqa: E402

from tensorboard_nnviz.core import format as fmt  # noqa: E402
from tensorboard_nnviz.record import budget  # noqa: E402
from tensorboard_nnviz.record import fast_crc  # noqa: E402
from tensorboard_nnviz.record import writer as writer_lib  # noqa: E402

GiB = 1024 ** 3

MODELS = {
    "resnet50": ("ResNet50", (64, 64, 3)),
    "mobilenetv2": ("MobileNetV2", (96, 96, 3)),
}


# --- frame encoding of the writer ---------------------------------------------------


class _EncodingShim:
    """Stands in for `budget` inside writer.py for this benchmark only: the
    writer encodes reduced frames (block != [1, 1]) as `reduced`, exact
    ones as float32. With the default encoding this is a no-op."""

    def __init__(self, reduced):
        self.reduced = reduced

    def __getattr__(self, name):
        return getattr(budget, name)

    def frame_encoding(self, block):
        return fmt.ENCODING_F32 if list(block) == [1, 1] else self.reduced


def use_encoding(reduced):
    writer_lib.budget = _EncodingShim(reduced)


# --- models and snapshots ---------------------------------------------------------------


def build(name):
    import keras

    keras.utils.set_random_seed(0)
    cls, shape = MODELS[name]
    return getattr(keras.applications, cls)(weights=None, input_shape=shape)


def weights_of(model):
    from tensorboard_nnviz.record import structure

    refs = structure.weight_refs(model)
    return refs, [
        writer_lib.Weight(r.tag, np.array(r.variable), r.layer_class, r.layer_name,
                          str(r.variable.dtype))
        for r in refs
    ]


def write_snapshots(logdir, model, n, through_writer=10, max_cells=65536):
    """n snapshots: the first `through_writer` through SnapshotWriter, the
    rest replayed from the writer's last event.

    SnapshotWriter's full-resolution stats cost ~2-4 s per ResNet50
    snapshot on this machine, too slow for 100 in the time budget. The
    replayed snapshots are the writer's last event with every frame moved
    by a small noise field and re-encoded in the frame's own encoding (the
    stats copied): the same tags, metadata and byte sizes as the writer's,
    which is what event-file bytes and TensorBoard's memory depend on.

    Returns (writer seconds per snapshot, bytes on disk).
    """
    from tensorboard_nnviz.record import structure

    refs, weights = weights_of(model)
    rng = np.random.default_rng(0)
    # One noise field per tensor, scaled per snapshot: an lr-1e-3-sized step.
    noise = [rng.standard_normal(w.value.shape).astype(np.float32) * 1e-3 for w in weights]
    k = min(n, through_writer)
    start = time.perf_counter()
    writer = writer_lib.SnapshotWriter(logdir, max_cells=max_cells)
    try:
        for i in range(k):
            if i:
                for w, z in zip(weights, noise):
                    w.value[...] += z * np.float32(1.0 + 0.1 * (i % 7))
            snap = [w._replace(value=w.value.copy()) for w in weights]
            doc = structure.build_structure(model, refs) if i == 0 else None
            writer.write(i * 10, snap, doc)
    finally:
        writer.close()
    per_snapshot = (time.perf_counter() - start) / k
    if n > k:
        replay(logdir, n - k, first_step=k * 10, step_every=10)
    return per_snapshot, dir_bytes(logdir)


def replay(logdir, count, first_step, step_every):
    """Appends `count` snapshots made from the last snapshot's events in
    `logdir` (long_runs.replay)."""
    long_runs.replay(logdir, count, first_step, step_every)


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def hold_times(model, logdir, steps=20, every=4):
    """Time NNVizCallback holds the training thread per snapshot in a real
    fit, vs the floor (np.array of every variable, after the fit).

    Returns (holds, hand-offs = holds less the time blocked on the
    writer's full queue, floors, floors into fresh memory).

    The floor loop frees each copy at once, so malloc may hand the same
    pages back warm; the second floor keeps its copies alive, as a naive
    snapshot would (the writer keeps them in its queue and as `prev`/`init`),
    and pays fresh pages' faults. The callback copies into buffers the
    writer recycles (`writer.BufferPool`), so only its first few snapshots
    pay them (benchmarks/hold_time.py measures the hold alone). When the
    writer is slower than the snapshots come, the training thread waits
    for its queue (by design: no snapshot is dropped); the hand-off leaves
    that wait out.
    """
    import keras

    from tensorboard_nnviz import NNVizCallback

    holds, syncs, waits = [], [], []

    class Timed(NNVizCallback):
        def _snapshot(self, *a, **k):
            write = self.recorder.writer.write
            blocked = [0.0]

            def timed_write(*wa, **wk):  # blocks while the writer's queue is full
                t_w = time.perf_counter()
                write(*wa, **wk)
                blocked[0] += time.perf_counter() - t_w

            self.recorder.writer.write = timed_write
            t = time.perf_counter()
            # Wait for the device first (what reading iterations does): the
            # copies below cannot start before the step's updates are done.
            keras.ops.convert_to_numpy(self.model.optimizer.iterations)
            syncs.append(time.perf_counter() - t)
            try:
                super()._snapshot(*a, **k)
            finally:
                self.recorder.writer.write = write
            holds.append(time.perf_counter() - t)
            waits.append(blocked[0])

    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    shape = model.input_shape[1:]
    x = np.random.default_rng(0).standard_normal((4 * steps,) + shape).astype("float32")
    y = np.arange(4 * steps) % 1000
    cb = Timed(logdir, snapshot_freq=every)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[cb])
    floors, fresh, kept = [], [], []
    for _ in range(5):
        t = time.perf_counter()
        [np.array(v) for v in model.weights]  # freed at once: malloc reuses it
        floors.append(time.perf_counter() - t)
    for _ in range(4):
        t = time.perf_counter()
        kept.append([np.array(v) for v in model.weights])  # kept, as the writer keeps them
        fresh.append(time.perf_counter() - t)
    del kept
    print("    %s holds (ms): %s, of which blocked on the writer's full queue: %s; waiting for "
          "the device first: %s; floors: %s; floors into fresh memory: %s" % (
              model.name, [round(h * 1e3) for h in holds], [round(w * 1e3) for w in waits],
              [round(h * 1e3) for h in syncs], [round(f * 1e3) for f in floors],
              [round(f * 1e3) for f in fresh]))
    handoffs = [h - w for h, w in zip(holds, waits)]
    return holds, handoffs, floors, fresh


# --- TensorBoard ------------------------------------------------------------------------


def load_in_tensorboard(logdir, load_fast, n_snapshots, tag):
    """(seconds to first frame, seconds to fully loaded, RSS after load,
    peak RSS while loading, seconds until TensorBoard answers at all), all
    times from the `tensorboard` command."""
    tb = TensorBoardServer(logdir, load_fast=load_fast, timeout=180)
    t0 = time.monotonic()  # from the command, as a user starting tensorboard
    with tb:
        ready = time.monotonic() - t0  # TensorBoard answers (plugins listing)
        tb.wait_for(lambda: tb.get("frame", {"run": ".", "tag": tag}).status == 200,
                    timeout=600, interval=0.1)
        first = time.monotonic() - t0

        def loaded():  # frames (from disk) and stats (through TensorBoard): read whole
            tensors = tb.get_json("tags", {"run": "."})["tensors"]
            return tensors and all(len(t["steps"]) == n_snapshots for t in tensors) and long_runs.loaded(
                tb, n_snapshots)

        peak = [0]

        def loaded_sampling():
            peak[0] = max(peak[0], tb.rss())
            return loaded()

        tb.wait_for(loaded_sampling, timeout=900, interval=0.5)
        full = time.monotonic() - t0
        for _ in range(5):  # serve a few frames, as a user opening the tab
            assert tb.get("frame", {"run": ".", "tag": tag}).status == 200
        time.sleep(2)
        rss = tb.rss()
    return first, full, rss, max(peak[0], rss), ready


def frame_latency(workdir, counts=(10, 100, 1000), repeats=40):
    """/frame p50 (ms) on one 256x256-reduced tensor at each snapshot count."""
    from runs import snapshot_events
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from tensorboard_nnviz.core import layout as layout_lib

    tag = "conv/kernel"
    shape = (3, 3, 256, 256)
    lay = layout_lib.choose_layout("Conv2D", "kernel", shape)
    w = np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 0.05
    frame, block = layout_lib.make_frame(w, lay, 65536)
    content = fmt.frame_content(shape=shape, dtype="float32", layout=dict(lay, block=block),
                                rows=frame.shape[0], cols=frame.shape[1])
    encoding = budget.frame_encoding(block)
    stats = {k: 0.0 for k in fmt.STAT_FIELDS}
    for n in counts:
        run = os.path.join(workdir, "n%d" % n)
        events = EventFileWriter(run)
        for i in range(n):
            f = frame + np.float32(1e-4 * i)
            values = [fmt.frame_value(tag, fmt.encode_frame(f, encoding), content),
                      fmt.stats_table_value([tag], [stats])]
            for event in snapshot_events(i, values):  # the writer's layout
                events.add_event(event)
        events.close()
    out = {}
    for load_fast in (False, True):
        with TensorBoardServer(workdir, load_fast=load_fast, timeout=180) as tb:
            for n in counts:
                run = "n%d" % n
                tb.wait_for(lambda: len(tb.get_json("tags", {"run": run})["tensors"][0]["steps"]) == n,
                            timeout=300, interval=0.5)
            # Interleaved, so a change in the machine's load hits every count alike.
            times = {n: [] for n in counts}
            for r in range(repeats):
                for n in counts:
                    step = (r * 7919) % n
                    t = time.perf_counter()
                    resp = tb.get("frame", {"run": "n%d" % n, "tag": tag, "step": step})
                    times[n].append(time.perf_counter() - t)
                    assert resp.status == 200, resp.body[:200]
            for n in counts:
                out[(load_fast, n)] = statistics.median(times[n]) * 1000
    return out


# --- table -------------------------------------------------------------------------------


def mb(n):
    return "%.1f MB" % (n / 1e6)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,mobilenetv2")
    parser.add_argument("--snapshots", type=int, default=100)
    parser.add_argument("--reduced", choices=("f16", "f32"), default=None,
                        help="encoding of block-reduced frames (default: budget.REDUCED_ENCODING)")
    parser.add_argument("--keep", default=None, help="write the runs here and keep them")
    parser.add_argument("--skip-frame-latency", action="store_true")
    parser.add_argument("--skip-hold", action="store_true")
    parser.add_argument("--latency-only", action="store_true",
                        help="only /frame p50 at 10, 100 and 1000 snapshots")
    args = parser.parse_args(argv)
    reduced = {"f16": fmt.ENCODING_F16, "f32": fmt.ENCODING_F32, None: budget.REDUCED_ENCODING}[args.reduced]
    budget.REDUCED_ENCODING = reduced
    use_encoding(reduced)
    crc = fast_crc.install()  # what eventfiles.new_writer does
    enc_name = {fmt.ENCODING_F16: "float16", fmt.ENCODING_F32: "float32"}[reduced]

    workdir = args.keep or tempfile.mkdtemp(prefix="nnviz_scale_")
    os.makedirs(workdir, exist_ok=True)
    t_start = time.monotonic()
    print("nnviz scale benchmark: %d snapshots, max_cells 65536, exact frames float32, "
          "reduced frames %s; C CRC-32C %s; %d CPUs, load average %.1f at start"
          % (args.snapshots, enc_name, "on" if crc else "OFF (pure-Python TensorBoard CRC)", psutil.cpu_count(), os.getloadavg()[0]))
    rows = []
    try:
        for name in ([] if args.latency_only else args.models.split(",")):
            model = build(name)
            refs, _ = weights_of(model)
            params = sum(int(np.prod(r.variable.shape)) for r in refs)
            per_snap = budget.snapshot_bytes(refs, 65536, reduced)
            cells = budget.frame_cells(refs, 65536)
            logdir = os.path.join(workdir, name)
            write_s, disk = write_snapshots(logdir, model, args.snapshots)
            row = {"model": MODELS[name][0], "tensors": len(refs), "params": params,
                   "cells": cells, "per_snap": per_snap, "disk": disk,
                   "write_s": write_s}
            if not args.skip_hold:
                holds, handoffs, floors, fresh = hold_times(model, os.path.join(workdir, name + "_fit"))
                row["floor_fresh"] = statistics.median(fresh)
                row["hold"] = statistics.median(holds)
                row["hold_max"] = max(holds)
                row["handoff"] = statistics.median(handoffs)
                row["floor"] = statistics.median(floors)
            tag = refs[0].tag
            for load_fast in (False, True):
                row[load_fast] = load_in_tensorboard(logdir, load_fast, args.snapshots, tag)
            from tensorboard_nnviz.cli import compact

            t = time.perf_counter()
            thin = compact.compact(workdir, name, 10, os.path.join(workdir, name + "_keep10"))
            row["compact"] = (time.perf_counter() - t, thin["bytes_in"], thin["bytes_out"])
            shutil.rmtree(os.path.join(workdir, name + "_keep10"), ignore_errors=True)
            rows.append(row)
            print_row(row, args.snapshots)
            sys.stdout.flush()
        latency = None if args.skip_frame_latency else frame_latency(os.path.join(workdir, "latency"))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print_table(rows, latency, args.snapshots)
    print("\ntotal %.0f s, load average %.1f at the end" % (time.monotonic() - t_start, os.getloadavg()[0]))


def print_row(row, n):
    print("  %s done: %s" % (row["model"], {k: v for k, v in row.items() if k != "model"}))


def print_table(rows, latency, n):
    print("| model | tensors | params | frame cells | bytes/snapshot | event files (%d snap.) "
          "| writer s/snap. | hold p50 (max) | hand-off p50 | copy floor (into fresh memory) | hand-off/floor (/fresh) "
          "| TB RSS python | TB RSS rust | 1st frame python | 1st frame rust |" % n)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        hold = ("%.0f ms (%.0f)" % (r["hold"] * 1e3, r["hold_max"] * 1e3)) if "hold" in r else "-"
        handoff = ("%.0f ms" % (r["handoff"] * 1e3)) if "hold" in r else "-"
        floor = ("%.0f ms (%.0f ms)" % (r["floor"] * 1e3, r["floor_fresh"] * 1e3)) if "floor" in r else "-"
        ratio = ("%.2fx (%.2fx)" % (r["handoff"] / r["floor"], r["handoff"] / r["floor_fresh"])) if "hold" in r else "-"
        print("| %s | %d | %.1fM | %.2fM | %s | %s | %.2f | %s | %s | %s | %s | %.2f GiB | %.2f GiB | %.1f s | %.1f s |" % (
            r["model"], r["tensors"], r["params"] / 1e6, r["cells"] / 1e6, mb(r["per_snap"]),
            mb(r["disk"]), r["write_s"], hold, handoff, floor, ratio,
            r[False][2] / GiB, r[True][2] / GiB, r[False][0], r[True][0]))
    for r in rows:
        print("  %s: `nnviz compact --keep 10`: %.1f s, %s -> %s" % (
            r["model"], r["compact"][0], mb(r["compact"][1]), mb(r["compact"][2])))
    for r in rows:
        print("  %s: TensorBoard answering after %.1f s (python), %.1f s (rust); fully loaded "
              "after %.1f s (python), %.1f s (rust); peak RSS while loading %.2f GiB (python), "
              "%.2f GiB (rust)" % (r["model"], r[False][4], r[True][4], r[False][1], r[True][1],
                                   r[False][3] / GiB, r[True][3] / GiB))
    if latency:
        counts = sorted({n for _, n in latency})
        print()
        print("| /frame p50, one tensor | " + " | ".join("%d snapshots" % c for c in counts) + " |")
        print("|---|" + "---:|" * len(counts))
        for load_fast, label in ((False, "python ingester"), (True, "RustBoard")):
            print("| %s | " % label + " | ".join("%.1f ms" % latency[(load_fast, c)] for c in counts) + " |")


if __name__ == "__main__":
    main()
