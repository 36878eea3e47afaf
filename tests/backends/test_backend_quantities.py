"""The optimizer quantities the Keras callback reads (record/quantities_keras.py)
explain the steps the live optimizer takes, on this backend.

Each run trains a tiny model a few steps and reads, after every step, the
weights and `Reader`'s quantities. The checks do not repeat the reader's
formulas: they rebuild the weight change each optimizer makes from the
quantities alone (Adam: -lr * m_hat / (v_rms + eps / sqrt(1 - b2^t))), and
the gradient from the first moment's recursion, which the second moment must
then follow. A wrong t, beta, slot or bias correction breaks them.
"""

import keras
import numpy as np
import pytest

import keras_quantities as kq

BACKEND = keras.backend.backend()


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_step_is_m_hat_over_v_rms(amsgrad):
    steps = kq.train(keras.optimizers.Adam(kq.LR, amsgrad=amsgrad))
    assert [s["t"] for s in steps] == list(range(kq.STEPS + 1))
    assert "m_hat" not in steps[0]["a"]  # no state before the first step
    for prev, cur in kq.pairs(steps):
        for name in ("a", "b"):
            kq.check_adam_step(prev[name], cur[name], cur["t"], amsgrad=amsgrad)


def test_adamw_decays_then_steps():
    steps = kq.train(keras.optimizers.AdamW(kq.LR, weight_decay=0.1))
    for prev, cur in kq.pairs(steps):
        t = cur["t"]
        p, c = prev["a"], cur["a"]
        eps_hat = 1e-7 / np.sqrt(1 - 0.999 ** t)
        expected = -kq.LR * 0.1 * p["w"] - kq.LR * c["m_hat"] / (c["v_rms"] + eps_hat)
        kq.close(c["w"] - p["w"], expected, "step %d" % t)


def test_nadam_step_from_its_moments():
    b1, b2 = 0.9, 0.999
    steps = kq.train(keras.optimizers.Nadam(kq.LR))

    def u(i):
        return b1 * (1 - 0.5 * 0.96 ** i)

    for prev, cur in kq.pairs(steps):
        t = cur["t"]
        p, c = prev["a"], cur["a"]
        g = kq.grad_from_m(p, c, b1, t)
        kq.check_second_moment(p, c, g, b2, t)
        u_prod = np.prod([u(i) for i in range(1, t + 1)])
        m = c["m_hat"] * (1 - b1 ** t)
        nesterov = u(t + 1) * m / (1 - u_prod * u(t + 1)) + (1 - u(t)) * g / (1 - u_prod)
        # Nadam adds eps after the bias correction, as PyTorch does.
        kq.close(c["w"] - p["w"], -kq.LR * nesterov / (c["v_rms"] + 1e-7), "step %d" % t)


def test_adamax_v_rms_is_the_infinity_norm():
    steps = kq.train(keras.optimizers.Adamax(kq.LR))
    for prev, cur in kq.pairs(steps):
        t = cur["t"]
        p, c = prev["a"], cur["a"]
        kq.close(c["w"] - p["w"], -kq.LR * c["m_hat"] / (c["v_rms"] + 1e-7), "step %d" % t)
        g = kq.grad_from_m(p, c, 0.9, t)
        u_prev = p.get("v_rms", 0.0)
        kq.close(c["v_rms"], np.maximum(0.999 * u_prev, np.abs(g)), "u at t=%d" % t)


@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_momentum_is_the_step_subtracted(centered):
    steps = kq.train(keras.optimizers.RMSprop(kq.LR, momentum=0.5, centered=centered))
    for prev, cur in kq.pairs(steps):
        p, c = prev["a"], cur["a"]
        assert "m_hat" not in c
        kq.close(c["w"] - p["w"], -c["momentum"], "step %d" % cur["t"])
        assert (c["v_rms"] > 0).all()


