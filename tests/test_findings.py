"""findings.py on hand-made stats columns: each rule, its thresholds and the order.

Real training runs with planted faults are in test_diagnosis.py.
"""

import math

import pytest

from tensorboard_nnviz.serve import findings as F


def columns(steps, **stats):
    """Stats columns as /stats answers them; unspecified stats are healthy."""
    n = len(steps)
    out = {"steps": list(steps), "wall_times": [1.0e9 + s for s in steps]}
    out.update(nan=[0.0] * n, inf=[0.0] * n, l2=[1.0] * n, units_still=[None] + [0.0] * (n - 1),
               update_l2=[None] + [0.01] * (n - 1), update_ratio=[None] + [0.01] * (n - 1))
    out.update(stats)
    return out


def structure(*weights, layer_trainable=True, layer_class="Dense"):
    """A structure document; weights: (tag, trainable or None for a v1 run)."""
    layers = {}
    for tag, trainable in weights:
        path, name = tag.rsplit("/", 1)
        layer = layers.setdefault(path, {"path": path, "class": layer_class, "trainable": layer_trainable,
                                         "weights": []})
        w = {"name": name, "tag": tag, "shape": [2, 2], "dtype": "float32"}
        if trainable is not None:
            w["trainable"] = trainable
        layer["weights"].append(w)
    return {"model": {"name": "m"}, "layers": list(layers.values())}


STEPS = [0, 10, 20, 30, 40]


def kinds(found):
    return [(f["kind"], f["severity"], f["tag"], f["first_step"]) for f in found]


def test_a_healthy_run_has_no_findings():
    cols = {"d/kernel": columns(STEPS), "d/bias": columns(STEPS)}
    assert F.compute(cols, structure(("d/kernel", True), ("d/bias", True))) == []


def test_nonfinite_one_per_tag_earliest_first_and_named_first():
    cols = {
        "a/kernel": columns(STEPS, nan=[0, 0, 0, 3, 9]),
        "b/kernel": columns(STEPS, inf=[0, 0, 2, 2, 0], nan=[0, 0, 0, 0, 4]),
        "c/kernel": columns(STEPS),
    }
    found = F.compute(cols, structure(("a/kernel", True), ("b/kernel", True), ("c/kernel", True)))
    assert kinds(found) == [("nonfinite", "error", "b/kernel", 20), ("nonfinite", "error", "a/kernel", 30)]
    assert found[0]["message"] == "b/kernel: Inf at step 20 (2 entries), first of all weights"
    assert found[0]["last_step"] == 40 and found[0]["value"] == 2.0
    assert found[1]["message"] == "a/kernel: NaN at step 30 (3 entries)"


def test_exploding_by_growth_past_the_limit_of_the_first_norm():
    l2 = [0.5, 1.0, 0.5 * F.GROWTH_LIMIT, 0.5 * F.GROWTH_LIMIT * 1.01, 60.0]
    ratio = [None, 0.9, 0.5, 0.01, 0.1]  # no single jump that doubles the norm
    cols = {"d/kernel": columns(STEPS, l2=l2, update_ratio=ratio)}
    (found,) = F.compute(cols, structure(("d/kernel", True)))
    assert (found["kind"], found["severity"], found["first_step"], found["last_step"]) == (
        "exploding", "warning", 30, 40)
    assert found["value"] == pytest.approx(F.GROWTH_LIMIT * 1.01)
    assert "grew to 101× its first value by step 30" in found["message"]


def test_exploding_by_one_update_larger_than_the_weights_that_doubled_them():
    # An update > ||W_prev|| alone is not enough (healthy with sparse snapshots)...
    calm = columns(STEPS, l2=[1.0, 1.5, 2.0, 2.5, 3.0], update_ratio=[None, 1.4, 1.3, 1.2, 1.1])
    assert F.compute({"d/kernel": calm}, structure(("d/kernel", True))) == []
    # ... it takes the norm doubling with it.
    wild = columns(STEPS, l2=[1.0, 1.2, 3.0, 3.1, 3.2], update_ratio=[None, 0.3, 2.2, 0.1, 0.1])
    (found,) = F.compute({"d/kernel": wild}, structure(("d/kernel", True)))
    assert (found["kind"], found["first_step"], found["value"]) == ("exploding", 20, 2.2)
    assert "one update (step 10 to 20) was 2.2× the weights' norm before it" in found["message"]


def test_exploding_skips_weights_that_start_at_zero_and_moving_statistics():
    zero_start = columns(STEPS, l2=[0.0, 0.01, 0.1, 1.0, 10.0], update_ratio=[None, None, 9.0, 9.0, 9.0])
    moving = columns(STEPS, l2=[1.0, 50.0, 500.0, 900.0, 900.0])
    cols = {"d/bias": zero_start, "bn/moving_variance": moving}
    assert F.compute(cols, structure(("d/bias", True), ("bn/moving_variance", False))) == []


