"""What numba adds before the first snapshot, each in a fresh process:

- importing numba (`python -X importtime`'s cumulative figure, numpy included
  in it, and numpy alone for comparison);
- the first `stats.measure` of a float32 weight with an empty cache
  (numba compiles the fused kernel: once per installation, Python and
  numba version), then with the cache that run left (every later process),
  and a float64 weight after a float32 one (a second compile, rare: the
  recorders hand over float32 unless the model is float64);
- where a cached first measure's time goes: importing numba and fused.py;
  numba's own first use (its typing and lowering registries; its check
  for a BLAS imports scipy.linalg, which Keras on TensorFlow or JAX has
  imported already, torch alone has not); loading fused.py's cached
  machine code, and how many compiled entry points that loads. Shown
  without and with scipy.linalg imported beforehand.

Wall and CPU seconds from before `import numpy` to the end of the first
measure. Each cold run uses a new empty NUMBA_CACHE_DIR (where the cache
goes otherwise: beside record/fused.py, or the user's cache folder when
the package folder is read-only; README, "Recording cost"). `--before
REV` runs the same with the package at a git revision (exported with
`git archive`), its own cache, alternating with the current one.

    python benchmarks/fused_startup.py [--repeats 3] [--before REV]
"""

import argparse
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FIRST = """
import resource, time
t = time.perf_counter()
import numpy as np
from tensorboard_nnviz.record import stats
w = np.random.default_rng(0).standard_normal((256, 128)).astype({dtype})
layout = dict(row_axes=[0], col_axes=[1], block=[2, 2], unit_axes=[1])
stats.measure(w, w, w, [1], layout=layout)
assert stats._fused, "the fused pass did not run"
u = resource.getrusage(resource.RUSAGE_SELF)
print(time.perf_counter() - t, u.ru_utime + u.ru_stime)
"""

# The cached first measure in parts (wall seconds each), then CPU seconds
# in all and the compiled entry points (dispatcher signatures) loaded.
SPLIT = """
import resource, time
marks = [time.perf_counter()]
import numpy as np
from tensorboard_nnviz.record import stats
assert stats._fused_kernel() is not None
marks.append(time.perf_counter())
if {scipy}:
    import scipy.linalg
marks.append(time.perf_counter())
from numba.core.registry import cpu_target
cpu_target.target_context.refresh()
cpu_target.typing_context.refresh()
marks.append(time.perf_counter())
w = np.random.default_rng(0).standard_normal((256, 128)).astype(np.float32)
layout = dict(row_axes=[0], col_axes=[1], block=[2, 2], unit_axes=[1])
stats.measure(w, w, w, [1], layout=layout)
marks.append(time.perf_counter())
from numba.core.dispatcher import Dispatcher
from tensorboard_nnviz.record import fused
loaded = sum(len(d.signatures) for d in vars(fused).values() if isinstance(d, Dispatcher))
u = resource.getrusage(resource.RUSAGE_SELF)
print(*[b - a for a, b in zip(marks, marks[1:])], u.ru_utime + u.ru_stime, loaded)
"""


def run(code, env):
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=env["NNVIZ_ROOT"]).stdout.split()
    return [float(v) for v in out[-2:]]


def split(env, scipy):
    """[import numba and fused.py, import scipy.linalg, numba's first use,
    loading our machine code, CPU in all, entry points loaded]."""
    out = subprocess.run([sys.executable, "-c", SPLIT.format(scipy=scipy)], env=env,
                         capture_output=True, text=True, check=True,
                         cwd=env["NNVIZ_ROOT"]).stdout.split()
    return [float(v) for v in out[-6:]]


def import_ms(module, env):
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import " + module],
                         capture_output=True, text=True, check=True, env=env).stderr
    line = [ln for ln in err.splitlines() if ln.rstrip().endswith("| " + module)][-1]
    return int(line.split("|")[1]) / 1000.0


def exported(rev):
    """A folder holding the package at git revision `rev`."""
    folder = tempfile.mkdtemp(prefix="nnviz_before_")
    archive = subprocess.run(["git", "-C", REPO, "archive", rev, "tensorboard_nnviz"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder


def measure(root, repeats):
    """(cold, cached, second dtype, split without scipy, split with), each
    the minimum over `repeats` fresh-process runs, for the package in `root`."""
    # `python -c` puts its working directory first on sys.path: the root too.
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""),
               NNVIZ_ROOT=root)
    rows = []
    for _ in range(repeats):
        e = dict(env, NUMBA_CACHE_DIR=tempfile.mkdtemp(prefix="nnviz_numba_cache_"))
        cold = run(FIRST.format(dtype="np.float32"), e)
        warm = run(FIRST.format(dtype="np.float32"), e)
        second = run(FIRST.format(dtype="np.float64"), e)
        rows.append((cold, warm, second, split(e, False), split(e, True)))
    return [[min(r[i][j] for r in rows) for j in range(len(rows[0][i]))] for i in range(5)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before", default=None, help="git revision to compare with")
    args = parser.parse_args()
    sides = [("now", REPO)] + ([("before " + args.before, exported(args.before))]
                               if args.before else [])
    results = {name: measure(root, args.repeats) for name, root in sides}
    env = dict(os.environ, PYTHONPATH=REPO)
    print("load average %.1f %.1f %.1f; seconds from before `import numpy` to the end of "
          "the first measure, wall / CPU, min of %d" % (os.getloadavg() + (args.repeats,)))
    print("import numba %.0f ms (numpy alone %.0f ms)" % (
        min(import_ms("numba", env) for _ in range(3)),
        min(import_ms("numpy", env) for _ in range(3))))
    print("| package | first measure, empty cache | first measure, cached | "
          "float64 after float32, cached float32 only |")
    print("|---|---:|---:|---:|")
    for name, _ in sides:
        cold, warm, second = results[name][:3]
        print("| %s | %.2f / %.2f s | %.2f / %.2f s | %.2f / %.2f s |" % (
            name, cold[0], cold[1], warm[0], warm[1], second[0], second[1]))
    print()
    print("The cached first measure in parts (wall ms; CPU: the whole process):")
    print("| package | scipy.linalg imported before | numpy, numba and fused.py imports | "
          "scipy.linalg | numba's first use | our machine code | entry points loaded | CPU |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, _ in sides:
        for scipy, row in (("no", results[name][3]), ("yes (Keras on TF, JAX)", results[name][4])):
            print("| %s | %s | %.0f | %.0f | %.0f | %.0f | %d | %.2f s |" % (
                name, scipy, row[0] * 1e3, row[1] * 1e3, row[2] * 1e3, row[3] * 1e3, row[5],
                row[4]))


if __name__ == "__main__":
    main()