def test_rmsprop_v_rms_is_sqrt_of_the_stored_average():
    # Without momentum the step is lr * g / sqrt(v + eps): |g| from the step,
    # then v must follow v_t = rho v_{t-1} + (1 - rho) g^2, no bias correction.
    steps = kq.train(keras.optimizers.RMSprop(kq.LR, rho=0.9))
    for prev, cur in kq.pairs(steps):
        p, c = prev["a"], cur["a"]
        assert "momentum" not in c
        g = -(c["w"] - p["w"]) * np.sqrt(c["v_rms"] ** 2 + 1e-7) / kq.LR
        v_prev = p["v_rms"] ** 2 if "v_rms" in p else 0.0
        kq.close(c["v_rms"] ** 2, 0.9 * v_prev + 0.1 * g ** 2, "v at t=%d" % cur["t"])


def test_sgd_momentum_is_in_parameter_units():
    steps = kq.train(keras.optimizers.SGD(kq.LR, momentum=0.9))
    for prev, cur in kq.pairs(steps):
        p, c = prev["a"], cur["a"]
        kq.close(c["w"] - p["w"], c["momentum"], "step %d" % cur["t"])  # w += m


def test_sgd_without_momentum_has_no_slot_quantities():
    steps = kq.train(keras.optimizers.SGD(kq.LR))
    assert all(set(s["a"]) <= {"w", "grad"} for s in steps)


def test_loss_scale_optimizer_reads_its_inner_optimizer():
    steps = kq.train(keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(kq.LR)))
    pairs = kq.pairs(steps)
    assert len(pairs) == kq.STEPS  # no overflow on this model: every step applied
    for prev, cur in pairs:
        kq.check_adam_step(prev["a"], cur["a"], cur["t"])


def test_gradient_accumulation_corrects_with_the_real_step_count():
    steps = kq.train(keras.optimizers.Adam(kq.LR, gradient_accumulation_steps=2))
    # 6 micro-batches: 3 real updates; iterations counts those.
    assert [s["t"] for s in steps] == [0, 0, 1, 1, 2, 2, 3]
    pairs = kq.pairs(steps)
    assert len(pairs) == 3
    for prev, cur in pairs:
        kq.check_adam_step(prev["a"], cur["a"], cur["t"], "update")
    # Between real updates neither weights nor moments move, and no grad is
    # claimed (the averaged gradient is gone once applied).
    for s in steps:
        assert "grad" not in s["a"]
    np.testing.assert_array_equal(steps[1]["a"]["w"], steps[0]["a"]["w"])
    np.testing.assert_array_equal(steps[3]["a"]["m_hat"], steps[2]["a"]["m_hat"])


def test_grad_exists_on_the_torch_backend_only():
    steps = kq.train(keras.optimizers.Adam(kq.LR))
    has = ["grad" in s["a"] for s in steps]
    if BACKEND == "torch":
        assert has == [False] + [True] * kq.STEPS  # none before the first step
    else:
        assert not any(has)


# --- the written run ------------------------------------------------------------------

ALL = kq.fmt.QUANTITIES


def _recorded(tmp_path, optimizer, **kwargs):
    import keras_models as km
    from runs import read_run

    model, data = km.build("mlp")
    model.compile(optimizer, "mse")
    live = kq.live_quantities()
    km.train_run(str(tmp_path), model=(model, data), epochs=2, steps=4, callbacks=[live],
                 snapshot_freq=2, quantities=ALL, quantity_frames=True, **kwargs)
    return read_run(tmp_path), live.values


