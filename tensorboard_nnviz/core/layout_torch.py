"""Layouts of PyTorch modules' weights (pure numpy-free Python; no torch import).

The same generic rule as for Keras (layout.py, docs/architecture.md):

    frame = transpose(W, row_axes + col_axes).reshape(prod(rows), prod(cols))

so the panel maps every cell back to an index in torch's own axis order
(`weight[o, i, y, x]`). What differs is where torch keeps the axes: a
`Linear` weight is (out, in) where Keras's Dense kernel is (in, out), a
`Conv2d` weight (out, in, kh, kw) where Keras's is (kh, kw, in, out). The
layouts below pick the axes so that a torch layer shows the same picture as
the Keras layer of its family: inputs down the rows, outputs across the
columns, conv kernels as kh x kw tiles, LSTM/GRU gates and attention heads
as named groups.

Module classes are named `torch.nn.<Class>` by the recorder
(`module_class`), never a bare name, so `LSTM`, `Embedding` or `Conv2d` of
torch can not be mistaken for Keras's `LSTM`, `Embedding` or `Conv2D`.
`layout.choose_layout` hands such names to `choose_layout` here.

Every layout also names its `unit_axes`: the tensor axes whose flattened
index is a unit (an output channel, a token, a vector entry); for torch that
is mostly axis 0, the output axis.
"""

import re

PREFIX = "torch.nn."

_LINEAR = {"Linear", "LazyLinear", "NonDynamicallyQuantizableLinear", "Bilinear"}
_CONV = {"Conv1d": 1, "Conv2d": 2, "Conv3d": 3,
         "LazyConv1d": 1, "LazyConv2d": 2, "LazyConv3d": 3}
_CONV_TRANSPOSE = {"ConvTranspose1d": 1, "ConvTranspose2d": 2, "ConvTranspose3d": 3,
                   "LazyConvTranspose1d": 1, "LazyConvTranspose2d": 2,
                   "LazyConvTranspose3d": 3}
_EMBEDDING = {"Embedding", "EmbeddingBag"}
_NORM = {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LazyBatchNorm1d",
         "LazyBatchNorm2d", "LazyBatchNorm3d", "InstanceNorm1d", "InstanceNorm2d",
         "InstanceNorm3d", "LayerNorm", "GroupNorm", "RMSNorm"}
# torch's gate order (torch.nn.LSTM / GRU docs): W_ii|W_if|W_ig|W_io and
# W_ir|W_iz|W_in stacked along axis 0.
_GATES = {
    "LSTM": ["i", "f", "g", "o"], "LSTMCell": ["i", "f", "g", "o"],
    "GRU": ["r", "z", "n"], "GRUCell": ["r", "z", "n"],
    "RNN": [], "RNNCell": [],
}
# weight_ih_l0, weight_hh_l1_reverse, bias_ih_l0, weight_hr_l0 (LSTM
# projections); the cells' weight_ih, bias_hh.
_RNN_WEIGHT = re.compile(r"^(weight|bias)_(ih|hh|hr)(_l\d+)?(_reverse)?$")
_MHA = "MultiheadAttention"


class ModuleClass(str):
    """A torch module's class as the recorder names it: `"torch.nn.Conv2d"`.

    A `str`, so it goes through the writer and compares like the plain name;
    `options` carries the constructor arguments a layout needs that a
    weight's shape does not tell: `num_heads` of an attention layer (also
    given to its `out_proj`), `groups` of a convolution. Lost options (the
    object turned into a plain str) only lose the head and group names.
    """

    def __new__(cls, name, **options):
        self = super().__new__(cls, name)
        self.options = {k: v for k, v in options.items() if v is not None}
        return self


def module_class(module, **options):
    """The `ModuleClass` of a module: `torch.nn.<Class>` of the first class
    of its MRO that torch.nn defines (a user's `MyConv(nn.Conv2d)` and
    FSDP2's `FSDPConv2d` are `torch.nn.Conv2d`; a plain user module a
    `torch.nn.Module`)."""
    for cls in type(module).__mro__:
        if cls.__module__.startswith(PREFIX):
            return ModuleClass(PREFIX + cls.__name__, **options)
        if "%s.%s" % (cls.__module__, cls.__name__) == HF_CONV1D:
            return ModuleClass(HF_CONV1D, **options)
    return ModuleClass(PREFIX + "Module", **options)


def is_torch_class(name):
    return str(name).startswith(PREFIX)


# transformers' GPT-2 style linear layer: a `torch.nn.Module` whose weight is
# stored (in, out), the transpose of `torch.nn.Linear`'s; without knowing it
# the units (outputs) would be read along the inputs.
HF_CONV1D = "transformers.pytorch_utils.Conv1D"


