"""Training that spans processes, for real, on 127.0.0.1: two workers of a
`tf.distribute.MultiWorkerMirroredStrategy` joined by TF_CONFIG, and two
ranks of a `torch.distributed` group with Keras on torch. Only the chief
(rank 0) writes; both processes train and exit cleanly. Every process is
killed if one fails or does not finish in time.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import snapshot_checks as checks
from runs import read_run, steps_of

TESTS = os.path.dirname(os.path.abspath(__file__))
TORCH_PYTHON = os.path.join(os.path.dirname(TESTS), ".venv-torch", "bin", "python")
TIMEOUT = 240


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _run_all(commands):
    """Starts every (argv, env) at once and waits for all; returns their
    outputs. A failure or a hang of one kills them all."""
    procs = [subprocess.Popen(argv, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **env),
                              cwd=TESTS, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for argv, env in commands]
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 0 and out.split()[-1:] == ["done"], (
                proc.returncode, out[-1000:], err[-3000:])
            outputs.append(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return outputs


def _only_file_is_from(logdir, pid):
    files = [n for n in os.listdir(logdir) if n.startswith("events.out.tfevents.")]
    assert len(files) == 1 and files[0].split(".")[-2] == str(pid), files


def test_multi_worker_mirrored_strategy_chief_writes_the_replicas_weights(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": ["127.0.0.1:%d" % p for p in ports]}
    logdir = tmp_path / "run"
    _run_all([
        ([sys.executable, "multi_worker_run.py", str(logdir), str(tmp_path)],
         {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
        for i in (0, 1)])
    # Both workers were given the same log_dir: the file is the chief's alone.
    _only_file_is_from(logdir, (tmp_path / "pid_0").read_text())
    run = read_run(logdir)
    assert steps_of(logdir) == [0, 2, 4, 6, 8]
    chief = checks.weights_from_npz(np.load(tmp_path / "worker_0.npz"))
    other = checks.weights_from_npz(np.load(tmp_path / "worker_1.npz"))
    assert sorted(other) == list(range(9))  # it trained all 8 steps too
    for step in (0, 2, 4, 6, 8):
        for tag, value in other[step].items():  # the replicas stay in sync
            np.testing.assert_array_equal(chief[step][tag], value, err_msg="%s %d" % (tag, step))
    # The chief's snapshots are the weights the other worker holds.
    checks.assert_frames_match(run, other)
    checks.assert_stats_match(run, other)
    assert not np.allclose(other[0]["dense/kernel"], other[8]["dense/kernel"])


TORCH_RANK = """
import os, sys
import torch.distributed as dist
rank, port, logdir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
dist.init_process_group("gloo", init_method="tcp://127.0.0.1:" + port, rank=rank, world_size=2)
import keras_models as km
model, cb, history = km.train_run(logdir, epochs=2)
assert len(history.history["loss"]) == 2
dist.barrier()  # rank 1 trained to the end as well
dist.destroy_process_group()
print(os.getpid())
print("done")
"""


def test_torch_distributed_only_rank_0_writes(tmp_path):
    if not os.path.exists(TORCH_PYTHON):
        pytest.fail("%s is missing: `make envs` builds the torch environment" % TORCH_PYTHON)
    port = str(_free_ports(1)[0])
    logdir = tmp_path / "run"
    outs = _run_all([([TORCH_PYTHON, "-c", TORCH_RANK, str(rank), port, str(logdir)],
                      {"KERAS_BACKEND": "torch"}) for rank in (0, 1)])
    _only_file_is_from(logdir, outs[0].split()[-2])
    assert steps_of(logdir) == [0, 4, 8]
