"""Tests of tensorboard_nnviz.core.layout against plain numpy references.

Weights are built with distinct values (np.arange), so a frame that permuted
cells would fail, not just one with the wrong shape.
"""

import itertools
import math

import numpy as np
import pytest

from runs import reference_frame
from tensorboard_nnviz.core import layout as L


def distinct(shape, dtype=np.float32):
    return np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)


# (layer_class, weight_name, shape, layer_name, row_axes, col_axes, groups)
# groups: (axis, size, names) or None.
FAMILIES = [
    ("Dense", "kernel", (5, 7), "", [0], [1], None),
    ("Dense", "bias", (7,), "", [], [0], None),
    ("Embedding", "embeddings", (11, 4), "", [0], [1], None),
    ("Conv1D", "kernel", (3, 4, 5), "", [1], [2, 0], None),
    ("Conv2D", "kernel", (3, 2, 4, 5), "", [2, 0], [3, 1], None),
    ("Conv3D", "kernel", (2, 3, 4, 3, 5), "", [3, 1], [0, 4, 2], None),
    ("Conv1DTranspose", "kernel", (3, 5, 4), "", [2], [1, 0], None),
    ("Conv2DTranspose", "kernel", (3, 2, 5, 4), "", [3, 0], [2, 1], None),
    ("Conv3DTranspose", "kernel", (2, 3, 4, 5, 3), "", [4, 1], [0, 3, 2], None),
    ("DepthwiseConv1D", "kernel", (3, 4, 2), "", [2], [1, 0], None),
    ("DepthwiseConv2D", "kernel", (3, 2, 4, 2), "", [3, 0], [2, 1], None),
    ("SeparableConv2D", "depthwise_kernel", (3, 2, 4, 2), "", [3, 0], [2, 1], None),
    ("SeparableConv2D", "pointwise_kernel", (1, 1, 8, 5), "", [2, 0], [3, 1], None),
    ("SeparableConv1D", "depthwise_kernel", (3, 4, 2), "", [2], [1, 0], None),
    ("SeparableConv1D", "pointwise_kernel", (1, 8, 5), "", [1], [2, 0], None),
    ("LSTMCell", "kernel", (5, 12), "", [0], [1], ("cols", 3, ["i", "f", "c", "o"])),
    ("LSTM", "recurrent_kernel", (3, 12), "", [0], [1], ("cols", 3, ["i", "f", "c", "o"])),
    ("LSTMCell", "bias", (12,), "", [], [0], ("cols", 3, ["i", "f", "c", "o"])),
    ("GRUCell", "kernel", (5, 9), "", [0], [1], ("cols", 3, ["z", "r", "h"])),
    ("GRUCell", "recurrent_kernel", (3, 9), "", [0], [1], ("cols", 3, ["z", "r", "h"])),
    ("GRUCell", "bias", (2, 9), "", [0], [1], ("cols", 3, ["z", "r", "h"])),
    ("GRU", "bias", (9,), "", [], [0], ("cols", 3, ["z", "r", "h"])),
    ("SimpleRNNCell", "kernel", (5, 3), "", [0], [1], None),
    ("SimpleRNNCell", "recurrent_kernel", (3, 3), "", [0], [1], None),
    ("ConvLSTMCell", "kernel", (3, 2, 2, 8), "", [2, 0], [3, 1], ("cols", 4, ["i", "f", "c", "o"])),
    ("ConvLSTMCell", "recurrent_kernel", (3, 2, 8), "", [1], [2, 0], ("cols", 6, ["i", "f", "c", "o"])),
    ("ConvLSTMCell", "kernel", (2, 2, 3, 2, 4), "", [3, 1], [0, 4, 2], ("cols", 3, ["i", "f", "c", "o"] * 2)),
    ("ConvLSTMCell", "bias", (8,), "", [], [0], ("cols", 2, ["i", "f", "c", "o"])),
    ("EinsumDense", "kernel", (6, 2, 3), "query", [0], [1, 2], ("cols", 3, ["head 0", "head 1"])),
    ("EinsumDense", "kernel", (6, 2, 3), "mha/key", [0], [1, 2], ("cols", 3, ["head 0", "head 1"])),
    ("EinsumDense", "kernel", (6, 2, 3), "value", [0], [1, 2], ("cols", 3, ["head 0", "head 1"])),
    ("EinsumDense", "bias", (2, 3), "query", [], [0, 1], ("cols", 3, ["head 0", "head 1"])),
    ("EinsumDense", "kernel", (2, 3, 6), "attention_output", [0, 1], [2], ("rows", 3, ["head 0", "head 1"])),
    ("EinsumDense", "bias", (6,), "attention_output", [], [0], None),
    ("EinsumDense", "kernel", (6, 4, 2), "proj", [0], [1, 2], None),
    ("BatchNormalization", "moving_variance", (6,), "", [], [0], None),
    ("LayerNormalization", "gamma", (6,), "", [], [0], None),
    ("Custom", "scale", (), "", [], [], None),
    ("Custom", "table", (2, 3, 4), "", [0, 1], [2], None),
    ("Custom", "table", (2, 3, 4, 5), "", [0, 1, 2], [3], None),
    ("Conv2D", "weird", (4, 5), "", [0], [1], None),  # rank mismatch: fallback
]


