"""What numba adds before the first snapshot, each in a fresh process:

- importing numba (`python -X importtime`'s cumulative figure, numpy included
  in it, and numpy alone for comparison);
- the first `stats.measure` of a float32 weight with an empty cache
  (numba compiles the fused kernel: once per installation, Python and
  numba version), then with the cache that run left (every later process),
  and a float64 weight after a float32 one (a second compile, rare: the
  recorders hand over float32 unless the model is float64).

Wall and CPU seconds from before `import numpy` to the end of the first
measure. Each cold run uses a new empty NUMBA_CACHE_DIR (where the cache
goes otherwise: beside record/fused.py, or the user's cache folder when
the package folder is read-only; README, "Recording cost").

    python benchmarks/fused_startup.py [--repeats 3]
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


def run(code, env):
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=REPO).stdout.split()
    return float(out[-2]), float(out[-1])


def import_ms(module):
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import " + module],
                         capture_output=True, text=True, check=True).stderr
    line = [ln for ln in err.splitlines() if ln.rstrip().endswith("| " + module)][-1]
    return int(line.split("|")[1]) / 1000.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rows = []
    for _ in range(args.repeats):
        cache = tempfile.mkdtemp(prefix="nnviz_numba_cache_")
        e = dict(env, NUMBA_CACHE_DIR=cache)
        cold = run(FIRST.format(dtype="np.float32"), e)
        warm = run(FIRST.format(dtype="np.float32"), e)
        second = run(FIRST.format(dtype="np.float64"), e)
        rows.append((cold, warm, second))
    print("load average %.1f %.1f %.1f; seconds from before `import numpy` to the end of "
          "the first measure, wall / CPU, min of %d" % (os.getloadavg() + (args.repeats,)))
    print("| import numba (numpy) | first measure, empty cache | first measure, cached | "
          "float64 after float32, cached float32 only |")
    print("|---:|---:|---:|---:|")
    cold, warm, second = (min(r[i] for r in rows) for i in range(3))
    print("| %.0f ms (%.0f ms) | %.2f / %.2f s | %.2f / %.2f s | %.2f / %.2f s |" % (
        min(import_ms("numba") for _ in range(3)), min(import_ms("numpy") for _ in range(3)),
        cold[0], cold[1], warm[0], warm[1], second[0], second[1]))


if __name__ == "__main__":
    main()
