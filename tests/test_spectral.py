"""Spectral metrics (spectral.py): known spectra, weightwatcher's reading of
each layer family, the exact fit, null rather than NaN and the budget. Real
training through the writer: tests/test_spectral_run.py."""

import json
import math

import numpy as np
import pytest

from spectral_reference import full_scan_fit
from tensorboard_nnviz.core import layout as layout_lib
from tensorboard_nnviz.core import spectral
from tensorboard_nnviz.record import spectral_budget


def planted(rng, n, m, singular_values):
    """An n x m matrix with exactly these singular values (random singular vectors)."""
    u, _ = np.linalg.qr(rng.standard_normal((n, n)))
    v, _ = np.linalg.qr(rng.standard_normal((m, m)))
    s = np.zeros((n, m))
    k = len(singular_values)
    s[np.arange(k), np.arange(k)] = singular_values
    return u @ s @ v.T


def dense_plan(shape):
    return spectral.plan(layout_lib.choose_layout("Dense", "kernel", shape), shape, "Dense", "kernel")


# --- known spectra -----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(40, 25), (25, 40), (64, 64)])
def test_planted_singular_values_give_sv_max_and_stable_rank(shape):
    rng = np.random.default_rng(0)
    k = min(shape)
    s = np.linspace(0.1, 3.0, k) ** 2
    w = planted(rng, *shape, s).astype(np.float32)
    got = spectral.compute(w, dense_plan(shape))
    # float32 storage of W moves its singular values by ~1e-7 relative.
    assert got["sv_max"] == pytest.approx(s.max(), rel=1e-5)
    assert got["stable_rank"] == pytest.approx(np.sum(s ** 2) / s.max() ** 2, rel=1e-5)
    evals = spectral.eigenvalues(w.astype(np.float64), dense_plan(shape))
    assert evals.size == k
    np.testing.assert_allclose(evals, np.sort(np.linalg.svd(w.astype(np.float64),
                                                            compute_uv=False) ** 2),
                               rtol=1e-10, atol=1e-12 * s.max() ** 2)


def test_planted_conv_slices_pool_their_spectra():
    rng = np.random.default_rng(1)
    kh, kw, cin, cout = 3, 2, 5, 7
    w = np.empty((kh, kw, cin, cout))
    planted_s = []
    for i in range(kh):
        for j in range(kw):
            s = rng.uniform(0.5, 2.0, size=cin) * (1 + i + j)
            w[i, j] = planted(rng, cin, cout, s)
            planted_s.append(s)
    planted_s = np.concatenate(planted_s)
    layout = layout_lib.choose_layout("Conv2D", "kernel", w.shape)
    p = spectral.plan(layout, w.shape, "Conv2D", "kernel")
    assert p.dims(w.shape) == (kh * kw, cin, cout)
    np.testing.assert_allclose(spectral.eigenvalues(w, p), np.sort(planted_s ** 2), rtol=1e-10)
    got = spectral.compute(w, p)
    assert got["sv_max"] == pytest.approx(planted_s.max(), rel=1e-12)
    # stable rank over the whole kernel: ‖W‖_F² over the largest slice's σ².
    assert got["stable_rank"] == pytest.approx(np.sum(w ** 2) / planted_s.max() ** 2, rel=1e-10)


def power_law_quantiles(alpha, n, xmin=1.0):
    """n eigenvalues at the quantiles of a Pareto density ∝ λ^-alpha, λ ≥ xmin."""
    u = (np.arange(n) + 0.5) / n
    return xmin * (1 - u) ** (-1 / (alpha - 1))


@pytest.mark.parametrize("alpha", [1.5, 2.0, 3.0, 4.5, 6.0])
def test_power_law_spectrum_gives_its_exponent(alpha):
    """A matrix whose eigenvalues follow a power law exactly (the quantiles of
    the density, so no sampling noise) gives its exponent within 0.05: what is
    left is where the KS search puts xmin and the MLE's bias of order
    (alpha − 1)/n (0.021 at alpha 6 with these 200 eigenvalues)."""
    rng = np.random.default_rng(2)
    evals = power_law_quantiles(alpha, 200, xmin=0.5)
    w = planted(rng, 300, 200, np.sqrt(evals))
    got = spectral.compute(w, dense_plan(w.shape))
    assert got["alpha"] == pytest.approx(alpha, abs=0.05)
    assert got["alpha_weighted"] == pytest.approx(got["alpha"] * math.log10(evals.max()), rel=1e-9)


