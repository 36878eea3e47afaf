"""How a weight tensor becomes a 2-D frame (pure numpy; no Keras, no TF).

One generic rule, so any frame cell maps back to the tensor
(docs/architecture.md, "The layout rule"):

    layout = transpose(W, row_axes + col_axes).reshape(prod(rows), prod(cols))

then, when `prod(rows) * prod(cols) > max_cells`, a block mean with block
`[br, bc]`: frame cell (r, c) averages layout rows r*br .. r*br+br-1 and
columns c*bc .. c*bc+bc-1 (edge blocks average only the cells they cover).

`choose_layout` picks `row_axes`, `col_axes` and `groups` per layer family;
`make_frame` applies them; `cell_to_index` is the Python reference of the
inverse mapping (the panel does the same in JavaScript).

A `group` `{"axis": "cols", "size": n, "names": [...]}` names consecutive runs
of n layout columns (before reduction), e.g. the gates of an LSTM kernel or
the heads of an attention projection.
"""

import functools
import math

import numpy as np

from tensorboard_nnviz.core import layout_torch

_CONV = {
    "Conv1D": 1, "Conv2D": 2, "Conv3D": 3,
    "Convolution1D": 1, "Convolution2D": 2, "Convolution3D": 3,
}
_CONV_TRANSPOSE = {
    "Conv1DTranspose": 1, "Conv2DTranspose": 2, "Conv3DTranspose": 3,
    "Convolution1DTranspose": 1, "Convolution2DTranspose": 2,
    "Convolution3DTranspose": 3,
}
_DEPTHWISE = {"DepthwiseConv1D": 1, "DepthwiseConv2D": 2}
_SEPARABLE = {
    "SeparableConv1D": 1, "SeparableConv2D": 2,
    "SeparableConvolution1D": 1, "SeparableConvolution2D": 2,
}
_CONV_LSTM = {"ConvLSTMCell", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"}
# Keras 3 gate order: lstm.py splits the kernel into i, f, c, o; gru.py
# slices it as z (update), r (reset), h (candidate).
_LSTM = {"LSTMCell", "LSTM"}
_GRU = {"GRUCell", "GRU"}
_LSTM_GATES = ["i", "f", "c", "o"]
_GRU_GATES = ["z", "r", "h"]
# MultiHeadAttention / GroupedQueryAttention sublayers (all EinsumDense).
_HEAD_INPUT_PROJECTIONS = {"query", "key", "value", "gate"}
_HEAD_OUTPUT_PROJECTION = "attention_output"
_EMBEDDING = {"Embedding"}


def _layout(row_axes, col_axes, groups=(), unit_axes=None):
    """A layout; `unit_axes` default: the last axis (none for a scalar)."""
    ndim = len(row_axes) + len(col_axes)
    if unit_axes is None:
        unit_axes = [ndim - 1] if ndim else []
    return {
        "row_axes": [int(a) for a in row_axes],
        "col_axes": [int(a) for a in col_axes],
        "groups": list(groups),
        "unit_axes": [int(a) for a in unit_axes],
    }


def _group(axis, size, count, names=None):
    names = names if names is not None else ["head %d" % i for i in range(count)]
    return {"axis": axis, "size": int(size), "names": list(names)}


def _gate_group(axis, total, gates):
    """Gate groups over `total` layout lines, or none if it does not split."""
    if total <= 0 or total % len(gates):
        return []
    return [_group(axis, total // len(gates), len(gates), gates)]


def _conv_layout(rank, in_axis, out_axis):
    """Kernel tiles for a conv kernel of `rank` spatial axes (0 .. rank-1).

    Rows run over the input channel, columns over the output channel; each
    (in, out) pair owns one tile holding the spatial kernel:

      1-D (k, in, out):      rows [in],     cols [out, 0]   tile 1 x k
      2-D (kh, kw, in, out): rows [in, 0],  cols [out, 1]   tile kh x kw

               out 0      out 1
             +-------+  +-------+
      in 0   | kh*kw |  |       |   ...   tile (i, o) = W[:, :, i, o]
             +-------+  +-------+
      in 1   |       |  |       |

      3-D (kd, kh, kw, in, out): rows [in, 1], cols [0, out, 2]: kd such
      2-D grids side by side, grid d made of the tiles W[d, :, :, i, o].
      Tiles stay kh x kw, so separators every shape[row_axes[-1]] rows and
      shape[col_axes[-1]] columns are tile boundaries, as for 2-D.
    """
    if rank == 1:
        return [in_axis], [out_axis, 0]
    if rank == 2:
        return [in_axis, 0], [out_axis, 1]
    return [in_axis, 1], [0, out_axis, 2]


def _rank_default(ndim):
    """Fallback: rows = every axis but the last, cols = [last]."""
    if ndim == 0:
        return _layout([], [])
    if ndim == 1:
        return _layout([], [0])
    return _layout(list(range(ndim - 1)), [ndim - 1])


def _class_names(layer_class):
    if isinstance(layer_class, str):
        return [layer_class]
    return [str(c) for c in (layer_class or ())]


def choose_layout(layer_class, weight_name, shape, layer_name=""):
    """Chooses how a weight is laid out as a 2-D frame.

    Args:
      layer_class: class name of the layer owning the variable ("Dense",
        "Conv2D", "LSTMCell", "EinsumDense", ...). A list of names (e.g. the
        class's MRO) is also accepted: the first one known wins. PyTorch
        module classes, named "torch.nn.<Class>", are laid out by
        layout_torch in torch's axis order.
      weight_name: the variable's name ("kernel", "recurrent_kernel", ...).
      shape: the weight's shape.
      layer_name: the owning layer's name or path (its last part is used);
        recognises MultiHeadAttention's `query`/`key`/`value`/`gate`/
        `attention_output` sublayers, which are plain EinsumDense layers.

    Returns:
      `{"row_axes": [int], "col_axes": [int], "groups": [...],
      "unit_axes": [int]}`. `unit_axes` name the tensor axes whose
      flattened C-order index is a unit (one output channel of the layer):
      the last axis unless said otherwise below; a scalar has none (one unit).

    Families (layout rows x cols, "|" marks a tile or group boundary):

      Dense kernel (in, out), Embedding (vocab, dim), any rank-2 weight:
        rows [0], cols [1]                       in x out
      Conv kernels: a grid of kernel tiles, input channels down, output
        channels across, tile (i, o) = W[..., i, o] (see `_conv_layout`):
        Conv1D (k, in, out)          rows [1],    cols [2, 0]     tile 1 x k
        Conv2D (kh, kw, in, out)     rows [2, 0], cols [3, 1]     tile kh x kw
        Conv3D (kd, kh, kw, in, out) rows [3, 1], cols [0, 4, 2]  kd grids
          side by side, tile (i, o) of grid d = W[d, :, :, i, o]
      Conv*Transpose kernels are (..., out, in): the same picture with the
        last two axes swapped, so rows are still inputs, cols outputs:
        Conv2DTranspose (kh, kw, out, in): rows [3, 0], cols [2, 1].
      DepthwiseConv2D kernel and SeparableConv2D depthwise_kernel
        (kh, kw, in, mult): rows [3, 0], cols [2, 1]: a row of tiles per
        multiplier, one tile per input channel (a strip when mult = 1).
        DepthwiseConv1D (k, in, mult): rows [2], cols [1, 0].
      SeparableConv pointwise_kernel (1, 1, in, out): as Conv2D (in x out).
      LSTM/GRU kernel (in, g*u), recurrent_kernel (u, g*u): rows [0], cols [1]
        with one column group of u per gate (LSTM i f c o, GRU z r h):
              | i  | f  | c  | o  |
          in  |    |    |    |    |
      LSTM bias (4u,), GRU bias (3u,): a strip with gate groups; GRU bias
        with reset_after (2, 3u): rows [0] (input, recurrent), cols [1].
      ConvLSTM kernels: the conv picture with gate groups of filters*kw cols
        (repeated per depth slice for ConvLSTM3D).
      MultiHeadAttention (EinsumDense sublayers):
        query/key/value kernel (d, heads, hd): rows [0], cols [1, 2], a
          column group of hd per head; their bias (heads, hd): cols [0, 1].
        attention_output kernel (heads, hd, d): rows [0, 1] (a row group of
          hd per head), cols [2, ...].
      Other EinsumDense kernels: rows [0], cols = the other axes.
      Embedding (vocab, dim): rows [0], cols [1].
      Vectors (bias, gamma, beta, moving_mean, ...): rows [], cols [0].

    Units (`unit_axes`): Dense, Conv*, LSTM/GRU (gates side by side) [last];
    Conv*Transpose (..., out, in) [out]; depthwise kernels (..., in, mult)
    [in, mult]; MHA query/key/value kernel (d, heads, hd) [1, 2], their
    bias [0, 1], attention_output kernel (heads, hd, d) [2]; Embedding [0]
    (a token); vectors [0] (each entry); scalars [] (one unit).
      Scalars: rows [], cols [] (a 1 x 1 frame).
      Anything else: rows = all axes but the last, cols = [last].
    """
    names = _class_names(layer_class)
    if any(layout_torch.is_torch_class(c) for c in names):
        # PyTorch modules ("torch.nn.Conv2d"): torch's axis order.
        return layout_torch.choose_layout(layer_class, weight_name, shape, layer_name)
    shape = tuple(int(d) for d in shape)
    ndim = len(shape)
    name = weight_name.rsplit("/", 1)[-1]
    sublayer = layer_name.rsplit("/", 1)[-1] if layer_name else ""
    for cls in names:
        layout = _family_layout(cls, name, shape, sublayer)
        if layout is not None:
            return layout
    return _rank_default(ndim)


def _family_layout(cls, name, shape, sublayer):
    """The layout for a known family, or None to try the next class name."""
    ndim = len(shape)
    if cls in _CONV and ndim == _CONV[cls] + 2:
        rows, cols = _conv_layout(_CONV[cls], ndim - 2, ndim - 1)
        return _layout(rows, cols)
    if cls in _CONV_TRANSPOSE and ndim == _CONV_TRANSPOSE[cls] + 2:
        rows, cols = _conv_layout(_CONV_TRANSPOSE[cls], ndim - 1, ndim - 2)
        return _layout(rows, cols, unit_axes=[ndim - 2])
    if cls in _DEPTHWISE and ndim == _DEPTHWISE[cls] + 2:
        rows, cols = _conv_layout(_DEPTHWISE[cls], ndim - 1, ndim - 2)
        return _layout(rows, cols, unit_axes=[ndim - 2, ndim - 1])
    if cls in _SEPARABLE and ndim == _SEPARABLE[cls] + 2:
        rank = _SEPARABLE[cls]
        if name == "pointwise_kernel":
            rows, cols = _conv_layout(rank, ndim - 2, ndim - 1)
            return _layout(rows, cols)
        # depthwise_kernel (..., in, mult)
        rows, cols = _conv_layout(rank, ndim - 1, ndim - 2)
        return _layout(rows, cols, unit_axes=[ndim - 2, ndim - 1])
    if cls in _CONV_LSTM and ndim >= 3 and name in ("kernel", "recurrent_kernel"):
        rows, cols = _conv_layout(ndim - 2, ndim - 2, ndim - 1)
        # Columns run (depth slices,) filters, then the last spatial axis:
        # each gate is a run of filters * kw columns, once per depth slice.
        filters = shape[-1] // 4 if shape[-1] % 4 == 0 else 0
        run = filters * shape[cols[-1]] if len(cols) > 1 else filters
        repeats = shape[0] if ndim == 5 else 1
        groups = [_group("cols", run, 4 * repeats, _LSTM_GATES * repeats)] if filters else []
        return _layout(rows, cols, groups)
    if cls in _LSTM or cls in _GRU or cls in _CONV_LSTM:
        gates = _GRU_GATES if cls in _GRU else _LSTM_GATES
        if ndim == 1:
            return _layout([], [0], _gate_group("cols", shape[0], gates))
        if ndim == 2:
            return _layout([0], [1], _gate_group("cols", shape[1], gates))
        return None
    if cls == "EinsumDense":
        return _einsum_layout(name, shape, sublayer)
    if cls in _EMBEDDING and ndim == 2:
        return _layout([0], [1], unit_axes=[0])
    return None


def _einsum_layout(name, shape, sublayer):
    ndim = len(shape)
    if sublayer in _HEAD_INPUT_PROJECTIONS:
        if name == "kernel" and ndim == 3:  # (d, heads, hd)
            return _layout([0], [1, 2], [_group("cols", shape[2], shape[1])], unit_axes=[1, 2])
        if name == "bias" and ndim == 2:  # (heads, hd)
            return _layout([], [0, 1], [_group("cols", shape[1], shape[0])], unit_axes=[0, 1])
    if sublayer == _HEAD_OUTPUT_PROJECTION and name == "kernel" and ndim >= 3:
        # (heads, hd, *output_shape)
        outputs = list(range(2, ndim))
        return _layout([0, 1], outputs, [_group("rows", shape[1], shape[0])], unit_axes=outputs)
    if name == "kernel" and ndim >= 2:
        # An einsum kernel usually contracts its first axis with the input.
        return _layout([0], list(range(1, ndim)), unit_axes=list(range(1, ndim)))
    if ndim <= 1:
        return _rank_default(ndim)
    return _layout([], list(range(ndim)), unit_axes=list(range(ndim)))


# --- frames -------------------------------------------------------------------


def _prod(shape, axes):
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


def layout_size(layout, shape):
    """(R, C): the unreduced layout's rows and columns."""
    return _prod(shape, layout["row_axes"]), _prod(shape, layout["col_axes"])


def _check_axes(layout, ndim):
    axes = list(layout["row_axes"]) + list(layout["col_axes"])
    if sorted(axes) != list(range(ndim)):
        raise ValueError(
            "layout axes %r are not a permutation of the %d axes of the tensor"
            % (axes, ndim)
        )
    return axes


def tile_size(layout, shape, side):
    """Layout lines per kernel tile on `side` ("rows" or "cols"):
    shape[axes[-1]] when that side has more than one axis, else None (no tiles).

    One rule for the tile separators drawn by the panel (frontend/model/layout.js)
    and by exports (render.py), and for the blocks `choose_block` keeps
    whole; tests/fixtures/shared_rules.json holds cases both languages pass.
    """
    axes = layout["row_axes" if side == "rows" else "col_axes"]
    return int(shape[axes[-1]]) if len(axes) > 1 else None


def _lines(period, total, block):
    """Every `period` layout lines strictly inside `total`, in frame cells."""
    return [p / block for p in range(period, total, period)] if period and period > 0 else []


def _block(layout):
    return [max(1, int(b)) for b in (layout.get("block") or [1, 1])[:2]]


def separators(layout, shape):
    """Tile separators in frame cells (fractional in reduced frames):
    `{"rows": [...], "cols": [...]}`, a line every `tile_size` layout lines."""
    sizes, block = layout_size(layout, shape), _block(layout)
    return {side: _lines(tile_size(layout, shape, side), total, b)
            for side, total, b in zip(("rows", "cols"), sizes, block)}


def group_lines(layout, shape):
    """Boundaries between gate/head groups in frame cells, `{"rows", "cols"}`
    (the panel's `groupSpans` starts after the first)."""
    sizes, block = layout_size(layout, shape), _block(layout)
    out = {"rows": [], "cols": []}
    for group in layout.get("groups") or ():
        side = "rows" if group.get("axis") == "rows" else "cols"
        i = 0 if side == "rows" else 1
        out[side].extend(_lines(int(group.get("size", 0)), sizes[i], block[i]))
    return out


def _block_align(layout, shape, side):
    """Line counts a block should not cut across on one side: kernel tiles
    and gate/head groups."""
    sizes = [tile_size(layout, shape, side)]
    sizes += [int(g["size"]) for g in layout.get("groups") or () if g.get("axis") == side]
    return [n for n in sizes if n is not None and n > 1]


def _aligned(b, align):
    return all(b % n == 0 or n % b == 0 for n in align)


def _next_aligned(b, align, limit):
    """Smallest b' >= b (<= limit) aligned with every line count, or None."""
    for cand in range(b, min(limit, 2 * b + max(align, default=1)) + 1):
        if _aligned(cand, align):
            return cand
    return None


def choose_block(rows, cols, max_cells, row_align=(), col_align=()):
    """Chooses a block [br, bc] so that ceil(R/br) * ceil(C/bc) <= max_cells.

    Minimises the cells per block (the detail lost) times the square root of
    the block's aspect ratio (a square block keeps the frame's aspect equal
    to the layout's) times 2 for each side whose block would cut a kernel
    tile or a gate/head group (`*_align`) in two: e.g. a 3x3 conv kernel is
    reduced by 3x3 or 6x6 blocks, not 2x2 ones, unless that costs over
    twice the detail.

    The search (`_best_block`, over a hundred or more block heights) is
    remembered per arguments: a model asks again for every weight of the
    same shape, and for each quantity of a weight.
    """
    if rows * cols <= max_cells:
        return [1, 1]
    if max_cells < 1:
        raise ValueError("max_cells must be >= 1, got %r" % (max_cells,))
    return list(_best_block(int(rows), int(cols), int(max_cells), tuple(row_align),
                            tuple(col_align)))


@functools.lru_cache(maxsize=1024)
def _best_block(rows, cols, max_cells, row_align, col_align):
    """`choose_block`'s search, as a tuple."""
    # Block heights worth trying: around the square block's side, around
    # the least feasible height (when the columns are few), a geometric
    # sweep in between, and all rows.
    side = math.isqrt(-(-rows * cols // max_cells)) + 1
    span = 8 * side + 2 * max(row_align, default=1)
    lowest = -(-rows // max_cells)
    candidates = set(range(1, min(rows, span) + 1))
    candidates |= set(range(lowest, min(rows, lowest + span) + 1))
    candidates |= {min(rows, int(round(rows ** (k / 64)))) for k in range(65)}
    best = None
    for br in sorted(candidates):
        frame_rows = -(-rows // br)
        max_cols = max_cells // frame_rows
        if max_cols < 1:
            continue
        bc_min = min(cols, -(-cols // max_cols))
        for bc in {bc_min, _next_aligned(bc_min, col_align, cols) or bc_min}:
            score = br * bc * math.sqrt(max(br, bc) / min(br, bc))
            if not _aligned(br, row_align):
                score *= 2
            if not _aligned(bc, col_align):
                score *= 2
            if best is None or score < best[0]:
                best = (score, br, bc)
    return best[1], best[2]


def frame_block(layout, shape, max_cells):
    """The block `make_frame` reduces a tensor of `shape` by ([1, 1] = exact)."""
    rows, cols = layout_size(layout, shape)
    return choose_block(
        rows, cols, int(max_cells), _block_align(layout, shape, "rows"),
        _block_align(layout, shape, "cols"),
    )


def _sum_runs(x, run, axis):
    """Sums runs of `run` consecutive lines along axis 0 or 1, in x's dtype
    (float32 or float64).

    A reshape + sum over the run axis (much faster than np.add.reduceat);
    the last, shorter run is summed on its own.
    """
    n = x.shape[axis]
    full = n // run
    head = x[: full * run] if axis == 0 else x[:, : full * run]
    if axis == 0:
        parts = [head.reshape(full, run, x.shape[1]).sum(axis=1)]
    elif run <= 16:
        # A short innermost run: `run` strided slices added (numpy's inner
        # loop over a run of 2 or 3 would cost more than the sum).
        total = head[:, 0::run].copy()
        for k in range(1, run):
            total += head[:, k::run]
        parts = [total]
    else:
        parts = [head.reshape(x.shape[0], full, run).sum(axis=2)]
    if n % run:
        tail = x[full * run :] if axis == 0 else x[:, full * run :]
        parts.append(tail.sum(axis=axis, keepdims=True))
    return np.concatenate(parts, axis=axis) if len(parts) > 1 else parts[0]


def _counts(n, run):
    """Lines covered by each run of `run` along a side of n lines."""
    return np.minimum(run, n - np.arange(0, n, run)).astype(np.float64)


def block_mean(x, block, scale=(1, 1)):
    """Block mean of a 2-D float32 (or float64) array, as float32.

    Sums run in x's dtype: a float32 block sum of at most a few hundred
    cells is good to about 1e-6 relative, far below the float16 rounding
    (2**-11) of the reduced frames the writer stores. `scale`: each cell of
    x already sums that many layout rows and columns (see `make_frame`).
    Edge blocks average only the cells they cover. NaN or Inf in a block
    make that cell NaN or Inf, so a broken weight stays visible however
    small the frame.
    """
    br, bc = (int(b) for b in block)
    rows, cols = x.shape
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN: wanted
        s = _sum_runs(_sum_runs(x, br, 0), bc, 1)
    s /= (_counts(rows, br) * scale[0])[:, None].astype(s.dtype)
    s /= (_counts(cols, bc) * scale[1])[None, :].astype(s.dtype)
    return s.astype(np.float32, copy=False)


def _presum_inner_axes(w, layout, block):
    """Sums the innermost axis of each side of the layout first when every
    block covers whole runs of it (a tile-aligned block of a conv kernel):
    then no transposed copy of the full tensor is needed. Returns
    (w with those axes kept as size 1, block left to apply, scale)."""
    block, scale, summed = list(block), [1, 1], []
    for side, key in enumerate(("row_axes", "col_axes")):
        axes = layout[key]
        if len(axes) > 1 and w.shape[axes[-1]] > 1 and block[side] % w.shape[axes[-1]] == 0:
            scale[side] = w.shape[axes[-1]]
            block[side] //= scale[side]
            summed.append(axes[-1])
    if summed:
        with np.errstate(invalid="ignore", over="ignore"):
            w = np.add.reduce(w, axis=tuple(summed), keepdims=True)
    return w, block, scale


def make_frame(w, layout, max_cells, block=None):
    """Lays out a weight as a 2-D float32 frame of at most `max_cells` cells.

    Args:
      w: the weight (any numeric dtype; float16/bfloat16 are widened).
      layout: `{"row_axes", "col_axes", ...}` from `choose_layout`.
      max_cells: the largest frame stored; a tensor with up to this many
        cells is stored exactly, cell for cell.
      block: `frame_block(layout, w.shape, max_cells)` if known (a writer
        keeps it per tensor: the search costs more than the reduction);
        then it alone decides, and max_cells may be None.

    Returns:
      `(frame, [br, bc])`: frame = transpose(w, row_axes + col_axes)
      .reshape(R, C), block-mean reduced by [br, bc] when R*C > max_cells
      ([1, 1] = exact).

    Why a block mean: it is linear, so the difference of two reduced frames
    is the reduced difference (Δ views of large tensors stay exact up to
    the float16 rounding the writer stores reduced frames in: budget.py), and
    it shows the average weight of a region, like a zoomed-out image. NaN
    and Inf propagate through the mean on purpose: a block holding a NaN is
    NaN, so a few broken weights do not vanish in a downsampled frame. The
    block is chosen by `choose_block`: square-ish, aligned with conv tiles
    and gate/head groups when that costs little detail.
    """
    w = np.asarray(w)
    axes = _check_axes(layout, w.ndim)
    rows, cols = layout_size(layout, w.shape)
    if (rows * cols <= max_cells) if block is None else list(block) == [1, 1]:
        x = np.transpose(w, axes).reshape(rows, cols)
        return np.array(x, dtype=np.float32), [1, 1]
    block = frame_block(layout, w.shape, max_cells) if block is None else list(block)
    if w.dtype not in (np.float32, np.float64):
        w = w.astype(np.float32)
    summed, rest, scale = _presum_inner_axes(w, layout, block)
    x = np.transpose(summed, axes).reshape(rows // scale[0], cols // scale[1])
    return block_mean(x, rest, scale), block


def cell_to_index(layout, shape, row, col):
    """Maps layout cell (row, col) (unreduced) to the tensor's index tuple."""
    shape = tuple(int(d) for d in shape)
    rows, cols = layout_size(layout, shape)
    if not (0 <= row < rows and 0 <= col < cols):
        raise IndexError("cell (%d, %d) outside the %d x %d layout" % (row, col, rows, cols))
    index = [0] * len(shape)
    for axes, flat in ((layout["row_axes"], row), (layout["col_axes"], col)):
        # C order: the last axis of each side varies fastest.
        for axis in reversed(axes):
            flat, index[axis] = divmod(flat, shape[axis])
    return tuple(index)
