"""Rank 0's peak memory under FSDP2 with `watch`, at 2 and 4 processes:
sharded weights measured where they lie (record/sharded.py) against the
gathered path (each weight gathered whole by every rank, `full_tensor()`),
and the per-byte figures a larger model's cost follows from.

Real processes on 127.0.0.1 (gloo). The model: 16 Linear(1024, 1024)
without bias (64 MiB of float32), `fully_shard` per layer and at the
root, SGD on random data for STEPS steps, a snapshot at every step
(STEPS + 1 snapshots, spectral=False). Per world size and mode:

  none      no recording (the baseline)
  gathered  watch, each weight gathered whole on every rank (the path
            before record/sharded.py, forced by reporting the fused
            kernel unavailable)
  sharded   watch, shards measured where they lie (weights only, as
            `gathered`, which records no quantity of a sharded parameter)
  grad      `sharded` with the gradient too (quantities=("grad",), the
            default's one quantity under SGD), measured shard by shard

Every mode loads numba and the fused kernel first (a one-time cost, the
same at any N, printed apart), then resets the process's peak RSS
(/proc/self/clear_refs) and trains. Printed: the peak RSS over training
and its snapshots that rank 0 adds over `none` (VmHWM above the RSS
before training), its ratio from 2 to 4 processes (1/N would be 0.5), under
glibc's malloc as it comes and with its mmap threshold fixed
(MALLOC_MMAP_THRESHOLD_=131072: glibc raises the threshold when a large
block is freed, after which training's own blocks of that size stay in
the heap; the fixed threshold shows what recording holds), and rank 0's
per-snapshot figures in
`sharded` mode: the fused pass over its shards (seconds per MiB of its
shards: W, with W_prev and W_0 read beside), the bytes its collectives
moved (partial buffers) and their seconds per MiB (loopback gloo). Then a
7B-parameter model on 8 ranks, from those figures (the README, "Sharded
weights").

    python benchmarks/sharded_memory.py [--steps 4] [--worlds 2 4]
    python benchmarks/sharded_memory.py worker MODE OUT RANK WORLD PORT STEPS   (one process)
"""

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time

LAYERS, WIDTH = 16, 1024
MODES = ("none", "gathered", "sharded", "grad")
RECORDED = ("gathered", "sharded", "grad")
FIXED = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def worker(mode, out, rank, world, port, steps):
    import torch
    from torch import nn
    from torch.distributed.fsdp import fully_shard

    from tensorboard_nnviz.record import sharded as sharded_lib
    from tensorboard_nnviz.record import torch_watch

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    figures = {"pass_s": 0.0, "shard_bytes": 0, "coll_s": 0.0, "coll_bytes": 0, "snapshots": 0}
    if mode == "gathered":
        sharded_lib.available = lambda: False
    if mode == "sharded":  # the per-snapshot figures: the weights alone
        _instrument(sharded_lib, torch_watch, figures)
    before = _status("VmRSS")
    _warm_kernel()
    figures["kernel_kib"] = _status("VmHWM") - before
    torch.manual_seed(0)
    net = nn.Sequential(*[nn.Linear(WIDTH, WIDTH, bias=False) for _ in range(LAYERS)])
    for layer in net:
        fully_shard(layer)
    fully_shard(net)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    x = torch.randn(32, WIDTH)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak RSS from here on
    start = _status("VmRSS")
    watcher = None
    if mode != "none":
        watcher = torch_watch.watch(net, os.path.join(out, "run"), optimizer=opt, snapshot_freq=1,
                                    spectral=False,
                                    quantities=("grad",) if mode == "grad" else ())
    for _ in range(steps):
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()
    if watcher is not None:
        watcher.close()
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    figures["peak_kib"] = _status("VmHWM") - start
    with open(os.path.join(out, "rank%d.json" % rank), "w") as f:
        json.dump(figures, f)