def family_id(f):
    return "%s-%s-%s" % (f[0], f[1], "x".join(map(str, f[2])))


@pytest.mark.parametrize("family", FAMILIES, ids=family_id)
def test_family_layout_and_exact_frame(family):
    cls, name, shape, layer_name, rows, cols, groups = family
    layout = L.choose_layout(cls, name, shape, layer_name=layer_name)
    assert layout["row_axes"] == rows
    assert layout["col_axes"] == cols
    if groups is None:
        assert layout["groups"] == []
    else:
        axis, size, names = groups
        assert layout["groups"] == [{"axis": axis, "size": size, "names": names}]
    w = distinct(shape)
    frame, block = L.make_frame(w, layout, max_cells=65536)
    assert block == [1, 1]
    assert frame.dtype == np.float32
    np.testing.assert_array_equal(frame, reference_frame(w, layout))
    if groups is not None:
        axis, size, names = groups
        assert size * len(names) == frame.shape[0 if axis == "rows" else 1]


@pytest.mark.parametrize("family", FAMILIES, ids=family_id)
def test_cell_to_index_round_trips_every_cell(family):
    cls, name, shape, layer_name = family[:4]
    layout = L.choose_layout(cls, name, shape, layer_name=layer_name)
    w = distinct(shape)
    frame, _ = L.make_frame(w, layout, max_cells=65536)
    seen = set()
    for r, c in itertools.product(range(frame.shape[0]), range(frame.shape[1])):
        index = L.cell_to_index(layout, shape, r, c)
        assert w[index] == frame[r, c]
        seen.add(index)
    assert len(seen) == w.size
    with pytest.raises(IndexError):
        L.cell_to_index(layout, shape, frame.shape[0], 0)


# (layer class, kernel shape, tiles down x across, tile (a, b) of the frame)
KERNEL_TILES = [
    ("Conv2D", (3, 2, 4, 5), (4, 5), lambda w, i, o: w[:, :, i, o]),  # (kh, kw, in, out)
    # Keras: (kh, kw, filters, in); still inputs down, outputs across.
    ("Conv2DTranspose", (3, 2, 5, 4), (4, 5), lambda w, i, o: w[:, :, o, i]),
    # (kh, kw, in, mult): multiplier down, input channel across.
    ("DepthwiseConv2D", (3, 2, 4, 2), (2, 4), lambda w, m, i: w[:, :, i, m]),
]


@pytest.mark.parametrize("cls,shape,tiles,tile", KERNEL_TILES, ids=[k[0] for k in KERNEL_TILES])
def test_conv_kernels_are_grids_of_kh_by_kw_tiles(cls, shape, tiles, tile):
    kh, kw = shape[:2]
    w = distinct(shape)
    frame, _ = L.make_frame(w, L.choose_layout(cls, "kernel", w.shape), 65536)
    assert frame.shape == (tiles[0] * kh, tiles[1] * kw)
    for a, b in itertools.product(range(tiles[0]), range(tiles[1])):
        np.testing.assert_array_equal(frame[a * kh : (a + 1) * kh, b * kw : (b + 1) * kw],
                                      tile(w, a, b))


def test_conv1d_tiles_are_horizontal_strips():
    k, cin, cout = 3, 4, 5
    w = distinct((k, cin, cout))
    frame, _ = L.make_frame(w, L.choose_layout("Conv1D", "kernel", w.shape), 65536)
    for i, o in itertools.product(range(cin), range(cout)):
        np.testing.assert_array_equal(frame[i, o * k : (o + 1) * k], w[:, i, o])


