"""The record framing of event files (TFRecord), defined once.

An event file is a sequence of records:

    length (u64 LE) | masked CRC-32C of length (u32 LE) | data | masked CRC-32C of data (u32 LE)

Both sides use it: the writer's checksum in C (record/fast_crc.py) and
the plugin's reads of single frame records from disk (serve/frame_index.py).
The checksum is google-crc32c (a core dependency): C code where its wheel
has it, its own pure-Python fallback elsewhere (correct, slower).

This module imports neither Keras nor TensorFlow.
"""

import struct

import google_crc32c

HEADER = struct.Struct("<QI")  # length, masked CRC of the length
FOOTER = struct.Struct("<I")  # masked CRC of the data

# Whether the checksum runs in C (google-crc32c's fallback is pure Python).
C_CRC = getattr(google_crc32c, "implementation", None) == "c"


class RecordError(ValueError):
    """A record whose framing or checksum is wrong (damaged data)."""


def mask(crc):
    """TFRecord's masking of a CRC-32C."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def masked_crc32c(data):
    """The masked CRC-32C of `data` (bytes)."""
    return mask(google_crc32c.value(data))


def record_size(length):
    """Bytes of a whole record whose data is `length` bytes."""
    return HEADER.size + length + FOOTER.size


def read_length(header):
    """The data length a record's 12-byte header announces.

    Raises:
      RecordError: the length's checksum does not match.
    """
    length, crc = HEADER.unpack_from(header)
    if masked_crc32c(bytes(header[:8])) != crc:
        raise RecordError("record header checksum mismatch")
    return length


def record_data(record):
    """The data of one whole record (header, data, footer), both checksums
    checked.

    Raises:
      RecordError: a checksum does not match, or the record is not whole.
    """
    length = read_length(record)
    if len(record) != record_size(length):
        raise RecordError("record of %d bytes, expected %d" % (len(record), record_size(length)))
    data = bytes(record[HEADER.size:HEADER.size + length])
    (crc,) = FOOTER.unpack_from(record, HEADER.size + length)
    if masked_crc32c(data) != crc:
        raise RecordError("record data checksum mismatch")
    return data
