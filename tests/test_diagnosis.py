"""Findings of real training runs with planted faults (planted.py), read back
through reader.py on TensorBoard's data provider: exactly the planted
faults, and nothing on healthy runs. The same runs on a real TensorBoard,
both ingesters, are in test_units_e2e.py.
"""

import numpy as np
import pytest

import planted


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from tensorboard_nnviz.cli import local_provider

    logdir = tmp_path_factory.mktemp("planted")
    recorders = planted.train_planted(logdir)
    r, provider, eid = local_provider.local_reader(str(logdir))

    def findings(run):
        return r.findings_impl(None, eid, run)["findings"]

    return recorders, findings


def summary(found):
    return [(f["kind"], f["severity"], f["tag"]) for f in found]


def test_dead_relu_units_are_exactly_the_planted_ones(runs):
    recorders, findings = runs
    (found,) = findings("dead_relu")
    assert summary([found]) == [("dead_units", "warning", "hidden/kernel")]
    assert found["units"] == planted.DEAD_UNITS
    steps = sorted(recorders["dead_relu"].weights)
    assert (found["first_step"], found["last_step"]) == (0, steps[-1])
    assert found["message"] == ("hidden/kernel: 4 of 16 units never changed: updates exactly 0 "
                                "from step 0 on (hidden/bias too)")
    # The true weights agree: those columns never moved, every other did.
    first, last = recorders["dead_relu"].weights[0], recorders["dead_relu"].weights[steps[-1]]
    moved = np.flatnonzero((first["hidden/kernel"] != last["hidden/kernel"]).any(axis=0))
    assert sorted(set(range(16)) - set(moved)) == planted.DEAD_UNITS


def test_a_branch_multiplied_by_zero_is_frozen(runs):
    _, findings = runs
    assert summary(findings("zero_branch")) == [("frozen", "warning", "branch/kernel"),
                                                ("frozen", "warning", "branch/bias")]


def test_huge_learning_rate_nonfinite_at_the_true_first_nan_step_after_exploding(runs):
    recorders, findings = runs
    found = findings("huge_lr")
    bad = {f["tag"]: f for f in found if f["kind"] == "nonfinite"}
    rec = recorders["huge_lr"]
    tags = ["dense/kernel", "dense/bias", "out/kernel", "out/bias"]
    assert sorted(bad) == sorted(tags)
    for tag in tags:
        assert bad[tag]["first_step"] == planted.first_nonfinite_step(rec, tag), tag
        assert bad[tag]["severity"] == "error"
    exploding = [f for f in found if f["kind"] == "exploding"]
    assert exploding and all(f["severity"] == "warning" for f in exploding)
    assert min(f["first_step"] for f in exploding) < min(f["first_step"] for f in bad.values())
    # Errors first, each group by first step.
    order = [(["error", "warning", "info"].index(f["severity"]), f["first_step"]) for f in found]
    assert order == sorted(order)


@pytest.mark.parametrize("run, trainable", [
    ("lr_zero", ["dense/kernel", "dense/bias", "bn/gamma", "bn/beta", "out/kernel", "out/bias"]),
    ("bfloat16", ["dense/kernel", "dense/bias", "out/kernel", "out/bias"]),
])
def test_nothing_learns_is_an_error_per_trainable_weight(runs, run, trainable):
    recorders, findings = runs
    found = findings(run)
    assert summary(found) == [("frozen", "error", tag) for tag in trainable]
    assert all("nothing learns" in f["message"] for f in found)
    weights = recorders[run].weights
    first, last = weights[min(weights)], weights[max(weights)]
    assert all(np.array_equal(first[t], last[t]) for t in trainable)  # truly unchanged


@pytest.mark.parametrize("run", ["healthy", "healthy_bn_frozen"])
def test_healthy_runs_have_no_findings(runs, run):
    _, findings = runs
    assert findings(run) == []
