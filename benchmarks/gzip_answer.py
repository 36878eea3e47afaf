"""gzip of a large JSON answer: zlib (the stdlib, level 1 and TensorBoard's
level 3) against ISA-L (isal, level 1, what serve/http.py uses), on the
dynamics map's /stats answer of a real run, side by side.

The answer is built by the reader (`/stats?run=RUN&fields=update_ratio,nan,inf`)
from LOGDIR, serialized as the plugin does (orjson), then compressed by
each, best of `--repeat`; the output of each is checked to unzip to the
same bytes.

    .venv/bin/python benchmarks/gzip_answer.py LOGDIR [--run run] [--repeat 5]
"""

import argparse
import gzip
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from isal import igzip  # noqa: E402

from tensorboard_nnviz.cli.local_provider import local_data_provider  # noqa: E402
from tensorboard_nnviz.serve import http  # noqa: E402
from tensorboard_nnviz.serve.reader import NNVizReader  # noqa: E402


def best(f, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - start)
    return min(times), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("logdir")
    parser.add_argument("--run", default="run")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    provider, eid = local_data_provider(args.logdir)
    reader = NNVizReader(provider, logdir=args.logdir)
    answer = reader.stats_impl(None, eid, args.run, fields=["update_ratio", "nan", "inf"], arrays=True)
    body = http._dumps(answer)
    sides = [("zlib, level 3 (TensorBoard)", lambda: gzip.compress(body, 3, mtime=0)),
             ("zlib, level 1", lambda: gzip.compress(body, 1, mtime=0)),
             ("ISA-L, level 1 (this)", lambda: igzip.compress(body, 1, mtime=0))]
    rows = []
    for name, f in sides:
        seconds, out = best(f, args.repeat)
        assert gzip.decompress(out) == body
        rows.append((name, seconds, len(out)))
    load = " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "?"
    print("The map's /stats answer of %s: %.1f MB of JSON, best of %d, load average %s"
          % (args.run, len(body) / 1e6, args.repeat, load))
    print("| gzip | seconds | MB | seconds / ISA-L's |")
    print("|---|---:|---:|---:|")
    for name, seconds, size in rows:
        print("| %s | %.3f | %.2f | %.1f |" % (name, seconds, size / 1e6, seconds / rows[-1][1]))


if __name__ == "__main__":
    main()
