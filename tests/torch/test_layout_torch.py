"""Layouts of torch modules' weights (layout_torch), through `layout.choose_layout`
as the writer calls it.

Weights hold distinct values (np.arange), so a frame with permuted cells
fails. "The same picture as Keras" is checked by laying out the same weights
both ways: a torch weight and the Keras weight holding the same numbers in
Keras's axis order must give the same frame.
"""

import itertools

import numpy as np
import pytest

from tensorboard_nnviz.core import layout as L
from tensorboard_nnviz.core.layout_torch import ModuleClass

GATES_LSTM = ["i", "f", "g", "o"]
GATES_GRU = ["r", "z", "n"]


def distinct(shape):
    return np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)


def T(name, **options):
    return ModuleClass("torch.nn." + name, **options)


def heads(n, prefix=""):
    return ["%shead %d" % (prefix, h) for h in range(n)]


# (layer_class, weight name, shape, layer name, rows, cols, unit_axes, groups)
# groups: (axis, size, names) or None
TABLE = [
    (T("Linear"), "weight", (3, 5), "fc", [1], [0], [0], None),
    (T("Linear"), "bias", (3,), "fc", [], [0], [0], None),
    (T("Bilinear"), "weight", (2, 3, 4), "bl", [1, 2], [0], [0], None),
    (T("Conv1d", groups=1), "weight", (4, 3, 5), "c", [1], [0, 2], [0], None),
    (T("Conv2d", groups=1), "weight", (4, 3, 3, 2), "c", [1, 2], [0, 3], [0], None),
    (T("Conv3d", groups=1), "weight", (4, 3, 2, 3, 2), "c", [1, 3], [2, 0, 4], [0], None),
    (T("ConvTranspose1d", groups=1), "weight", (3, 4, 5), "c", [0], [1, 2], [1], None),
    (T("ConvTranspose2d", groups=1), "weight", (3, 4, 3, 2), "c", [0, 2], [1, 3], [1], None),
    (T("ConvTranspose3d", groups=1), "weight", (3, 4, 2, 3, 2), "c", [0, 3], [2, 1, 4], [1], None),
    # Depthwise, multiplier 1: one tile per channel, no groups needed.
    (T("Conv2d", groups=3), "weight", (3, 1, 3, 3), "dw", [1, 2], [0, 3], [0], None),
    # Depthwise, multiplier 2: each input channel's two kernels.
    (T("Conv2d", groups=3), "weight", (6, 1, 3, 2), "dw", [1, 2], [0, 3], [0],
     ("cols", 4, ["in 0", "in 1", "in 2"])),
    (T("Conv2d", groups=2), "weight", (4, 3, 1, 1), "g", [1, 2], [0, 3], [0],
     ("cols", 2, ["group 0", "group 1"])),
    (T("ConvTranspose2d", groups=2), "weight", (4, 3, 2, 2), "g", [0, 2], [1, 3], [1],
     ("rows", 4, ["group 0", "group 1"])),
    (T("LSTM"), "weight_ih_l0", (16, 3), "lstm", [1], [0], [0], ("cols", 4, GATES_LSTM)),
    (T("LSTM"), "weight_hh_l1_reverse", (16, 4), "lstm", [1], [0], [0], ("cols", 4, GATES_LSTM)),
    (T("LSTM"), "bias_ih_l0", (16,), "lstm", [], [0], [0], ("cols", 4, GATES_LSTM)),
    (T("LSTM"), "bias_hh_l0_reverse", (16,), "lstm", [], [0], [0], ("cols", 4, GATES_LSTM)),
    (T("LSTM"), "weight_hr_l0", (2, 4), "lstm", [1], [0], [0], None),
    (T("LSTMCell"), "weight_ih", (16, 3), "cell", [1], [0], [0], ("cols", 4, GATES_LSTM)),
    (T("GRU"), "weight_ih_l0", (12, 3), "gru", [1], [0], [0], ("cols", 4, GATES_GRU)),
    (T("GRUCell"), "bias_hh", (12,), "cell", [], [0], [0], ("cols", 4, GATES_GRU)),
    (T("RNN"), "weight_hh_l0", (4, 4), "rnn", [1], [0], [0], None),
    (T("RNNCell"), "bias_ih", (4,), "cell", [], [0], [0], None),
    (T("MultiheadAttention", num_heads=2), "in_proj_weight", (24, 8), "mha", [1], [0], [0],
     ("cols", 4, heads(2, "q ") + heads(2, "k ") + heads(2, "v "))),
    (T("MultiheadAttention", num_heads=2), "in_proj_bias", (24,), "mha", [], [0], [0],
     ("cols", 4, heads(2, "q ") + heads(2, "k ") + heads(2, "v "))),
    (T("MultiheadAttention", num_heads=1), "in_proj_weight", (24, 8), "mha", [1], [0], [0],
     ("cols", 8, ["query", "key", "value"])),
    (T("MultiheadAttention", num_heads=2), "k_proj_weight", (8, 6), "mha", [1], [0], [0],
     ("cols", 4, heads(2))),
    (T("MultiheadAttention", num_heads=2), "bias_k", (1, 1, 8), "mha", [0, 1], [2], [2],
     ("cols", 4, heads(2))),
    (T("NonDynamicallyQuantizableLinear", num_heads=2), "weight", (8, 8), "mha/out_proj",
     [1], [0], [0], ("rows", 4, heads(2))),
    (T("Embedding"), "weight", (7, 3), "emb", [0], [1], [0], None),
    (T("EmbeddingBag"), "weight", (7, 3), "emb", [0], [1], [0], None),
    (T("BatchNorm2d"), "running_var", (3,), "bn", [], [0], [0], None),
    (T("LayerNorm"), "weight", (2, 3), "ln", [0], [1], [0, 1], None),
    (T("GroupNorm"), "bias", (6,), "gn", [], [0], [0], None),
    (T("Module"), "scale", (), "", [], [], [], None),
    (T("Module"), "pos", (1, 5, 4), "", [0, 1], [2], [0], None),
]


