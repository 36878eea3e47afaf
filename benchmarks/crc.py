"""The checksum of TensorBoard's event writer: pure Python vs google-crc32c's C.

TensorBoard's `RecordWriter` checksums every record (`masked_crc32c`) with a
pure-Python CRC-32C loop; `fast_crc.install()` swaps in google-crc32c's C
code (same bytes). Times both, side by side in one process, on the same
buffer, and prints MB/s and their ratio.

Usage:
  python benchmarks/crc.py [--mb 2] [--repeat 3]

Takes a few seconds. Not part of `make test`.
"""

import argparse
import os
import time

from tensorboard.compat.tensorflow_stub import pywrap_tensorflow

from tensorboard_nnviz.record import fast_crc


def rate(fn, data, repeat):
    """Best MB/s of `repeat` runs of fn(data)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(data)
        best = min(best, time.perf_counter() - start)
    return len(data) / best / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=2.0, help="buffer size in MB")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = os.urandom(int(args.mb * 1e6))
    python_crc = pywrap_tensorflow.masked_crc32c  # before install() replaces it
    c_crc = fast_crc._fast_masked_crc32c()
    if c_crc is None:
        raise SystemExit("google-crc32c's C implementation is not installed")
    assert python_crc(data[:4096]) == c_crc(data[:4096])
    slow = rate(python_crc, data, args.repeat)
    fast = rate(c_crc, data, args.repeat)
    print("load average %.2f, %d CPUs" % (os.getloadavg()[0], os.cpu_count()))
    print("pure Python  %10.2f MB/s" % slow)
    print("C            %10.0f MB/s" % fast)
    print("C / Python   %10.0fx" % (fast / slow))


if __name__ == "__main__":
    main()
