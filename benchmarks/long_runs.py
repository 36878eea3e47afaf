"""Long runs: TensorBoard's memory against run length, frames from disk.

Side by side, the same model's runs in two layouts:

- "now": each frame and each weight's per-unit stats an event of its own
  under `nnviz_frames` and `nnviz_units` (TensorBoard keeps the latest per
  weight; the plugin reads the others from disk);
- "before": format version 2, as runs written by earlier versions are:
  every frame and units row under `nnviz`, in the snapshot's one event,
  and a stats vector per weight (TensorBoard keeps them all).

Prints, on both ingesters:

1. TensorBoard's resident memory (the whole process tree: RustBoard is a
   child) once a run of N1 and of N2 snapshots is loaded, and the MB of RSS
   per added snapshot next to the bytes per snapshot on disk (target for
   "now": <= 0.05x).
2. `/frame` p50 / p95 at random (tag, step) over the long run, through the
   index ("now") and through TensorBoard's data provider ("before"), both
   ingesters (target p95 <= 10 ms).
3. The frame index in-process: build time per GB of event files, and its
   memory per record (its arrays, and everything it allocates, tracemalloc).
4. With --resnet: ResNet50 x N2 snapshots in the "now" layout, total RSS
   (target <= 1.5 GiB).

Runs are synthesised: the first 3 snapshots go through the real
`SnapshotWriter` (real frames, stats, units) from the model's random
weights (keras.applications, weights=None), the rest replay the last
snapshot's events with every frame moved by a small noise field, re-encoded
in its own encoding (the same tags, metadata and byte sizes).

    python benchmarks/long_runs.py [--model mobilenetv2] [--lengths 20,1000]
                                   [--requests 300] [--layouts now,before]
                                   [--resnet] [--keep DIR]

Takes about 30 minutes on 2 shared cores with --resnet; writes up to
~15 GB of event files (deleted as it goes unless --keep).
"""

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
import tracemalloc

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from runs import LegacyLayout  # noqa: E402
from tb_server import TensorBoardServer  # noqa: E402

from tensorboard_nnviz.core import format as fmt  # noqa: E402
from tensorboard_nnviz.record import eventfiles  # noqa: E402
from tensorboard_nnviz.record import writer as writer_lib  # noqa: E402
from tensorboard_nnviz.serve import frame_index  # noqa: E402

MiB, GiB = 1024 ** 2, 1024 ** 3
MODELS = {"mobilenetv2": ("MobileNetV2", (96, 96, 3)), "resnet50": ("ResNet50", (64, 64, 3)),
          "mlp": (None, None)}
LAYOUTS = (("now", {}), ("before", {"legacy": True}))
THROUGH_WRITER = 3
STEP_EVERY = 10


# --- runs -------------------------------------------------------------------------------


def model_weights(name):
    """[writer.Weight] of the model's (random) weights."""
    import keras

    from tensorboard_nnviz.record import structure

    keras.utils.set_random_seed(0)
    cls, shape = MODELS[name]
    if cls is None:  # an MLP: few units, large frames
        model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(1024),
                                  keras.layers.Dense(1024), keras.layers.Dense(10)])
    else:
        model = getattr(keras.applications, cls)(weights=None, input_shape=shape)
    refs = structure.weight_refs(model)
    weights = [writer_lib.Weight(r.tag, np.array(r.variable), r.layer_class, r.layer_name,
                                 str(r.variable.dtype)) for r in refs]
    return weights, structure.build_structure(model, refs)


def write_run(run_dir, weights, doc, n, legacy=False):
    """A run of `n` snapshots (see the module docstring)."""
    rng = np.random.default_rng(0)
    noise = [rng.standard_normal(w.value.shape).astype(np.float32) * 1e-3 for w in weights]
    convert = LegacyLayout() if legacy else None

    class Events:
        def __init__(self, log_dir):
            self._w = eventfiles.new_writer(log_dir, max_queue_size=64)

        def add_event(self, event):
            if convert is not None:
                event = convert.convert(event)
            if event is not None:
                self._w.add_event(event)

        def flush(self):
            self._w.flush()

        def close(self):
            self._w.close()

    writer = writer_lib.SnapshotWriter(run_dir, event_writer_factory=Events, spectral=False)
    try:
        for i in range(min(n, THROUGH_WRITER)):
            snap = [w._replace(value=w.value + z * np.float32(i)) for w, z in zip(weights, noise)]
            writer.write(i * STEP_EVERY, snap, doc if i == 0 else None)
    finally:
        writer.close()
    if n > THROUGH_WRITER:
        replay(run_dir, n - THROUGH_WRITER, THROUGH_WRITER * STEP_EVERY)