def _status(key):
    """A /proc/self/status figure in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])


def _warm_kernel():
    """Loads numba and the fused kernel as a snapshot does."""
    import numpy as np

    from tensorboard_nnviz.core import layout as layout_lib
    from tensorboard_nnviz.record import stats

    w = np.ones((64, 64), np.float32)
    layout = dict(layout_lib.choose_layout("torch.nn.Linear", "weight", w.shape), block=[2, 2])
    stats.measure(w, w, w, layout["unit_axes"], layout=layout, frame_dtype=np.float16)


def _instrument(sharded_lib, torch_watch, figures):
    """Times the fused pass over this rank's shards and its collectives."""
    accumulate = sharded_lib.ShardedStats._accumulate
    run = torch_watch._TorchCollectives._run
    snapshot = sharded_lib.ShardedStats._snapshot

    def timed_accumulate(self, part, w, t):
        start = time.perf_counter()
        accumulate(self, part, w, t)
        figures["pass_s"] += time.perf_counter() - start
        figures["shard_bytes"] += sum(s.data.nbytes for s in w.value.shards)

    def timed_run(self, buf, op, chief=False):
        start = time.perf_counter()
        out = run(self, buf, op, chief)
        figures["coll_s"] += time.perf_counter() - start
        figures["coll_bytes"] += buf.nbytes
        return out

    def counted_snapshot(self, *args):
        figures["snapshots"] += 1
        return snapshot(self, *args)

    sharded_lib.ShardedStats._accumulate = timed_accumulate
    torch_watch._TorchCollectives._run = timed_run
    sharded_lib.ShardedStats._snapshot = counted_snapshot


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(mode, world, steps, env=None):
    """Rank 0's figures of one run of `world` processes."""
    with tempfile.TemporaryDirectory() as out:
        port = _free_port()
        env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
        procs = [subprocess.Popen([sys.executable, __file__, "worker", mode, out, str(rank),
                                   str(world), str(port), str(steps)], env=env)
                 for rank in range(world)]
        if any(p.wait() for p in procs):
            raise SystemExit("a worker failed (%s, %d processes)" % (mode, world))
        with open(os.path.join(out, "rank0.json")) as f:
            return json.load(f)


def llama_7b_shapes():
    """The weight shapes of a Llama-2-7B (6.7B parameters): 32 blocks of
    q, k, v, o (4096 x 4096), gate, up (11008 x 4096), down (4096 x 11008)
    and two norms; the embedding and head (32000 x 4096); the last norm."""
    block = [("Linear", (4096, 4096))] * 4 + [("Linear", (11008, 4096))] * 2 + [
        ("Linear", (4096, 11008)), ("LayerNorm", (4096,)), ("LayerNorm", (4096,))]
    return ([("Embedding", (32000, 4096))] + block * 32 + [("LayerNorm", (4096,)),
                                                          ("Linear", (32000, 4096))])