@pytest.mark.parametrize("alpha", [2.0, 3.0, 4.0, 6.0])
def test_power_law_tail_above_a_bulk_is_found(alpha):
    """A Marchenko–Pastur-like bulk plus a power-law tail sampled at random:
    the KS choice of xmin finds the tail, and alpha lands within three
    standard errors of the MLE, (alpha − 1)/√n for the n fitted eigenvalues
    (about a 1-in-370 miss for a true power law; the seeds are fixed)."""
    rng = np.random.default_rng(int(alpha * 10))
    bulk = rng.uniform(0.01, 1.0, size=600)
    tail = (1 - rng.random(400)) ** (-1 / (alpha - 1)) * 2.0
    fit = spectral.fit_alpha(np.concatenate([bulk, tail]), details=True)
    assert fit["xmin"] >= 1.0  # in the tail, not the bulk
    sigma = (alpha - 1) / math.sqrt(fit["num_pl_spikes"])
    assert abs(fit["alpha"] - alpha) <= 3 * sigma


def test_bounded_search_finds_the_full_scans_minimum():
    """fit_alpha prunes candidates with bounds; it must pick exactly the
    candidate a full scan of every xmin picks, on spectra of every kind."""
    rng = np.random.default_rng(3)
    cases = []
    for _ in range(12):
        n, m = rng.integers(12, 300, size=2)
        cases.append(np.linalg.svd(rng.standard_normal((n, m)), compute_uv=False) ** 2)
        cases.append(np.linalg.svd(rng.standard_t(2.5, size=(n, m)), compute_uv=False) ** 2)
        cases.append(rng.pareto(rng.uniform(0.5, 5), size=n) + 1e-3)
    cases.append(np.repeat([1.0, 2.0, 3.0], 20))  # ties
    for evals in cases:
        got = spectral.fit_alpha(evals, min_evals=2)
        assert got == pytest.approx(full_scan_fit(evals), rel=1e-10, abs=1e-12)


# --- null, never NaN ------------------------------------------------------------------------


def assert_json_clean(metrics):
    json.dumps(metrics, allow_nan=False)
    assert set(metrics) == set(spectral.FIELDS)


def test_rank_one_matrix():
    u, v = np.arange(1, 31, dtype=np.float64), np.linspace(-1, 1, 20)
    w = np.outer(u, v)
    got = spectral.compute(w, dense_plan(w.shape))
    assert_json_clean(got)
    assert got["sv_max"] == pytest.approx(np.linalg.norm(u) * np.linalg.norm(v), rel=1e-12)
    assert got["stable_rank"] == pytest.approx(1.0, rel=1e-12)
    assert got["alpha"] is None and got["alpha_weighted"] is None  # one eigenvalue: no tail


def test_zero_matrix():
    w = np.zeros((16, 12), np.float32)
    got = spectral.compute(w, dense_plan(w.shape))
    assert_json_clean(got)
    assert got == {"sv_max": 0.0, "stable_rank": None, "alpha": None, "alpha_weighted": None}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_give_nulls(bad):
    w = np.ones((12, 12), np.float32)
    w[3, 4] = bad
    got = spectral.compute(w, dense_plan(w.shape))
    assert_json_clean(got)
    assert got == dict.fromkeys(spectral.FIELDS)


def test_too_few_eigenvalues_to_fit():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((50, 19))  # 19 < MIN_EVALS = 20
    got = spectral.compute(w, dense_plan(w.shape))
    assert_json_clean(got)
    assert got["alpha"] is None and got["alpha_weighted"] is None
    assert got["sv_max"] == pytest.approx(np.linalg.norm(w, 2), rel=1e-12)
    assert got["stable_rank"] == pytest.approx(np.sum(w ** 2) / np.linalg.norm(w, 2) ** 2)
    w = rng.standard_normal((50, 20))
    assert spectral.compute(w, dense_plan(w.shape))["alpha"] is not None


def test_metrics_of_degenerate_spectra():
    for evals in ([], [np.nan, 1.0], [0.0] * 20, [1.0] * 20, [1e-9] * 30 + [1.0]):
        got = spectral.metrics(np.asarray(evals, np.float64))
        assert_json_clean(got)
    assert spectral.metrics([1.0] * 20)["alpha"] is None  # every candidate alpha is infinite


