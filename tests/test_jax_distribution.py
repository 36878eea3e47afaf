"""NNVizCallback under Keras's distribution API on JAX: virtual CPU devices in
one process, and two processes joined by `jax.distributed` on 127.0.0.1.

JAX reads its device count from XLA_FLAGS when it starts, so training runs
in fresh processes of the JAX environment (`.venv-jax`, built by `make
envs`: its absence fails) with tests/jax_distribution_run.py; this process
reads the event files and the weights those processes saved.
"""

import json
import os
import socket
import subprocess

import numpy as np
import pytest

import snapshot_checks as checks
from tensorboard_nnviz.core import format as fmt
from runs import quantity_view, read_run

TESTS = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(TESTS, "jax_distribution_run.py")
PYTHON = os.path.join(os.path.dirname(TESTS), ".venv-jax", "bin", "python")
STEPS = [0, 2, 4]
# Blocks of each weight the LayoutMap of `model` makes (jax_distribution_run.py).
PARTS = {"embed/embeddings": 4, "dense/kernel": 4, "dense/bias": 4, "dense_1/kernel": 8,
         "mha/query/kernel": 4, "mha/key/kernel": 4, "mha/value/kernel": 4,
         "mha/attention_output/kernel": 4}


def _start(args, devices):
    if not os.path.exists(PYTHON):
        pytest.fail("%s is missing: `make envs` builds the JAX environment" % PYTHON)
    env = dict(os.environ, KERAS_BACKEND="jax",
               XLA_FLAGS="--xla_force_host_platform_device_count=%d" % devices)
    return subprocess.Popen([PYTHON, SCRIPT] + [str(a) for a in args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(procs, timeout=240):
    """Waits for every process; kills them all if one fails or hangs."""
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0 and out.split()[-2:-1] == ["done"], err[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def _event_files(logdir):
    return [n for n in os.listdir(logdir) if n.startswith("events.out.tfevents.")]


@pytest.fixture(scope="module")
def devices_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("jax_devices")
    _finish([_start(["devices", out], devices=8)])
    return out


@pytest.mark.parametrize("name", ["data", "model"])
def test_snapshots_hold_the_whole_weight_and_equal_one_device(devices_out, name):
    single = read_run(devices_out / "single")
    run = read_run(devices_out / name)
    assert len(_event_files(devices_out / name)) == 1  # one writer
    assert sorted(run["frames"]) == sorted(single["frames"]) and len(run["frames"]) == 13
    for tag, frames in single["frames"].items():
        assert sorted(run["frames"][tag]) == STEPS
        assert run["content"][tag] == single["content"][tag]
        for step, frame in frames.items():
            np.testing.assert_allclose(run["frames"][tag][step], frame, rtol=1e-5, atol=1e-6,
                                       err_msg="%s %s step %d" % (name, tag, step))
    # Cell for cell the weights JAX gathers itself, stats included.
    weights = checks.weights_from_npz(np.load(devices_out / (name + ".npz")))
    checks.assert_frames_match(run, weights)
    checks.assert_stats_match(run, weights)
    assert not np.allclose(single["frames"]["dense/kernel"][0], single["frames"]["dense/kernel"][4])


def test_the_layout_map_really_shards_the_kernels(devices_out):
    """The comparison above is only worth something if the weights were split."""
    parts = {name: json.loads((devices_out / (name + ".json")).read_text())
             for name in ("single", "data", "model")}
    assert set(parts["single"].values()) == set(parts["data"].values()) == {1}
    assert {tag: parts["model"][tag] for tag in PARTS} == PARTS
    assert parts["model"]["dense_1/bias"] == 1


def test_sharded_weights_equal_the_gathered_path_within_float32_rounding(devices_out):
    """`model` measured its sharded weights where they lie (8 devices, each
    block counted once); the writer on the whole weights gives the same
    stats, units and frames. A kernel cut along both axes has no Gram
    matrix its blocks sum to: its spectrum is null (README, "Sharded
    weights"); every other matrix's equals the gathered one's."""
    run = read_run(devices_out / "model")
    gathered = read_run(devices_out / "model_gathered")
    spectral = ("sv_max", "stable_rank", "alpha", "alpha_weighted")
    checks.assert_runs_equal(run, gathered, rtol=2e-7, atol=1e-9,
                             skip={("dense_1/kernel", f) for f in spectral})
    for step in STEPS:
        assert all(run["stats"]["dense_1/kernel"][step][f] is None for f in spectral)
        assert gathered["stats"]["dense_1/kernel"][step]["sv_max"] > 0
        for tag in ("embed/embeddings", "dense/kernel", "mha/query/kernel",
                    "mha/attention_output/kernel"):
            assert run["stats"][tag][step]["sv_max"] > 0, (tag, step)


def test_sharded_quantities_equal_one_device(devices_out):
    """Adam's m_hat and v_rms of the sharded weights (its slots are sharded
    as they are), measured block by block: stats, units and frames as one
    device records them from whole slots, from the first step on."""
    run, single = read_run(devices_out / "model"), read_run(devices_out / "single")
    want = sorted((tag, q) for tag in single["frames"] for q in ("m_hat", "v_rms"))
    assert sorted(single["qstats"]) == want and sorted(run["qstats"]) == want
    fields = [f for f in fmt.STAT_FIELDS if f != "units_still"]
    # The attention's key bias has a gradient of 0 up to rounding (softmax
    # ignores it): its moments are that rounding, and their ratios (update
    # over norm, ...) compare noise to noise. Its frames and units are still
    # compared, absolutely.
    noise = {("mha/key/bias", f) for f in fields}
    for quantity in ("m_hat", "v_rms"):
        got = quantity_view(run, quantity)
        assert all(sorted(frames) == STEPS[1:] for frames in got["frames"].values())
        checks.assert_runs_equal(got, quantity_view(single, quantity), rtol=1e-4, atol=1e-6,
                                 fields=fields, skip=noise)
        for step in STEPS[1:]:
            assert got["stats"]["mha/key/bias"][step]["l2"] < 1e-5
            assert got["stats"]["dense/kernel"][step]["l2"] > 1e-3


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unlayout(frame, content):
    """The tensor a frame was laid out from (an exact frame)."""
    layout, shape = content["layout"], content["shape"]
    axes = layout["row_axes"] + layout["col_axes"]
    return frame.reshape([shape[a] for a in axes]).transpose(np.argsort(axes))


def test_two_processes_one_writer_and_the_other_process_shards(tmp_path):
    port = _free_port()
    _finish([_start(["processes", tmp_path, i, port], devices=4) for i in (0, 1)])
    # Both processes were given the same log_dir; only process 0 wrote.
    files = _event_files(tmp_path / "run")
    pid0 = (tmp_path / "pid_0").read_text()
    assert len(files) == 1 and files[0].split(".")[-2] == pid0, files
    run = read_run(tmp_path / "run")
    assert sorted(run["frames"]) == sorted(["mha/%s/%s" % (p, v) for p in (
        "query", "key", "value", "attention_output") for v in ("kernel", "bias")] + [
        "dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias", "embed/embeddings"])
    # Every shard either process held equals its part of process 0's snapshot,
    # including the half of dense/kernel that only process 1 held.
    only_theirs = 0
    for pid in (0, 1):
        shards = np.load(tmp_path / ("shards_%d.npz" % pid))
        for key in shards:
            tag, step, index = key.split("@")
            whole = _unlayout(run["frames"][tag][int(step)], run["content"][tag])
            part = whole[tuple(slice(a, b) for a, b in json.loads(index))]
            np.testing.assert_array_equal(part, shards[key], err_msg=key)
        if pid == 1:
            mine = {k for k in np.load(tmp_path / "shards_0.npz")}
            only_theirs = sum(k.startswith("dense/kernel@") and k not in mine for k in shards)
    assert only_theirs == 2 * len(STEPS)  # two column blocks per snapshot held by process 1 only
    assert sorted(run["frames"]["dense/kernel"]) == STEPS
    # Each process measured its own blocks of dense/kernel; the stats of the
    # whole weight (the frames are exact) are what their sums made.
    weights = {}
    for tag, frames in run["frames"].items():
        for step, frame in frames.items():
            weights.setdefault(step, {})[tag] = _unlayout(frame, run["content"][tag])
    checks.assert_stats_match(run, weights)
    # Adam's slots of dense/kernel, sharded across both processes, measured
    # there too (their values: test_sharded_quantities_equal_one_device).
    for quantity in ("m_hat", "v_rms"):
        assert sorted(run["qstats"][("dense/kernel", quantity)]) == STEPS[1:], quantity
