"""The fused pass and the numpy path of stats.py agree (tests/fused_checks.py)
on the weights of every Keras layer family (tests/keras_models.py) and on
planted shapes that take the fused pass's other ways through a tensor: rows
over several axes, lines shared by rows in and out of memory order, chunks
of rows, the percentile sample of a large tensor; and the partial buffers
of a tensor's shards combine into the whole tensor's."""

import numpy as np
import pytest

import keras_models as km
from fused_checks import (FUSED_FAST_RTOL, assert_agree, assert_float64, blocks, both, check_weight,
                          layout_of, variants)
from tensorboard_nnviz.core import layout as layout_lib
from tensorboard_nnviz.record import stats as S
from tensorboard_nnviz.record import structure


@pytest.fixture(autouse=True)
def fused_kernel():
    assert S._fused_kernel() is not None, "numba is installed by setup.py: the fused pass runs"


@pytest.mark.parametrize("family", sorted(km.BUILDERS))
def test_every_keras_family_every_dtype(family):
    import keras

    model, (x, _) = km.build(family)
    if not model.weights:  # a subclassed model builds on its first call
        model(x[:2])
    refs = structure.weight_refs(model)
    assert refs
    for r in refs:
        check_weight(r.tag, keras.ops.convert_to_numpy(r.variable), r.layer_class, r.layer_name)


# (layer class, weight name, shape, max_cells): past EXACT_SIZE and
# SAMPLE_SIZE, several chunks of rows, rows over several axes (torch conv),
# a Keras conv's rows sharing lines out of memory order, unaligned blocks.
PLANTED = [
    ("Dense", "kernel", (300, 700), 65536),
    ("Dense", "kernel", (300, 700), 4096),
    ("Dense", "kernel", (300, 200), 65536),  # rows straight into the frame
    ("Conv2D", "kernel", (3, 3, 96, 64), 20000),  # the same, cells a kernel column wide
    ("Conv2D", "kernel", (3, 3, 96, 64), 65536),
    ("Conv2D", "kernel", (3, 3, 96, 64), 2000),
    ("Conv2D", "kernel", (5, 5, 20, 30), 700),
    ("torch.nn.Conv2d", "weight", (64, 48, 3, 3), 65536),
    ("torch.nn.Conv2d", "weight", (64, 48, 3, 3), 3000),
    ("torch.nn.Linear", "weight", (500, 300), 5000),
    ("Embedding", "embeddings", (3000, 40), 1000),
    ("Dense", "bias", (70001,), 1000),
    ("LSTM", "kernel", (40, 4 * 96), 500),
]


@pytest.mark.parametrize("cls,name,shape,max_cells", PLANTED, ids=lambda v: str(v))
def test_planted_shapes(cls, name, shape, max_cells):
    value = np.random.default_rng(1).standard_normal(shape)
    layout = layout_of(cls, "layer/" + name, shape, "layer", max_cells)
    for dtype in ("float32", "float64", "bfloat16"):
        for kind in ("finite", "nonfinite"):
            w, prev, init = variants(value, dtype, kind)
            frame_dtype = np.float16 if layout["block"] != [1, 1] else np.float32
            label = "%s %s %s %s" % (cls, shape, dtype, kind)
            fused, numpy = both(w, prev, init, layout, frame_dtype)
            assert_agree(fused, numpy, w, label)
            assert_float64(fused, w, prev, init, label)


def test_rows_straight_into_the_frame_and_through_lines_both_taken():
    """PLANTED holds rows that add into the frame itself (one cell per
    entry: an exact Dense frame, a Keras conv whose cells are a kernel
    column wide) and rows that go through lines (cells of several
    entries): both ways are checked above."""
    from tensorboard_nnviz.record import fused

    direct = set()
    for cls, name, shape, max_cells in PLANTED:
        layout = layout_of(cls, "layer/" + name, shape, "layer", max_cells)
        direct.add(bool(S.fused_plan(shape, layout["unit_axes"], layout).plan[fused.P_DIRECT]))
    assert direct == {True, False}


def test_a_zero_update_is_exactly_zero_and_a_tiny_one_is_not():
    w = np.random.default_rng(2).standard_normal((200, 400)).astype(np.float32)
    prev = w.copy()
    prev[:, 3] = np.nextafter(w[:, 3], np.float32(np.inf))  # one unit moved by one ulp
    layout = layout_of("Dense", "d/kernel", w.shape, "d", 65536)
    fused, numpy = both(w, prev, w, layout)
    assert fused.stats["units_still"] == numpy.stats["units_still"] == 399
    assert fused.update[3] > 0 and np.count_nonzero(fused.update) == 1