def partial_bytes(shapes, max_cells=65536):
    """Bytes of the partial buffers of every weight (what is combined)."""
    from tensorboard_nnviz.core import layout_torch
    from tensorboard_nnviz.core import layout as layout_lib
    from tensorboard_nnviz.record import stats

    total = 0
    for cls, shape in shapes:
        layout = layout_torch.choose_layout("torch.nn." + cls, "weight", shape)
        block = layout_lib.frame_block(layout, shape, max_cells)
        layout = dict(layout, block=[int(b) for b in block])
        plan = stats.fused_plan(shape, layout["unit_axes"], layout)
        total += 8 * stats.partial_size(plan, math.prod(shape))
    return total


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--worlds", type=int, nargs="+", default=[2, 4])
    args = parser.parse_args(argv)
    mib = 1 << 20
    print("FSDP2, %d x Linear(%d, %d): %.0f MiB of float32; %d snapshots; load %s"
          % (LAYERS, WIDTH, WIDTH, LAYERS * WIDTH * WIDTH * 4 / mib, args.steps + 1,
             os.getloadavg()))
    added, figures = {}, {}
    for malloc, env in (("malloc as it comes", None), ("mmap threshold fixed", FIXED)):
        for world in args.worlds:
            results = {mode: run(mode, world, args.steps, env) for mode in MODES}
            for mode in RECORDED:
                added[malloc, mode, world] = (
                    results[mode]["peak_kib"] - results["none"]["peak_kib"]) / 1024
            figures.setdefault(world, results["sharded"])
        print("\nrank 0's peak RSS over training added by recording (MiB), %s" % malloc)
        print("%-12s" % "processes" + "".join("%10d" % w for w in args.worlds)
              + ("%10s" % ("%d -> %d" % (args.worlds[0], args.worlds[-1]))))
        for mode in RECORDED:
            row = [added[malloc, mode, w] for w in args.worlds]
            print("%-12s" % mode + "".join("%10.0f" % v for v in row) + "%10.2f" % (row[-1] / row[0]))
    print("\nnumba and the fused kernel, loaded once per process: %.0f MiB of peak RSS"
          % (figures[args.worlds[0]]["kernel_kib"] / 1024))
    print("\nrank 0 per snapshot, sharded")
    print("%-10s%14s%14s%14s%16s%14s" % ("processes", "shard MiB", "pass s/MiB", "moved MiB",
                                        "collective s", "s/MiB moved"))
    for world, f in figures.items():
        n = max(1, f["snapshots"])
        print("%-10d%14.1f%14.4f%14.2f%16.3f%14.4f"
              % (world, f["shard_bytes"] / n / mib, f["pass_s"] / max(f["shard_bytes"] / mib, 1e-9),
                 f["coll_bytes"] / n / mib, f["coll_s"] / n,
                 f["coll_s"] / max(f["coll_bytes"] / mib, 1e-9)))
    # A 7B model on 8 ranks, from the figures of the smallest world measured
    # (2 processes on this machine's 2 cores: one core each).
    f = figures[args.worlds[0]]
    pass_rate = f["pass_s"] / (f["shard_bytes"] / mib)
    coll_rate = f["coll_s"] / (f["coll_bytes"] / mib)
    shapes = llama_7b_shapes()
    params = sum(math.prod(s) for _, s in shapes)
    ranks = 8
    shard = params * 4 / ranks  # float32 host copies
    moved = partial_bytes(shapes)
    print("\n7B on %d ranks (Llama-2-7B shapes, %.2fB parameters), per snapshot and rank:"
          % (ranks, params / 1e9))
    print("  host memory: %.1f GiB (its shards' copy, W_prev and W_0 in float32; gathered: "
          "rank 0 holds them whole, %.0f GiB)" % (3 * shard / (1 << 30), 3 * params * 4 / (1 << 30)))
    print("  partial buffers combined: %.0f MiB (%.2f %% of the model's float32 bytes)"
          % (moved / mib, 100 * moved / (params * 4)))
    print("  fused pass over its shards: %.1f s at %.4f s/MiB" % (shard / mib * pass_rate, pass_rate))
    print("  collectives: %.1f s at %.4f s/MiB (this machine's loopback gloo)"
          % (moved / mib * coll_rate, coll_rate))
    gram_s, eig_s = _spectral_rates()
    side = 4096
    print("  a spectrum (a 4096-sided Gram): %.0f MiB reduced (%.1f s), its blocks' Gram %.1f s "
          "per rank, the eigensolve %.0f s on rank 0 (4096 x 11008 at %.2f s per 1e9 multiply-adds;"
          " eigvalsh 1024 in %.2f s, times 64)"
          % (side * side * 8 / mib, side * side * 8 / mib * coll_rate,
             side * side * 11008 / ranks / 1e9 * gram_s, 64 * eig_s, gram_s, eig_s))


def _spectral_rates():
    """(seconds per 1e9 multiply-adds of a Gram, seconds of eigvalsh of a
    1024-sided Gram), on one BLAS thread as the writer runs them."""
    import numpy as np

    from tensorboard_nnviz.core import spectral

    x = np.random.default_rng(0).standard_normal((4096, 1024))
    with spectral.blas_single_thread():
        start = time.perf_counter()
        gram = x.T @ x
        gram_s = (time.perf_counter() - start) / (4096 * 1024 * 1024 / 1e9)
        start = time.perf_counter()
        np.linalg.eigvalsh(gram)
        eig_s = time.perf_counter() - start
    return gram_s, eig_s


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2], sys.argv[3], *map(int, sys.argv[4:8]))
    else:
        main(sys.argv[1:])
