"""Spectral metrics straight from their definitions, with numpy's float64
SVD, to check spectral.py and what the writer records (tests/test_spectral.py,
tests/test_spectral_run.py, tests/torch/test_watch_spectral.py).

Tolerances of recorded metrics against this reference (spectral.py computes
eigvalsh of the float64 Gram matrix, not an SVD):
- sv_max, stable_rank: 1e-9 relative (the Gram matrix squares the condition
  number, but λ_max and Σλ are accurate to ~1e-15 of λ_max);
- alpha: 1e-8 absolute (the same xmin is chosen; the MLE then differs only
  by the rounding of the eigenvalues); alpha_weighted: 1e-7 absolute.
"""

import math

import numpy as np
import pytest

from tensorboard_nnviz.core import spectral

SV_RTOL = 1e-9
ALPHA_ATOL = 1e-8
ALPHA_WEIGHTED_ATOL = 1e-7


def full_scan_fit(evals):
    """Every candidate xmin in full, straight from the definition (the O(N²)
    search weightwatcher runs): alpha of the smallest KS distance, or None."""
    x = np.sort(np.asarray(evals, np.float64))
    x = x[x > spectral.EVALS_THRESH]
    best = (math.inf, None, None)
    for i in range(x.size - 1):
        tail = x[i:]
        n = tail.size
        with np.errstate(divide="ignore"):  # a tail of ties: alpha infinite
            alpha = 1 + n / np.sum(np.log(tail / x[i]))
        if not alpha > 1:
            continue
        d = np.max(np.abs(1 - (tail / x[i]) ** (1 - alpha) - np.arange(n) / n))
        if d < best[0]:
            best = (d, alpha, i)
    return None if best[1] is None else best[1]


def reference_metrics(slices):
    """sv_max, stable_rank, alpha, alpha_weighted from float64 SVD of each
    slice (pooled)."""
    s = np.concatenate([np.linalg.svd(np.asarray(m, np.float64), compute_uv=False) for m in slices])
    evals = s ** 2
    out = {"sv_max": float(s.max()),
           "stable_rank": float(evals.sum() / evals.max()) if evals.max() > 0 else None,
           "alpha": (full_scan_fit(evals)
                     if np.sum(evals > spectral.EVALS_THRESH) >= spectral.MIN_EVALS else None)}
    out["alpha_weighted"] = (out["alpha"] * math.log10(evals.max())
                             if out["alpha"] is not None else None)
    return out


def slices(w, framework):
    """The matrices weightwatcher reads from a Dense/Linear or 2-D conv
    weight, written here without spectral.plan: Keras conv (kh, kw, in, out)
    → W[i, j]; torch conv (out, in, kh, kw) → W[:, :, i, j]ᵀ; a matrix → itself."""
    w = np.asarray(w, np.float64)
    if w.ndim == 2:
        return [w]
    assert w.ndim == 4, w.shape
    if framework == "keras":
        return [w[i, j] for i in range(w.shape[0]) for j in range(w.shape[1])]
    return [w[:, :, i, j].T for i in range(w.shape[2]) for j in range(w.shape[3])]


def assert_metrics_match(got, want, label):
    assert got["sv_max"] == pytest.approx(want["sv_max"], rel=SV_RTOL), label
    assert got["stable_rank"] == pytest.approx(want["stable_rank"], rel=SV_RTOL), label
    if want["alpha"] is None:
        assert got["alpha"] is None and got["alpha_weighted"] is None, label
    else:
        assert got["alpha"] == pytest.approx(want["alpha"], abs=ALPHA_ATOL), label
        assert got["alpha_weighted"] == pytest.approx(want["alpha_weighted"],
                                                      abs=ALPHA_WEIGHTED_ATOL), label


def assert_recorded_spectral(run, weights, framework, matrices):
    """Every snapshot's recorded spectral fields (`run`: runs.read_run)
    equal the reference on the true weights (`weights[step][tag]`) for the
    tags in `matrices`, and are null for every other tag.

    Returns {tag: set of alphas seen} (rounded), so a test can check that
    training moved them.
    """
    seen = {}
    for tag, by_step in run["stats"].items():
        for step, stats in by_step.items():
            if tag not in matrices:
                assert all(stats[f] is None for f in spectral.FIELDS), (tag, step)
                continue
            want = reference_metrics(slices(weights[step][tag], framework))
            assert_metrics_match(stats, want, (tag, step))
            if stats["alpha"] is not None:
                seen.setdefault(tag, set()).add(round(stats["alpha"], 6))
    return seen
