"""The first open of a long run on a fresh TensorBoard: each request the
panel makes, in its order, before and after, on both ingesters.

A real `tensorboard` serves `LOGDIR` (one run named "run": e.g. 320 small
Dense tensors x 1,000 snapshots, as benchmarks/whole_run.py writes with
--keep) with the plugin of each side: "before" at git revision `--before`
(default: main, exported with `git archive`), "after" this checkout. Once
TensorBoard lists the run it is left `--settle` seconds to load it (the
Python ingester keeps loading after it lists a run), then the requests are
timed client side: /runs, /tags, /structure, /stats of the field the
dynamics map shows, /stats of another field, /findings, then /runs and
/tags again. The first /runs used to build the run's record index; the
first /stats used to read every stats table through TensorBoard.

    .venv/bin/python benchmarks/first_open.py LOGDIR [--before REV] [--settle 60]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, HERE)

from whole_run import export, timed_get, with_code  # noqa: E402

REQUESTS = [("/runs", "runs"), ("/tags", "tags?run=run"), ("/structure", "structure?run=run"),
            ("/stats update_ratio", "stats?run=run&fields=update_ratio"),
            ("/stats l2", "stats?run=run&fields=l2"), ("/findings", "findings?run=run"),
            ("/runs again", "runs"), ("/tags again", "tags?run=run")]


def measure(code, logdir, load_fast, settle):
    from tb_server import TensorBoardServer

    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = with_code(code)["PYTHONPATH"]
    try:
        with TensorBoardServer(logdir, load_fast=load_fast, timeout=600) as tb:
            tb.wait_for(lambda: "run" in tb.get_json("/data/runs"), timeout=600)
            time.sleep(settle)
            return {label: timed_get(tb, path)[0] for label, path in REQUESTS}
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("logdir")
    parser.add_argument("--before", default="main", help="git revision to compare with (default: main)")
    parser.add_argument("--settle", type=float, default=60.0,
                        help="seconds between TensorBoard listing the run and the first request")
    args = parser.parse_args()
    before_code = tempfile.mkdtemp(prefix="nnviz_before_")
    try:
        export(args.before, before_code)
        sides = {"before": before_code, "after": REPO}
        results = {}
        for load_fast in (False, True):
            for name, code in sides.items():
                results[(load_fast, name)] = measure(code, args.logdir, load_fast, args.settle)
                print("  %s, %s: %s" % ("RustBoard" if load_fast else "Python", name,
                                        {k: round(v, 3) for k, v in results[(load_fast, name)].items()}),
                      flush=True)
        load = open("/proc/loadavg").read().split()[:3]
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.logdir) for f in fs)
        print("\nFirst open of %s (%.0f MB), %.0f s after TensorBoard listed it, load average %s"
              % (args.logdir, size / 1e6, args.settle, " ".join(load)))
        print("| ingester | request | before | after | after / before |")
        print("|---|---|---:|---:|---:|")
        for load_fast in (False, True):
            b, a = results[(load_fast, "before")], results[(load_fast, "after")]
            for label, _ in REQUESTS:
                print("| %s | %s | %.3f s | %.3f s | %.3f |" % (
                    "RustBoard" if load_fast else "Python", label, b[label], a[label], a[label] / b[label]))
    finally:
        shutil.rmtree(before_code, ignore_errors=True)


if __name__ == "__main__":
    main()
