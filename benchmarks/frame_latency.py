"""Latency of GET /frame on a real TensorBoard, both ingesters, both layouts.

A 256x256 kernel (65,536 cells: stored exactly, 256 KiB a frame) is
snapshotted at 30, 300 and 3000 steps, written with TensorBoard's event
writer and the format module (no training needed), twice into one logdir:
run "now" in the layout written now (each frame an event of its own under
`nnviz_frames`: the plugin reads it from disk through its index) and run
"before" in the layout of earlier versions (frames under `nnviz`, served
through TensorBoard's data provider). For each logdir and each ingester, a
real `tensorboard` is started, and once it has read both runs /frame is
fetched at random steps, the two runs' requests interleaved so that the
machine's load falls on both alike. The table shows p50/p95 per request
(client-side, whole response read), the ratio to the 30-step run (the
cost of a frame does not grow with the number of steps) and the index's
p95 over the data provider's.

Target: p95 <= 10 ms on both ingesters (through the index).

    .venv/bin/python benchmarks/frame_latency.py [--requests 200] [--steps 30,300,3000]
"""

import argparse
import http.client
import os
import random
import shutil
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from tb_server import TensorBoardServer  # noqa: E402

TAG = "dense/kernel"
SHAPE = (256, 256)
TARGET_P95_MS = 10.0
LAYOUTS = ("now", "before")


def _record_writer(run):
    """(write(event), close) for an event file in `run`.

    TensorBoard's EventFileWriter frames records with a slow pure-Python
    CRC (README, "Checksums run in C"); when TensorFlow is installed its C++
    TFRecordWriter writes the same records much faster.
    """
    try:
        import tensorflow as tf
    except ImportError:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        writer = EventFileWriter(run, max_queue_size=50, flush_secs=3600)
        return writer.add_event, writer.close
    from tensorboard.compat.proto import event_pb2

    os.makedirs(run, exist_ok=True)
    path = os.path.join(run, "events.out.tfevents.%010d.bench" % time.time())
    writer = tf.io.TFRecordWriter(path)
    writer.write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
    return (lambda event: writer.write(event.SerializeToString())), writer.close


def write_logdir(root, steps, layout_name):
    """Run `layout_name` of `root`: one 256x256 weight, `steps` snapshots
    (frame + stats), in the layout written now or before
    (runs.snapshot_events, LegacyLayout)."""
    from runs import LegacyLayout, snapshot_events

    from tensorboard_nnviz.core import format as fmt

    run = os.path.join(root, layout_name)
    write, close = _record_writer(run)
    legacy = LegacyLayout() if layout_name == "before" else None
    rng = np.random.default_rng(0)
    w = rng.standard_normal(SHAPE).astype(np.float32)
    layout = {"row_axes": [0], "col_axes": [1], "block": [1, 1], "groups": []}
    content = fmt.frame_content(shape=SHAPE, dtype="float32", layout=layout, rows=SHAPE[0], cols=SHAPE[1])
    for step in range(steps):
        w += np.float32(0.001) * rng.standard_normal(SHAPE).astype(np.float32)
        stats = {k: None for k in fmt.STAT_FIELDS}
        stats.update(mean=float(w.mean()), std=float(w.std()), l2=float(np.linalg.norm(w)))
        values = [fmt.frame_value(TAG, fmt.encode_frame(w), content),
                  fmt.stats_table_value([TAG], [stats])]
        for event in snapshot_events(step, values):
            event = legacy.convert(event) if legacy else event
            if event is not None:
                write(event)
    close()
    return run


def fetch(port, run, step):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        t0 = time.perf_counter()
        conn.request("GET", "/data/plugin/nnviz/frame?run=%s&tag=%s&step=%d" % (run, TAG, step))
        resp = conn.getresponse()
        body = resp.read()
        elapsed = time.perf_counter() - t0
    finally:
        conn.close()
    if resp.status != 200 or len(body) != SHAPE[0] * SHAPE[1] * 4:
        raise RuntimeError("frame at step %d: %d %r" % (step, resp.status, body[:200]))
    if int(resp.getheader("X-NNViz-Step")) != step:
        raise RuntimeError("asked step %d, served %s" % (step, resp.getheader("X-NNViz-Step")))
    return elapsed * 1000.0


def _read_by_tensorboard(tb, steps):
    """Both runs' stats (read through TensorBoard) hold every step: it has
    read both runs whole, so its loading does not share the measurement."""
    return all(len(tb.get_json("stats", {"run": run, "tag": TAG})["steps"]) == steps for run in LAYOUTS)


def measure(logdir, steps, load_fast, requests):
    """{layout: (p50, p95)} and the seconds TensorBoard took to read both."""
    t0 = time.monotonic()
    with TensorBoardServer(logdir, load_fast=load_fast, timeout=600) as tb:
        tb.wait_for(lambda: _read_by_tensorboard(tb, steps), timeout=1200, interval=1.0)
        load_s = time.monotonic() - t0
        rng = random.Random(1)
        times = {run: [] for run in LAYOUTS}
        for run in LAYOUTS:
            for _ in range(5):  # warm-up: the blob keys or the index are read once
                fetch(tb.port, run, rng.randrange(steps))
        for _ in range(requests):
            for run in LAYOUTS:
                times[run].append(fetch(tb.port, run, rng.randrange(steps)))
    return {run: (np.percentile(t, 50), np.percentile(t, 95)) for run, t in times.items()}, load_s


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--steps", default="30,300,3000")
    args = parser.parse_args()
    step_counts = [int(s) for s in args.steps.split(",")]
    results = {}
    print("load average %.1f at start" % os.getloadavg()[0], flush=True)
    for steps in step_counts:
        root = tempfile.mkdtemp(prefix="nnviz_frame_latency_")
        try:
            t0 = time.monotonic()
            for layout in LAYOUTS:
                write_logdir(root, steps, layout)
            print("wrote 2 x %d snapshots of %dx%d in %.1f s" % (steps, SHAPE[0], SHAPE[1],
                                                             time.monotonic() - t0), flush=True)
            for name, load_fast in (("python", False), ("rustboard", True)):
                found, load_s = measure(root, steps, load_fast, args.requests)
                for layout, (p50, p95) in found.items():
                    results[(layout, name, steps)] = (p50, p95)
                    print("  %-9s %-6s p50 %.2f ms  p95 %.2f ms  (read by TensorBoard in %.0f s)"
                          % (name, layout, p50, p95, load_s), flush=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    base = step_counts[0]
    print()
    print("GET /frame, %dx%d float32 (%d KiB), %d requests per run at random steps, interleaved; "
          "load average %.1f" % (SHAPE[0], SHAPE[1], SHAPE[0] * SHAPE[1] * 4 // 1024, args.requests,
                                 os.getloadavg()[0]))
    print("| ingester | steps | index p50 ms | index p95 ms | p50 / p50@%d | TensorBoard p50 ms "
          "| TensorBoard p95 ms | index p95 / TensorBoard p95 | target p95 |" % base)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in ("python", "rustboard"):
        for steps in step_counts:
            p50, p95 = results[("now", name, steps)]
            b50, b95 = results[("before", name, steps)]
            ratio = p50 / results[("now", name, base)][0]
            target = "<= %g ms %s" % (TARGET_P95_MS, "ok" if p95 <= TARGET_P95_MS else "MISSED")
            print("| %s | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s |" % (
                name, steps, p50, p95, ratio, b50, b95, p95 / b95, target))


if __name__ == "__main__":
    main()
