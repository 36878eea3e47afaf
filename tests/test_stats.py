"""Tests of tensorboard_nnviz.record.stats against plain numpy float64 references."""

import json
import math

import numpy as np
import pytest

from tensorboard_nnviz.core import format as nnviz_format
from tensorboard_nnviz.record import stats as S
from tensorboard_nnviz.record.stats import compute_stats


def reference(w, prev=None, init=None):
    """The stats by the definition, with numpy in float64 (slow and obvious)."""
    x = np.asarray(w, dtype=np.float64).ravel()
    fin = np.isfinite(x)
    f = x[fin]
    ref = {"nan": float(np.isnan(x).sum()), "inf": float(np.isinf(x).sum())}
    if f.size:
        ref["rms"] = np.sqrt(np.mean(f * f))
        ref.update(
            mean=f.mean(),
            std=f.std(),
            min=f.min(),
            max=f.max(),
            l2=np.sqrt(np.sum(f * f)),
            absmax=np.abs(f).max(),
            zero_frac=np.mean(np.abs(f) <= 1e-8),
        )
        ref["p01"], ref["p99"] = np.percentile(f, [1, 99])
    for key, other in (("update", prev), ("init", init)):
        if other is None:
            continue
        y = np.asarray(other, dtype=np.float64).ravel()
        joint = fin & np.isfinite(y)
        a, b = x[joint], y[joint]
        if not a.size:
            continue
        ref[key + "_l2"] = np.linalg.norm(a - b)
        ref[key + "_absmax"] = np.abs(a - b).max()
        if key == "update" and np.linalg.norm(b) > 0:
            ref["update_ratio"] = np.linalg.norm(a - b) / np.linalg.norm(b)
        if key == "init" and np.linalg.norm(a) * np.linalg.norm(b) > 0:
            ref["init_cos"] = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    if prev is not None and np.shape(prev) == np.shape(w):
        # Units: the last axis; a unit is still when bit-identical to prev.
        units = np.shape(w)[-1] if np.ndim(w) else 1
        cur = np.asarray(w, np.float64).reshape(-1, units)
        old = np.asarray(prev, np.float64).reshape(-1, units)
        ref["units_still"] = float(np.sum(np.all((cur == old) & np.isfinite(cur), axis=0)))
    return ref


# The fast path (finite float32 tensors above EXACT_SIZE entries) rounds
# squares and differences to float32: these are the bounds stats.py states.
FAST_RTOL = 5e-7  # norms, std, ratios
FAST_MEAN_ATOL = 1e-8  # times the tensor's rms
FAST_COS_ATOL = 1e-7


def assert_matches(got, ref, rtol=1e-9, skip=(), fast=False):
    assert set(got) == set(nnviz_format.STAT_FIELDS)
    for name in nnviz_format.STAT_FIELDS:
        if name in skip:
            continue
        if name not in ref:
            assert got[name] is None, name
        else:
            assert got[name] is not None, name
            assert isinstance(got[name], float), name
            want = float(ref[name])
            if fast and name == "mean":
                assert abs(got[name] - want) <= FAST_MEAN_ATOL * ref["rms"], name
            elif fast and name == "init_cos":
                assert abs(got[name] - want) <= FAST_COS_ATOL, name
            else:
                tol = FAST_RTOL if fast else rtol
                assert got[name] == pytest.approx(want, rel=tol, abs=1e-12), name


def weights(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 3, 4, 5), (256, 256), (300, 301)])
def test_matches_numpy(shape):
    w = weights(shape)
    prev = w + weights(shape, 1) * 0.01
    init = weights(shape, 2)
    got = compute_stats(w, prev=prev, init=init)
    # Above the sample size p01/p99 are estimates (checked below).
    skip = ("p01", "p99") if w.size > S.SAMPLE_SIZE else ()
    assert_matches(got, reference(w, prev, init), skip=skip, fast=w.size > S.EXACT_SIZE)


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("shape, scale, step", [((3, 3, 128, 128), 0.05, 1e-4), ((1024, 600), 0.03, 1e-3),
                                                ((1, 1, 256, 1024), 0.02, 1e-6), ((70000, 2), 0.5, 1e-7)])
