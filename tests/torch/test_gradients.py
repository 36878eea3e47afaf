"""Gradients and optimizer state recorded by `watch` in real torch
training: their stats against the live optimizer, the gradient findings on
planted faults (and their absence on a healthy twin), and the quantity=
routes in a real TensorBoard on both ingesters."""

import numpy as np
import pytest
import torch

import grad_runs as G
from runs import read_run
from tb_server import TensorBoardServer
from tensorboard_nnviz.serve import findings as F
from tensorboard_nnviz.torch import watch


def _stats_of(x):
    x = np.asarray(x, np.float64)
    return {"l2": np.linalg.norm(x), "mean": x.mean(), "max": x.max(), "min": x.min()}


def _check(got, want, what):
    for k, v in _stats_of(want).items():
        assert got[k] == pytest.approx(v, rel=1e-5, abs=1e-12), (what, k)


@pytest.mark.parametrize("make, expected", [
    (lambda p: torch.optim.Adam(p, 1e-2), {"grad", "m_hat", "v_rms"}),
    (lambda p: torch.optim.AdamW(p, 1e-2, amsgrad=True), {"grad", "m_hat", "v_rms"}),
    (lambda p: torch.optim.SGD(p, 0.1, momentum=0.9), {"grad", "momentum"}),
    (lambda p: torch.optim.RMSprop(p, 1e-2, momentum=0.5, centered=True),
     {"grad", "v_rms", "momentum"}),
    (lambda p: torch.optim.Adagrad(p, 0.1), {"grad", "v_rms"}),
], ids=["adam", "adamw_amsgrad", "sgd_momentum", "rmsprop_centred", "adagrad"])
def test_quantities_equal_the_live_optimizer_at_the_snapshot_step(tmp_path, make, expected):
    """At each snapshot step, each quantity's stats equal the values computed
    from the optimizer right after that step: p.grad, exp_avg/(1-b1^t),
    sqrt(v/(1-b2^t)) with amsgrad's max_exp_avg_sq, RMSprop's centred
    sqrt(square_avg - grad_avg^2), Adagrad's sqrt(sum), momentum_buffer."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    opt = make(model.parameters())
    live = {}

    def keep(optimizer, args, kwargs):  # registered after watch's hook: the same step
        live[len(live) + 1] = {name: _live(optimizer, p) for name, p in model.named_parameters()}

    w = watch(model, tmp_path, optimizer=opt, snapshot_freq=4,
              quantities=("grad", "m_hat", "v_rms", "momentum"))
    opt.register_step_post_hook(keep)
    for _ in range(8):
        opt.zero_grad()
        model(torch.randn(16, 6)).pow(2).mean().backward()
        opt.step()
    w.close()
    run = read_run(tmp_path)
    assert {q for _, q in run["qstats"]} == expected
    for (tag, quantity), by_step in run["qstats"].items():
        assert sorted(by_step) == [4, 8]  # none at step 0: no gradient or state yet
        for step, got in by_step.items():
            _check(got, live[step][tag.replace("/", ".")][quantity], (tag, quantity, step))


def _live(opt, p):
    state, group = opt.state[p], opt.param_groups[0]
    out = {"grad": p.grad.detach().numpy().copy()}
    if "momentum_buffer" in state and state["momentum_buffer"] is not None:
        out["momentum"] = state["momentum_buffer"].numpy().copy()
    if "exp_avg" in state:
        t = float(state["step"])
        b1, b2 = group["betas"]
        v = state["max_exp_avg_sq"] if group["amsgrad"] else state["exp_avg_sq"]
        out["m_hat"] = state["exp_avg"].numpy() / (1 - b1 ** t)
        out["v_rms"] = np.sqrt(v.numpy().astype(np.float64) / (1 - b2 ** t))
    if "square_avg" in state:
        out["v_rms"] = np.sqrt(state["square_avg"].numpy().astype(np.float64)
                               - state["grad_avg"].numpy().astype(np.float64) ** 2)
    if "sum" in state:
        out["v_rms"] = np.sqrt(state["sum"].numpy().astype(np.float64))
    return out


def test_a_fused_step_under_a_grad_scaler_records_unscaled_gradients_and_skips_overflow(tmp_path):
    """A fused Adam gets the scale from the scaler and unscales inside its
    kernel, writing the unscaled gradients back: the recorded gradient is
    the unscaled one. A step it skipped for an Inf gradient (its hooks run
    all the same) is not counted as a step, nor snapshotted."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(model.parameters(), 1e-2, fused=True)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    unscaled = {}
    w = watch(model, tmp_path, optimizer=opt, snapshot_freq=1, quantities=("grad",))
    for i in range(4):
        opt.zero_grad()
        loss = model(torch.randn(8, 4)).pow(2).mean()
        if i == 2:
            loss = loss * float("inf")  # overflow: the scaler skips this step
        scaler.scale(loss).backward()
        unscaled[i] = model.weight.grad.detach().numpy() / scaler.get_scale()
        scaler.step(opt)
        scaler.update()
    w.close()
    assert w.skipped_steps == 1
    run = read_run(tmp_path)
    grads = run["qstats"][("weight", "grad")]
    assert sorted(grads) == [1, 2, 3]  # 4 steps, one skipped
    for step, i in ((1, 0), (2, 1), (3, 3)):
        _check(grads[step], unscaled[i], step)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("grads")
    runs = {}
    for name, make, kwargs in (("vanishing", G.sigmoid_mlp, {}),
                               ("healthy", G.healthy_mlp, {}),
                               ("healthy_each_step", G.healthy_mlp, {"snapshot_freq": 1}),
                               ("spike", G.healthy_mlp, {"spike_at": 80})):
        model = make()
        G.train(model, root / name, **kwargs)
        runs[name] = model
    return root, runs


