"""Ways to take the stats, the per-unit sums and the frames of a snapshot,
side by side, per snapshot of ResNet50's and the 784-1024-1024-10 MLP's
real weights (each with a W_prev and a W_0 a little away), divided by one
memory pass over the same bytes:

- fused: `stats.measure(..., layout=...)` on the compiled one-pass kernel
  (record/fused.py), the writer's path;
- numpy: the same call on the numpy path (`stats.py`, the fallback), and
  `layout.make_frame` for the frame;
- numexpr: only the tensor-wide sums (sum, sum of squares, of the update's
  and of the init difference's squares, min, max): one numexpr reduction
  each, multi-threaded, no units and no frame: what it would cost at
  least (numexpr reduces one expression per call);
- torch ops: the same sums, the unit sums and the block sums of the frame
  with torch's own CPU ops, as a path keeping the reductions on the
  device holding the weights would run them (issue 18, item 4).

CPU seconds (process time, every thread: numexpr and torch use two), the
fastest of --repeats; the first call (numba's compile, or its cache) is
not counted here (benchmarks/fused_startup.py counts it).

    python benchmarks/stats_kernels.py [--models resnet50,mlp] [--repeats 5]
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from writer_cpu import memory_pass, model_weights  # noqa: E402

from tensorboard_nnviz.core import layout as layout_lib  # noqa: E402
from tensorboard_nnviz.record import stats as stats_lib  # noqa: E402


def snapshot(weights, max_cells=65536):
    """[(w, prev, init, layout with block and unit_axes)] as the writer holds them."""
    rng = np.random.default_rng(0)
    out = []
    for tag, w, cls, layer in weights:
        layout = layout_lib.choose_layout(cls, tag.rsplit("/", 1)[-1], w.shape, layer)
        block = layout_lib.frame_block(layout, w.shape, max_cells)
        layout = dict(layout, block=[int(b) for b in block],
                      unit_axes=layout.get("unit_axes", stats_lib.default_unit_axes(w.ndim)))
        noise = rng.standard_normal(w.shape).astype(w.dtype)
        out.append((w, w + noise * np.float32(1e-3), w + noise * np.float32(1e-2), layout))
    return out


def run_measure(items, fused):
    saved = stats_lib._fused
    if not fused:
        stats_lib._fused = False
    try:
        for w, prev, init, layout in items:
            stats_lib.measure(w, prev, init, layout["unit_axes"], layout=layout)
    finally:
        stats_lib._fused = saved


def run_numexpr(items):
    import numexpr as ne

    for w, prev, init, _ in items:
        x, p, q = w.reshape(-1), prev.reshape(-1), init.reshape(-1)
        ne.evaluate("sum(x)")
        ne.evaluate("sum(x * x)")
        ne.evaluate("sum((x - p) ** 2)")
        ne.evaluate("sum((x - q) ** 2)")
        ne.evaluate("min(x)")
        ne.evaluate("max(x)")


def torch_items(items):
    import torch

    return [(torch.from_numpy(w), torch.from_numpy(p), torch.from_numpy(q), layout)
            for w, p, q, layout in items]


def run_torch(titems):
    """Sums, unit sums and block sums with torch ops on CPU tensors."""
    import torch

    for w, p, q, layout in titems:
        x = w.double()
        d, e = x - p, x - q
        [torch.sum(x), torch.sum(x * x), torch.sum(d * d), torch.sum(e * e), torch.sum(p.double() ** 2),
         torch.sum(q.double() ** 2), torch.aminmax(x), torch.max(d.abs()), torch.max(e.abs())]
        units = layout["unit_axes"]
        rest = [a for a in range(x.ndim) if a not in units]
        if units and rest:
            torch.sum(x * x, dim=rest)
            torch.sum(d * d, dim=rest)
        rows, cols = layout["row_axes"], layout["col_axes"]
        frame = x.permute(*(rows + cols)).reshape(
            int(np.prod([x.shape[a] for a in rows], dtype=np.int64)), -1)
        br, bc = layout["block"]
        r, c = frame.shape
        pad = torch.nn.functional.pad(frame, (0, -c % bc, 0, -r % br))
        pad.reshape(pad.shape[0] // br, br, pad.shape[1] // bc, bc).sum(dim=(1, 3))


def best(fn, repeats):
    fn()  # compiled (numba), threads started (numexpr, torch)
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="resnet50,mlp")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        weights = model_weights(name)
        items = snapshot(weights)
        cpu_pass = memory_pass(weights)[0]
        row = {"model": name, "MB": sum(w.nbytes for _, w, _, _ in weights) / 1e6, "pass": cpu_pass,
               "fused": best(lambda: run_measure(items, True), args.repeats),
               "numpy": best(lambda: run_measure(items, False), args.repeats)}
        try:
            row["numexpr"] = best(lambda: run_numexpr(items), args.repeats)
        except ImportError:
            row["numexpr"] = None
        try:
            titems = torch_items(items)
            row["torch"] = best(lambda: run_torch(titems), args.repeats)
        except ImportError:
            row["torch"] = None
        rows.append(row)
    print("load average %.1f %.1f %.1f; CPU per snapshot (all threads), fastest of %d; "
          "÷ pass = divided by one np.add.reduce over the same bytes"
          % (os.getloadavg() + (args.repeats,)))
    print("| model | MB | pass | fused (stats, units, frame) | numpy (stats, units, frame) | "
          "numexpr (6 sums only) | torch ops (sums, units, frame) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = []
        for key in ("fused", "numpy", "numexpr", "torch"):
            v = r[key]
            cells.append("not installed" if v is None else "%.1f ms (%.1f×)" % (v * 1e3, v / r["pass"]))
        print("| %s | %.0f | %.1f ms | %s |" % (r["model"], r["MB"], r["pass"] * 1e3, " | ".join(cells)))


if __name__ == "__main__":
    main()
