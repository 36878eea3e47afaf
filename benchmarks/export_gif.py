"""`nnviz export` GIF rendering: redraw-only-what-changes vs a full redraw.

    python benchmarks/export_gif.py [--frames 60]

Draws the same Grid (a 3-layer MLP's six tensors, frames of 64x64 and
smaller) over N steps twice, side by side:
  - full: matplotlib's PillowWriter, which redraws the whole figure (axes,
    ticks, colour bar, text) for every frame, adaptive palette per frame;
  - blit: what `render.render_gif` does (static pixels drawn once, only
    images, separators and changed titles redrawn, one fixed palette).
Prints seconds per frame and the ratio. Synthetic frames: no training.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tensorboard_nnviz.cli import render  # noqa: E402


def _tensors():
    shapes = {"h1/kernel": (64, 64), "h1/bias": (1, 64), "h2/kernel": (64, 32),
              "h2/bias": (1, 32), "out/kernel": (32, 10), "out/bias": (1, 10)}
    tensors = []
    for tag, (rows, cols) in shapes.items():
        vector = rows == 1
        tensors.append({
            "tag": tag, "layer": tag.split("/")[0], "rows": rows, "cols": cols,
            "shape": [cols] if vector else [rows, cols], "downsampled": False,
            "layout": {"row_axes": [] if vector else [0], "col_axes": [0] if vector else [1],
                       "block": [1, 1], "groups": []},
        })
    return tensors


def _frames(tensors, steps):
    rng = np.random.default_rng(0)
    return {s: {t["tag"]: rng.standard_normal((t["rows"], t["cols"])).astype(np.float32)
                * (1 + s / len(steps)) for t in tensors} for s in steps}


def full_redraw(tensors, steps, frames, limits, path, dpi=80):
    from matplotlib.animation import PillowWriter

    grid = render.Grid(tensors, limits, "run")
    writer = PillowWriter(fps=6)
    with writer.saving(grid.fig, path, dpi):
        for s in steps:
            grid.update(frames[s], "run  step %d" % s)
            writer.grab_frame()
    grid.close()


def blit(tensors, steps, frames, limits, path, dpi=80):
    render.render_gif(tensors, steps, lambda s: frames[s], limits, path, title="run", dpi=dpi)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    tensors = _tensors()
    steps = list(range(0, 5 * args.frames, 5))
    frames = _frames(tensors, steps)
    limits = render.limits_for(tensors, {t["tag"]: [frames[s][t["tag"]] for s in steps]
                                         for t in tensors})
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in (("full", full_redraw), ("blit", blit)):
            start = time.perf_counter()
            fn(tensors, steps, frames, limits, os.path.join(tmp, name + ".gif"))
            times[name] = time.perf_counter() - start
            print("%-5s %3d frames: %6.2f s  (%.0f ms/frame)"
                  % (name, len(steps), times[name], 1000 * times[name] / len(steps)))
    print("full / blit = %.1fx" % (times["full"] / times["blit"]))


if __name__ == "__main__":
    main()