def _layout(row_axes, col_axes, unit_axes, groups=()):
    return {
        "row_axes": [int(a) for a in row_axes],
        "col_axes": [int(a) for a in col_axes],
        "groups": list(groups),
        "unit_axes": [int(a) for a in unit_axes],
    }


def _groups(axis, size, names):
    if size <= 0 or len(names) < 2:
        return []
    return [{"axis": axis, "size": int(size), "names": list(names)}]


def _split(total, names):
    """Groups of `total` layout lines into len(names) equal runs, or none."""
    if not names or total % len(names):
        return []
    return _groups("cols", total // len(names), names)


def _conv_layout(rank, in_axis, out_axis):
    """A conv kernel as Keras shows it: input channels down, output channels
    across, one kh x kw tile per (in, out) pair.

    The spatial axes of a torch kernel are 2 .. 2 + rank - 1:
      1-D (., ., k):          rows [in],      cols [out, 2]      tile 1 x k
      2-D (., ., kh, kw):     rows [in, 2],   cols [out, 3]      tile kh x kw
      3-D (., ., kd, kh, kw): rows [in, 3],   cols [2, out, 4]   kd grids of
        kh x kw tiles side by side, as Keras's Conv3D.
    """
    if rank == 1:
        return [in_axis], [out_axis, 2]
    if rank == 2:
        return [in_axis, 2], [out_axis, 3]
    return [in_axis, 3], [2, out_axis, 4]


def _conv_groups(axis, shape, layout_axes, channel_axis, count, label):
    """Named runs of `count` conv groups along one side of the layout, or
    none: one group, a run of a single tile (the tile separators show it),
    or a 3-D kernel, whose depth slices come before the channels."""
    if count < 2 or layout_axes[0] != channel_axis or shape[channel_axis] % count:
        return []
    tile = 1
    for a in layout_axes[1:]:
        tile *= shape[a]
    per_group = shape[channel_axis] // count
    if per_group < 2:
        return []
    return _groups(axis, per_group * tile, ["%s %d" % (label, k) for k in range(count)])


def _vector(shape, groups=()):
    ndim = len(shape)
    if ndim == 0:
        return _layout([], [], [])
    # A multi-axis norm weight (LayerNorm((C, H, W))): rows all but the last.
    return _layout(range(ndim - 1), [ndim - 1], range(ndim), groups)


def _default(shape):
    """A module we do not know: the tensor as stored (rows all axes but the
    last, as for Keras), axis 0 the unit (torch keeps outputs first)."""
    ndim = len(shape)
    if ndim <= 1:
        return _vector(shape)
    return _layout(range(ndim - 1), [ndim - 1], [0])


def _class_names(layer_class):
    if isinstance(layer_class, str):
        return [layer_class]
    return list(layer_class or ())


def choose_layout(layer_class, weight_name, shape, layer_name=""):
    """The layout of a torch module's weight.

    Args:
      layer_class: a `ModuleClass` (or plain name) `torch.nn.<Class>`, or a
        list of such names (the first one known wins).
      weight_name: the parameter or buffer name inside its module
        (`weight`, `bias_hh_l0_reverse`, `in_proj_weight`, `running_mean`).
      shape: the weight's shape, in torch's axis order.
      layer_name: the module's path; its last part tells a
        MultiheadAttention's `out_proj` from other linear layers.

    Returns:
      `{"row_axes", "col_axes", "groups", "unit_axes"}`.

    Families (rows x cols; "unit" = unit_axes):

      Linear weight (out, in)             rows [1], cols [0]; unit [0]
        (Bilinear (out, in1, in2): rows [1, 2])
      Conv1d/2d/3d weight (out, in/g, k...): tiles as Keras's Conv*D, rows
        = in, cols = out (`_conv_layout`); unit [0]:
        Conv1d (o, i, k)          rows [1],    cols [0, 2]
        Conv2d (o, i, kh, kw)     rows [1, 2], cols [0, 3]
        Conv3d (o, i, kd, kh, kw) rows [1, 3], cols [2, 0, 4]
        grouped (groups g): column groups "group k"; depthwise (g = in):
        one tile per output channel, groups "in k" when a channel has
        several (multiplier > 1)
      ConvTranspose1d/2d/3d weight (in, out/g, k...): the same picture with
        in = axis 0, out = axis 1; unit [1]
      LSTM/GRU/RNN (and their cells) weight_ih_l{k}[_reverse] (G*h, in),
        weight_hh_l{k} (G*h, h): rows [1], cols [0], a column group of h
        per gate (LSTM i f g o, GRU r z n); bias_* (G*h,): a strip with the
        same groups; LSTM weight_hr_l{k} (proj, h): rows [1], cols [0];
        unit [0]
      MultiheadAttention in_proj_weight (3E, E): rows [1], cols [0], groups
        q/k/v x heads ("q head 0", ...; "query"/"key"/"value" for one head);
        in_proj_bias (3E,) the same strip; q/k/v_proj_weight (E, d): rows
        [1], cols [0], a group per head; bias_k/bias_v (1, 1, E): heads;
        out_proj.weight (E, E): rows [1] with a row group per head (the
        heads' concatenated outputs come in), cols [0]; unit [0] (bias_k,
        bias_v: [2])
      Embedding/EmbeddingBag weight (num, dim): rows [0], cols [1]; unit [0]
      Vectors (bias, norm weight, running_mean, ...): rows [], cols [0];
        unit [0]; LayerNorm over several axes: rows all but the last
      Scalars: a 1 x 1 frame, unit []
      transformers' Conv1D weight (in, out): rows [0], cols [1]; unit [1]
      Anything else: rows all axes but the last, cols [last]; unit [0]
    """
    shape = tuple(int(d) for d in shape)
    name = weight_name.rsplit("/", 1)[-1]
    sublayer = layer_name.rsplit("/", 1)[-1] if layer_name else ""
    for cls in _class_names(layer_class):
        if str(cls) == HF_CONV1D and name == "weight" and len(shape) == 2:
            return _layout([0], [1], [1])
        options = getattr(cls, "options", {})
        family = str(cls)[len(PREFIX):] if is_torch_class(cls) else None
        layout = _family_layout(family, name, shape, sublayer, options) if family else None
        if layout is not None:
            return layout
    return _default(shape)


def _family_layout(family, name, shape, sublayer, options):
    """The layout of a known family, or None to try the next class name."""
    ndim = len(shape)
    if ndim <= 1 and family != _MHA and family not in _GATES:
        return _vector(shape)
    if family in _LINEAR and name == "weight":
        heads = options.get("num_heads") if sublayer == "out_proj" else None
        groups = _groups("rows", shape[1] // heads, ["head %d" % h for h in range(heads)]) \
            if heads and shape[1] % heads == 0 else []
        return _layout(range(1, ndim), [0], [0], groups)
    if family in _CONV and name == "weight" and ndim == _CONV[family] + 2:
        rows, cols = _conv_layout(_CONV[family], 1, 0)
        # Depthwise (groups = in channels): each input channel's kernels.
        label = "in" if shape[1] == 1 else "group"
        groups = _conv_groups("cols", shape, cols, 0, options.get("groups", 1), label)
        return _layout(rows, cols, [0], groups)
    if family in _CONV_TRANSPOSE and name == "weight" and ndim == _CONV_TRANSPOSE[family] + 2:
        rows, cols = _conv_layout(_CONV_TRANSPOSE[family], 0, 1)
        groups = _conv_groups("rows", shape, rows, 0, options.get("groups", 1), "group")
        return _layout(rows, cols, [1], groups)
    if family in _NORM:
        return _vector(shape)
    if family in _EMBEDDING and ndim == 2:
        return _layout([0], [1], [0])
    if family in _GATES:
        return _rnn_layout(_GATES[family], name, shape)
    if family == _MHA:
        return _attention_layout(name, shape, options.get("num_heads"))
    return None


def _rnn_layout(gates, name, shape):
    match = _RNN_WEIGHT.match(name)
    if match is None:
        return None
    gates = [] if match.group(2) == "hr" else gates  # a projection has no gates
    if len(shape) == 1:
        return _layout([], [0], [0], _split(shape[0], gates))
    if len(shape) == 2:
        return _layout([1], [0], [0], _split(shape[0], gates))
    return None


def _head_names(heads, prefix=""):
    return ["%shead %d" % (prefix, h) for h in range(heads)]


def _attention_layout(name, shape, heads):
    """torch.nn.MultiheadAttention's own weights (out_proj is a Linear)."""
    ndim = len(shape)
    heads = int(heads) if heads else 0
    if name in ("in_proj_weight", "in_proj_bias"):
        total = shape[0]
        embed = total // 3
        if heads > 1 and embed % heads == 0:
            names = [p + " " + h for p in "qkv" for h in _head_names(heads)]
            groups = _groups("cols", embed // heads, names)
        else:
            groups = _split(total, ["query", "key", "value"])
        if ndim == 1:
            return _layout([], [0], [0], groups)
        return _layout([1], [0], [0], groups)
    per_head = (lambda n: _groups("cols", n // heads, _head_names(heads))
                if heads > 1 and n % heads == 0 else [])
    if name in ("q_proj_weight", "k_proj_weight", "v_proj_weight") and ndim == 2:
        return _layout([1], [0], [0], per_head(shape[0]))
    if name in ("bias_k", "bias_v") and ndim == 3:  # (1, 1, E)
        return _layout([0, 1], [2], [2], per_head(shape[2]))
    return None
