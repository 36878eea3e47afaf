"""Cost and accuracy of ways to get the spectral metrics of every matrix of a
model at one snapshot, side by side, against float64 SVD.

Models: keras.applications ResNet50 (weights=None) and the 784-1024-1024-10
MLP; their matrices as tensorboard_nnviz.core.spectral.plan reads them (Dense
kernels; conv kernels as kh·kw in × out slices, eigenvalues pooled).

Spectrum methods (eigenvalues of WᵀW, pooled over the slices):

  svd64          np.linalg.svd, float64, one call per slice     (reference)
  svd32-batch    np.linalg.svd, float32, all slices in one call
  gram64-loop    eigvalsh of the smaller Gram matrix, float64, one slice at a time
  gram64-batch   the same, all slices of a tensor in one (k, m, m) call  (spectral.eigenvalues)
  gram32-batch   the same in float32
  gram64-2stage  gram64-loop with LAPACK's two-stage eigensolver
                 (dsyevd_2stage, through ctypes from the OpenBLAS in numpy's
                 Linux wheel; left out where that library is not found)
  power          sv_max only: block power iteration (8 vectors, to 1e-7)
                 on the Gram matrices, batched; stable_rank from ‖W‖_F²

Then the fit of alpha, on the reference eigenvalues: spectral.fit_alpha
(the bounded search) against a full scan of every candidate xmin (what
weightwatcher's WWFit does), the writer's CPU per snapshot with and
without spectral metrics (SnapshotWriter's worker CPU, 3 snapshots), and
the spectral CPU per snapshot under SpectralScheduler for each `spectral=`
option (auto, or a budget in seconds), snapshots back to back.

Printed: CPU seconds per snapshot (this process, all threads) and the wall
time, each as a ratio of the reference; the largest relative error of sv_max
and stable_rank and the largest absolute error of alpha over the model's
matrices; and how many alphas differ by more than 1e-6.

    python benchmarks/spectral_methods.py [--models resnet50,mlp] [--repeats 3]
        [--blas-threads 1|default] [--budgets auto,0.1,0.25,0.5]
"""

import argparse
import contextlib
import math
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tensorboard_nnviz.core import layout as layout_lib  # noqa: E402
from tensorboard_nnviz.core import spectral  # noqa: E402
from tensorboard_nnviz.record import spectral_budget  # noqa: E402

# --- models ---------------------------------------------------------------------------


def build(name):
    import keras

    keras.utils.set_random_seed(0)
    if name == "resnet50":
        return keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3))
    layers = [keras.Input((784,))]
    layers += [keras.layers.Dense(u, activation="relu") for u in (1024, 1024)]
    layers.append(keras.layers.Dense(10))
    return keras.Sequential(layers)


def weights_of(model):
    """[(tag, layer_class, value)] for every weight, as the callback tags them."""
    from tensorboard_nnviz.record import structure

    return [(r.tag, r.layer_class, r.layer_name, np.asarray(r.variable.numpy()))
            for r in structure.weight_refs(model)]


def matrices_of(weights):
    """[(tag, value, plan)] of the weights that are matrices."""
    out = []
    for tag, cls, layer_name, value in weights:
        name = tag.rsplit("/", 1)[-1]
        layout = layout_lib.choose_layout(cls, name, value.shape, layer_name)
        p = spectral.plan(layout, value.shape, cls, name)
        if p is not None:
            out.append((tag, value, p))
    return out


# --- spectrum methods --------------------------------------------------------------------


def svd64(w, p):
    x = spectral.matrices(w, p).astype(np.float64)
    return np.sort(np.concatenate([np.linalg.svd(s, compute_uv=False) ** 2 for s in x]))


def svd32_batch(w, p):
    x = spectral.matrices(w, p).astype(np.float32)
    return np.sort((np.linalg.svd(x, compute_uv=False).astype(np.float64) ** 2).ravel())


def gram64_loop(w, p):
    x = spectral.matrices(w, p).astype(np.float64)
    out = []
    for s in x:
        g = s.T @ s if s.shape[0] >= s.shape[1] else s @ s.T
        out.append(np.linalg.eigvalsh(g))
    return np.sort(np.maximum(np.concatenate(out), 0.0))


def gram64_batch(w, p):
    return spectral.eigenvalues(w, p, dtype=np.float64)


def gram32_batch(w, p):
    return spectral.eigenvalues(w, p, dtype=np.float32)