def test_float16_weights_are_widened():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((32, 24)).astype(np.float16)
    got = spectral.compute(w, dense_plan(w.shape))
    assert got["sv_max"] == pytest.approx(np.linalg.norm(w.astype(np.float64), 2), rel=1e-6)


# --- which tensors are matrices, and how ---------------------------------------------------


def test_keras_and_torch_conv_kernels_give_the_same_slices():
    """weightwatcher slices Keras (kh, kw, in, out) kernels at W[i, j, :, :] and
    torch (out, in, kh, kw) ones at W[:, :, i, j]: the same matrices."""
    rng = np.random.default_rng(6)
    keras_w = rng.standard_normal((3, 3, 6, 10))
    torch_w = np.transpose(keras_w, (3, 2, 0, 1))
    keras_plan = spectral.plan(layout_lib.choose_layout("Conv2D", "kernel", keras_w.shape),
                               keras_w.shape, "Conv2D", "kernel")
    # The torch recorder's layout shows the same picture: rows [in, kh], cols [out, kw].
    torch_layout = {"row_axes": [1, 2], "col_axes": [0, 3]}
    torch_plan = spectral.plan(torch_layout, torch_w.shape, "torch.nn.Conv2d", "weight")
    assert keras_plan.dims(keras_w.shape) == torch_plan.dims(torch_w.shape) == (9, 6, 10)
    ww_slices = [torch_w[:, :, i, j] for i in range(3) for j in range(3)]
    expected = np.sort(np.concatenate([np.linalg.svd(s, compute_uv=False) ** 2 for s in ww_slices]))
    np.testing.assert_allclose(spectral.eigenvalues(keras_w, keras_plan), expected, rtol=1e-10)
    np.testing.assert_allclose(spectral.eigenvalues(torch_w, torch_plan), expected, rtol=1e-10)
    # A layout may name the kernel-position axes itself: no class name needed.
    named = dict(torch_layout, spatial_axes=[2, 3])
    assert spectral.plan(named, torch_w.shape, None, "weight") == torch_plan


@pytest.mark.parametrize("cls, name, shape, layout, dims", [
    # torch.nn.Linear (out, in), inputs down the rows
    ("torch.nn.Linear", "weight", (10, 20), {"row_axes": [1], "col_axes": [0]}, (1, 20, 10)),
    # nn.MultiheadAttention's fused q, k, v: one E x 3E matrix
    ("torch.nn.MultiheadAttention", "in_proj_weight", (24, 8),
     {"row_axes": [1], "col_axes": [0]}, (1, 8, 24)),
    ("torch.nn.LSTM", "weight_ih_l0", (16, 3), {"row_axes": [1], "col_axes": [0]}, (1, 3, 16)),
    ("torch.nn.LSTM", "weight_hh_l0", (16, 4), {"row_axes": [1], "col_axes": [0]}, (1, 4, 16)),
    ("torch.nn.Conv1d", "weight", (8, 4, 5), {"row_axes": [1], "col_axes": [0, 2]}, (5, 4, 8)),
    ("torch.nn.ConvTranspose2d", "weight", (4, 8, 3, 3),
     {"row_axes": [0, 2], "col_axes": [1, 3]}, (9, 4, 8)),
    ("torch.nn.Embedding", "weight", (100, 16), {"row_axes": [0], "col_axes": [1]}, (1, 100, 16)),
])
def test_torch_layouts(cls, name, shape, layout, dims):
    assert spectral.plan(layout, shape, cls, name).dims(shape) == dims


@pytest.mark.parametrize("cls, name, shape, layout", [
    ("torch.nn.Conv2d", "weight", (12, 1, 3, 3), {"row_axes": [1, 2], "col_axes": [0, 3]}),
    ("torch.nn.Linear", "bias", (10,), {"row_axes": [], "col_axes": [0]}),
    ("torch.nn.LayerNorm", "weight", (10,), {"row_axes": [], "col_axes": [0]}),
    ("torch.nn.BatchNorm2d", "running_mean", (10,), {"row_axes": [], "col_axes": [0]}),
    ("torch.nn.Linear", "weight", (60000, 4), {"row_axes": [1], "col_axes": [0]}),  # > MAX_N
])
def test_torch_tensors_that_are_not_analysed(cls, name, shape, layout):
    """Depthwise convs (one input channel per group), vectors, and matrices
    past weightwatcher's size limits have no plan."""
    assert spectral.plan(layout, shape, cls, name) is None


