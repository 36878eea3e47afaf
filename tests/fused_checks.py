"""The fused pass (record/fused.py) against the numpy path of stats.py, on
one weight: every stat, every unit and the frame, in every dtype the
recorders hand over, with NaN and Inf, with and without W_prev, and with
frames exact and block-reduced. Used by tests/test_fused.py (Keras families
and planted shapes) and tests/torch/test_fused_torch.py (torch families).

Numpy reads the shapes here on its exact path (float64 throughout) unless
a tensor holds more than stats.EXACT_SIZE float32 entries (its fast path:
float32 within blocks, tests/test_stats.py's bounds); the fused pass takes
the same tensors in float32 rows (float32 sums within 1,024 entries), the
rest in float64 (`assert_float64` holds it to either).
"""

import itertools
import math

import ml_dtypes
import numpy as np
import pytest

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.core import layout as layout_lib
from tensorboard_nnviz.record import stats as S

DTYPES = ["float32", "float64", "float16", "bfloat16"]
KINDS = ["finite", "nonfinite"]
MAX_CELLS = [65536, 6]  # exact frames, and block-reduced ones

# numpy's fast path sums float32 within blocks (stats.py): a few ulps of
# float32 per block on norms of sparse updates (bfloat16 prev equal to W in
# most entries), more than its usual 1e-7. The fused pass is held to
# float64 by `assert_float64` instead.
FAST_RTOL = 1e-5


def layout_of(layer_class, tag, shape, layer_name, max_cells):
    """The layout with its block and unit axes, as the writer makes it."""
    layout = layout_lib.choose_layout(layer_class, tag.rsplit("/", 1)[-1], shape, layer_name)
    block = layout_lib.frame_block(layout, shape, max_cells)
    unit_axes = layout.get("unit_axes", S.default_unit_axes(len(shape)))
    return dict(layout, block=[int(b) for b in block], unit_axes=unit_axes)


