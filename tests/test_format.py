"""The shared format module: round trips and clear errors on bad data."""

import json
import math

import numpy as np
import pytest
from tensorboard.compat.proto import summary_pb2
from tensorboard.compat.proto import types_pb2
from tensorboard.util import tensor_util

from tensorboard_nnviz.core import format as fmt


def test_frame_round_trip_is_exact_float32():
    frame = np.random.default_rng(0).standard_normal((7, 5)).astype(np.float32)
    frame[0, 0], frame[1, 1], frame[2, 2] = np.nan, np.inf, -np.inf
    out = fmt.decode_frame(fmt.encode_frame(frame))
    assert out.dtype == np.float32 and out.shape == (7, 5)
    np.testing.assert_array_equal(out, frame)  # NaN == NaN here


def test_frame_float16_round_trip_within_half_precision():
    frame = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    out = fmt.decode_frame(fmt.encode_frame(frame, fmt.ENCODING_F16))
    np.testing.assert_allclose(out, frame, rtol=1e-3, atol=1e-3)


def test_frame_of_wrong_length_is_a_format_error():
    blob = fmt.encode_frame(np.zeros((4, 4), np.float32))
    with pytest.raises(fmt.FormatError, match="expected"):
        fmt.decode_frame(blob[:-4])
    with pytest.raises(fmt.FormatError, match="truncated"):
        fmt.decode_frame(blob[:5])
    with pytest.raises(fmt.FormatError, match="not an nnviz frame"):
        fmt.decode_frame(b"X" * len(blob))


def test_newer_frame_version_is_named():
    blob = bytearray(fmt.encode_frame(np.zeros((1, 1), np.float32)))
    blob[4] = fmt.FORMAT_VERSION + 1
    with pytest.raises(fmt.NewerFormatError, match="upgrade"):
        fmt.decode_frame(bytes(blob))


def test_content_versions():
    layout = {"row_axes": [0], "col_axes": [1], "block": [1, 1], "groups": []}
    doc = fmt.parse_content(
        fmt.frame_content(shape=(3, 4), dtype="float32", layout=layout, rows=3, cols=4)
    )
    assert doc["kind"] == fmt.KIND_FRAME and doc["layout"] == layout
    assert doc["shape"] == [3, 4] and doc["version"] == fmt.FORMAT_VERSION
    newer = json.dumps({"version": fmt.FORMAT_VERSION + 1, "kind": "frame"}).encode()
    with pytest.raises(fmt.NewerFormatError, match="version %d" % (fmt.FORMAT_VERSION + 1)):
        fmt.parse_content(newer)
    for bad in (b"", b"\xff", b"[]", b'{"kind": "frame"}'):
        with pytest.raises(fmt.FormatError):
            fmt.parse_content(bad)


def test_frame_value_is_rank1_string_blob_sequence():
    blob = fmt.encode_frame(np.ones((2, 2), np.float32))
    value = fmt.frame_value("dense/kernel", blob, b"{}")
    assert value.tag == "nnviz/frame/dense/kernel"
    # A plugin name of its own: TensorBoard keeps one frame per weight of it.
    assert value.metadata.plugin_data.plugin_name == "nnviz_frames"
    assert value.metadata.data_class == summary_pb2.DATA_CLASS_BLOB_SEQUENCE
    assert value.tensor.dtype == types_pb2.DT_STRING
    assert [d.size for d in value.tensor.tensor_shape.dim] == [1]
    assert tensor_util.make_ndarray(value.tensor)[0] == blob
    assert fmt.frame_blob_of(value) == blob
    assert fmt.SAMPLES_PER_PLUGIN == {"nnviz": 0, "nnviz_frames": 1, "nnviz_units": 1}
    legacy = fmt.frame_value("dense/kernel", blob, b"{}", plugin_name=fmt.PLUGIN_NAME)
    assert legacy.metadata.plugin_data.plugin_name == "nnviz"


def test_stats_value_round_trip_nulls():
    stats = {name: float(i) for i, name in enumerate(fmt.STAT_FIELDS)}
    stats["update_l2"] = None
    value = fmt.stats_value("bn/gamma", stats)
    assert value.tag == "nnviz/stats/bn/gamma"
    assert value.metadata.data_class == summary_pb2.DATA_CLASS_TENSOR
    fields = fmt.parse_content(value.metadata.plugin_data.content)["fields"]
    back = fmt.stats_from_array(tensor_util.make_ndarray(value.tensor), fields)
    assert back["update_l2"] is None
    assert back["mean"] == 0.0 and back[fmt.STAT_FIELDS[-1]] == float(len(fmt.STAT_FIELDS) - 1)
    with pytest.raises(fmt.FormatError):
        fmt.stats_from_array(np.zeros(3), fields)


def test_a_longer_stats_vector_keeps_the_fields_its_series_names():
    # A run begun by a version-1 writer and continued by this one: the
    # series' content (fixed by its first event) names the 17 old fields.
    old_fields = list(fmt.STAT_FIELDS[:17])
    vector = np.arange(len(fmt.STAT_FIELDS), dtype=np.float64)
    back = fmt.stats_from_array(vector, old_fields)
    assert list(back) == old_fields and back["init_cos"] == 16.0