def power_sv_max(w, p, block=8, tol=1e-7, max_iter=200):
    """(λ_max, ‖W‖_F²) by block power iteration on each slice's Gram matrix."""
    x = spectral.matrices(w, p).astype(np.float32)
    xt = np.swapaxes(x, 1, 2)
    g = xt @ x if x.shape[1] >= x.shape[2] else x @ xt
    rng = np.random.default_rng(0)
    v = rng.standard_normal((g.shape[0], g.shape[1], min(block, g.shape[1]))).astype(np.float32)
    lam = np.zeros(g.shape[0])
    for _ in range(max_iter):
        v, _ = np.linalg.qr(g @ v)
        ritz = np.linalg.eigvalsh(np.swapaxes(v, 1, 2) @ g @ v)[:, -1].astype(np.float64)
        if np.all(np.abs(ritz - lam) <= tol * np.abs(ritz)):
            lam = ritz
            break
        lam = ritz
    fro = float(np.einsum("ij,ij->", x.reshape(-1, x.shape[-1]).astype(np.float64),
                          x.reshape(-1, x.shape[-1]).astype(np.float64)))
    return float(lam.max()), fro


def _lapacke_2stage():
    """LAPACKE's dsyevd_2stage from the OpenBLAS bundled with numpy's wheel
    (Linux), or None: the two-stage tridiagonal reduction (a band matrix by
    level-3 BLAS, then bulge chasing), which numpy does not expose."""
    import ctypes
    import glob

    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs",
                                  "libscipy_openblas64_*.so"))
    try:
        fn = ctypes.CDLL(libs[0]).scipy_LAPACKE_dsyevd_2stage64_
    except (IndexError, OSError, AttributeError):
        return None
    fn.restype = ctypes.c_int64
    fn.argtypes = [ctypes.c_int, ctypes.c_char, ctypes.c_char, ctypes.c_int64, ctypes.c_void_p,
                   ctypes.c_int64, ctypes.c_void_p]
    return fn


def gram64_2stage(w, p, _fn=[]):
    if not _fn:
        _fn.append(_lapacke_2stage())
    x = spectral.matrices(w, p).astype(np.float64)
    out = []
    for s in x:
        g = np.ascontiguousarray(s.T @ s if s.shape[0] >= s.shape[1] else s @ s.T)
        evals = np.empty(g.shape[0])
        info = _fn[0](101, b"N", b"L", g.shape[0], g.ctypes.data, g.shape[0], evals.ctypes.data)
        assert info == 0, info
        out.append(evals)
    return np.sort(np.maximum(np.concatenate(out), 0.0))


METHODS = [("svd64", svd64), ("svd32-batch", svd32_batch), ("gram64-loop", gram64_loop),
           ("gram64-batch", gram64_batch), ("gram32-batch", gram32_batch)]
if _lapacke_2stage() is not None:
    METHODS.append(("gram64-2stage", gram64_2stage))


def full_scan_alpha(evals):
    """Every candidate xmin's KS distance in full: weightwatcher's O(N²) search,
    written from its formula."""
    x = np.sort(np.asarray(evals, np.float64))
    x = x[x > spectral.EVALS_THRESH]
    count = x.size
    if count < spectral.MIN_EVALS:
        return None
    logs = np.log(x)
    best = (math.inf, None)
    for i in range(count - 1):
        n = count - i
        alpha = 1 + n / (logs[i:].sum() - n * logs[i])
        if not alpha > 1:
            continue
        d = np.abs(1 - (x[i:] / x[i]) ** (1 - alpha) - np.arange(n) / n).max()
        if d < best[0]:
            best = (d, alpha)
    return best[1]


# --- timing ------------------------------------------------------------------------------


def timed(fn, repeats):
    """(best CPU seconds, best wall seconds, last result) over `repeats` runs."""
    cpu, wall, result = [], [], None
    for _ in range(repeats):
        c, t = time.process_time(), time.perf_counter()
        result = fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
    return min(cpu), min(wall), result


def rel(a, b):
    if a is None or b is None:
        return 0.0 if a is b else math.inf
    return abs(a - b) / max(abs(b), 1e-300)


def absdiff(a, b):
    if a is None or b is None:
        return 0.0 if a is b else math.inf
    return abs(a - b)


