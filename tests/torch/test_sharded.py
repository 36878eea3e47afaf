"""FSDP2 with 2 and 4 real processes (gloo on 127.0.0.1): each rank measures
its own shards and the ranks combine the sums (record/sharded.py). The run
rank 0 writes equals, stat for stat, unit for unit and cell for cell, the
run the writer makes from the whole weights (the gathered path, fed the
weights rank 0 gathered outside the recorder), and a single-process run of
the same training (sharded_worker.py). So do the quantities (gradient,
optimizer moments), measured shard by shard as the weights are."""

import collections
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import sharded_worker as worker
import snapshot_checks as checks
import torch_models as tm
from runs import quantity_view, read_run
from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.record import structure_torch
from tensorboard_nnviz.record import writer as writer_lib

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sharded_worker.py")
STEPS = [0, 2, 4, 6]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1")


# The quantities each optimizer gives (sharded_worker.optimizer).
QUANTITIES = {"sgd": ["grad", "momentum"], "adam": ["grad", "m_hat", "v_rms"]}


@pytest.fixture(scope="module")
def singles(tmp_path_factory):
    """The single-process run of an optimizer, made once: {name: run}."""
    runs = {}

    def single(opt):
        if opt not in runs:
            out = tmp_path_factory.mktemp("single_" + opt)
            subprocess.run([sys.executable, WORKER, "single", str(out), opt], check=True,
                           timeout=120, env=_env())
            runs[opt] = read_run(out / "run")
        return runs[opt]
    return single


def _run_fsdp(out, world, opt, *extra):
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, WORKER, "fsdp", str(out), opt, str(rank),
                               str(world), port, *extra], env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
             for rank in range(world)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * world, outputs
    assert "Traceback" not in "".join(outputs) and "nnviz" not in "".join(outputs), outputs


@pytest.fixture(scope="module", params=[(2, "sgd"), (4, "sgd"), (2, "adam")],
                ids=lambda p: "%d_ranks_%s" % p)
def fsdp(request, tmp_path_factory):
    world, opt = request.param
    out = tmp_path_factory.mktemp("fsdp%d_%s" % (world, opt))
    _run_fsdp(out, world, opt)
    return Fsdp(out, opt)


Fsdp = collections.namedtuple("Fsdp", "out opt")  # a run's directory and its optimizer


def _gathered_run(truth, log_dir):
    """The run the writer makes from whole weights (the gathered path)."""
    recorded = [e for e in structure_torch.entries(worker.model()) if e.recorded]
    writer = writer_lib.SnapshotWriter(log_dir, max_cells=worker.MAX_CELLS, spectral=True)
    for step in STEPS:
        writer.write(step, [writer_lib.Weight(e.tag, truth[step][e.tag].copy(), e.layer_class,
                                              e.layer, e.dtype) for e in recorded])
    writer.close()
    return read_run(log_dir)


def test_equals_the_gathered_path_within_float32_rounding(fsdp, tmp_path):
    run = read_run(fsdp.out / "run")
    reference = _gathered_run(tm.load_steps(fsdp.out / "truth.npz"), tmp_path / "gathered")
    checks.assert_runs_equal(run, reference, rtol=2e-7, atol=1e-9)
    assert all(sorted(frames) == STEPS for frames in run["frames"].values())
    # Every family that shards has its spectrum at every snapshot (spectral=True),
    # the centred pass ran (the LayerNorm weight starts at all ones), and
    # frames were block-reduced.
    for tag in ("embed/weight", "attn/in_proj_weight", "attn/out_proj/weight", "hidden/weight",
                "out/weight"):
        assert all(run["stats"][tag][s]["sv_max"] > 0 for s in STEPS), tag
    assert run["stats"]["norm/weight"][0]["std"] == 0.0
    assert run["stats"]["norm/weight"][0]["mean"] == 1.0
    assert run["content"]["embed/weight"]["layout"]["block"] != [1, 1]


# Gradients of the rank's part of the batch, averaged: the full batch's up
# to float32 rounding. Not units_still: whether a unit's update is exactly
# 0 is that rounding (the attention's key bias has a gradient of 0 up to it).
FIELDS = [f for f in fmt.STAT_FIELDS if f != "units_still"]


# Nor, under Adam, the key bias's share of zeros: Adam divides that
# rounding by its own RMS, a step that lands near the zero threshold.
SKIP = {"sgd": (), "adam": {("attn/in_proj_bias", "zero_frac")}}


def test_equals_a_single_process_run(fsdp, singles):
    checks.assert_runs_equal(read_run(fsdp.out / "run"), singles(fsdp.opt), rtol=2e-4,
                             atol=2e-5, fields=FIELDS, skip=SKIP[fsdp.opt])


def test_quantities_equal_a_single_process_run(fsdp, singles):
    """Each quantity of every sharded parameter, measured on its shards at
    the optimizer step: stats, units and frames (block-reduced where the
    weight's are) as the single process records from whole tensors."""
    run, single = read_run(fsdp.out / "run"), singles(fsdp.opt)
    tags = sorted(run["frames"])
    want = sorted((tag, q) for tag in tags for q in QUANTITIES[fsdp.opt])
    assert sorted(single["qstats"]) == want  # the reference has them all
    assert sorted(run["qstats"]) == want
    for quantity in QUANTITIES[fsdp.opt]:
        got = quantity_view(run, quantity)
        # No gradient before the first step: from the second snapshot on.
        assert all(sorted(frames) == STEPS[1:] for frames in got["frames"].values()), quantity
        checks.assert_runs_equal(got, quantity_view(single, quantity), rtol=2e-4, atol=2e-5,
                                 fields=FIELDS, skip=SKIP[fsdp.opt])
    assert run["qcontent"][("embed/weight", "grad")]["layout"]["block"] != [1, 1]


def test_ranks_agree_on_a_quantity_one_of_them_lacks(tmp_path, singles):
    """Rank 1's optimizer has no momentum for `hidden.weight` at one
    snapshot (rank 0's has): no rank measures it there, every rank still
    enters the same collectives (no hang, no warning), and the rest of
    that snapshot is recorded as usual."""
    _run_fsdp(tmp_path, 2, "sgd", "hide")
    run, single = read_run(tmp_path / "run"), singles("sgd")
    hidden = ("hidden/weight", "momentum")
    assert sorted(run["qstats"][hidden]) == [s for s in STEPS[1:] if s != worker.HIDDEN_AT]
    assert sorted(run["qstats"]) == sorted(single["qstats"])
    for key, by_step in run["qstats"].items():
        if key != hidden:
            assert sorted(by_step) == STEPS[1:], key
    got, want = (r["qstats"][("hidden/weight", "grad")][worker.HIDDEN_AT] for r in (run, single))
    assert got["l2"] == pytest.approx(want["l2"], rel=2e-4)


def test_only_rank_0_writes(fsdp):
    files = os.listdir(fsdp.out / "run")
    assert len(files) == 1 and files[0].startswith("events.out.tfevents."), files