# (builder in keras_models, {tag: (slices, rows, cols) or None})
KERAS_FAMILIES = [
    ("conv1d", {"conv1d/kernel": (3, 3, 4), "conv1d/bias": None, "dense/kernel": (1, 4, 2)}),
    ("conv2d", {"conv2d/kernel": (6, 3, 4)}),
    ("conv3d", {"conv3d/kernel": (8, 2, 3)}),
    ("conv2d_transpose", {"convt/kernel": (6, 3, 5)}),
    ("depthwise", {"dw/kernel": None}),
    ("separable", {"sep/depthwise_kernel": None, "sep/pointwise_kernel": (1, 6, 4)}),
    ("embedding", {"emb/embeddings": (1, 20, 4)}),
    ("lstm", {"lstm/lstm_cell/kernel": (1, 3, 16), "lstm/lstm_cell/recurrent_kernel": (1, 4, 16),
              "lstm/lstm_cell/bias": None}),
    ("gru", {"gru/gru_cell/kernel": (1, 3, 12), "gru/gru_cell/bias": None}),
    ("mha", {"mha/query/kernel": (1, 6, 6), "mha/key/kernel": (1, 6, 6),
             "mha/value/kernel": (1, 6, 6), "mha/attention_output/kernel": (1, 6, 6),
             "mha/query/bias": None}),
    ("batchnorm", {"bn/gamma": None, "bn/moving_mean": None, "dense/kernel": (1, 5, 4)}),
]


def keras_plans(builder):
    import keras_models

    from tensorboard_nnviz.record import structure

    model, _ = keras_models.build(builder)
    plans = {}
    for ref in structure.weight_refs(model):
        shape = tuple(ref.variable.shape)
        name = ref.tag.rsplit("/", 1)[-1]
        layout = layout_lib.choose_layout(ref.layer_class, name, shape, ref.layer_name)
        p = spectral.plan(layout, shape, ref.layer_class, name)
        plans[ref.tag] = (p.dims(shape) if p else None, np.asarray(ref.variable.numpy()), p)
    return plans


@pytest.mark.parametrize("builder, expected", KERAS_FAMILIES, ids=[b for b, _ in KERAS_FAMILIES])
def test_keras_families(builder, expected):
    plans = keras_plans(builder)
    for tag, dims in expected.items():
        assert plans[tag][0] == dims, tag
    for tag, (dims, value, p) in plans.items():
        if p is not None:
            assert_json_clean(spectral.compute(value, p))


# --- the budget --------------------------------------------------------------------------


def run_scheduler(scheduler, costs, snapshots):
    """Runs `snapshots` snapshots where computing tag t takes costs[t] seconds;
    returns [[tags computed]] per snapshot."""
    ops = [(tag, c) for tag, c in costs.items()]
    done = []
    for _ in range(snapshots):
        chosen = scheduler.select(ops)
        for tag in chosen:
            scheduler.record(tag, costs[tag])
        done.append(chosen)
    return done


def test_no_budget_computes_everything_every_snapshot():
    costs = {"a": 3.0, "b": 1.0, "c": 0.5}
    done = run_scheduler(spectral_budget.SpectralScheduler(None), costs, 3)
    assert done == [["a", "b", "c"]] * 3


def test_budget_spreads_matrices_over_snapshots_round_robin():
    costs = {"t%d" % i: 0.1 for i in range(10)}  # 1 s of work, 0.3 s per snapshot
    scheduler = spectral_budget.SpectralScheduler(0.3, seconds_per_op=1.0)
    done = run_scheduler(scheduler, costs, 8)
    assert done[0] == ["t0", "t1", "t2"]
    assert done[1] == ["t3", "t4", "t5"]
    assert done[3] == ["t9", "t0", "t1"]  # back to the oldest
    # Every tag refreshed at least every 4 snapshots, never more than the budget spent.
    for start in range(len(done) - 4):
        assert {t for snap in done[start:start + 4] for t in snap} == set(costs)
    spent = [sum(costs[t] for t in snap) for snap in done]
    assert max(spent) <= 0.3 + 1e-9