def test_frozen_trainable_weight_that_never_changed():
    still = columns(STEPS, update_l2=[None, 0.0, 0.0, 0.0, 0.0])
    cols = {"main/kernel": columns(STEPS), "branch/kernel": still, "bn/moving_mean": still}
    found = F.compute(cols, structure(("main/kernel", True), ("branch/kernel", True),
                                      ("bn/moving_mean", False)))
    assert kinds(found) == [("frozen", "warning", "branch/kernel", 0)]
    assert found[0]["last_step"] == 40
    assert found[0]["message"] == "branch/kernel: trainable, but never changed over 5 snapshots (steps 0 to 40)"


def test_frozen_needs_two_snapshots_after_the_first():
    short = columns([0, 10], update_l2=[None, 0.0])
    assert F.compute({"d/kernel": short, "e/kernel": columns([0, 10])},
                     structure(("d/kernel", True), ("e/kernel", True))) == []


def test_nothing_learns_makes_every_frozen_an_error():
    still = columns(STEPS, update_l2=[None, 0.0, 0.0, 0.0, 0.0])
    moving_stat = columns(STEPS)  # a moving mean still moves: it is not trained
    cols = {"d/kernel": still, "d/bias": still, "bn/moving_mean": moving_stat}
    found = F.compute(cols, structure(("d/kernel", True), ("d/bias", True), ("bn/moving_mean", False)))
    assert kinds(found) == [("frozen", "error", "d/kernel", 0), ("frozen", "error", "d/bias", 0)]
    assert all(f["message"].endswith("nothing learns") for f in found)


def test_version_1_structure_falls_back_to_layer_flag_and_statistic_names():
    still = columns(STEPS, update_l2=[None, 0.0, 0.0, 0.0, 0.0])
    cols = {"bn/gamma": columns(STEPS), "bn/moving_mean": still, "bn/moving_variance": still,
            "frozen_layer/kernel": still}
    doc = structure(("bn/gamma", None), ("bn/moving_mean", None), ("bn/moving_variance", None))
    doc["layers"].append({"path": "frozen_layer", "class": "Dense", "trainable": False,
                          "weights": [{"name": "kernel", "tag": "frozen_layer/kernel"}]})
    assert F.compute(cols, doc) == []
    info = F.weight_info(doc)
    assert [info[t]["trainable"] for t in ("bn/gamma", "bn/moving_mean", "frozen_layer/kernel")] == [
        True, False, False]


def test_weights_without_structure_are_not_called_frozen():
    still = columns(STEPS, update_l2=[None, 0.0, 0.0, 0.0, 0.0])
    assert F.compute({"d/kernel": still}, None) == []


def units_series(steps, rows, block=1, units=None):
    return {"steps": list(steps), "update": [list(r) for r in rows], "block": block,
            "units": units if units is not None else len(rows[0]) * block}


def test_dead_units_still_over_the_last_half_while_others_move():
    # Units 1 and 3 stop after step 10; unit 0 and 2 keep moving.
    rows = [[math.nan] * 4, [0.1, 0.1, 0.1, 0.2], [0.1, 0.0, 0.1, 0.0], [0.1, 0.0, 0.2, 0.0],
            [0.1, 0.0, 0.1, 0.0]]
    cols = {"h/kernel": columns(STEPS, units_still=[None, 0, 2, 2, 2]),
            "h/bias": columns(STEPS, units_still=[None, 0, 2, 2, 2])}
    doc = structure(("h/kernel", True), ("h/bias", True))
    assert F.needs_units(cols, doc) == ["h/kernel", "h/bias"]
    units = {"h/kernel": units_series(STEPS, rows), "h/bias": units_series(STEPS, rows)}
    (found,) = F.compute(cols, doc, units)
    assert (found["kind"], found["severity"], found["tag"], found["units"]) == (
        "dead_units", "warning", "h/kernel", [1, 3])
    assert (found["first_step"], found["last_step"]) == (10, 40)
    assert found["message"] == "h/kernel: 2 of 4 units stopped learning at step 10 (h/bias too)"


def test_dead_units_expand_blocks_and_say_never_changed():
    rows = [[math.nan] * 3] + [[0.0, 0.5, 0.5]] * 4  # block 0 = units 0..2 never moved
    cols = {"e/kernel": columns(STEPS, units_still=[None, 3, 3, 3, 3])}
    units = {"e/kernel": units_series(STEPS, rows, block=3, units=8)}
    (found,) = F.compute(cols, structure(("e/kernel", True)), units)
    assert found["units"] == [0, 1, 2] and found["first_step"] == 0
    assert found["message"] == "e/kernel: 3 of 8 units never changed: updates exactly 0 from step 0 on"