def test_std_of_a_tensor_whose_mean_dwarfs_its_spread():
    w = (1000.0 + np.random.default_rng(3).standard_normal(100_000) * 1e-3).astype(np.float64)
    layout = layout_of("BatchNormalization", "bn/gamma", w.shape, "bn", 65536)
    fused, _ = both(w, None, w, layout)
    assert fused.stats["std"] == pytest.approx(np.std(w), rel=1e-9)


# (class, weight, shape, blocks along each axis): cuts along axis 0 (FSDP2),
# along the last axis (a LayoutMap's (None, "model")), both, and the middle
# axis of an attention kernel (its heads).
SHARDINGS = [("Dense", "kernel", (90, 70), (3, 1)),
             ("Dense", "kernel", (90, 70), (1, 4)),
             ("Dense", "kernel", (90, 70), (2, 3)),
             ("torch.nn.Conv2d", "weight", (12, 10, 3, 3), (3, 1, 1, 1)),
             ("torch.nn.Conv2d", "weight", (12, 10, 3, 3), (1, 2, 1, 2)),
             ("Conv2D", "kernel", (3, 3, 10, 12), (1, 1, 2, 3)),
             ("torch.nn.Linear", "weight", (300, 500), (4, 1)),
             ("Embedding", "embeddings", (3000, 40), (3, 2)),
             ("MultiHeadAttention", "query/kernel", (16, 4, 8), (1, 4, 1)),
             ("MultiHeadAttention", "attention_output/kernel", (4, 8, 16), (2, 1, 2)),
             ("Dense", "bias", (70001,), (4,))]