def variants(value, dtype, kind, seed=0):
    """(w, prev, init) in `dtype`: prev a small update away, init further;
    with `kind` "nonfinite", W holds a NaN and an Inf and prev an Inf
    elsewhere (a tensor of one entry: just a NaN)."""
    rng = np.random.default_rng(seed)
    w = np.asarray(value, np.float64)
    w = w + (w == 0) * rng.standard_normal(w.shape) * 0.1  # buffers of zeros: something to see
    prev = w + rng.standard_normal(w.shape) * 1e-3
    init = w * 0.9 + rng.standard_normal(w.shape) * 1e-2
    if kind == "nonfinite":
        flat_w, flat_p = w.reshape(-1), prev.reshape(-1)
        flat_w[0] = np.nan
        if flat_w.size > 2:
            flat_w[flat_w.size // 2] = np.inf
            flat_p[-1] = -np.inf
    cast = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    return tuple(np.asarray(a).astype(cast) for a in (w, prev, init))


def both(w, prev, init, layout, frame_dtype=np.float32):
    """`stats.measure` on the fused path and on the numpy path."""
    args = (w, prev, init, layout["unit_axes"])
    fused = S.measure(*args, layout=layout, frame_dtype=frame_dtype)
    saved = S._fused
    S._fused = False
    try:
        numpy = S.measure(*args, layout=layout, frame_dtype=frame_dtype)
    finally:
        S._fused = saved
    return fused, numpy


def _close(a, b, rtol):
    if a is None or b is None:
        return a is None and b is None
    if math.isinf(a) or math.isinf(b):
        return a == b
    return a == pytest.approx(b, rel=rtol, abs=rtol * 1e-6)


def assert_agree(fused, numpy, w, label):
    """Every stat field, the unit norms and updates, and the frame."""
    fast = w.dtype != np.float64 and w.size > S.EXACT_SIZE  # numpy widens to float32
    rtol = FAST_RTOL if fast else 1e-9
    for name in fmt.STAT_FIELDS:
        got, want = fused.stats[name], numpy.stats[name]
        if name in ("mean", "init_cos") and fast and want is not None:
            assert abs(got - want) <= 1e-6 * max(1.0, abs(want)), (label, name, got, want)
        else:
            assert _close(got, want, rtol), (label, name, got, want)
    assert fused.finite == numpy.finite, label
    assert_arrays(fused.norm, numpy.norm, rtol, label + " norm")
    if numpy.update is None:
        assert fused.update is None, label
    else:
        assert_arrays(fused.update, numpy.update, rtol, label + " update")
    assert fused.frame.dtype == numpy.frame.dtype, label
    assert fused.frame.shape == numpy.frame.shape, label
    if fused.frame.dtype == np.float16:  # both round to float16: one step apart at most
        a, b = fused.frame.astype(np.float64), numpy.frame.astype(np.float64)
        with np.errstate(invalid="ignore"):  # spacing of inf and NaN: not compared
            ulp = np.abs(np.spacing(numpy.frame)).astype(np.float64)
        assert_arrays(a, b, 0, label + " frame", atol=ulp)
    else:  # block means summed in float32 by numpy (a few ulps of the cell's
        # largest entries, more relative to a mean near 0), in float64 here
        finite = numpy.frame[np.isfinite(numpy.frame)]
        scale = float(np.abs(finite).max()) if finite.size else 0.0
        assert_arrays(fused.frame, numpy.frame, 2e-6, label + " frame", atol=1e-6 * scale)


def assert_arrays(a, b, rtol, label, atol=0.0):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, label
    assert np.array_equal(np.isnan(a), np.isnan(b)), label
    assert np.array_equal(np.isinf(a), np.isinf(b)), label
    fin = np.isfinite(b)
    assert np.array_equal(a[fin] == 0, b[fin] == 0), label + ": exact zeros"
    assert np.array_equal(a[~fin & ~np.isnan(b)], b[~fin & ~np.isnan(b)]), label
    atol = np.broadcast_to(atol, b.shape)[fin]
    assert np.all(np.abs(a[fin] - b[fin]) <= rtol * np.abs(b[fin]) + atol), (
        label, np.max(np.abs(a[fin] - b[fin]) / np.maximum(np.abs(b[fin]), 1e-300)))


def check_weight(tag, value, layer_class, layer_name):
    """Both paths agree on one weight in every dtype, kind and frame size,
    at a first snapshot (no prev, init = W) and a later one."""
    for max_cells in MAX_CELLS:
        layout = layout_of(layer_class, tag, np.shape(value), layer_name, max_cells)
        reduced = layout["block"] != [1, 1]
        for dtype in DTYPES:
            for kind in KINDS:
                w, prev, init = variants(value, dtype, kind)
                label = "%s %s %s max_cells=%d" % (tag, dtype, kind, max_cells)
                frame_dtype = np.float16 if reduced else np.float32
                assert_agree(*both(w, prev, init, layout, frame_dtype), w, label)
                assert_agree(*both(w, None, w, layout), w, label + " first")


# The fused pass on a fast tensor (stats.py's docstring): norms, std and
# init_cos within 1e-7 of float64 (relative; init_cos absolute), the mean
# within 1e-7 of the entries' root mean square. Elsewhere: 1e-12.
FUSED_FAST_RTOL = 1e-7


def assert_float64(measured, w, prev, init, label):
    """The norms and moments of the fused pass equal float64 numpy's, to
    1e-12 or, on a fast tensor, to FUSED_FAST_RTOL."""
    x, p, q = (np.asarray(a, np.float64).reshape(-1) for a in (w, prev, init))
    fast = w.dtype != np.float64 and w.size > S.EXACT_SIZE
    ok = np.isfinite(x)
    want = {"mean": x[ok].mean(), "std": x[ok].std(), "l2": np.linalg.norm(x[ok])}
    for key, other in (("update", p), ("init", q)):
        joint = ok & np.isfinite(other)
        want[key + "_l2"] = np.linalg.norm(x[joint] - other[joint])
    joint = ok & np.isfinite(q)
    want["init_cos"] = x[joint] @ q[joint] / (np.linalg.norm(x[joint]) * np.linalg.norm(q[joint]))
    rms = math.sqrt(np.mean(x[ok] ** 2)) if ok.any() else 0.0
    for name, value in want.items():
        got = measured.stats[name]
        if not fast:
            assert got == pytest.approx(value, rel=1e-12, abs=1e-300), (label, name)
        elif name in ("mean", "init_cos"):
            scale = rms if name == "mean" else 1.0
            assert abs(got - value) <= FUSED_FAST_RTOL * scale, (label, name, got, value)
        else:
            assert abs(got - value) <= FUSED_FAST_RTOL * abs(value), (label, name, got, value)


def blocks(shape, parts):
    """(start, slices) of every block of a grid cutting each axis of `shape`
    into `parts` (uneven pieces): a weight's shards."""
    cuts = [sorted({0, n} | {n * i // p + (i % 2) for i in range(1, p)})
            for n, p in zip(shape, parts)]
    for ranges in itertools.product(*[list(zip(c, c[1:])) for c in cuts]):
        yield tuple(a for a, _ in ranges), tuple(slice(a, b) for a, b in ranges)