def compare(model_name, mats, repeats):
    print("\n== %s: %d matrices, %d pooled eigenvalues, load %s" % (
        model_name, len(mats), sum(p.num_evals(w.shape) for _, w, p in mats), loadavg()))
    spectra = {}
    times = {}
    for name, fn in METHODS:
        cpu, wall, res = timed(lambda: [fn(w, p) for _, w, p in mats], repeats)
        spectra[name], times[name] = res, (cpu, wall)
    cpu, wall, power = timed(lambda: [power_sv_max(w, p) for _, w, p in mats], repeats)
    times["power"] = (cpu, wall)
    ref = [spectral.metrics(e) for e in spectra["svd64"]]
    fit_cpu, fit_wall, _ = timed(lambda: [spectral.fit_alpha(e) for e in spectra["svd64"]], repeats)
    scan_cpu, scan_wall, scan = timed(lambda: [full_scan_alpha(e) for e in spectra["svd64"]], 1)
    ref_cpu, ref_wall = times["svd64"]
    print("%-14s %9s %7s %9s %7s %11s %11s %10s %8s" % (
        "spectrum", "CPU s", "ratio", "wall s", "ratio", "sv_max err", "s.rank err",
        "alpha err", "alpha≠"))
    for name, _ in METHODS:
        got = [spectral.metrics(e) for e in spectra[name]]
        cpu, wall = times[name]
        print("%-14s %9.3f %7.2f %9.3f %7.2f %11.1e %11.1e %10.1e %8d" % (
            name, cpu, cpu / ref_cpu, wall, wall / ref_wall,
            max(rel(g["sv_max"], r["sv_max"]) for g, r in zip(got, ref)),
            max(rel(g["stable_rank"], r["stable_rank"]) for g, r in zip(got, ref)),
            max(absdiff(g["alpha"], r["alpha"]) for g, r in zip(got, ref)),
            sum(absdiff(g["alpha"], r["alpha"]) > 1e-6 for g, r in zip(got, ref))))
    cpu, wall = times["power"]
    sv_err = max(rel(math.sqrt(lam), r["sv_max"]) for (lam, _), r in zip(power, ref))
    sr_err = max(rel(fro / lam if lam > 0 else None, r["stable_rank"])
                 for (lam, fro), r in zip(power, ref))
    print("%-14s %9.3f %7.2f %9.3f %7.2f %11.1e %11.1e %10s %8s" % (
        "power (σ only)", cpu, cpu / ref_cpu, wall, wall / ref_wall, sv_err, sr_err, "-", "-"))
    mism = sum(absdiff(spectral.fit_alpha(e), s) > 1e-9 for e, s in zip(spectra["svd64"], scan))
    print("fit of alpha: fit_alpha %.3f s CPU (%.3f wall), full scan %.3f s CPU (%.3f wall): "
          "%.0fx faster; %d of %d alphas differ by > 1e-9" % (
              fit_cpu, fit_wall, scan_cpu, scan_wall, scan_cpu / max(fit_cpu, 1e-9),
              mism, len(scan)))
    return times["gram64-batch"][0] + fit_cpu


def writer_cpu(weights, snapshots=3):
    """SnapshotWriter's worker CPU seconds per snapshot (stats, frames, encoding)."""
    from tensorboard_nnviz.record import writer as writer_lib

    with tempfile.TemporaryDirectory() as logdir:
        writer = writer_lib.SnapshotWriter(logdir)
        try:
            for i in range(snapshots):
                snap = [writer_lib.Weight(tag, value + np.float32(1e-3 * i), cls, layer, str(value.dtype))
                        for tag, cls, layer, value in weights]
                writer.write(i, snap)
        finally:
            writer.close()
        return writer.worker_cpu_seconds / snapshots


def budget_run(mats, option, writer_seconds, snapshots=12):
    """Spectral CPU per snapshot under the `spectral=` option's scheduler
    (snapshots back to back: no share of the time between them), and the
    snapshots it takes until every matrix has been computed once."""
    scheduler = spectral_budget.scheduler_for(option)
    ops = [(tag, spectral.cost(w.shape, p)) for tag, w, p in mats]
    by_tag = {tag: (w, p) for tag, w, p in mats}
    seen, spent, full_after = set(), [], None
    for s in range(snapshots):
        total = 0.0
        for tag in scheduler.select(ops, writer_seconds=writer_seconds):
            c = time.thread_time()
            spectral.compute(*by_tag[tag])
            dt = time.thread_time() - c
            scheduler.record(tag, dt)
            total += dt
            seen.add(tag)
        spent.append(total)
        if full_after is None and len(seen) == len(mats):
            full_after = s + 1
    return spent, full_after


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet50,mlp")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budgets", default="auto,0.1,0.25,0.5",
                        help="spectral= options to simulate: auto or seconds per snapshot")
    parser.add_argument("--blas-threads", default="1",
                        help="'1': as the writer runs them (spectral.blas_single_thread); "
                             "'default': numpy's own thread count")
    args = parser.parse_args(argv)
    context = (spectral.blas_single_thread() if args.blas_threads == "1"
               else contextlib.nullcontext())
    print("numpy %s; BLAS threads: %s" % (np.__version__, args.blas_threads))
    with context:
        run(args)


def run(args):
    for name in args.models.split(","):
        model = build(name)
        weights = weights_of(model)
        mats = matrices_of(weights)
        spectral_cpu = compare(name, mats, args.repeats)
        base = writer_cpu(weights)
        print("writer CPU per snapshot: %.3f s without spectral metrics, %.3f s with all of them "
              "(x%.2f); load %s" % (base, base + spectral_cpu, (base + spectral_cpu) / base, loadavg()))
        for b in args.budgets.split(","):
            option = b if b == "auto" else float(b)
            spent, full = budget_run(mats, option, base)
            print("  spectral=%-5s: spectral CPU per snapshot mean %.3f s, max %.3f s; every matrix "
                  "computed within %s snapshots (x%.2f of the writer's CPU)" % (
                      b, np.mean(spent[1:]), max(spent), full, (base + np.mean(spent[1:])) / base))


if __name__ == "__main__":
    main()