@pytest.mark.parametrize("cls,name,shape,parts", SHARDINGS, ids=lambda v: str(v))
def test_shards_combine_into_the_whole_tensor(cls, name, shape, parts):
    """Each shard's partial buffer, from that shard alone, combined: the
    whole tensor's stats, units, frame and sample (what the collectives of
    record/sharded.py do), frames exact and block-reduced."""
    rng = np.random.default_rng(4)
    w, prev, init = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
    w.reshape(-1)[7] = np.nan
    for max_cells in (65536, 40):
        layout = layout_of(cls, "layer/" + name, shape, "layer", max_cells)
        plan = S.fused_plan(shape, layout["unit_axes"], layout)
        whole = S.new_partial(plan, w.size)
        S.accumulate(whole, plan, w, prev, init)
        combined = None
        for start, box in blocks(shape, parts):
            part = S.new_partial(plan, w.size)
            local = w[box].shape
            S.accumulate(part, S.fused_plan(shape, layout["unit_axes"], layout, start, local),
                         w[box], prev[box], init[box], shard=(shape, start))
            combined = part if combined is None else S.combine(combined, part)
        # A tensor past EXACT_SIZE is summed in float32 rows and chunks, which
        # the shards cut elsewhere: float32 rounding of a block's sums apart.
        fast = w.size > S.EXACT_SIZE
        np.testing.assert_allclose(combined, whole, rtol=1e-6 if fast else 1e-12,
                                   atol=1e-4 if fast else 0, err_msg=str(max_cells))
        finished = [S.finish(buf, plan, {"update": prev, "init": init}, None, w)
                    for buf in (combined, whole)]
        assert_agree(finished[0], finished[1], w, "shards")


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 2048, 6300, 6500, 8193, 20000, S.SAMPLE_SIZE])
@pytest.mark.parametrize("kind", ["normal", "ties", "sorted", "nonfinite", "zeros"])
def test_compiled_percentiles_equal_the_numpy_paths(n, kind):
    v = np.random.default_rng(n).standard_normal(n)
    if kind == "ties":
        v = np.round(v * 2)
    elif kind == "sorted":
        v = np.sort(v)
    elif kind == "nonfinite":
        v[::5] = np.nan
        v[1::7] = np.inf
    elif kind == "zeros":
        v[: n // 2] = 0.0
    finite = bool(np.isfinite(v).all())
    assert S._fused_percentiles(v, finite) == S._percentiles(v, finite)


def _same(a, b):
    """Measurements equal to the bit (stats, units, frame, sumsq, finite)."""
    assert a.stats.keys() == b.stats.keys()
    for key in a.stats:
        x, y = a.stats[key], b.stats[key]
        assert (x is None and y is None) or x == y or (x != x and y != y), key
    for x, y in zip(a[1:], b[1:]):
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
        else:
            assert x == y or (x is None and y is None)


def test_measure_many_equals_measure_of_each():
    """A snapshot's tensors measured together (small ones in one call, laid
    end to end) give each tensor's own measurement, to the bit, on both
    paths: vectors of three dtypes with and without W_prev, NaN and Inf,
    a tensor whose mean dwarfs its spread, a reduced frame, a large kernel,
    bfloat16 and an empty tensor (each alone)."""
    rng = np.random.default_rng(4)
    requests = []
    for i, (cls, name, shape, max_cells) in enumerate([
            ("BatchNormalization", "gamma", (64,), 65536), ("Dense", "bias", (1000,), 65536),
            ("Dense", "kernel", (30, 20), 65536), ("Conv2D", "kernel", (3, 3, 8, 16), 200),
            ("Dense", "kernel", (300, 700), 4096), ("Dense", "bias", (7,), 65536)]):
        layout = layout_of(cls, "l/" + name, shape, "l", max_cells)
        frame_dtype = np.float32 if layout["block"] == [1, 1] else np.float16
        for dtype in ("float32", "float16", "float64", "bfloat16"):
            for kind in ("finite", "nonfinite"):
                w, prev, init = variants(rng.standard_normal(shape), dtype, kind, seed=i)
                requests.append(S.Request(w, prev if i % 2 else None, init, layout["unit_axes"],
                                          layout=layout, frame_dtype=frame_dtype))
    centred = np.float32(3) + rng.standard_normal(500).astype(np.float32) * np.float32(1e-4)
    requests.append(S.Request(centred, centred, centred, [0]))
    requests.append(S.Request(np.zeros((0, 4), np.float32), None, None, [1]))
    for on_fused in (True, False):
        saved = S._fused
        if not on_fused:
            S._fused = False
        try:
            many = S.measure_many(requests)
            for r, m in zip(requests, many):
                _same(m, S.measure(*r))
        finally:
            S._fused = saved


def test_float32_rows_within_their_bound_on_a_hard_tensor():
    """A float32 tensor past EXACT_SIZE takes float32 rows (stats.py's
    docstring): against float64 by the definition, on a tensor built to be
    hard for them. Its mean is 300 times its spread, its rows span four
    float32 segments, its update is exactly 0 in 99% of the entries and
    one ulp in the rest, and one unit holds weights near 1e-21 that moved
    by one ulp in its first rows, 0 below (float32 squares would underflow
    to 0 and call it still: those rows' chunk is taken in float64, the
    others in float32)."""
    rng = np.random.default_rng(5)
    shape = (96, 4096)
    w = (3.0 + rng.standard_normal(shape) * 0.01).astype(np.float32)
    w[:, 7] = 0.0
    w[:8, 7] = (rng.standard_normal(8) * 1e-21).astype(np.float32)
    prev = w.copy()
    moved = rng.random(shape) < 0.01
    moved[:, 9] = False  # a unit that stood still
    moved[:, 7] = False
    moved[:8, 7] = True
    prev[moved] = np.nextafter(w[moved], np.float32(np.inf))
    init = (w * 0.5 + rng.standard_normal(shape) * 0.1).astype(np.float32)
    layout = layout_of("Dense", "d/kernel", shape, "d", 4096)
    got = S.measure(w, prev, init, layout["unit_axes"], layout=layout)
    x, p, q = (a.astype(np.float64) for a in (w, prev, init))
    rel = FUSED_FAST_RTOL

    def close(value, want, scale=None):
        return abs(value - want) <= rel * (abs(want) if scale is None else scale)

    rms = np.sqrt(np.mean(x * x))
    assert close(got.stats["mean"], x.mean(), rms)
    assert close(got.stats["std"], x.std())
    for name, want in (("l2", np.linalg.norm(x)), ("update_l2", np.linalg.norm(x - p)),
                       ("init_l2", np.linalg.norm(x - q))):
        assert close(got.stats[name], want), (name, got.stats[name], want)
    cos = np.sum(x * q) / (np.linalg.norm(x) * np.linalg.norm(q))
    assert close(got.stats["init_cos"], cos, 1.0)
    assert got.stats["update_absmax"] == np.abs(x - p).max()
    assert got.stats["min"] == x.min() and got.stats["max"] == x.max()
    assert got.stats["zero_frac"] == np.mean(np.abs(x) <= S.ZERO_TOL)
    norm, update = np.linalg.norm(x, axis=0), np.linalg.norm(x - p, axis=0)
    assert np.all(np.abs(got.norm - norm) <= rel * norm)
    assert np.all(np.abs(got.update - update) <= rel * update)  # exact zeros stay 0
    assert got.update[7] > 0 and got.update[9] == 0
    assert got.stats["units_still"] == np.count_nonzero(update == 0) > 1
    cells, _ = layout_lib.make_frame(x, layout, None, layout["block"])  # float64 means
    assert got.frame.shape == cells.shape and layout["block"] != [1, 1]
    assert np.all(np.abs(got.frame - cells) <= 2 ** -24 * np.abs(cells) + rel * rms)
