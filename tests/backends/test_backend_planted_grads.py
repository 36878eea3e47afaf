"""A planted vanishing-gradient fault in real Keras training, on this backend,
and its healthy twin (keras_quantities.deep_mlp), read back through the
plugin's reader: the `vanishing_gradients` finding names the first layers,
first layer first, though their update ratios look like everyone else's;
the twin raises neither gradient finding.

A planted gradient spike (one batch's targets × 1e4) is `exploding_gradients`
at that step. A run under Adam(epsilon=1e-4) records that eps, and its
layers, whose gradient RMS lies between Keras's default eps and 1e-4, are
below eps only by the recorded one.

Keras records `v_rms` by default on every backend (and `grad` on torch):
the finding reads the gradient RMS from `grad`, else `v_rms`.
"""

import numpy as np
import pytest

import keras_quantities as kq
from runs import read_run

LAYERS = ["d%d" % i for i in range(kq.DEPTH)] + ["out"]
GRADIENT_FINDINGS = ("vanishing_gradients", "exploding_gradients")
SPIKE_AT = 28  # a snapshot step (every 4)
EPSILON = 1e-4


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from tensorboard_nnviz.cli import local_provider

    logdir = tmp_path_factory.mktemp("planted_grads")
    kq.deep_mlp(logdir / "deep_sigmoid")
    kq.deep_mlp(logdir / "healthy_twin", healthy=True)
    kq.deep_mlp(logdir / "spike", healthy=True, spike_at=SPIKE_AT)
    kq.small_gradients(logdir / "eps", EPSILON)
    reader, _, eid = local_provider.local_reader(str(logdir))

    def findings(run):
        return reader.findings_impl(None, eid, run)["findings"]

    findings.reader, findings.eid = reader, eid
    return logdir, findings


def _last_rms(run, quantity):
    """{layer: the kernel's RMS of `quantity` at the last snapshot}."""
    out = {}
    for (tag, q), by_step in run["qstats"].items():
        layer, name = tag.split("/")[0], tag.split("/")[-1]
        if q == quantity and name == "kernel" and layer in LAYERS:
            s = by_step[max(by_step)]
            out[layer] = s["l2"] / np.sqrt(np.prod(run["content"][tag]["shape"]))
    return out


def test_the_planted_fault_is_real_and_the_weights_hide_it(runs):
    logdir, _ = runs
    run = read_run(logdir / "deep_sigmoid")
    rms = _last_rms(run, "v_rms")
    assert rms["d0"] < 1e-3 * max(rms.values())  # orders of magnitude below
    assert [rms[layer] for layer in LAYERS] == sorted(rms.values())  # shrinking backwards
    last = max(run["stats"]["d0/kernel"])
    ratios = [run["stats"][layer + "/kernel"][last]["update_ratio"] for layer in LAYERS]
    assert max(ratios) < 4 * min(ratios)  # Adam's steps: every layer looks alike


def test_vanishing_gradients_names_the_first_layers_first(runs):
    _, findings = runs
    found = [f for f in findings("deep_sigmoid") if f["kind"] == "vanishing_gradients"]
    assert found and all(f["severity"] == "warning" for f in found)
    layers = []
    for f in found:
        layer = f["tag"].split("/")[0]
        if layer not in layers:
            layers.append(layer)
    # The first layers, in order from the first, and none of the last ones.
    assert layers == LAYERS[:len(layers)], layers
    assert 1 <= len(layers) <= kq.DEPTH - 2, layers
    assert not any(f["kind"] == "exploding_gradients" for f in findings("deep_sigmoid"))


def test_the_healthy_twin_raises_no_gradient_finding(runs):
    logdir, findings = runs
    rms = _last_rms(read_run(logdir / "healthy_twin"), "v_rms")
    assert min(rms.values()) > 0.05 * max(rms.values())  # the twin is healthy indeed
    assert [f for f in findings("healthy_twin") if f["kind"] in GRADIENT_FINDINGS] == []


def test_a_gradient_spike_is_exploding_gradients_at_that_step(runs):
    _, findings = runs
    found = [f for f in findings("spike") if f["kind"] in GRADIENT_FINDINGS]
    assert found and {f["kind"] for f in found} == {"exploding_gradients"}
    assert {f["first_step"] for f in found} == {SPIKE_AT}
    layers = {f["tag"].split("/")[0] for f in found}
    assert {"d0", "out"} <= layers  # the spike reaches the first layer and the last
    assert not [f for f in findings("spike") if f["kind"] == "exploding"]  # Adam's step bounded


def test_the_run_records_its_optimizer_and_eps(runs):
    logdir, _ = runs
    run = read_run(logdir / "eps")
    [(_, doc)] = run["structure"]
    assert doc["model"]["optimizer"] == {"class": "Adam", "epsilon": EPSILON}
    assert read_run(logdir / "healthy_twin")["structure"][0][1]["model"]["optimizer"] == {
        "class": "Adam", "epsilon": 1e-7}  # Keras's default, recorded as well


def test_below_eps_is_judged_by_the_recorded_eps(runs):
    from tensorboard_nnviz.serve import findings as F

    _, findings = runs
    found = [f for f in findings("eps") if f["kind"] in GRADIENT_FINDINGS]
    quantity = "grad" if keras_backend() == "torch" else "v_rms"
    levels = {f["tag"]: f["value"] for f in found}
    # Every kernel is flagged, each by the recorded eps, none by orders below the others.
    assert {"d0/kernel", "d1/kernel", "out/kernel"} <= set(levels)
    assert all("below its optimizer's eps (Adam, 0.0001)" in f["message"] for f in found)
    assert all(1e-7 < v < EPSILON for v in levels.values())  # between Keras's default and eps
    # The same run, its optimizer unrecorded (as runs written before): nothing is below
    # the default eps, so nothing is flagged.
    reader, eid = findings.reader, findings.eid
    structure = reader.structure_impl(None, eid, "eps")
    columns = reader.stats_impl(None, eid, "eps", quantity=quantity)
    levels = {t: (np.asarray(c["steps"]), F.rms_of(c["mean"], c["std"]))
              for t, c in columns.items()}
    assert F.gradient_findings(quantity, levels, structure)
    del structure["model"]["optimizer"]
    assert F.gradient_findings(quantity, levels, structure) == []


def keras_backend():
    import keras

    return keras.backend.backend()
