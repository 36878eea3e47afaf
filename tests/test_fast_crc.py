"""The C CRC-32C given to TensorBoard's record writer and reader."""

import os

from tensorboard.compat.tensorflow_stub import pywrap_tensorflow
from tensorboard.summary.writer import record_writer

from tensorboard_nnviz.record import fast_crc


def _reference(data):
    # TensorBoard's own pure-Python CRC-32C (crc32c itself is not replaced).
    return fast_crc.masked(pywrap_tensorflow.crc32c(data))


def test_installed_crc_matches_tensorboards_and_records_read_back(tmp_path):
    assert fast_crc.install() is True  # google-crc32c's C code is installed
    assert fast_crc.install() is True  # idempotent
    for n in (0, 1, 7, 8, 4096, 100_003):
        data = os.urandom(n)
        assert record_writer.masked_crc32c(data) == _reference(data)
    path = str(tmp_path / "records")
    payloads = [os.urandom(n) for n in (3, 70_000, 0, 12)]
    with open(path, "wb") as f:
        writer = record_writer.RecordWriter(f)
        for p in payloads:
            writer.write(p)
    # TensorBoard's TensorFlow-free reader checks every CRC.
    reader = pywrap_tensorflow.PyRecordReader_New(path, 0, None, None)
    got = []
    while True:
        try:
            reader.GetNext()
        except Exception:  # OutOfRangeError at the end
            break
        got.append(reader.record())
    assert got == payloads