def test_not_dead_when_still_only_recently_all_still_or_an_embedding():
    recent = [[math.nan] * 2, [0.1, 0.1], [0.1, 0.1], [0.1, 0.1], [0.0, 0.1]]  # stopped at 40 > middle
    all_still = [[math.nan] * 2, [0.1, 0.1]] + [[0.0, 0.0]] * 3
    cols = {"a/kernel": columns(STEPS, units_still=[None, 0, 0, 0, 1]),
            "b/kernel": columns(STEPS, units_still=[None, 0, 2, 2, 2]),
            "emb/embeddings": columns(STEPS, units_still=[None, 1, 1, 1, 1])}
    doc = structure(("a/kernel", True), ("b/kernel", True))
    doc["layers"] += structure(("emb/embeddings", True), layer_class="Embedding")["layers"]
    assert F.needs_units(cols, doc) == ["b/kernel"]  # the counts rule out a; embeddings not judged
    units = {"a/kernel": units_series(STEPS, recent), "b/kernel": units_series(STEPS, all_still),
             "emb/embeddings": units_series(STEPS, [[math.nan] * 2] + [[0.0, 1.0]] * 4)}
    assert F.compute(cols, doc, units) == []


def test_order_is_severity_then_first_step_then_model_order():
    still = columns(STEPS, update_l2=[None, 0.0, 0.0, 0.0, 0.0])
    cols = {
        "z/kernel": columns(STEPS, nan=[0, 0, 0, 0, 1]),
        "y/kernel": still,
        "x/kernel": columns(STEPS, l2=[1.0, 1.0, 1.0, 1.0, 500.0]),
        "w/kernel": columns(STEPS, l2=[1.0, 1.0, 1.0, 1.0, 500.0]),
    }
    doc = structure(("x/kernel", True), ("w/kernel", True), ("y/kernel", True), ("z/kernel", True))
    assert kinds(F.compute(cols, doc)) == [
        ("nonfinite", "error", "z/kernel", 40),
        ("frozen", "warning", "y/kernel", 0),
        ("exploding", "warning", "x/kernel", 40),
        ("exploding", "warning", "w/kernel", 40),
    ]


def test_damaged_and_short_columns_are_skipped():
    cols = {"bad/kernel": {"error": "stats of weight 'bad/kernel': damaged"},
            "short/kernel": {"steps": [0, 1], "nan": [0]}, "ok/kernel": columns(STEPS)}
    assert F.compute(cols, None) == []


# --- alpha ------------------------------------------------------------------------------

STEPS9 = [0, 10, 20, 30, 40, 50, 60, 70, 80]  # last quarter: steps >= 60


def alpha_found(alpha, steps=STEPS9, trainable=True):
    found = F.compute({"d/kernel": columns(steps, alpha=alpha)}, structure(("d/kernel", trainable)))
    return [f for f in found if f["kind"] == "alpha"]


def test_alpha_above_six_only_at_init_is_not_a_finding():
    """Every layer starts random (alpha > 6): only the last quarter counts."""
    assert alpha_found([9.1, 8.0, 7.2, 6.5, 5.0, 4.2, 3.9, 3.8, 3.7]) == []


def test_alpha_below_two_over_the_last_quarter_is_info():
    found = alpha_found([7.0, 5.0, 3.5, 2.5, 2.2, 1.9, 1.8, 1.7, 1.6])
    assert kinds(found) == [("alpha", "info", "d/kernel", 50)]  # where it left [2, 6]
    f = found[0]
    assert f["last_step"] == 80 and f["value"] == 1.6
    assert f["message"] == ("d/kernel: alpha 1.6 < 2 since step 50: a heavy-tailed spectrum, which "
                            "weightwatcher reads as a sign of over-fitting or over-training this layer")


def test_alpha_that_never_came_below_six_is_info_from_the_first_step():
    found = alpha_found([9.0, 8.8, 8.5, 8.1, 7.9, 7.5, 7.4, 7.2, 7.1])
    assert kinds(found) == [("alpha", "info", "d/kernel", 0)]
    assert "alpha 7.1 > 6 since step 0: little structure learned yet" in found[0]["message"]


@pytest.mark.parametrize("alpha", [
    [7, 6, 5, 4, 3, 2.5, 1.9, 2.1, 1.9],  # back inside at step 70
    [7, 6, 5, 4, 3, 2.5, 1.9, 6.5, 1.9],  # out, but on both sides
    [7, 6, 5, 4, 3, 2.5, None, None, 1.9],  # one value in the last quarter
    [None] * 9,  # not a matrix, or too small to fit
])
def test_alpha_not_out_on_one_side_throughout_the_last_quarter_is_no_finding(alpha):
    assert alpha_found(alpha) == []