def replay(run_dir, count, first_step, step_every=STEP_EVERY):
    """Appends `count` snapshots, copies of the last snapshot's events with
    perturbed frames, at steps first_step, first_step + step_every, ..."""
    from tensorboard.compat.proto import event_pb2

    last = []
    for event in eventfiles.read_events(run_dir):
        if event.HasField("summary"):
            if last and event.step != last[0].step:
                last = []
            last.append(event)
    # Under spectral="auto" the writer's close writes the last stats table
    # again: a snapshot has it once.
    seen, unique = set(), []
    for event in last:
        tags = {v.tag for v in event.summary.value}
        if not tags <= seen:
            unique.append(event)
        seen |= tags
    last = unique
    rng = np.random.default_rng(1)
    frames = {}
    for event in last:
        for v in event.summary.value:
            if v.tag.startswith(fmt.FRAME_PREFIX):
                blob = v.tensor.string_val[0]
                frame = fmt.decode_frame(blob)
                frames[v.tag] = (frame, blob[5], rng.standard_normal(frame.shape).astype(np.float32)
                                 * np.float32(2.5e-4))
    events = eventfiles.new_writer(run_dir, max_queue_size=64)
    try:
        for i in range(count):
            for template in last:
                event = event_pb2.Event()
                event.CopyFrom(template)
                event.step = first_step + i * step_every
                event.wall_time = time.time()
                for v in event.summary.value:
                    if v.tag in frames:
                        frame, encoding, z = frames[v.tag]
                        v.tensor.string_val[0] = fmt.encode_frame(frame + z * np.float32(i + 1), encoding)
                events.add_event(event)
            if i % 50 == 49:
                events.flush()
    finally:
        events.close()


def disk_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


# --- TensorBoard ----------------------------------------------------------------------


def loaded(tb, n):
    """Whether TensorBoard has read all `n` snapshots: the stats of the
    first weight (a snapshot's stats event comes after its frames)."""
    tensors = tb.get_json("tags", {"run": "."})["tensors"]
    return tensors and len(tb.get_json("stats", {"run": ".", "tag": tensors[0]["tag"]})["steps"]) == n


def serve(run_dir, load_fast, n, requests=0):
    """(RSS once loaded, seconds to load, frame latencies in ms, /units
    latencies in ms: [(first, again)] for a few weights)."""
    t0 = time.monotonic()
    with TensorBoardServer(run_dir, load_fast=load_fast, timeout=300) as tb:
        tb.wait_for(lambda: loaded(tb, n), timeout=3600, interval=2.0)
        load_s = time.monotonic() - t0
        times = frame_latencies(tb, requests, n) if requests else []
        units = units_latencies(tb) if requests else []
        time.sleep(2)
        rss = tb.rss()
    return rss, load_s, times, units