def _assert_quantities_match(run, values, expected_names):
    """Each written quantity's stats and frames equal the live values at its
    step; the run holds exactly `expected_names` for every trained weight."""
    from runs import reference_frame

    names = {q for _, q in run["qstats"]}
    assert names == set(expected_names)
    assert {tag for tag, _ in run["qstats"]} == set(run["stats"])  # every weight has them
    for name in expected_names:
        stats = {tag: s for (tag, q), s in run["qstats"].items() if q == name}
        truth = {t: {tag: v[tag, name] for tag in stats} for t, v in values.items()}
        steps = sorted(next(iter(stats.values())))
        assert steps == [2, 4, 6, 8], name  # no quantity before the first step
        kq.assert_stats_close(stats, truth)
        frames = {tag: f for (tag, q), f in run["qframes"].items() if q == name}
        assert sorted(frames) == sorted(stats)
        for tag, by_step in frames.items():  # laid out as its weight, cell for cell
            layout = run["content"][tag]["layout"]
            for step, frame in by_step.items():
                expected = reference_frame(truth[step][tag], layout)
                np.testing.assert_allclose(frame, expected, rtol=1e-5,
                                           atol=1e-6 * np.abs(expected).max())


def test_written_adam_quantities_equal_the_live_optimizer(tmp_path):
    run, values = _recorded(tmp_path, keras.optimizers.Adam(0.01))
    expected = ("grad", "m_hat", "v_rms") if BACKEND == "torch" else ("m_hat", "v_rms")
    _assert_quantities_match(run, values, expected)


def test_written_sgd_momentum_equals_the_live_buffer(tmp_path):
    run, values = _recorded(tmp_path, keras.optimizers.SGD(0.05, momentum=0.9))
    _assert_quantities_match(run, values, ("grad", "momentum") if BACKEND == "torch"
                             else ("momentum",))


def test_written_loss_scale_quantities_are_the_inner_optimizers(tmp_path):
    opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(0.01))
    run, values = _recorded(tmp_path, opt)
    expected = ("grad", "m_hat", "v_rms") if BACKEND == "torch" else ("m_hat", "v_rms")
    _assert_quantities_match(run, values, expected)
    # The grad is unscaled: of the order of the model's, not 2**15 times it.
    if BACKEND == "torch":
        assert max(s["absmax"] for (t, q), by in run["qstats"].items() if q == "grad"
                   for s in by.values()) < 100


def test_written_quantities_under_gradient_accumulation(tmp_path):
    # 8 micro-batches, 2 per update: snapshots every 2 batches at updates 1..4.
    run, values = _recorded(tmp_path, keras.optimizers.Adam(0.01, gradient_accumulation_steps=2))
    by_step = {q: sorted(next(by for (t, n), by in run["qstats"].items() if n == q))
               for q in ("m_hat", "v_rms")}
    assert by_step == {"m_hat": [1, 2, 3, 4], "v_rms": [1, 2, 3, 4]}
    assert {q for _, q in run["qstats"]} == {"m_hat", "v_rms"}  # no grad: it is gone
    for name in ("m_hat", "v_rms"):
        stats = {tag: s for (tag, q), s in run["qstats"].items() if q == name}
        kq.assert_stats_close(stats,
                                  {t: {tag: v[tag, name] for tag in stats}
                                   for t, v in values.items()})


def test_quantities_off_writes_weights_only(tmp_path):
    import keras_models as km
    from runs import read_run

    km.train_run(str(tmp_path), epochs=1, steps=2, snapshot_freq=1, quantities=())
    run = read_run(tmp_path)
    assert run["stats"] and not run["qstats"] and not run["qframes"]


def test_an_optimizer_we_cannot_read_leaves_the_weights_recorded(tmp_path, monkeypatch):
    import keras_models as km
    from runs import read_run

    def unreadable(self, variable, take):
        raise RuntimeError("a slot layout we do not know")

    monkeypatch.setattr(kq.qk.Reader, "read", unreadable)
    with pytest.warns(RuntimeWarning, match="could not read the optimizer's quantities"):
        model, _, history = km.train_run(str(tmp_path), epochs=1, steps=2, snapshot_freq=1,
                                         quantities=ALL)
    assert len(history.history["loss"]) == 1  # training went on
    run = read_run(tmp_path)
    assert len(run["stats"]) == len(model.weights)
    assert all(sorted(by) == [0, 1, 2] for by in run["stats"].values())
    assert run["qstats"] == {}