@pytest.mark.parametrize("cls,name,shape,layer,rows,cols,units,groups", TABLE,
                         ids=["%s.%s%s" % (t[0][9:], t[1], list(t[2])) for t in TABLE])
def test_layout_of_each_torch_family(cls, name, shape, layer, rows, cols, units, groups):
    layout = L.choose_layout(cls, name, shape, layer)
    assert (layout["row_axes"], layout["col_axes"], layout["unit_axes"]) == (rows, cols, units)
    expected = [] if groups is None else [{"axis": groups[0], "size": groups[1], "names": groups[2]}]
    assert layout["groups"] == expected
    # The frame is the layout rule applied to the tensor, and a group spans
    # whole runs of the frame's side.
    w = distinct(shape)
    frame, block = L.make_frame(w, layout, 1 << 20)
    assert block == [1, 1]
    np.testing.assert_array_equal(frame, np.transpose(w, rows + cols).reshape(frame.shape))
    for g in layout["groups"]:
        side = frame.shape[0 if g["axis"] == "rows" else 1]
        assert g["size"] * len(g["names"]) == side


def test_every_cell_maps_back_to_torchs_own_index():
    """A Conv2d frame cell (i*kh + y, o*kw + x) holds weight[o, i, y, x]."""
    shape = (4, 3, 3, 2)  # (out, in, kh, kw)
    w = distinct(shape)
    layout = L.choose_layout(T("Conv2d", groups=1), "weight", shape, "conv")
    frame, _ = L.make_frame(w, layout, 1 << 20)
    for o, i, y, x in itertools.product(*map(range, shape)):
        r, c = i * 3 + y, o * 2 + x
        assert L.cell_to_index(layout, shape, r, c) == (o, i, y, x)
        assert frame[r, c] == w[o, i, y, x]