def _findings(tb, run, kinds=(F.VANISHING_GRADIENTS, F.EXPLODING_GRADIENTS)):
    return [f for f in tb.get_json("findings", {"run": run})["findings"] if f["kind"] in kinds]


@pytest.fixture(scope="module", params=[False, True], ids=["python", "rustboard"])
def tb(request, planted):
    with TensorBoardServer(planted[0], load_fast=request.param) as server:
        server.wait_for(lambda: len(server.get_json("runs")["runs"]) == 4)
        for run in ("vanishing", "healthy", "healthy_each_step", "spike"):  # loaded to the end
            server.wait_for(lambda: _loaded(server, run))
        yield server


def _loaded(server, run):
    r = server.get("stats", {"run": run, "tag": "0/weight", "quantity": "grad"})
    return r.status == 200 and r.json()["steps"][-1:] == [120] \
        and server.get_json("stats", {"run": run, "tag": "0/weight"})["steps"][-1:] == [120]


def test_vanishing_gradients_name_the_first_layers_first_while_their_updates_look_healthy(
        tb, planted):
    model = planted[1]["vanishing"]
    found = _findings(tb, "vanishing")
    assert found and {f["kind"] for f in found} == {F.VANISHING_GRADIENTS}
    layers = [f["tag"].rpartition("/")[0] for f in found]
    order = [t.rpartition("/")[0] for t in G.linear_tags(model)]
    assert layers[0] == order[0], "the first layer first"
    assert layers == sorted(layers, key=order.index), "in model order"
    assert set(layers) == set(order[:len(set(layers))]), "the first layers, none skipped"
    assert order[-1] not in layers
    # What the weights alone show of those layers: updates at least as large,
    # relative to the weights, as the last layer's, and no finding at all.
    stats = tb.get_json("stats", {"run": "vanishing", "fields": "update_ratio"})
    last = stats[G.linear_tags(model)[-1]]["update_ratio"][-1]
    for f in found:
        assert stats[f["tag"]]["update_ratio"][-1] > last
    weights_findings = [f for f in tb.get_json("findings", {"run": "vanishing"})["findings"]
                        if f["tag"] in {g["tag"] for g in found}
                        and f["kind"] != F.VANISHING_GRADIENTS]
    assert weights_findings == []


def test_a_gradient_spike_is_exploding_gradients_at_that_step(tb):
    found = _findings(tb, "spike")
    assert found and {f["kind"] for f in found} == {F.EXPLODING_GRADIENTS}
    assert {f["first_step"] for f in found} == {80}
    assert not _findings(tb, "spike", (F.EXPLODING,))  # Adam's step stayed bounded


def test_the_healthy_twin_raises_neither(tb):
    assert _findings(tb, "healthy") == []
    assert _findings(tb, "healthy_each_step") == []  # every mini-batch's noise in view