def test_fast_path_within_its_stated_bounds(shape, scale, step, seed):
    # Realistic weights: small updates, a drift from init, a non-zero mean.
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal(shape) * scale + 0.001 * seed).astype(np.float32)
    prev = w + (rng.standard_normal(shape) * scale * step).astype(np.float32)
    init = w + (rng.standard_normal(shape) * scale * 0.3).astype(np.float32)
    got = compute_stats(w, prev=prev, init=init)
    assert_matches(got, reference(w, prev, init), skip=("p01", "p99"), fast=True)
    # float64 weights take the exact path.
    exact = compute_stats(w.astype(np.float64), prev=prev.astype(np.float64), init=init.astype(np.float64))
    assert_matches(exact, reference(w, prev, init), skip=("p01", "p99"))


def test_percentiles_exact_up_to_sample_size_estimated_above():
    w = weights((S.SAMPLE_SIZE,), 5)
    got = compute_stats(w)
    assert got["p01"] == pytest.approx(np.percentile(w.astype(np.float64), 1), rel=1e-12)
    assert got["p99"] == pytest.approx(np.percentile(w.astype(np.float64), 99), rel=1e-12)
    big = weights((400_000,), 6)
    got = compute_stats(big)
    exact = np.percentile(big.astype(np.float64), [1, 99])
    # The standard error of a 1% quantile from 65536 normal samples is ~0.015.
    assert abs(got["p01"] - exact[0]) < 0.06
    assert abs(got["p99"] - exact[1]) < 0.06
    assert compute_stats(big) == got  # a fixed sample: deterministic


def test_sample_positions_are_distinct_sorted_and_in_range():
    for n in (S.SAMPLE_SIZE + 1, 100_003, 25_600_000):
        index = S._sample_index(n)
        assert index.size == S.SAMPLE_SIZE
        assert index[0] >= 0 and index[-1] < n
        assert np.all(np.diff(index) > 0)


def test_nan_and_inf_are_counted_and_stats_use_finite_entries():
    w = weights((200_000,), 3)  # several chunks; non-finite in two of them
    w[[5, 70_000, 150_000]] = np.nan
    w[[6, 70_001]] = np.inf
    w[150_001] = -np.inf
    prev = w * 0.9
    prev[[10, 199_999]] = np.nan  # other positions: excluded from updates
    got = compute_stats(w, prev=prev, init=w[::-1].copy())
    assert got["nan"] == 3.0 and got["inf"] == 3.0
    assert_matches(got, reference(w, prev, w[::-1]), skip=("p01", "p99"))
    assert math.isfinite(got["p01"]) and math.isfinite(got["p99"])
    json.dumps(got, allow_nan=False)


def test_small_nonfinite_tensor_exact():
    w = np.array([[1.0, np.nan, -2.0], [np.inf, 0.0, 3.0]], np.float32)
    got = compute_stats(w, prev=np.zeros_like(w))
    assert_matches(got, reference(w, np.zeros_like(w)))
    assert got["zero_frac"] == 0.25
    assert got["update_ratio"] is None  # ||prev|| = 0


def test_zero_fraction_threshold_is_inclusive_1e_8():
    w = np.array([0.0, 1e-8, -1e-8, 1.5e-8, -2e-8, 1.0, np.nan], np.float64)
    assert compute_stats(w)["zero_frac"] == 3 / 6
    w32 = w.astype(np.float32)  # float32(1e-8) < 1e-8: still a zero
    assert compute_stats(w32)["zero_frac"] == pytest.approx(reference(w32)["zero_frac"])