def test_costly_matrix_and_cheap_ones_all_get_their_turn():
    """A matrix costing 5 budgets (past the carry cap of 4) is still
    computed: once passed over `patience` times it is due and the credit
    builds up for it. Cheap matrices behind it are not held up meanwhile."""
    costs = {"small": 0.5, "big": 5.0, "small2": 0.5}
    scheduler = spectral_budget.SpectralScheduler(1.0, carry=4, seconds_per_op=1.0, patience=3)
    done = run_scheduler(scheduler, costs, 30)
    computed = [t for snap in done for t in snap]
    assert computed.count("big") >= 3
    # Over the run, the time spent stays within the budget on average.
    total = sum(costs[t] for t in computed)
    assert total <= 30 * 1.0 + 5.0
    first_big = next(i for i, snap in enumerate(done) if "big" in snap)
    assert first_big <= 3 + 4 + 1  # passed over 3 times, then the credit fills in 4
    assert "small2" in {t for snap in done[:3] for t in snap}  # not behind big
    # Between two computations of big, the cheap ones are computed too.
    bigs = [i for i, snap in enumerate(done) if "big" in snap]
    for a, b in zip(bigs, bigs[1:]):
        between = {t for snap in done[a + 1:b] for t in snap}
        assert {"small", "small2"} <= between


def test_auto_covers_every_matrix_at_the_first_snapshot_and_the_end():
    """The ends are outside the budget: the first snapshot computes every
    matrix without taking it off the credit, and `select_all` gives what
    the last snapshot skipped."""
    auto = spectral_budget.scheduler_for("auto")
    ops = [("big", 1e12), ("small", 1e6)]
    assert auto.select(ops) == ["big", "small"]
    auto.record("big", 2.0)
    auto.record("small", 0.001)
    assert not auto.overspent()
    assert auto.credit == 0.0
    assert auto.select_all(["small"]) == ["small"]
    assert spectral_budget.SpectralScheduler(1.0).select_all(["small"]) == []


def test_time_between_snapshots_and_writer_time_raise_the_allowance():
    costs = {"t%d" % i: 1.0 for i in range(6)}
    ops = list(costs.items())
    scheduler = spectral_budget.SpectralScheduler(0.5, share=0.1, writer_share=0.5, seconds_per_op=1.0)
    assert scheduler.select(ops) == []  # the first snapshot: 0.5 s, less than any matrix
    assert scheduler.select(ops, elapsed=1.0) == ["t0"]  # 0.5 + 0.5 s of credit
    scheduler.record("t0", 1.0)
    assert scheduler.select(ops, elapsed=60.0) == ["t1", "t2", "t3", "t4", "t5", "t0"]
    for tag in ["t1", "t2", "t3", "t4", "t5", "t0"]:
        scheduler.record(tag, 1.0)
    # The writer spent 4 s on the rest of the snapshot: 2 s more.
    assert scheduler.select(ops, elapsed=1.0, writer_seconds=4.0) == ["t0", "t1"]


def test_spectral_option():
    assert spectral_budget.scheduler_for(False) is None
    assert spectral_budget.scheduler_for(True).budget is None
    auto = spectral_budget.scheduler_for("auto")
    assert (auto.budget, auto.share, auto.writer_share) == (
        spectral_budget.AUTO_BUDGET, spectral_budget.AUTO_SHARE, spectral_budget.AUTO_WRITER_SHARE)
    assert spectral_budget.scheduler_for(0.5).budget == 0.5
    for bad in ("fast", -1, 0, [1]):
        with pytest.raises(ValueError, match="spectral must be"):
            spectral_budget.scheduler_for(bad)


def test_estimates_learn_from_measured_times():
    scheduler = spectral_budget.SpectralScheduler(1.0, seconds_per_op=1e-9)
    ops = [("a", 1e8), ("b", 1e8)]  # estimated 0.1 s each
    assert scheduler.select(ops) == ["a", "b"]
    scheduler.record("a", 0.6)
    scheduler.record("b", 0.6)
    assert scheduler.estimate("a") == pytest.approx(0.6)
    # A tag never timed is estimated from the seconds per operation measured so far.
    scheduler.select(ops + [("c", 1e8)])
    assert scheduler.estimate("c") > 0.1


def test_blas_single_thread_is_a_context():
    with spectral.blas_single_thread():
        assert spectral.compute(np.eye(12), dense_plan((12, 12)))["sv_max"] == pytest.approx(1.0)
