"""Training-loop overhead of `tensorboard_nnviz.torch.watch` next to what torch
users log today: `SummaryWriter.add_histogram` of every parameter.

In one process, interleaved (the order rotated each round) and keeping the
minimum of several runs of each, this times a plain PyTorch training loop
(Adam, synthetic data, batch 128) of

  MLP  784-1024-1024-10                       (1.9M parameters)
  CNN  PyTorch's MNIST example without dropout: conv 1→32 3x3, conv
       32→64 3x3, max-pool, fc 9216→128, fc 128→10 (1.2M parameters)

with, every `--every` optimizer steps (and at step 0):

  none       no logging
  nnviz      watch(model, log_dir, optimizer=opt, snapshot_freq=every): the
             weights, and beside them the default quantities (the gradient
             with its frames, v_rms)
  weights    the same with quantities=(): the weights only
  histogram  SummaryWriter(log_dir).add_histogram(name, param, step) for
             every parameter (torch.utils.tensorboard)

Overhead = loop time with logging - loop time without, by the wall clock
and by this process's CPU time (all threads). A second table gives the
direct cost, steadier under load, as CPU time: the training thread's inside
our calls (watch, the step hook, close) plus our writer thread's, or the
training thread's inside add_histogram and SummaryWriter.close. Targets: ours <= 0.2 x
add_histogram's overhead and <= 2 % of the loop's time.

    python benchmarks/torch_overhead.py [--samples 10000] [--epochs 3] [--every 50] [--repeats 5]
                                        [--spectral auto] [--threads N] [--direct-only]

`--threads 1` runs torch on one thread: the copies' CPU is then all on the
training thread, and on shared cores the loops stop scattering (two
threads' barriers wait for whichever core is taken). `--direct-only` skips
the loop without logging and prints the direct cost alone (no "/ loop").
"""

import argparse
import gc
import os
import shutil
import statistics
import tempfile
import time

import torch
from torch import nn

from callback_overhead import dir_bytes  # benchmarks/, the Keras twin of this one
from tensorboard_nnviz.record import torch_watch as nnviz_torch
from tensorboard_nnviz.record.budget import format_bytes

CONFIGS = ("none", "nnviz", "weights", "histogram")
NNVIZ = {"nnviz": {}, "weights": {"quantities": ()}}  # watch's arguments of each


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024),
                         nn.ReLU(), nn.Linear(1024, 10))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(),
                         nn.Linear(128, 10))


MODELS = {"MLP 784-1024-1024-10": mlp, "CNN (MNIST example)": cnn}


class Spent:
    """Time spent on the training thread inside logging calls: by the wall
    clock (waits included) and as the thread's CPU time (steadier when other
    processes share the cores)."""

    def __init__(self):
        self.seconds = 0.0
        self.cpu = 0.0

    def timed(self, fn):
        def wrapper(*args, **kwargs):
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.cpu += time.thread_time() - cpu
        return wrapper