def test_undefined_values_are_none():
    w = weights((4, 5))
    got = compute_stats(w)
    for name in ("update_l2", "update_absmax", "update_ratio", "init_l2", "init_absmax", "init_cos"):
        assert got[name] is None
    all_nan = np.full((3, 3), np.nan, np.float32)
    got = compute_stats(all_nan, prev=w[:3, :3], init=w[:3, :3])
    assert got["nan"] == 9.0 and got["inf"] == 0.0
    assert got["units_still"] == 0.0  # a count: NaN units are not still
    assert all(got[k] is None for k in nnviz_format.STAT_FIELDS if k not in ("nan", "inf", "units_still"))
    got = compute_stats(w, init=np.zeros_like(w))
    assert got["init_cos"] is None and got["init_l2"] == pytest.approx(np.linalg.norm(w.astype(np.float64)))
    got = compute_stats(w, prev=weights((5, 4)))  # shape changed: no update
    assert got["update_l2"] is None
    empty = compute_stats(np.zeros((0, 3), np.float32))
    assert empty["nan"] == 0.0 and empty["mean"] is None and empty["l2"] is None


def test_identical_prev_gives_zero_update():
    w = weights((50, 40))
    got = compute_stats(w, prev=w.copy(), init=w.copy())
    assert got["update_l2"] == 0.0 and got["update_absmax"] == 0.0 and got["update_ratio"] == 0.0
    assert got["init_cos"] == pytest.approx(1.0)


def test_std_has_no_cancellation_for_large_means():
    # e.g. a BatchNorm moving_variance: large mean, tiny spread.
    w = 1000.0 + np.random.default_rng(4).standard_normal(100_000) * 1e-3
    got = compute_stats(w)
    assert got["std"] == pytest.approx(np.std(w), rel=1e-7)
    assert got["mean"] == pytest.approx(np.mean(w), rel=1e-14)


def test_other_dtypes():
    import ml_dtypes  # ships with TensorFlow and JAX; Keras weights may be bfloat16

    for w in (
        weights((9, 11)).astype(np.float16),
        weights((9, 11)).astype(ml_dtypes.bfloat16),
        np.arange(-10, 10, dtype=np.int32),
        np.array([True, False, True]),
        np.uint32([3, 4]),  # e.g. a SeedGenerator state
    ):
        assert_matches(compute_stats(w), reference(np.asarray(w).astype(np.float64)))


def test_float32_accumulates_in_float64():
    # 2e6 ones and one large value: a float32 running sum would drift; the
    # fast path's float32 squares stay within their rounding (FAST_RTOL).
    w = np.ones(2_000_001, np.float32)
    w[-1] = 1e7
    got = compute_stats(w)
    assert got["mean"] == (2_000_000 + 1e7) / 2_000_001
    assert got["l2"] == pytest.approx(math.sqrt(2_000_000 + 1e14), rel=FAST_RTOL)
    exact = compute_stats(w.astype(np.float64))
    assert exact["l2"] == pytest.approx(math.sqrt(2_000_000 + 1e14), rel=1e-15)


# --- per-unit stats ----------------------------------------------------------------


def unit_reference(w, unit_axes):
    """||W[u]|| per unit: move the unit axes last, flatten them, sum the rest."""
    w = np.asarray(w, np.float64)
    rest = [a for a in range(w.ndim) if a not in unit_axes]
    moved = np.transpose(w, rest + list(unit_axes))
    units = int(np.prod([w.shape[a] for a in unit_axes], dtype=np.int64))
    return np.sqrt((moved.reshape(-1, units) ** 2).sum(axis=0))