# Torch weight → the Keras weight with the same numbers, and its layer.
SAME_PICTURE = [
    ("Linear", "weight", (3, 5), "Dense", "kernel", (1, 0)),
    ("Conv1d", "weight", (4, 3, 5), "Conv1D", "kernel", (2, 1, 0)),
    ("Conv2d", "weight", (4, 3, 3, 2), "Conv2D", "kernel", (2, 3, 1, 0)),
    ("Conv3d", "weight", (4, 3, 2, 3, 2), "Conv3D", "kernel", (2, 3, 4, 1, 0)),
    # torch (in, out, k...), Keras (k..., out, in)
    ("ConvTranspose1d", "weight", (3, 4, 5), "Conv1DTranspose", "kernel", (2, 1, 0)),
    ("ConvTranspose2d", "weight", (3, 4, 3, 2), "Conv2DTranspose", "kernel", (2, 3, 1, 0)),
    ("ConvTranspose3d", "weight", (3, 4, 2, 3, 2), "Conv3DTranspose", "kernel", (2, 3, 4, 1, 0)),
    # Depthwise, multiplier 1: torch (in, 1, kh, kw), Keras (kh, kw, in, 1).
    ("Conv2d", "weight", (5, 1, 3, 3), "DepthwiseConv2D", "kernel", (2, 3, 0, 1)),
    # LSTM: torch (4h, in) gates i f g o, Keras (in, 4h) gates i f c o.
    ("LSTM", "weight_ih_l0", (16, 3), "LSTM", "kernel", (1, 0)),
    ("LSTM", "weight_hh_l0", (16, 4), "LSTM", "recurrent_kernel", (1, 0)),
    ("LSTM", "bias_ih_l0", (16,), "LSTM", "bias", (0,)),
    ("Embedding", "weight", (7, 3), "Embedding", "embeddings", (0, 1)),
    ("BatchNorm1d", "running_mean", (6,), "BatchNormalization", "moving_mean", (0,)),
]


@pytest.mark.parametrize("tcls,tname,tshape,kcls,kname,perm", SAME_PICTURE,
                         ids=[t[0] + "." + t[1] for t in SAME_PICTURE])
def test_same_picture_as_the_keras_layer_of_the_family(tcls, tname, tshape, kcls, kname, perm):
    wt = distinct(tshape)
    wk = np.transpose(wt, perm)
    lt = L.choose_layout(T(tcls, groups=tshape[0] if kcls.startswith("Depthwise") else 1),
                         tname, wt.shape, "x")
    lk = L.choose_layout(kcls, kname, wk.shape, "x")
    ft, fk = L.make_frame(wt, lt, 1 << 20)[0], L.make_frame(wk, lk, 1 << 20)[0]
    np.testing.assert_array_equal(ft, fk)
    # Tiles and gate groups mark the same lines.
    assert [g["size"] for g in lt["groups"]] == [g["size"] for g in lk.get("groups", [])]
    for side in ("row_axes", "col_axes"):
        if len(lk[side]) > 1:
            assert wt.shape[lt[side][-1]] == wk.shape[lk[side][-1]]


def test_torch_names_never_take_keras_layouts():
    """torch's LSTM/Conv2d/Embedding are "torch.nn.*": never Keras's LSTM/Conv2D/Embedding."""
    torch_lstm = L.choose_layout(T("LSTM"), "weight_ih_l0", (16, 3), "lstm")
    keras_lstm = L.choose_layout("LSTM", "kernel", (3, 16), "lstm")
    assert torch_lstm["row_axes"] == [1] and keras_lstm["row_axes"] == [0]
    assert [g["names"] for g in torch_lstm["groups"]] == [GATES_LSTM]
    assert [g["names"] for g in keras_lstm["groups"]] == [["i", "f", "c", "o"]]
    # A bare "Conv2d" is no Keras class (Keras spells it Conv2D) and no torch
    # one either: the default layout, not a conv picture.
    assert L.choose_layout("Conv2d", "weight", (4, 3, 3, 2), "c")["row_axes"] == [0, 1, 2]
    assert L.choose_layout(T("Conv2d"), "weight", (4, 3, 3, 2), "c")["row_axes"] == [1, 2]


def test_module_class_is_its_name_and_losing_options_loses_only_names():
    cls = T("MultiheadAttention", num_heads=2)
    assert cls == "torch.nn.MultiheadAttention" and hash(cls) == hash("torch.nn.MultiheadAttention")
    with_heads = L.choose_layout(cls, "in_proj_weight", (24, 8), "mha")
    plain = L.choose_layout(str(cls), "in_proj_weight", (24, 8), "mha")
    assert with_heads["row_axes"] == plain["row_axes"] and with_heads["col_axes"] == plain["col_axes"]
    assert [g["names"] for g in plain["groups"]] == [["query", "key", "value"]]
