"""The same weights give the same frames and stats on every Keras backend.

One set of fixed weights and data (an .npz made here) trains the model of
tests/fixed_run.py on TensorFlow (in this process), and on JAX and torch
in real subprocesses run with the python of `.venv-jax` and `.venv-torch`
(built by `make envs`; their absence is a failure, not a skip). The three
runs' event files are then compared: tags, steps, layouts and structure
equal; the first snapshot (the fixed weights themselves) bit for bit, frames
and stats alike; later snapshots within float tolerance, since each backend
does its own arithmetic.
"""

import os
import subprocess

import numpy as np
import pytest

import fixed_run
import snapshot_checks as checks
from runs import read_run
from tensorboard_nnviz.core import spectral

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
OTHERS = {"jax": ".venv-jax", "torch": ".venv-torch"}


def other_python(backend):
    python = os.path.join(ROOT, OTHERS[backend], "bin", "python")
    if not os.path.exists(python):
        pytest.fail("%s is missing: `make envs` builds the JAX and torch environments" % python)
    return python


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    import keras

    assert keras.backend.backend() == "tensorflow"
    tmp = tmp_path_factory.mktemp("agree")
    fixed = str(tmp / "fixed.npz")
    fixed_run.make_fixed(fixed)
    procs = {}
    for backend in OTHERS:  # both at once, while TensorFlow trains here
        env = dict(os.environ, KERAS_BACKEND=backend)
        procs[backend] = subprocess.Popen(
            [other_python(backend), os.path.join(TESTS, "fixed_run.py"), fixed,
             str(tmp / backend)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
    try:
        fixed_run.write_run(fixed, str(tmp / "tensorflow"))
        for backend, proc in procs.items():
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0 and "wrote " + backend in out, err[-3000:]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return np.load(fixed), {b: read_run(tmp / b) for b in ("tensorflow", "jax", "torch")}


def close(a, b, **tolerance):
    """Both null (undefined, e.g. a vector's spectral stats), or approximately equal."""
    return a is None and b is None or (a is not None and b == pytest.approx(a, **tolerance))


def test_tags_steps_layouts_and_structure_are_the_same(runs):
    _, by_backend = runs
    tf = by_backend["tensorflow"]
    assert len(tf["frames"]) == 25
    for backend in OTHERS:
        run = by_backend[backend]
        assert sorted(run["frames"]) == sorted(tf["frames"]), backend
        for tag in tf["frames"]:
            assert sorted(run["frames"][tag]) == sorted(run["stats"][tag]) == [0, 1, 2, 3]
            assert run["content"][tag] == tf["content"][tag], (backend, tag)
        assert run["structure"] == tf["structure"], backend


def test_the_fixed_weights_give_identical_frames_and_stats(runs):
    fixed, by_backend = runs
    weights = {0: {k[2:]: fixed[k] for k in fixed if k.startswith("w:")}}
    for backend, run in by_backend.items():
        first = {key: {tag: {0: by_step[0]} for tag, by_step in run[key].items()}
                 for key in ("frames", "stats")}
        checks.assert_frames_match(dict(run, frames=first["frames"]), weights)
        checks.assert_stats_match(dict(run, stats=first["stats"]), weights)
        for tag in run["stats"]:  # bit for bit, not just close
            ours, theirs = run["stats"][tag][0], by_backend["tensorflow"]["stats"][tag][0]
            exact = [k for k in ours if k not in spectral.FIELDS]
            assert {k: ours[k] for k in exact} == {k: theirs[k] for k in exact}, tag
            # The eigensolver may run on other BLAS threads there (no
            # threadpoolctl in those environments): equal to rounding.
            for k in spectral.FIELDS:
                assert close(ours[k], theirs[k], rel=1e-12), (backend, tag, k)
        assert run["stats"]["encoder/e1/kernel"][0]["sv_max"] is not None


def test_training_from_them_stays_the_same_within_float_tolerance(runs):
    _, by_backend = runs
    tf = by_backend["tensorflow"]
    for backend in OTHERS:
        run = by_backend[backend]
        for tag, frames in tf["frames"].items():
            for step in (1, 2, 3):
                np.testing.assert_allclose(run["frames"][tag][step], frames[step], rtol=1e-5,
                                           atol=1e-6, err_msg="%s %s %d" % (backend, tag, step))
                ours, theirs = run["stats"][tag][step], tf["stats"][tag][step]
                for stat in ("l2", "std", "update_l2", "init_l2", "sv_max", "stable_rank"):
                    assert close(ours[stat], theirs[stat], rel=1e-3, abs=1e-6), (
                        backend, tag, step, stat)
    # Training moved every trainable weight, so step 3 is not step 0 again.
    assert not np.allclose(tf["frames"]["conv/kernel"][3], tf["frames"]["conv/kernel"][0])