@pytest.mark.parametrize("shape, unit_axes", [
    ((6, 5), [1]),  # Dense
    ((3, 3, 4, 7), [3]),  # Conv2D
    ((3, 3, 7, 4), [2]),  # Conv2DTranspose: (kh, kw, out, in)
    ((3, 3, 4, 2), [2, 3]),  # DepthwiseConv2D
    ((8, 2, 3), [1, 2]),  # MHA query kernel
    ((20, 4), [0]),  # Embedding
    ((9,), [0]),  # a vector
    ((), []),  # a scalar: one unit
    ((4, 5, 6), [0, 2]),  # not contiguous: the transposed fallback
    ((300, 400), [1]),  # above EXACT_SIZE: the fast path
    ((70000, 3), [0]),  # fast path, blocks running over units
])
def test_unit_norms_and_updates_by_the_definition(shape, unit_axes):
    w = weights(shape, 7)
    prev = w + weights(shape, 8) * np.float32(1e-3)
    got = S.measure(w, prev, unit_axes=unit_axes)
    np.testing.assert_allclose(got.norm, unit_reference(w, unit_axes), rtol=1e-6)
    moved = w.astype(np.float64) - prev.astype(np.float64)
    np.testing.assert_allclose(got.update, unit_reference(moved, unit_axes), rtol=1e-6)
    assert S.measure(w, unit_axes=unit_axes).update is None


@pytest.mark.parametrize("shape", [(40, 30), (300, 400)])  # exact and fast path
def test_a_still_unit_is_exactly_zero_and_a_tiny_move_is_not(shape):
    w = weights(shape, 9)
    prev = w.copy()
    prev[:, 1] += np.float32(1e-3)
    prev[:, 2] = np.nextafter(prev[:, 2], np.float32(np.inf))  # one ulp: still a change
    w[0, 3], prev[0, 3] = np.float32(1e-40), 0.0  # float32 would square 1e-40 to 0
    got = S.measure(w, prev, unit_axes=[1])
    assert got.update[0] == 0.0 and all(got.update[1:4] > 0)
    assert got.stats["units_still"] == shape[1] - 3
    assert got.update[3] == pytest.approx(float(np.float32(1e-40)), rel=1e-6)


def test_a_unit_holding_nan_or_inf_shows_it():
    w = weights((5, 4), 10)
    w[2, 1], w[0, 3] = np.nan, np.inf
    got = S.measure(w, w.copy(), unit_axes=[1])
    assert np.isnan(got.norm[1]) and np.isinf(got.norm[3]) and np.isfinite(got.norm[[0, 2]]).all()
    assert got.update[0] == 0 and got.update[2] == 0 and np.isnan(got.update[[1, 3]]).all()
    assert got.stats["units_still"] == 2.0 and got.stats["nan"] == 1.0 and got.stats["inf"] == 1.0


def test_block_units_averages_consecutive_units():
    assert S.unit_block(65536, 65536) == 1 and S.unit_block(65537, 65536) == 2
    assert S.unit_block(200000, 65536) == 4
    np.testing.assert_allclose(S.block_units(np.arange(7.0), 3), [1.0, 4.0, 6.0])
    np.testing.assert_array_equal(S.block_units([1.0, 2.0], 1), [1.0, 2.0])


def test_zero_count_boundary_is_exact_on_the_fast_path():
    # Every float32 from 0.9e-8 to 1.1e-8 (and negated), and a large
    # tensor so the fast path counts them: |w| <= 1e-8 exactly.
    lo, hi = np.float32(0.9e-8).view(np.int32), np.float32(1.1e-8).view(np.int32)
    near = np.arange(lo, hi + 1, dtype=np.int32).view(np.float32)
    w = np.concatenate([near, -near, np.full(S.EXACT_SIZE, 0.5, np.float32)])
    expected = 2 * int(np.count_nonzero(near.astype(np.float64) <= 1e-8))
    assert 0 < expected < 2 * near.size
    assert compute_stats(w)["zero_frac"] * w.size == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 8193, 20000, S.SAMPLE_SIZE])
@pytest.mark.parametrize("kind", ["normal", "ties", "sorted"])
def test_percentiles_equal_numpys(n, kind):
    v = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    if kind == "ties":
        v = np.round(v * 2).astype(np.float32)
    elif kind == "sorted":
        v = np.sort(v)
    want = np.percentile(v.astype(np.float64), [1, 99])
    assert S._percentiles(v, finite=True) == (pytest.approx(want[0], rel=1e-12, abs=0),
                                              pytest.approx(want[1], rel=1e-12, abs=0))