def units_latencies(tb, count=8):
    """[(ms of the first /units of a weight, ms of the same again)]."""
    tags = [t["tag"] for t in tb.get_json("tags", {"run": "."})["tensors"]]
    out = []
    for tag in tags[:: max(1, len(tags) // count)][:count]:
        pair = []
        for _ in range(2):
            t = time.perf_counter()
            r = tb.get("units", {"run": ".", "tag": tag, "stat": "update"})
            pair.append((time.perf_counter() - t) * 1e3)
            if r.status != 200:
                raise RuntimeError("units of %s: %d %r" % (tag, r.status, r.body[:200]))
        out.append(tuple(pair))
    return out


def frame_latencies(tb, requests, n):
    """ms per /frame at random (tag, step), after one warm-up per tag."""
    tags = [t["tag"] for t in tb.get_json("tags", {"run": "."})["tensors"]]
    rng = random.Random(1)
    for tag in tags[:20]:
        tb.get("frame", {"run": ".", "tag": tag, "step": 0})
    times = []
    for _ in range(requests):
        tag, step = rng.choice(tags), rng.randrange(n) * STEP_EVERY
        t = time.perf_counter()
        r = tb.get("frame", {"run": ".", "tag": tag, "step": step})
        times.append((time.perf_counter() - t) * 1e3)
        if r.status != 200 or int(r.headers["X-NNViz-Step"]) != step:
            raise RuntimeError("frame %s at %d: %d %r" % (tag, step, r.status, r.body[:200]))
    return times


# --- the index in-process -------------------------------------------------------------


def index_figures(run_dir):
    """(seconds to build, event-file bytes, records, array bytes, traced
    bytes): built once timed, once under tracemalloc (which slows it)."""
    path = os.path.realpath(run_dir)
    t = time.perf_counter()
    index = frame_index.RunIndex(path, path)
    index.refresh()
    seconds = time.perf_counter() - t
    del index
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = frame_index.RunIndex(path, path)
    index.refresh()
    traced = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return seconds, index.bytes_scanned, index.record_count(), index.nbytes(), traced


# --- main -------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv2", choices=sorted(MODELS))
    parser.add_argument("--lengths", default="20,1000")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--layouts", default="now,before", help="of now, before")
    parser.add_argument("--resnet", action="store_true", help="also ResNet50 x the longer length")
    parser.add_argument("--keep", default=None, help="write the runs here and keep them")
    args = parser.parse_args(argv)
    short, long_ = (int(x) for x in args.lengths.split(","))
    work = args.keep or tempfile.mkdtemp(prefix="nnviz_long_runs_")
    os.makedirs(work, exist_ok=True)
    t_start = time.monotonic()
    print("nnviz long-runs benchmark: %s at %d and %d snapshots; %d CPUs, load average %.1f"
          % (args.model, short, long_, psutil.cpu_count(), os.getloadavg()[0]), flush=True)
    layouts = [layout for layout in LAYOUTS if layout[0] in args.layouts.split(",")]
    results, disk, index = {}, {}, None
    try:
        weights, doc = model_weights(args.model)
        for label, kw in layouts:
            for n in (short, long_):
                run = os.path.join(work, "%s_%s_%d" % (args.model, label, n))
                t = time.monotonic()
                write_run(run, weights, doc, n, **kw)
                disk[(label, n)] = disk_bytes(run)
                print("  wrote %s x %d (%s): %.0f MB in %.0f s" % (args.model, n, label,
                      disk[(label, n)] / 1e6, time.monotonic() - t), flush=True)
                for name, load_fast in (("python", False), ("rustboard", True)):
                    requests = args.requests if n == long_ else 0
                    results[(label, n, name)] = serve(run, load_fast, n, requests)
                    rss, load_s, times, _ = results[(label, n, name)]
                    print("    %-9s RSS %.0f MiB, loaded in %.0f s%s (load average %.1f)" % (
                        name, rss / MiB, load_s,
                        ", frame p50 %.1f ms p95 %.1f ms" % (np.percentile(times, 50), np.percentile(times, 95))
                        if times else "", os.getloadavg()[0]), flush=True)
                if n == long_ and label == "now":
                    index = index_figures(run)
            for n in (short, long_):
                if not args.keep:
                        shutil.rmtree(os.path.join(work, "%s_%s_%d" % (args.model, label, n)),
                                  ignore_errors=True)
        resnet = None
        if args.resnet:
            weights, doc = model_weights("resnet50")
            run = os.path.join(work, "resnet50_now_%d" % long_)
            t = time.monotonic()
            write_run(run, weights, doc, long_)
            print("  wrote ResNet50 x %d: %.0f MB in %.0f s" % (long_, disk_bytes(run) / 1e6,
                                                               time.monotonic() - t), flush=True)
            resnet = {"disk": disk_bytes(run)}
            for name, load_fast in (("python", False), ("rustboard", True)):
                resnet[name] = serve(run, load_fast, long_, args.requests)
                print("    %-9s RSS %.0f MiB, loaded in %.0f s" % (name, resnet[name][0] / MiB,
                                                                   resnet[name][1]), flush=True)
            resnet["index"] = index_figures(run)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_tables(args.model, short, long_, layouts, results, disk, index, resnet, args.requests)
    print("\ntotal %.0f s, load average %.1f at the end" % (time.monotonic() - t_start, os.getloadavg()[0]))


def print_tables(model, short, long_, layouts, results, disk, index, resnet, requests):
    added = long_ - short
    print("\n### TensorBoard RSS against run length (%s, %d vs %d snapshots)\n" % (model, short, long_))
    print("| layout | ingester | RSS at %d | RSS at %d | MB RSS per added snapshot | bytes per snapshot on disk | RSS / disk |" % (short, long_))
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, _ in layouts:
        per_disk = (disk[(label, long_)] - disk[(label, short)]) / added
        for name in ("python", "rustboard"):
            a, b = results[(label, short, name)][0], results[(label, long_, name)][0]
            per = (b - a) / added
            print("| %s | %s | %.0f MiB | %.0f MiB | %.3f MB | %.3f MB | %.3fx |" % (
                label, name, a / MiB, b / MiB, per / 1e6, per_disk / 1e6, per / per_disk))
    if ("before", long_, "python") not in results or ("now", long_, "python") not in results:
        return
    print("\n### /frame at random (tag, step) over %d snapshots, %d requests\n" % (long_, requests))
    print("| path | ingester | p50 ms | p95 ms | p95 / p95 through TensorBoard |")
    print("|---|---|---:|---:|---:|")
    for name in ("python", "rustboard"):
        base = np.percentile(results[("before", long_, name)][2], 95)
        for label, path in (("now", "index (disk)"), ("before", "data provider")):
            t = results[(label, long_, name)][2]
            print("| %s | %s | %.2f | %.2f | %.2f |" % (path, name, np.percentile(t, 50),
                                                         np.percentile(t, 95), np.percentile(t, 95) / base))
    print("\n### /units of %d weights over %d snapshots: first request, then again (median ms)\n"
          % (len(results[("now", long_, "python")][3]), long_))
    print("| path | ingester | first | again |")
    print("|---|---|---:|---:|")
    for name in ("python", "rustboard"):
        for label, path in (("now", "index (disk)"), ("before", "data provider")):
            pairs = results[(label, long_, name)][3]
            print("| %s | %s | %.1f | %.1f |" % (path, name, np.median([p[0] for p in pairs]),
                                                 np.median([p[1] for p in pairs])))
    seconds, scanned, records, arrays, traced = index
    print("\n### The frame index (in-process, %s x %d, page cache warm)\n" % (model, long_))
    print("| event files | records indexed | build | build per GB | arrays per record | all allocations per record |")
    print("|---:|---:|---:|---:|---:|---:|")
    print("| %.2f GB | %d | %.2f s | %.2f s | %.1f B | %.1f B |" % (
        scanned / 1e9, records, seconds, seconds / (scanned / 1e9), arrays / records, traced / records))
    if resnet:
        print("\n### ResNet50 x %d snapshots (%.1f GB of event files)\n" % (long_, resnet["disk"] / 1e9))
        print("| ingester | TensorBoard RSS | target | frame p50 / p95 |")
        print("|---|---:|---:|---:|")
        for name in ("python", "rustboard"):
            rss, _, t, _ = resnet[name]
            print("| %s | %.2f GiB | <= 1.5 GiB %s | %.1f / %.1f ms |" % (
                name, rss / GiB, "ok" if rss <= 1.5 * GiB else "MISSED",
                np.percentile(t, 50), np.percentile(t, 95)))
        seconds, scanned, records, arrays, traced = resnet["index"]
        print("\nindex of ResNet50 x %d: %.2f GB, %d records, %.2f s (%.2f s per GB), %.1f B per record "
              "in arrays, %.1f B all allocations" % (long_, scanned / 1e9, records, seconds,
                                                     seconds / (scanned / 1e9), arrays / records,
                                                     traced / records))


if __name__ == "__main__":
    main()
