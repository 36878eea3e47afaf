"""Speed of layout.make_frame and stats.compute_stats, side by side with
straightforward numpy versions (a float64 copy + np.percentile for stats;
np.add.reduceat for the block mean). Minimum of several interleaved runs.

    python benchmarks/layout_stats.py
"""

import time

import numpy as np

from tensorboard_nnviz.core import layout as L
from tensorboard_nnviz.record.stats import compute_stats

REPEATS = 5


def best(fn):
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def naive_stats(w, prev, init):
    x = np.asarray(w, np.float64).ravel()
    f = x[np.isfinite(x)]
    out = [f.mean(), f.std(), f.min(), f.max(), np.sqrt(f @ f), np.abs(f).max()]
    out += list(np.percentile(f, [1, 99])) + [np.mean(np.abs(f) <= 1e-8)]
    for other in (prev, init):
        if other is None:
            continue
        d = x - np.asarray(other, np.float64).ravel()
        out += [np.linalg.norm(d), np.abs(d).max()]
    return out


def naive_frame(w, layout, max_cells):
    axes = layout["row_axes"] + layout["col_axes"]
    rows, cols = L.layout_size(layout, w.shape)
    x = np.transpose(w, axes).reshape(rows, cols)
    br, bc = L.choose_block(rows, cols, max_cells)
    s = np.add.reduceat(np.add.reduceat(x, np.arange(0, rows, br), 0, dtype=np.float64), np.arange(0, cols, bc), 1)
    return s


def main():
    rng = np.random.default_rng(0)
    print("%-34s %10s %10s %7s" % ("make_frame (max_cells 65536)", "ours ms", "naive ms", "ratio"))
    for cls, name, shape in [
        ("Dense", "kernel", (1024, 1024)),
        ("Dense", "kernel", (2048, 2048)),
        ("Conv2D", "kernel", (3, 3, 512, 512)),
        ("Embedding", "embeddings", (50000, 512)),
    ]:
        w = rng.standard_normal(shape, dtype=np.float32)
        layout = L.choose_layout(cls, name, shape)
        ours = best(lambda: L.make_frame(w, layout, 65536))
        naive = best(lambda: naive_frame(w, layout, 65536))
        label = "%s %s" % (cls, "x".join(map(str, shape)))
        print("%-34s %10.2f %10.2f %7.2f" % (label, ours * 1e3, naive * 1e3, ours / naive))
    print()
    print("%-34s %10s %10s %7s" % ("compute_stats", "ours ms", "naive ms", "ratio"))
    for n in (1024 * 1024, 25_600_000):
        w = rng.standard_normal(n, dtype=np.float32)
        prev = w + np.float32(1e-3)
        init = rng.standard_normal(n, dtype=np.float32)
        for label, args in (("alone", (None, None)), ("with prev and init", (prev, init))):
            ours = best(lambda: compute_stats(w, *args))
            naive = best(lambda: naive_stats(w, *args))
            print("%-34s %10.1f %10.1f %7.2f" % ("%d, %s" % (n, label), ours * 1e3, naive * 1e3, ours / naive))


if __name__ == "__main__":
    main()