def test_conv3d_is_depth_grids_side_by_side():
    kd, kh, kw, cin, cout = 2, 3, 4, 3, 2
    w = distinct((kd, kh, kw, cin, cout))
    frame, _ = L.make_frame(w, L.choose_layout("Conv3D", "kernel", w.shape), 65536)
    assert frame.shape == (cin * kh, kd * cout * kw)
    for d, i, o in itertools.product(range(kd), range(cin), range(cout)):
        left = (d * cout + o) * kw
        tile = frame[i * kh : (i + 1) * kh, left : left + kw]
        np.testing.assert_array_equal(tile, w[d, :, :, i, o])


def test_conv_lstm_gate_groups_hold_keras_gate_slices():
    kh, kw, cin, filters = 3, 2, 2, 3
    w = distinct((kh, kw, cin, 4 * filters))
    layout = L.choose_layout("ConvLSTMCell", "kernel", w.shape)
    frame, _ = L.make_frame(w, layout, 65536)
    (group,) = layout["groups"]
    # Keras 3 conv_lstm.py: ops.split(kernel, 4, axis=rank + 1)
    for g, gate in enumerate(np.split(w, 4, axis=3)):
        cols = frame[:, g * group["size"] : (g + 1) * group["size"]]
        ref_layout = {"row_axes": [2, 0], "col_axes": [3, 1]}
        np.testing.assert_array_equal(cols, reference_frame(gate, ref_layout))


def test_lstm_gate_groups_hold_keras_gate_slices():
    units, n_in = 3, 5
    w = distinct((n_in, 4 * units))
    layout = L.choose_layout("LSTMCell", "kernel", w.shape)
    frame, _ = L.make_frame(w, layout, 65536)
    (group,) = layout["groups"]
    # Keras 3 lstm.py: k_i, k_f, k_c, k_o = ops.split(kernel, 4, axis=1)
    for g, gate in enumerate(np.split(w, 4, axis=1)):
        cols = slice(g * group["size"], (g + 1) * group["size"])
        np.testing.assert_array_equal(frame[:, cols], gate)
    assert group["names"] == ["i", "f", "c", "o"]


def test_mha_heads_are_groups_of_head_dim():
    d, heads, hd = 6, 3, 2
    q = distinct((d, heads, hd))
    lq = L.choose_layout("EinsumDense", "kernel", q.shape, layer_name="mha/query")
    fq, _ = L.make_frame(q, lq, 65536)
    for h in range(heads):
        np.testing.assert_array_equal(fq[:, h * hd : (h + 1) * hd], q[:, h, :])
    out = distinct((heads, hd, d))
    lo = L.choose_layout("EinsumDense", "kernel", out.shape, layer_name="mha/attention_output")
    fo, _ = L.make_frame(out, lo, 65536)
    for h in range(heads):
        np.testing.assert_array_equal(fo[h * hd : (h + 1) * hd, :], out[h])
    assert lo["groups"][0]["names"] == ["head 0", "head 1", "head 2"]


def test_class_name_list_uses_first_known():
    layout = L.choose_layout(["MyConv", "Conv2D", "Layer"], "kernel", (3, 3, 2, 4))
    assert (layout["row_axes"], layout["col_axes"]) == ([2, 0], [3, 1])


def test_scalar_and_vector_frames():
    frame, block = L.make_frame(np.float32(2.5), L.choose_layout("X", "s", ()), 10)
    assert frame.shape == (1, 1) and frame[0, 0] == 2.5 and block == [1, 1]
    v = distinct((7,))
    frame, _ = L.make_frame(v, L.choose_layout("Dense", "bias", v.shape), 10)
    np.testing.assert_array_equal(frame, v[None, :])


def test_bad_layout_is_a_clear_error():
    with pytest.raises(ValueError, match="permutation"):
        L.make_frame(distinct((2, 3)), {"row_axes": [0], "col_axes": [0]}, 100)


def test_low_precision_and_integer_weights_are_widened_exactly():
    w16 = distinct((4, 6), np.float16)
    frame, _ = L.make_frame(w16, L.choose_layout("Dense", "kernel", w16.shape), 100)
    assert frame.dtype == np.float32
    np.testing.assert_array_equal(frame, w16.astype(np.float32))
    wi = np.arange(300, dtype=np.int64).reshape(30, 10)
    frame, block = L.make_frame(wi, L.choose_layout("Dense", "kernel", wi.shape), 100)
    assert frame.dtype == np.float32 and block != [1, 1]


# --- block reduction -------------------------------------------------------------