def run_loop(build, config, data, args):
    """(wall s, CPU s, s in calls, CPU s in calls, worker CPU s) of one
    training loop, the bytes written and the optimizer steps taken."""
    torch.manual_seed(0)
    model = build()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = data
    log_dir = tempfile.mkdtemp(prefix="nnviz_torch_bench_")
    spent = Spent()
    watcher = writer = None
    advance = nnviz_torch.Watcher.advance_to
    try:
        start, cpu = time.perf_counter(), time.process_time()
        if config in NNVIZ:
            nnviz_torch.Watcher.advance_to = spent.timed(advance)  # the hook's work
            watcher = spent.timed(nnviz_torch.watch)(model, log_dir, optimizer=opt,
                                                     snapshot_freq=args.every,
                                                     spectral=args.spectral, **NNVIZ[config])
        elif config == "histogram":
            from torch.utils.tensorboard import SummaryWriter

            writer = spent.timed(SummaryWriter)(log_dir)
            add_histogram = spent.timed(writer.add_histogram)
        step = 0
        for _ in range(args.epochs):
            for i in range(0, len(x), args.batch):
                if writer is not None and step % args.every == 0:
                    for name, p in model.named_parameters():
                        add_histogram(name, p, step)
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[i:i + args.batch]), y[i:i + args.batch]).backward()
                opt.step()
                step += 1
        worker = 0.0
        if watcher is not None:
            w = watcher.recorder.writer
            spent.timed(watcher.close)()
            worker = w.worker_cpu_seconds
        if writer is not None:
            spent.timed(writer.close)()
        times = (time.perf_counter() - start, time.process_time() - cpu, spent.seconds, spent.cpu,
                 worker)
        return times, dir_bytes(log_dir), step
    finally:
        nnviz_torch.Watcher.advance_to = advance
        shutil.rmtree(log_dir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--every", type=int, default=50, help="optimizer steps between snapshots")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--spectral", default="auto", help="watch's spectral option: auto, True, False")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--direct-only", action="store_true",
                        help="skip the loop without logging; print the direct cost only")
    args = parser.parse_args()
    args.spectral = {"True": True, "False": False}.get(args.spectral, args.spectral)
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = tuple(c for c in CONFIGS if not (args.direct_only and c == "none"))

    g = torch.Generator().manual_seed(0)
    data = (torch.randn(args.samples, 1, 28, 28, generator=g),
            torch.randint(0, 10, (args.samples,), generator=g))
    names = args.models.split(",")
    warm = argparse.Namespace(**dict(vars(args), epochs=1))
    for name in names:  # first-use imports and allocator warm-up of each configuration
        for config in configs:
            run_loop(MODELS[name], config, (data[0][:512], data[1][:512]), warm)

    results = {(m, c): [] for m in names for c in configs}
    sizes, steps = {}, 0
    for rep in range(args.repeats):
        order = configs[rep % len(configs):] + configs[:rep % len(configs)]
        for name in names:
            for config in order:
                gc.collect()
                t, size, steps = run_loop(MODELS[name], config, data, args)
                results[(name, config)].append(t)
                sizes[(name, config)] = size
                print("  run %d %-22s %-9s %7.2f s wall %7.2f s CPU %6.3f s in calls (%6.3f s CPU) "
                      "%6.3f s worker CPU" % ((rep + 1, name, config) + t), flush=True)

    snapshots = len(range(0, steps, args.every))
    print()
    print("%d samples, batch %d, %d epochs = %d optimizer steps, %d snapshots / histogram rounds "
          "(every %d steps), %d interleaved runs each; torch %s, %d threads; load average %s"
          % (args.samples, args.batch, args.epochs, steps, snapshots, args.every, args.repeats,
             torch.__version__, torch.get_num_threads(),
             " ".join("%.1f" % v for v in os.getloadavg())))
    if args.direct_only:
        print_direct_only(results, names, sizes)
        return
    header = ("| model | nnviz records | clock | loop, no logging | nnviz overhead | "
              "add_histogram overhead | nnviz / add_histogram | nnviz / loop |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in names:
        for config in NNVIZ:
            for i, clock, pick in ((0, "wall, min", min), (1, "CPU, min", min),
                                   (0, "wall, median", statistics.median)):
                base = pick([t[i] for t in results[(name, "none")]])
                ours = pick([t[i] for t in results[(name, config)]]) - base
                theirs = pick([t[i] for t in results[(name, "histogram")]]) - base
                ratio = "%.3f" % (ours / theirs) if theirs > 0 else "n/a"
                print("| %s | %s | %s | %.2f s | %+.3f s (%+.1f%%) | %+.2f s (%+.0f%%) | %s | "
                      "%+.1f%% |" % (name, _label(config), clock, base, ours, 100 * ours / base,
                                     theirs, 100 * theirs / base, ratio, 100 * ours / base))
    print()
    print("Direct cost, min over runs, as CPU time: the training thread's inside watch / its "
          "hook / close, plus our writer thread's; the training thread's inside add_histogram "
          "and SummaryWriter.close (its writer thread's protobuf and checksum work is not "
          "counted: this favours add_histogram).")
    header = ("| model | nnviz records | loop CPU, no logging | nnviz calls + worker | "
              "add_histogram calls | nnviz / add_histogram | nnviz / loop | bytes nnviz | "
              "bytes add_histogram |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in names:
        for config in NNVIZ:
            base = min(t[1] for t in results[(name, "none")])
            ours = min(t[3] + t[4] for t in results[(name, config)])
            theirs = min(t[3] for t in results[(name, "histogram")])
            print("| %s | %s | %.2f s | %.3f s | %.3f s | %.3f | %.2f%% | %s | %s |" % (
                name, _label(config), base, ours, theirs, ours / theirs, 100 * ours / base,
                format_bytes(sizes[(name, config)]), format_bytes(sizes[(name, "histogram")])))


def print_direct_only(results, names, sizes):
    """The direct cost table without the loop that logs nothing (`--direct-only`)."""
    header = ("| model | nnviz records | nnviz calls | nnviz worker | add_histogram calls | "
              "nnviz / add_histogram | bytes nnviz |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in names:
        theirs = min(t[3] for t in results[(name, "histogram")])
        for config in NNVIZ:
            best = min(results[(name, config)], key=lambda t: t[3] + t[4])
            print("| %s | %s | %.3f s | %.3f s | %.3f s | %.3f | %s |" % (
                name, _label(config), best[3], best[4], theirs, (best[3] + best[4]) / theirs,
                format_bytes(sizes[(name, config)])))


def _label(config):
    return "weights + grad, v_rms" if config == "nnviz" else "weights only"


if __name__ == "__main__":
    main()
