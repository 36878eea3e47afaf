"""DistributedDataParallel and FSDP2: two real processes each (gloo on
127.0.0.1), against a single-process run of the same training
(ddp_worker.py)."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import torch_models as tm
from runs import read_run

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ddp_worker.py")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    subprocess.run([sys.executable, WORKER, "single", str(out)], check=True, timeout=120,
                   env=dict(os.environ, OMP_NUM_THREADS="1"))
    return out


@pytest.fixture(scope="module", params=["ddp", "fsdp"])
def runs(request, single, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, WORKER, request.param, str(out), str(rank), "2", port],
                              env=dict(os.environ, OMP_NUM_THREADS="1"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in range(2)]
    outputs = [p.communicate(timeout=180)[0] for p in procs]
    return single, out, [p.returncode for p in procs], outputs


def test_both_processes_exit_cleanly(runs):
    _, _, codes, outputs = runs
    assert codes == [0, 0], outputs
    assert "Traceback" not in "".join(outputs) and "nnviz" not in "".join(outputs), outputs


def test_only_rank_0_writes(runs):
    single, out, _, _ = runs
    files = os.listdir(out / "run")
    assert len(files) == 1 and files[0].startswith("events.out.tfevents."), files
    # Rank 1 trained the same weights (the replicas, or the gathered shards,
    # are equal) but wrote nothing.
    r0, r1 = tm.load_steps(out / "truth_rank0.npz"), tm.load_steps(out / "truth_rank1.npz")
    for step in r0:
        for tag in r0[step]:
            np.testing.assert_array_equal(r0[step][tag], r1[step][tag])


def test_snapshots_equal_the_single_process_runs_weights(runs):
    single, out, _, _ = runs
    run = read_run(out / "run")
    reference = read_run(single / "run")
    truth = tm.load_steps(out / "truth_rank0.npz")
    alone = tm.load_steps(single / "truth_single.npz")
    # Plain tags: no DDP `module/` prefix; whole weights, not FSDP shards.
    assert sorted(run["frames"]) == ["0/bias", "0/weight", "3/bias", "3/weight"]
    assert sorted(run["frames"]) == sorted(reference["frames"])
    # The same structure (plain class names, not FSDP2's FSDPConv2d), but
    # FSDP2's forward hooks keep torch.fx from tracing its edges.
    plain = lambda doc: [dict(layer, inbound=None) for layer in doc["layers"]]  # noqa: E731
    assert plain(run["structure"][0][1]) == plain(reference["structure"][0][1])
    edges = [layer["inbound"] for layer in run["structure"][0][1]["layers"]]
    assert edges == ([[], ["0"], ["1"], ["2"]] if "ddp" in out.name else [[]] * 4)
    for tag, frames in run["frames"].items():
        assert sorted(frames) == [0, 2, 4, 6]
        layout = run["content"][tag]["layout"]
        assert layout == reference["content"][tag]["layout"]
        assert run["content"][tag]["shape"] == list(alone[0][tag].shape)
        for step, frame in frames.items():
            w = truth[step][tag]
            np.testing.assert_array_equal(
                frame, np.transpose(w, layout["row_axes"] + layout["col_axes"]).reshape(frame.shape))
            # Averaged gradients of two half batches = the full batch's, up
            # to float rounding.
            np.testing.assert_allclose(w, alone[step][tag], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(frame, reference["frames"][tag][step], rtol=1e-5, atol=1e-6)
    assert not np.allclose(truth[6]["0/weight"], truth[0]["0/weight"])


def test_gradients_are_the_all_reduced_ones(runs):
    """DDP: rank 0 records the gradient the step applied, all-reduced: the
    average of the two half batches', which is the single process's full
    batch gradient up to float rounding. FSDP2: the same, measured on its
    DTensor shards where they lie (test_sharded.py checks every quantity)."""
    single, out, _, _ = runs
    run, reference = read_run(out / "run"), read_run(single / "run")
    assert sorted(reference["qstats"]) == [(t, "grad") for t in ("0/bias", "0/weight", "3/bias",
                                                                 "3/weight")]
    assert sorted(run["qstats"]) == sorted(reference["qstats"])
    for key, by_step in run["qstats"].items():
        assert sorted(by_step) == [2, 4, 6]
        for step, got in by_step.items():
            want = reference["qstats"][key][step]
            for field in ("l2", "mean", "max", "min"):
                assert got[field] == pytest.approx(want[field], rel=1e-4, abs=1e-7), (key, step)