def naive_block_mean(x, br, bc):
    rows, cols = math.ceil(x.shape[0] / br), math.ceil(x.shape[1] / bc)
    out = np.empty((rows, cols), np.float64)
    for r in range(rows):
        for c in range(cols):
            out[r, c] = np.mean(x[r * br : (r + 1) * br, c * bc : (c + 1) * bc], dtype=np.float64)
    return out


@pytest.mark.parametrize(
    "shape,max_cells",
    [((37, 53), 100), ((53, 37), 97), ((101, 7), 30), ((1, 1000), 64), ((1000, 1), 7), ((64, 64), 4095), ((9, 11), 1)],
)
def test_block_mean_equals_naive_loop_on_odd_sizes(shape, max_cells):
    rng = np.random.default_rng(1)
    w = rng.standard_normal(shape).astype(np.float32)
    frame, (br, bc) = L.make_frame(w, L.choose_layout("Dense", "kernel", shape), max_cells)
    assert frame.shape == (math.ceil(shape[0] / br), math.ceil(shape[1] / bc))
    assert frame.size <= max_cells
    assert [br, bc] != [1, 1]
    np.testing.assert_allclose(frame, naive_block_mean(w, br, bc), rtol=1e-6, atol=1e-7)


def test_reduced_conv_frame_is_block_mean_of_reference_layout():
    w = np.random.default_rng(2).standard_normal((3, 3, 40, 50)).astype(np.float32)
    layout = L.choose_layout("Conv2D", "kernel", w.shape)
    frame, (br, bc) = L.make_frame(w, layout, 4000)
    assert frame.size <= 4000
    # Blocks do not cut 3x3 tiles here: each block covers whole tiles or
    # a tile holds whole blocks.
    assert br % 3 == 0 or 3 % br == 0
    assert bc % 3 == 0 or 3 % bc == 0
    np.testing.assert_allclose(frame, naive_block_mean(reference_frame(w, layout), br, bc), rtol=1e-5, atol=1e-6)


def test_exact_up_to_max_cells_and_reduced_one_above():
    w = distinct((16, 16))
    layout = L.choose_layout("Dense", "kernel", w.shape)
    frame, block = L.make_frame(w, layout, 256)
    assert block == [1, 1]
    np.testing.assert_array_equal(frame, w)
    frame, block = L.make_frame(w, layout, 255)
    assert block != [1, 1] and frame.size <= 255


def test_block_choice_is_square_for_square_weights():
    assert L.choose_block(2048, 2048, 65536) == [8, 8]
    cases = [(7, 10**6), (10**6, 7), (10**7, 1), (1, 10**7), (10**5, 3), (1536, 1536), (97, 89), (65537, 1)]
    for rows, cols in cases:
        for max_cells in (13, 1000, 65536):
            if rows * cols <= max_cells:
                continue
            br, bc = L.choose_block(rows, cols, max_cells)
            cells = math.ceil(rows / br) * math.ceil(cols / bc)
            assert cells <= max_cells
            # The budget is used, not collapsed to a sliver (was 1 x 1 for a
            # tall vector once).
            assert cells >= max_cells / 4, (rows, cols, max_cells, br, bc)
            assert br <= rows and bc <= cols


def test_nan_and_inf_propagate_to_their_block_only():
    w = np.ones((8, 8), np.float32)
    w[0, 0] = np.nan
    w[7, 7] = np.inf
    w[0, 7], w[1, 7] = np.inf, -np.inf
    frame, block = L.make_frame(w, L.choose_layout("Dense", "kernel", w.shape), 16)
    assert block == [2, 2]
    assert np.isnan(frame[0, 0])
    assert frame[3, 3] == np.inf
    assert np.isnan(frame[0, 3])  # +inf and -inf in one block
    finite = np.ones_like(frame, bool)
    finite[0, 0] = finite[3, 3] = finite[0, 3] = False
    np.testing.assert_array_equal(frame[finite], 1.0)


def test_block_mean_is_linear_so_deltas_stay_exact():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((300, 200)).astype(np.float32)
    b = a + rng.standard_normal((300, 200)).astype(np.float32) * 1e-2
    layout = L.choose_layout("Dense", "kernel", a.shape)
    fa, block = L.make_frame(a, layout, 1000)
    fb, _ = L.make_frame(b, layout, 1000)
    fd, _ = L.make_frame(b - a, layout, 1000)
    np.testing.assert_allclose(fb - fa, fd, atol=1e-6)
