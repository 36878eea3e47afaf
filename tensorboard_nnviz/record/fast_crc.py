"""A C CRC-32C for TensorBoard's event-file writer.

TensorBoard's `RecordWriter` checksums every record with a pure-Python
CRC-32C loop (`tensorboard.compat.tensorflow_stub`), holding the GIL: for
snapshots of megabytes that loop alone takes seconds, and slows the
training thread with it (its speed: the README, "Checksums run in C";
benchmarks/crc.py). `google-crc32c` (Google's C library) computes the same
checksum in C.

`install()` points TensorBoard's record writer (and its TensorFlow-free
record reader, used where TensorFlow is not installed) at it when the C
implementation is importable, after checking both agree; otherwise
nothing changes (same files, only slower). The bytes are identical either
way. Only processes that write or compact event files call it, never the
plugin inside TensorBoard.
"""

import struct

from tensorboard_nnviz.core import records

_installed = None


def _c_extend():
    """google-crc32c's C `extend(crc, bytes)`, or None (its pure-Python
    fallback is no faster than TensorBoard's)."""
    if not records.C_CRC:
        return None
    import google_crc32c

    return google_crc32c.extend


extend = _c_extend()  # CRC-32C of more bytes after `crc`; None without the C library


def _fast_masked_crc32c():
    """TensorBoard's `masked_crc32c` on google-crc32c's C code, or None."""
    if extend is None:
        return None

    def masked_crc32c(data):
        return records.masked_crc32c(bytes(data))

    return masked_crc32c


def install():
    """Makes TensorBoard's `RecordWriter` use the C CRC-32C; True if it does.

    Idempotent. Safe to call from any module that writes event files.
    """
    global _installed
    if _installed is not None:
        return _installed
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow
    from tensorboard.summary.writer import record_writer

    fast = _fast_masked_crc32c()
    probe = struct.pack("<Q", 123456789) + b"nnviz"
    if fast is None or fast(probe) != pywrap_tensorflow.masked_crc32c(probe):
        _installed = False
        return False
    record_writer.masked_crc32c = fast
    pywrap_tensorflow.masked_crc32c = fast  # PyRecordReader_New looks it up per record
    _installed = True
    return True