def test_alpha_gaps_left_by_the_budget_are_skipped():
    assert kinds(alpha_found([7, 6, 5, 4, 3, 1.9, 1.85, None, 1.8])) == [
        ("alpha", "info", "d/kernel", 50)]


def test_alpha_of_a_non_trainable_weight_is_not_judged():
    assert alpha_found([9.0] * 9, trainable=False) == []


# --- gradients ------------------------------------------------------------------------


def gradient_levels(level, tags=("a/kernel", "b/kernel", "c/kernel"), steps=range(10, 90, 10)):
    """{tag: (steps, RMS)}: every tensor's gradient RMS at `level` throughout."""
    import numpy as np

    steps = np.asarray(list(steps), np.int64)
    return {t: (steps, np.full(len(steps), level)) for t in tags}


def with_optimizer(optimizer):
    doc = structure(("a/kernel", True), ("b/kernel", True), ("c/kernel", True))
    if optimizer is not None:
        doc["model"]["optimizer"] = optimizer
    return doc


def test_below_eps_is_judged_by_the_recorded_eps_else_the_default():
    # 5e-6 everywhere: no tensor is orders below the others; only eps can flag it.
    levels = gradient_levels(5e-6)
    adam = with_optimizer({"class": "Adam", "epsilon": 1e-4})
    found = F.gradient_findings("v_rms", levels, adam)
    assert kinds(found) == [(F.VANISHING_GRADIENTS, F.WARNING, t, 50)
                            for t in ("a/kernel", "b/kernel", "c/kernel")]
    assert "below its optimizer's eps (Adam, 0.0001)" in found[0]["message"]
    assert "(from the optimizer's v_rms)" in found[0]["message"]
    assert F.gradient_findings("v_rms", levels, with_optimizer(None)) == []  # default 1e-8
    assert F.gradient_findings("v_rms", levels, with_optimizer(
        {"class": "Adam", "epsilon": 1e-7})) == []


def test_below_the_default_eps_only_for_runs_that_did_not_record_their_optimizer():
    levels = gradient_levels(1e-9)
    old = F.gradient_findings("grad", levels, with_optimizer(None))
    assert len(old) == 3 and "below Adam's eps (1e-08)" in old[0]["message"]
    # SGD has no eps: its step is proportional to the gradient anyway.
    assert F.gradient_findings("grad", levels, with_optimizer({"class": "SGD", "epsilon": None})) == []
    # A damaged entry is no eps either, never an error.
    for bad in ({"class": "Adam", "epsilon": "1e-4"}, {"class": "Adam", "epsilon": -1.0},
                {"class": "Adam", "epsilon": True}, {"class": "Adam"}):
        assert F.optimizer_epsilon(with_optimizer(bad)) == (None, "Adam has no eps")
    assert F.optimizer_epsilon({"model": {"optimizer": "Adam"}})[0] == F.ADAM_EPS


def test_eps_under_the_square_root_sets_a_floor_of_its_root():
    # Keras's RMSprop divides by sqrt(v + eps): v_rms under sqrt(1e-6) = 1e-3
    # is below that floor; torch's adds eps to sqrt(v).
    levels = gradient_levels(5e-4)
    keras_rms = with_optimizer({"class": "RMSprop", "epsilon": 1e-6})
    found = F.gradient_findings("v_rms", levels, keras_rms)
    assert len(found) == 3
    assert "below the square root of its optimizer's eps (RMSprop, sqrt(1e-06) = 0.001)" in \
        found[0]["message"]
    torch_rms = with_optimizer({"class": "RMSprop", "epsilon": 1e-6})
    torch_rms["model"]["framework"] = "torch"
    assert F.gradient_findings("v_rms", levels, torch_rms) == []


def test_a_spike_of_v_rms_is_exploding_gradients_from_the_optimizer_state():
    levels = gradient_levels(1e-3)
    steps, rms = levels["b/kernel"]
    rms[4:] = [0.3, 0.28, 0.27, 0.26]  # a gross spike stays in v_rms's running mean
    found = F.gradient_findings("v_rms", levels, with_optimizer({"class": "Adam", "epsilon": 1e-7}))
    assert kinds(found) == [(F.EXPLODING_GRADIENTS, F.WARNING, "b/kernel", 50)]
    assert found[0]["message"].endswith("(from the optimizer's v_rms)")
    rms[4:] = 1.5e-2  # 15×: under the limit
    assert F.gradient_findings("v_rms", levels, None) == []
