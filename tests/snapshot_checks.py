"""Checks of a recorded run against the true weights, shared by the callback
tests on every backend (tests/test_callback.py, tests/backends).

`weights` is `{step: {tag: np.ndarray}}`, e.g. `keras_models.recorder().weights`;
`run` is `runs.read_run(logdir)`.
"""

import math

import numpy as np
import pytest

from runs import reference_frame
from tensorboard_nnviz.core import format as fmt


def weights_from_npz(npz):
    """`{step: {tag: array}}` from an .npz whose keys are "tag@step"."""
    out = {}
    for key in npz:
        tag, step = key.rsplit("@", 1)
        out.setdefault(int(step), {})[tag] = npz[key]
    return out


def assert_frames_match(run, weights):
    """Every (exact) frame equals the layout of the true weight, cell for cell."""
    for tag, frames in run["frames"].items():
        content = run["content"][tag]
        layout = content["layout"]
        assert layout["block"] == [1, 1], tag
        for step, frame in frames.items():
            w = weights[step][tag]
            assert content["shape"] == list(w.shape), tag
            expected = reference_frame(w, layout).astype(np.float32)
            assert frame.shape == (content["rows"], content["cols"]) == expected.shape
            np.testing.assert_array_equal(frame, expected, err_msg="%s step %d" % (tag, step))


def assert_stats_match(run, weights):
    """The stats of every snapshot equal numpy's on the true weights."""
    for tag, by_step in run["stats"].items():
        steps = sorted(by_step)
        w0 = weights[steps[0]][tag].astype(np.float64)
        for i, step in enumerate(steps):
            s = by_step[step]
            w = weights[step][tag].astype(np.float64)
            assert s["mean"] == pytest.approx(w.mean(), rel=1e-6, abs=1e-9)
            assert s["std"] == pytest.approx(w.std(), rel=1e-6, abs=1e-9)
            assert s["min"] == pytest.approx(w.min()) and s["max"] == pytest.approx(w.max())
            assert s["l2"] == pytest.approx(np.linalg.norm(w), rel=1e-6)
            assert s["absmax"] == pytest.approx(np.abs(w).max())
            assert s["p01"] == pytest.approx(np.percentile(w, 1), rel=1e-5, abs=1e-7)
            assert s["p99"] == pytest.approx(np.percentile(w, 99), rel=1e-5, abs=1e-7)
            assert s["zero_frac"] == pytest.approx(np.mean(np.abs(w) <= 1e-8))
            assert s["nan"] == 0 and s["inf"] == 0
            assert s["init_l2"] == pytest.approx(np.linalg.norm(w - w0), rel=1e-6, abs=1e-12)
            if i == 0:
                assert s["update_l2"] is None and s["update_ratio"] is None
                continue
            prev = weights[steps[i - 1]][tag].astype(np.float64)
            assert s["update_l2"] == pytest.approx(np.linalg.norm(w - prev), rel=1e-6,
                                                   abs=1e-12)
            assert s["update_absmax"] == pytest.approx(np.abs(w - prev).max(), abs=1e-12)


def _close(a, b, rtol, atol):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)


def assert_runs_equal(run, reference, rtol, atol, fields=fmt.STAT_FIELDS, skip=()):
    """Every weight's content, every stat of `fields`, every unit and every
    frame cell of `run` equal `reference`'s within the tolerances (a
    float16 frame: one float16 step more), at the same steps; `skip`:
    (tag, field) pairs not compared."""
    assert sorted(run["frames"]) == sorted(reference["frames"])
    for tag, frames in reference["frames"].items():
        assert run["content"][tag] == reference["content"][tag], tag
        assert run["units_content"][tag] == reference["units_content"][tag], tag
        assert sorted(run["frames"][tag]) == sorted(frames), tag
        reduced = run["content"][tag]["layout"]["block"] != [1, 1]
        for step, want in frames.items():
            got = run["frames"][tag][step]
            label = "%s step %d" % (tag, step)
            with np.errstate(invalid="ignore"):  # NaN and Inf cells: compared as equal
                slack = np.abs(np.spacing(want.astype(np.float16))).astype(np.float32) \
                    if reduced else 0
                np.testing.assert_array_less(np.abs(got - want),
                                             rtol * np.abs(want) + atol + slack + 1e-30,
                                             err_msg=label)
            for field in fields:
                if (tag, field) not in skip:
                    a, b = run["stats"][tag][step][field], reference["stats"][tag][step][field]
                    assert _close(a, b, rtol, atol), (label, field, a, b)
            for key in ("norm", "update"):
                a, b = run["units"][tag][step][key], reference["units"][tag][step][key]
                if b is None:
                    assert a is None, (label, key)
                else:
                    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=label + key)
