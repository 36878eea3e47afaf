"""Latency of GET /units and GET /findings on a real TensorBoard, both ingesters.

A ResNet50-sized run (its 320 weights, 161,360 units, from
keras.applications' ResNet50) with `--steps` snapshots of stats and per-unit
stats is written with the format module (no training; frames are 1x1
placeholders, the routes timed here never read them). Five conv kernels
have units that stop moving half way, so /findings reads their unit series
as it would for a run with dead units.

Timed per ingester (client side, whole response read):
- /units, cold: the first request for each of 20 of the largest weights
  (2,048 units: steps x 2,048 float32),
- /units, warm: the same requests again (the reader keeps decoded series),
- /findings, cold: the first request (reads every weight's stats and the
  five unit series), and warm: repeated (cached per state of the run).

    .venv/bin/python benchmarks/units_latency.py [--steps 300]
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, HERE)

from frame_latency import _record_writer  # noqa: E402
from tb_server import TensorBoardServer  # noqa: E402

DEAD_LAYERS = 5


def resnet50_weights():
    """[(tag, shape, layout, trainable)] of keras.applications' ResNet50."""
    import keras

    from tensorboard_nnviz.core import layout as layout_lib
    from tensorboard_nnviz.record import structure

    model = keras.applications.ResNet50(weights=None)
    trainable = {id(v) for v in model.trainable_weights}
    out = []
    for r in structure.weight_refs(model):
        shape = tuple(int(d) for d in r.variable.shape)
        layout = layout_lib.choose_layout(r.layer_class, r.tag.rsplit("/", 1)[-1], shape, r.layer_name)
        out.append((r.tag, shape, layout, id(r.variable) in trainable))
    return out


def write_run(root, weights, steps):
    from runs import snapshot_events

    from tensorboard_nnviz.core import format as fmt
    from tensorboard_nnviz.record import stats as stats_lib

    run = os.path.join(root, "resnet50")
    write, close = _record_writer(run)
    rng = np.random.default_rng(0)
    kernels = [t for t, s, _, tr in weights if len(s) == 4 and tr]
    dead = set(kernels[-DEAD_LAYERS:])
    structure = {"model": {"name": "resnet50", "class": "Functional"}, "layers": [
        {"path": t.rsplit("/", 1)[0], "class": "Conv2D", "trainable": True, "inbound": [],
         "weights": [{"name": t.rsplit("/", 1)[1], "tag": t, "shape": list(s), "dtype": "float32",
                      "trainable": tr}]} for t, s, _, tr in weights]}
    specs = []
    for tag, shape, layout, _ in weights:
        units = stats_lib.unit_count(shape, layout["unit_axes"])
        block = stats_lib.unit_block(units, fmt.MAX_UNITS)
        frame_content = fmt.frame_content(shape=shape, dtype="float32",
                                          layout=dict(layout, block=[1, 1]), rows=1, cols=1)
        specs.append((tag, units, frame_content,
                      fmt.units_content(unit_axes=layout["unit_axes"], units=units, block=block)))
    norms = {tag: rng.uniform(0.5, 2.0, units) for tag, units, _, _ in specs}
    blob = fmt.encode_frame(np.zeros((1, 1), np.float32))
    for step in range(steps):
        values, rows = [], []
        for tag, units, frame_content, units_content in specs:
            update = None if step == 0 else rng.uniform(1e-4, 1e-3, units)
            if update is not None and tag in dead and step > steps // 3:
                update[: units // 10] = 0.0
            stats = dict.fromkeys(fmt.STAT_FIELDS, 0.0)
            stats.update(l2=float(np.linalg.norm(norms[tag])), update_l2=None if update is None else
                         float(np.linalg.norm(update)), update_ratio=1e-3,
                         units_still=None if update is None else float(np.count_nonzero(update == 0)))
            values.append(fmt.frame_value(tag, blob, frame_content))
            values.append(fmt.units_value(tag, norms[tag], update, units_content))
            rows.append(stats)
        values.append(fmt.stats_table_value([t for t, *_ in specs], rows))
        if step == 0:
            values.append(fmt.structure_value(structure))
        for event in snapshot_events(step, values, wall_time=time.time()):  # the writer's layout
            write(event)
    close()
    return run


def timed(tb, path, params):
    start = time.perf_counter()
    r = tb.get(path, params, timeout=600)
    elapsed = time.perf_counter() - start
    assert r.status == 200, (path, params, r.status, r.body[:300])
    return elapsed, r


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    weights = resnet50_weights()
    big = [t for t, s, layout, _ in weights if len(s) == 4 and s[-1] == 2048][:20]
    root = tempfile.mkdtemp(prefix="nnviz_units_latency_")
    try:
        start = time.perf_counter()
        write_run(root, weights, args.steps)
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
        print("wrote %d steps x %d weights in %.0f s (%.0f MB of events)"
              % (args.steps, len(weights), time.perf_counter() - start, size / 1e6))
        rows = []
        for load_fast in (False, True):
            name = "RustBoard" if load_fast else "Python"
            with TensorBoardServer(root, load_fast=load_fast, timeout=600) as tb:
                tb.wait_for(lambda: any(len(r["steps"]) == args.steps for r in
                                        tb.get_json("runs")["runs"]), timeout=1200, interval=2)
                cold = [timed(tb, "units", {"run": "resnet50", "tag": t, "stat": "update"})[0] for t in big]
                warm = [timed(tb, "units", {"run": "resnet50", "tag": t, "stat": "norm"})[0] for t in big]
                first, answer = timed(tb, "findings", {"run": "resnet50"})
                again = [timed(tb, "findings", {"run": "resnet50"})[0] for _ in range(args.repeats)]
                found = answer.json()["findings"]
                assert sum(f["kind"] == "dead_units" for f in found) == DEAD_LAYERS, found
                rows.append((name, cold, warm, first, again))
        print("load average %.1f; %d steps; /units of a 2,048-unit weight (%d requests), "
              "/findings of the run" % (os.getloadavg()[0], args.steps, len(big)))
        print("| ingester | /units cold p50 / max | /units warm p50 | /findings cold | /findings warm p50 |")
        print("|---|---:|---:|---:|---:|")
        for name, cold, warm, first, again in rows:
            print("| %s | %.0f / %.0f ms | %.1f ms | %.2f s | %.1f ms |" % (
                name, statistics.median(cold) * 1e3, max(cold) * 1e3, statistics.median(warm) * 1e3,
                first, statistics.median(again) * 1e3))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
