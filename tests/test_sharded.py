"""record/sharded.py in one process, through the real recorder and writer:
weights cut into blocks (as FSDP2 or a LayoutMap cut them) and measured
block by block give the run the writer makes of the whole weights, stat
for stat, unit for unit, cell for cell; the spectra come where `spectral`
says. The collectives across processes: tests/torch/test_sharded.py
(FSDP2) and tests/test_jax_distribution.py (JAX)."""

import collections
import itertools

import ml_dtypes
import numpy as np
import pytest

import snapshot_checks as checks
from fused_checks import blocks
from runs import read_run, synthetic_structure
from tensorboard_nnviz.core import spectral as spectral_lib
from tensorboard_nnviz.record import recorder as recorder_lib
from tensorboard_nnviz.record import sharded
from tensorboard_nnviz.record import writer as writer_lib

SPECTRAL = spectral_lib.FIELDS
COUNTS = [0, 1, 2, 3, 4]

# tag: (layer class, layer name, shape, blocks along each axis, dtype)
WEIGHTS = {
    "embed/embeddings": ("Embedding", "embed", (300, 16), (3, 1), "float32"),  # rows: FSDP2
    "query/kernel": ("EinsumDense", "query", (16, 4, 8), (1, 4, 1), "float32"),  # heads
    "dense/kernel": ("Dense", "dense", (64, 48), (1, 4), "float32"),  # columns: a LayoutMap
    "grid/kernel": ("Dense", "grid", (90, 70), (3, 2), "float32"),  # both: no Gram, no spectrum
    "wide/kernel": ("Dense", "wide", (300, 400), (2, 1), "bfloat16"),  # past the sample size
    "dense/bias": ("Dense", "dense", (70,), (4,), "float32"),
    "ln/gamma": ("LayerNormalization", "ln", (32,), (2,), "float32"),  # ones: the centred pass
}
NO_GRAM = {"grid/kernel"}

Item = collections.namedtuple("Item", "tag layer_class layer_name dtype")


def weights_at(count):
    """{tag: array} at training count `count`; NaN and Inf in one at count 3."""
    out = {}
    for i, (tag, (_, _, shape, _, dtype)) in enumerate(WEIGHTS.items()):
        rng = np.random.default_rng([i, 0])
        w = np.ones(shape) if tag == "ln/gamma" and count == 0 else rng.standard_normal(shape)
        w = w + np.random.default_rng([i, count + 1]).standard_normal(shape) * 0.01 * count
        if tag == "dense/kernel" and count == 3:
            w[5, 7], w[40, 2] = np.nan, np.inf
        out[tag] = w.astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
    return out


class Model(recorder_lib.Source):
    """The weights of `weights_at`, whole or cut into their blocks."""

    def __init__(self, cut):
        self.cut = cut
        self.count = 0
        self.items = [Item(tag, cls, name, dtype) for tag, (cls, name, _, _, dtype) in WEIGHTS.items()]

    def key(self):
        return 1

    def tensors(self):
        return self.items, 1, self.items

    def structure(self, items):
        return synthetic_structure({tag: spec[2] for tag, spec in WEIGHTS.items()})

    def copy(self, recorded, pool, writes=True):
        now = weights_at(self.count)
        out = []
        for item in recorded:
            w, (_, _, shape, parts, _) = now[item.tag], WEIGHTS[item.tag]
            if self.cut:
                shards = []
                for start, box in blocks(shape, parts):
                    buf = pool.take((item.tag, start), w[box].shape, w.dtype)
                    np.copyto(buf, w[box])
                    shards.append(sharded.Shard(start, buf))
                cut = {a for a, p in enumerate(parts) if p > 1}
                value = sharded.Sharded(shape, shards, cut)
            else:
                value = pool.take(item.tag, shape, w.dtype)
                np.copyto(value, w)
            out.append(writer_lib.Weight(item.tag, value, item.layer_class, item.layer_name,
                                         item.dtype))
        return out


def record(log_dir, cut, spectral):
    model = Model(cut)
    recorder = recorder_lib.Recorder(recorder_lib.WATCH, log_dir, snapshot_freq=1, max_cells=500,
                                     spectral=spectral, epochs=False)
    recorder.open()
    if cut:
        recorder.shards = sharded.ShardedStats(sharded.Collectives(), recorder.max_cells,
                                               spectral, writer_lib.BufferPool())
    for count in COUNTS:
        model.count = count
        recorder.snapshot(model, count)
    recorder.close()
    return read_run(log_dir)


def test_blocks_give_the_whole_weights_run(tmp_path):
    run = record(tmp_path / "blocks", cut=True, spectral=True)
    whole = record(tmp_path / "whole", cut=False, spectral=True)
    checks.assert_runs_equal(run, whole, rtol=2e-7, atol=1e-9,
                             skip={(tag, f) for tag in NO_GRAM for f in SPECTRAL})
    # What the comparison covers: reduced frames, a sampled tensor, the
    # centred pass, NaN and Inf, spectra of every matrix but the grid's.
    assert run["content"]["wide/kernel"]["layout"]["block"] != [1, 1]
    assert run["stats"]["ln/gamma"][0]["std"] == 0.0
    bad = run["stats"]["dense/kernel"][3]
    assert (bad["nan"], bad["inf"], bad["sv_max"]) == (1, 1, None)
    for count in COUNTS:
        for tag in ("embed/embeddings", "query/kernel", "dense/kernel", "wide/kernel"):
            if (tag, count) != ("dense/kernel", 3):
                assert run["stats"][tag][count]["sv_max"] > 0, (tag, count)
        assert run["stats"]["grid/kernel"][count]["sv_max"] is None
        assert whole["stats"]["grid/kernel"][count]["sv_max"] > 0


@pytest.mark.parametrize("spectral", ["auto", 0.5, False])
def test_spectra_come_at_the_same_snapshots_on_every_process(tmp_path, spectral):
    """No clock decides (each process must compute the same Gram matrices):
    "auto" gives every matrix its spectrum at the first and last snapshots
    and the longest waiting one at each snapshot; a number that one only."""
    run = record(tmp_path / "blocks", cut=True, spectral=spectral)
    whole = record(tmp_path / "whole", cut=False, spectral=True)
    matrices = ["embed/embeddings", "query/kernel", "dense/kernel", "wide/kernel"]
    have = {count: [tag for tag in matrices if run["stats"][tag][count]["sv_max"] is not None]
            for count in COUNTS}
    if spectral is False:
        assert all(not tags for tags in have.values())
        return
    middle = COUNTS[1:-1] if spectral == "auto" else COUNTS
    # One per snapshot, oldest first (dense/kernel at 3 holds NaN: null).
    assert [have[c] for c in middle] == [[m] if (m, c) != ("dense/kernel", 3) else []
                                         for c, m in zip(middle, itertools.cycle(matrices))]
    if spectral == "auto":
        assert have[COUNTS[0]] == have[COUNTS[-1]] == matrices
    for count, tags in have.items():
        for tag in tags:
            for field in SPECTRAL:
                a, b = run["stats"][tag][count][field], whole["stats"][tag][count][field]
                assert a == b or a == pytest.approx(b, rel=1e-7), (tag, count, field)
