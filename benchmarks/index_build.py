"""The run index's first build, before and after, side by side: the same
run directory indexed in-process by `frame_index.RunIndex` of git revision
`--before` (default main, exported with `git archive`) and of this
checkout, alternating, each in a fresh process (page cache warm). Prints
wall and CPU seconds and the records indexed.

    .venv/bin/python benchmarks/index_build.py RUN_DIR [--before main] [--repeat 3]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from whole_run import export, with_code  # noqa: E402

_ONE = """
import os, sys, time
from tensorboard_nnviz.serve import frame_index
path = os.path.realpath(sys.argv[1])
wall, cpu = time.perf_counter(), time.process_time()
index = frame_index.RunIndex(path, os.path.dirname(path))
index.refresh()
print(time.perf_counter() - wall, time.process_time() - cpu, index.records_scanned, index.bytes_scanned)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--before", default="main")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    before_code = tempfile.mkdtemp(prefix="nnviz_before_")
    try:
        export(args.before, before_code)
        sides = {"before": before_code, "after": REPO}
        times = {name: [] for name in sides}
        for _ in range(args.repeat):
            for name, code in sides.items():
                out = subprocess.run([sys.executable, "-c", _ONE, os.path.abspath(args.run_dir)], env=with_code(code), cwd=code,
                                     check=True, capture_output=True, text=True).stdout.split()  # cwd: -c puts it first on the path
                wall, cpu, records, scanned = float(out[0]), float(out[1]), int(out[2]), int(out[3])
                times[name].append((wall, cpu))
                print("  %s: %.2f s wall, %.2f s CPU, %d records, %.0f MB" % (name, wall, cpu, records, scanned / 1e6),
                      flush=True)
        load = open("/proc/loadavg").read().split()[:3]
        print("\nIndex build of %s, best of %d, load average %s" % (args.run_dir, args.repeat, " ".join(load)))
        print("| | before | after | after / before |\n|---|---:|---:|---:|")
        for i, label in enumerate(("wall", "CPU")):
            b, a = min(t[i] for t in times["before"]), min(t[i] for t in times["after"])
            print("| %s | %.2f s | %.2f s | %.2f |" % (label, b, a, a / b))
    finally:
        shutil.rmtree(before_code, ignore_errors=True)


if __name__ == "__main__":
    main()
