"""The C CRC-32C given to TensorBoard's record writer and reader."""

import os

import pytest

from tensorboard.compat.tensorflow_stub import pywrap_tensorflow
from tensorboard.summary.writer import record_writer

from tensorboard_nnviz.core import records
from tensorboard_nnviz.record import fast_crc


def _reference(data):
    # TensorBoard's own pure-Python CRC-32C (crc32c itself is not replaced).
    return records.mask(pywrap_tensorflow.crc32c(data))


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


def test_a_record_is_checked_as_tensorboard_frames_it(tmp_path):
    """core.records reads back what TensorBoard's writer framed, and tells a
    damaged record from a whole one."""
    path = str(tmp_path / "records")
    payload = os.urandom(5000)
    with open(path, "wb") as f:
        record_writer.RecordWriter(f).write(payload)
    with open(path, "rb") as f:
        record = f.read()
    assert records.record_size(records.read_length(record)) == len(record)
    assert records.record_data(record) == payload
    for at in (3, 20, len(record) - 2):  # the length, the data, the data's CRC
        broken = bytearray(record)
        broken[at] ^= 1
        with pytest.raises(records.RecordError):
            records.record_data(bytes(broken))
    with pytest.raises(records.RecordError):
        records.record_data(record[:-1])