def test_units_value_round_trip_keeps_exact_zeros_and_nan_first_update():
    content = fmt.units_content(unit_axes=[1], units=4, block=1)
    doc = fmt.parse_content(content)
    assert doc["kind"] == fmt.KIND_UNITS and doc["fields"] == ["norm", "update"]
    assert doc["version"] == fmt.FORMAT_VERSION and doc["unit_axes"] == [1] and doc["block"] == 1
    value = fmt.units_value("d/kernel", [1.0, 2.0, 0.0, 1e-300], None, content)
    assert value.tag == "nnviz/units/d/kernel" == fmt.units_tag("d/kernel")
    assert value.metadata.data_class == summary_pb2.DATA_CLASS_TENSOR
    # A plugin name of its own: TensorBoard keeps one row per weight of it.
    assert value.metadata.plugin_data.plugin_name == "nnviz_units"
    np.testing.assert_array_equal(fmt.units_array_of(value), tensor_util.make_ndarray(value.tensor))
    rows = fmt.units_from_array(tensor_util.make_ndarray(value.tensor), doc["fields"])
    np.testing.assert_array_equal(rows["norm"][:3], [1.0, 2.0, 0.0])
    assert rows["norm"][3] > 0  # below float32's range, still not zero
    assert np.isnan(rows["update"]).all()
    value = fmt.units_value("d/kernel", [1.0] * 4, [0.0, 1e-50, 3.0, np.nan], content)
    rows = fmt.units_from_array(tensor_util.make_ndarray(value.tensor), doc["fields"])
    assert rows["update"][0] == 0 and rows["update"][1] > 0 and np.isnan(rows["update"][3])
    with pytest.raises(fmt.FormatError):
        fmt.units_from_array(np.zeros(3), doc["fields"])
    with pytest.raises(fmt.FormatError, match="2-D float32"):
        fmt.units_array_of(fmt.stats_value("d/kernel", {}))


def test_version_1_content_still_parses():
    doc = fmt.parse_content(json.dumps({"version": 1, "kind": "stats", "fields": ["mean"]}).encode())
    assert doc["version"] == 1


def test_stats_from_array_maps_non_finite_to_none():
    out = fmt.stats_from_array([math.nan, math.inf, 1.5], ["a", "b", "c"])
    assert out == {"a": None, "b": None, "c": 1.5}


def test_structure_round_trip_and_errors():
    structure = {"model": {"name": "m"}, "layers": [{"path": "dense", "class": "Dense"}]}
    value = fmt.structure_value(structure)
    assert value.tag == fmt.STRUCTURE_TAG
    assert fmt.structure_from_array(tensor_util.make_ndarray(value.tensor)) == structure
    with pytest.raises(fmt.FormatError):
        fmt.structure_from_array(np.array([b"not json"], dtype=object))
    with pytest.raises(fmt.FormatError):
        fmt.structure_from_array(np.array([b"[1]"], dtype=object))


def test_parse_summary_tag():
    assert fmt.parse_summary_tag("nnviz/frame/a/b/kernel") == ("frame", "a/b/kernel")
    assert fmt.parse_summary_tag("nnviz/stats/x/bias") == ("stats", "x/bias")
    assert fmt.parse_summary_tag("nnviz/units/x/bias") == ("units", "x/bias")
    assert fmt.parse_summary_tag("nnviz/structure") == ("structure", None)
    assert fmt.parse_summary_tag("dense/kernel/histogram") is None


def test_quantity_tags_are_disk_series_an_older_reader_does_not_list():
    assert fmt.frame_tag("a/kernel", "grad") == "nnviz/qframe/grad/a/kernel"
    assert fmt.units_tag("a/kernel", "v_rms") == "nnviz/qunits/v_rms/a/kernel"
    assert fmt.frame_tag("a/kernel") == "nnviz/frame/a/kernel"
    assert fmt.parse_quantity_tag("nnviz/qframe/grad/a/kernel") == ("frame", "a/kernel", "grad")
    assert fmt.parse_quantity_tag("nnviz/qunits/m_hat/x") == ("units", "x", "m_hat")
    assert fmt.parse_quantity_tag("nnviz/frame/a/kernel") == ("frame", "a/kernel", "weights")
    assert fmt.parse_quantity_tag("nnviz/qframe/bogus/x") is None
    assert fmt.parse_summary_tag("nnviz/qframe/grad/a/kernel") is None  # weights only
    for tag in (fmt.frame_tag("x", "grad"), fmt.units_tag("x", "grad")):
        assert tag.startswith(fmt.DISK_PREFIXES)
        # what an older reader lists and indexes: the weights' prefixes only
        assert not tag.startswith((fmt.FRAME_PREFIX, fmt.UNITS_PREFIX, fmt.STATS_PREFIX))


def test_quantities_stats_table_names_a_quantity_per_row():
    value = fmt.stats_table_value(["a", "a"], [{"mean": 1.0}, {"mean": 2.0}],
                                  quantities=["grad", "v_rms"])
    assert value.tag == fmt.QSTATS_TABLE_TAG
    header, cells = value.tensor.string_val
    keys, fields = fmt.parse_qstats_table_header(header)
    assert keys == [("a", "grad"), ("a", "v_rms")]
    rows = np.frombuffer(cells, "<f8").reshape(2, len(fields))
    assert rows[:, fields.index("mean")].tolist() == [1.0, 2.0]
    with pytest.raises(fmt.FormatError, match="quantity per row"):
        fmt.parse_qstats_table_header(fmt.stats_table_value(["a"], [{}]).tensor.string_val[0])