def test_below_eps_is_judged_by_the_eps_the_run_recorded(tmp_path):
    from tensorboard_nnviz.cli import local_provider

    # The healthy twin's gradients (within an order of each other) × 1e-4:
    # between torch's default eps and the 1e-4 the run uses.
    G.train(G.healthy_mlp(), tmp_path / "eps", steps=60, eps=1e-4, loss_factor=1e-4)
    reader, _, eid = local_provider.local_reader(str(tmp_path))
    structure = reader.structure_impl(None, eid, "eps")
    assert structure["model"]["optimizer"] == {"class": "Adam", "epsilon": 1e-4}
    found = [f for f in reader.findings_impl(None, eid, "eps")["findings"]
             if f["kind"] in (F.VANISHING_GRADIENTS, F.EXPLODING_GRADIENTS)]
    weights = G.linear_tags(G.healthy_mlp())
    assert {f["tag"] for f in found} >= set(weights)  # every layer, by eps alone
    assert all("below its optimizer's eps (Adam, 0.0001)" in f["message"] for f in found)
    assert all(1e-8 < f["value"] < 1e-4 for f in found)
    # Without the recorded optimizer (a run written before), torch's default
    # 1e-8 is the bar: nothing is below it.
    columns = reader.stats_impl(None, eid, "eps", quantity="grad")
    levels = {t: (np.asarray(c["steps"]), F.rms_of(c["mean"], c["std"]))
              for t, c in columns.items()}
    del structure["model"]["optimizer"]
    assert F.gradient_findings("grad", levels, structure) == []


def test_the_structure_names_an_optimizer_without_eps_as_such(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with watch(model, str(tmp_path), optimizer=opt, snapshot_freq=1):
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
    [(_, doc)] = read_run(tmp_path)["structure"]
    assert doc["model"]["optimizer"] == {"class": "SGD", "epsilon": None}


def test_findings_equal_a_fresh_computation_over_the_http_answers(tb):
    for run in ("vanishing", "spike", "healthy", "healthy_each_step"):
        columns = tb.get_json("stats", {"run": run})
        grads = tb.get_json("stats", {"run": run, "quantity": "grad"})
        structure = tb.get_json("structure", {"run": run})
        want = F.compute(columns, structure, {}, gradients=("grad", grads))
        got = tb.get_json("findings", {"run": run})["findings"]
        strip = lambda fs: [f for f in fs if f["kind"] != F.DEAD_UNITS]  # noqa: E731 (units not read here)
        assert strip(got) == strip(want)


def test_quantity_routes_on_both_ingesters(tb, planted):
    model = planted[1]["healthy"]
    tensors = {t["tag"]: t for t in tb.get_json("tags", {"run": "healthy"})["tensors"]}
    kernel = tensors["0/weight"]
    assert kernel["quantities"] == ["weights", "grad", "v_rms"]
    assert kernel["frame_quantities"] == ["weights", "grad"]
    r = tb.get("frame", {"run": "healthy", "tag": "0/weight", "quantity": "grad"})
    assert r.status == 200 and r.headers.get("X-NNViz-Step") == "120"
    frame = np.frombuffer(r.body, "<f4").reshape(kernel["rows"], kernel["cols"])
    # torch's (out, in) Linear weight is laid out inputs down the rows
    np.testing.assert_allclose(frame, model[0].weight.grad.numpy().T, rtol=1e-6)
    stats = tb.get_json("stats", {"run": "healthy", "tag": "0/weight", "quantity": "v_rms"})
    assert stats["steps"] == list(range(10, 121, 10)) and len(stats["l2"]) == 12
    assert stats["sv_max"] == [None] * 12  # no spectral stats for a quantity
    both = tb.get_json("stats", {"run": "healthy", "quantity": "grad", "fields": "l2"})
    assert set(both) == set(tensors) - {t for t in tensors if "running" in t}
    r = tb.get("units", {"run": "healthy", "tag": "0/weight", "stat": "norm", "quantity": "grad"})
    assert r.status == 200 and r.headers.get("X-NNViz-Rows") == "12"
    for params, status in [({"quantity": "gradient"}, 400), ({"quantity": "m_hat"}, 404),
                           ({"quantity": "momentum"}, 404)]:
        for route, extra in (("frame", {}), ("stats", {}), ("units", {"stat": "norm"})):
            r = tb.get(route, dict({"run": "healthy", "tag": "0/weight"}, **extra, **params))
            assert r.status == status, (route, params, r.status, r.body[:200])
            assert b"error" in r.body
    r = tb.get("frame", {"run": "healthy", "tag": "0/weight", "quantity": "v_rms"})
    assert r.status == 404 and b"without frames" in r.body
    assert tb.get("stats", {"run": "healthy", "quantity": "m_hat"}).status == 404
