"""Full-resolution statistics of one weight snapshot, per tensor and per unit.

`measure(w, prev, init, unit_axes)` returns a `Measurement`: `stats`, every
name of `format.STAT_FIELDS`, and per-unit `norm` = ||W[u]|| and `update` =
||W[u] - prev[u]|| (a unit: one index of the `unit_axes`, see layout.py);
given a layout, the weight's frame too (`layout.make_frame`'s).
`compute_stats(w, prev, init)` returns the `stats` alone.

Two paths give the same answers (tests/test_fused.py): the fused pass
(record/fused.py, compiled by numba: one read of W, W_prev and W_0 for the
stats, the unit sums and the frame, to the precision below; its partial
sums are exposed for shards: `new_partial`, `accumulate`, `combine`,
`finish`), and the numpy path below, taken where numba is missing or fails.

- `mean, std, min, max, l2, absmax`: over the finite entries (`std` is the
  population standard deviation, ddof = 0).
- `p01, p99`: 1st / 99th percentiles (numpy's linear interpolation) of the
  finite entries: exact when the tensor has at most `SAMPLE_SIZE` entries,
  else estimated from a fixed stratified sample of `SAMPLE_SIZE` entries
  (one pseudo-random entry per stratum, the same positions at every step,
  so a change in p01 is a change in the weights, not in the sample).
- `zero_frac`: fraction of the finite entries with |w| <= 1e-8.
- `nan`, `inf`: counts (always numbers).
- `update_l2` = ||W - prev||, `update_absmax` = max |W - prev|,
  `update_ratio` = update_l2 / ||prev||; `init_l2`, `init_absmax` likewise
  against `init` (W_0), and `init_cos` = cos(W, init).

  These compare entry by entry, so they are taken over the entries finite in
  both tensors: one NaN does not hide how the rest moved (the `nan`/`inf`
  counts say that something broke). `update_ratio` and `init_cos` use the
  norms over those same entries.
- `units_still`: how many units have an `update` of exactly 0 (W[u] is
  bit-identical to prev[u]); it lets a reader find stopped units without
  reading the per-unit series.

Per-unit values are not restricted to finite entries: a unit holding NaN
has a NaN norm (Inf: an Inf norm), so a broken unit stays visible.

Undefined values are None, never NaN: no finite entry, no `prev`/`init`
(or one of another shape), a zero norm in a ratio or cosine.

Precision, on both paths. Every sum accumulates in float64 across blocks
(numpy: of at most `_BLOCK` entries; the fused pass: float32 sums of at most
1,024 entries, and unit and frame sums within a chunk of 65,536). Two ways:

- exact: tensors of at most `EXACT_SIZE` entries, float64 tensors, and (the
  whole tensor on the numpy path, the chunk of rows holding it on the fused
  pass) NaN or Inf: every entry is widened to float64 and every product
  and difference is taken there.
- fast: larger float32 tensors (float16, bfloat16 and integers are
  widened to float32 first, exactly). Differences and squares are rounded
  to float32 (2**-24 relative per entry) and summed in float32 within a
  block, so norms are within about 1e-7 relative of the float64 value
  (benchmarks/writer_cpu.py measures it; tests/test_stats.py bounds the
  numpy path, tests/test_fused.py the fused pass on a tensor built to be
  hard for it; numpy's float32 blocks are longer, and reach a few 1e-6 for
  an update that is exactly 0 in most entries, as bfloat16's often is).
  `init_cos` is derived from the three norms, so it is within about 1e-7
  absolute; frame cells within float32 rounding of their entries. A sum
  that overflows float32, a unit sum that underflows to 0 and a large mean
  (std by cancellation) are redone exactly (the fused pass: any chunk
  holding an entry whose square could come near float32's overflow or
  underflow), so a zero update is always exactly zero and no finite
  tensor reads as Inf.
- min, max and zero counts are exact either way; max |W - other| is the
  largest difference as float32 rounds it on the fast way.

The numpy fast path reads each block once while it is in the CPU cache and
does without float64 copies: float64 arithmetic over float32 data runs
through numpy's casting buffers at a fraction of the speed (measured in
benchmarks/writer_cpu.py). No BLAS: its threads stall on cores that
training keeps busy, so products are einsum's single-threaded loops.
"""

import collections
import functools
import logging
import math
import threading

import numpy as np

from tensorboard_nnviz.core import format as nnviz_format
from tensorboard_nnviz.core import layout as layout_lib

logger = logging.getLogger(__name__)

SAMPLE_SIZE = 65536
ZERO_TOL = 1e-8
EXACT_SIZE = 65536  # tensors up to this many entries: float64 throughout
_BLOCK = 1 << 17  # entries per block: few numpy calls, the inputs still cached
_ROWS = 1024  # rows per block at most (float32 sums per unit run down them)

# |w| <= ZERO_TOL for a float32 w  <=>  float32(w * w) <= _ZERO_TOL_SQ32:
# the largest float32 <= 1e-8, squared in float32 (rounding is monotonic and
# sqrt(fl(w * w)) == |w| in binary floating point; tests check the boundary).
def _largest_float32_at_most(x):
    f = np.float32(x)
    return np.nextafter(f, np.float32(0)) if float(f) > x else f


_ZERO_TOL_SQ32 = np.square(_largest_float32_at_most(ZERO_TOL))

_jitter = np.random.default_rng(20240601).random(SAMPLE_SIZE)

Measurement = collections.namedtuple("Measurement", "stats norm update sumsq finite frame",
                                     defaults=(None,))
Measurement.__doc__ = """What `measure` returns.

  stats: {name: float or None} for every name of `format.STAT_FIELDS`.
  norm: float64 array, ||W[u]|| per unit (in C order of the unit axes).
  update: float64 array, ||W[u] - prev[u]|| per unit, or None without prev.
  sumsq: ||W||**2 over the finite entries (pass it back as `prev_sumsq` /
    `init_sumsq` with the next snapshot: it saves reading prev twice).
  finite: whether every entry of W is finite.
  frame: the float32 frame `layout.make_frame` makes with the layout's
    block, when `measure` was given a layout; else None.
"""


# --- units --------------------------------------------------------------------


def default_unit_axes(ndim):
    """Units of a tensor whose layout names none: the last axis."""
    return [ndim - 1] if ndim else []


def unit_count(shape, unit_axes):
    return math.prod(int(shape[a]) for a in unit_axes)


def _unit_view(x, unit_axes):
    """`x` as (A, U, B) with the unit axes flattened in the middle: a free
    reshape when they are contiguous and ascending (every layer family),
    else a transposed copy."""
    shape = x.shape
    axes = list(unit_axes)
    if not axes:
        return x.reshape(x.size, 1, 1)
    first, last = axes[0], axes[-1]
    units = math.prod(shape[first : last + 1])
    if last - first + 1 == len(axes) and axes == sorted(axes):
        lead = math.prod(shape[:first])
        return x.reshape(lead, units, math.prod(shape[last + 1 :]))
    units = unit_count(shape, axes)
    rest = [a for a in range(x.ndim) if a not in axes]
    return np.ascontiguousarray(np.transpose(x, rest + axes)).reshape(-1, units, 1)


def _blocks(a, u, b):
    """Index tuples into an (a, u, b) array: blocks of about `_BLOCK`
    entries, each a run of whole leading rows, or of units when a == 1."""
    row = u * b
    if a > 1 or row == 0:
        # Per-unit sums run down the rows in float32: at most _ROWS deep.
        step = max(1, min(_ROWS, _BLOCK // max(row, 1)))
        for start in range(0, a, step):
            yield slice(start, min(a, start + step)), slice(None)
    else:
        step = max(1, _BLOCK // max(b, 1))
        for start in range(0, u, step):
            yield slice(None), slice(start, min(u, start + step))


def _unit_sumsq(block):
    """Sum of squares of an (r, u, b) block per unit, in the block's dtype."""
    r, u, b = block.shape
    if b == 1:
        flat = block.reshape(r, u)
        return np.einsum("au,au->u", flat, flat)
    if r == 1:
        flat = block.reshape(u, b)
        return np.einsum("ub,ub->u", flat, flat)
    return np.einsum("aub,aub->u", block, block)


def unit_block(units, max_units):
    """Units per column when `units` are averaged down to `max_units`."""
    return max(1, -(-int(units) // int(max_units)))


def block_units(values, block):
    """Means of `block` consecutive units (the last block: what it covers)."""
    values = np.asarray(values, dtype=np.float64)
    if block == 1:
        return values
    n = values.size
    full = n // block
    parts = [values[: full * block].reshape(full, block).mean(axis=1)]
    if n % block:
        parts.append(values[full * block :].mean(keepdims=True))
    return np.concatenate(parts)


# --- sampling and percentiles ----------------------------------------------------


@functools.lru_cache(maxsize=512)
def _sample_index(n):
    """Fixed stratified sample: one position in each of SAMPLE_SIZE equal
    strata of range(n) (n >= SAMPLE_SIZE), so distinct and sorted (cached
    per size: a writer asks for the same sizes at every snapshot)."""
    bounds = np.arange(SAMPLE_SIZE + 1, dtype=np.int64) * n // SAMPLE_SIZE
    index = bounds[:-1] + (_jitter * np.diff(bounds)).astype(np.int64)
    index.flags.writeable = False
    return index


def _percentiles(values, finite=False):
    """(p01, p99) of the finite `values` (a small 1-D array; `finite`: known
    to be all finite), or Nones: numpy's linear percentile."""
    values = np.asarray(values)
    if not finite:
        values = values[np.isfinite(values)]
    n = values.size
    if n == 0:
        return None, None
    ranks = [(n - 1) * q for q in (0.01, 0.99)]
    los = [int(math.floor(rank)) for rank in ranks]
    ranked = _ranked(values, sorted({k for lo in los for k in (lo, min(n - 1, lo + 1))}))
    out = []
    for rank, lo in zip(ranks, los):
        a, b = ranked[lo], ranked[min(n - 1, lo + 1)]
        t = rank - lo
        # numpy's _lerp: exact at both ends.
        out.append(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)
    return out[0], out[1]


def _ranked(values, ks):
    """{k: the k-th smallest of `values`} for the ranks `ks`, each near
    one end.

    Only values near one end are wanted, so partitioning all of them is
    wasted work: the values beyond a threshold read off a sorted strided
    subsample are a few hundred per end, and holding as many as a rank
    needs proves they hold it, so only those are partitioned.
    """
    n = values.size
    if n > 8192:
        sub = np.sort(values[:: n // 1024])
        low = [k for k in ks if k < n // 2]
        high = [k for k in ks if k >= n // 2]
        out = {}
        if low:
            need = max(low) + 1  # how many of the smallest
            cut = sub[min(sub.size - 1, 2 * need * sub.size // n + 8)]
            keep = values[values <= cut]
            if keep.size >= need:
                part = np.partition(keep, low)
                out.update((k, float(part[k])) for k in low)
        if high:
            need = n - min(high)  # how many of the largest
            cut = sub[sub.size - 1 - min(sub.size - 1, 2 * need * sub.size // n + 8)]
            keep = values[values >= cut]
            if keep.size >= need:
                part = np.partition(keep, [k - n + keep.size for k in high])
                out.update((k, float(part[k - n + keep.size])) for k in high)
        if len(out) == len(ks):
            return out
    part = np.partition(values, ks)
    return {k: float(part[k]) for k in ks}


def _sample(flat):
    return flat if flat.size <= SAMPLE_SIZE else flat[_sample_index(flat.size)]


# --- accumulators and finishers ---------------------------------------------------


class _Moments:
    """Sums over one tensor's finite entries (float64 across blocks)."""

    def __init__(self):
        self.n = 0
        self.sum = 0.0
        self.sumsq = 0.0
        self.centred_sumsq = None  # sum (x - shift)^2, when taken
        self.shift = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.zeros = 0
        self.nan = 0
        self.inf = 0


class _Diff:
    """Sums of W - other over entries finite in both (float64 across blocks)."""

    def __init__(self):
        self.n = 0
        self.sumsq = 0.0
        self.absmax = 0.0
        self.w_sumsq = 0.0  # ||W||^2 and ||other||^2 over the same entries
        self.other_sumsq = 0.0


def _columns(items, cls):
    """`cls` (`_Moments` or `_Diff`) whose fields are float64 arrays, one
    entry per item of `items` (instances of `cls`); a centred sum not
    taken is NaN."""
    out = cls()
    for field in vars(out):
        values = [getattr(i, field) for i in items]
        setattr(out, field, np.array([math.nan if v is None else v for v in values], np.float64))
    return out


def _stats_rows(m, diffs, pcts, still):
    """The stats dicts of k tensors from their sums, with array operations
    (one definition for every path: a tensor alone is k = 1).

    Args:
      m: `_Moments` of float64 arrays (`_columns`): centred_sumsq NaN where
        not taken.
      diffs: {"update" / "init": (`_Diff` of arrays, bool array: compared)}.
      pcts: (k, 2) p01, p99 of each tensor's sample (NaN: none).
      still: units whose update is exactly 0 (NaN: no update).
    """
    n = m.n
    ok = n > 0
    values = {"nan": (m.nan, True), "inf": (m.inf, True)}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        count = np.where(ok, n, 1.0)
        mean = m.sum / count
        centred = ~np.isnan(m.centred_sumsq)
        var = np.where(centred, m.centred_sumsq / count - np.square(mean - m.shift),
                       m.sumsq / count - mean * mean)
        low, high = np.abs(m.min), np.abs(m.max)
        values.update(
            mean=(mean, ok), std=(np.sqrt(np.where(var < 0.0, 0.0, var)), ok), min=(m.min, ok),
            max=(m.max, ok), l2=(np.sqrt(m.sumsq), ok),
            absmax=(np.where(high > low, high, low), ok), zero_frac=(m.zeros / count, ok),
            p01=(pcts[:, 0], ok & ~np.isnan(pcts[:, 0])),
            p99=(pcts[:, 1], ok & ~np.isnan(pcts[:, 1])))
        for key, (d, compared) in diffs.items():
            has = compared & (d.n > 0)
            l2 = np.sqrt(d.sumsq)
            values[key + "_l2"], values[key + "_absmax"] = (l2, has), (d.absmax, has)
            if key == "update":
                values["update_ratio"] = (l2 / np.sqrt(d.other_sumsq), has & (d.other_sumsq > 0))
                values["units_still"] = (still, compared)
            else:
                den = np.sqrt(d.w_sumsq) * np.sqrt(d.other_sumsq)
                # W.W0 from the three norms: ||W-W0||^2 = ||W||^2 + ||W0||^2 - 2 W.W0.
                cos = (d.w_sumsq + d.other_sumsq - d.sumsq) / 2 / den
                cos = np.where(cos < 1.0, cos, 1.0)
                values["init_cos"] = (np.where(cos > -1.0, cos, -1.0), has & (den > 0))
    fields = [f for f in nnviz_format.STAT_FIELDS if f in values]
    table = np.empty((n.size, len(fields)))
    defined = np.empty(table.shape, bool)
    for j, f in enumerate(fields):
        table[:, j], defined[:, j] = values[f]
    blank = dict.fromkeys(nnviz_format.STAT_FIELDS)
    out = []
    for row, complete, ok in zip(table.tolist(), defined.all(axis=1).tolist(), defined.tolist()):
        stats = blank.copy()
        stats.update(zip(fields, row) if complete else
                     ((f, v) for f, v, o in zip(fields, row, ok) if o))
        out.append(stats)
    return out


# --- the two passes ------------------------------------------------------------------


def _exact_pass(x3, others, m, diffs, units):
    """Every block widened to float64; NaN/Inf masked out of the stats."""
    for rows, cols in _blocks(*x3.shape):
        c = x3[rows, cols].astype(np.float64)
        norm2 = _unit_sumsq(c)
        units["norm"][cols] += norm2
        flat = c.reshape(-1)
        total = float(np.add.reduce(flat))
        finite = None if math.isfinite(total) else np.isfinite(flat)
        if finite is not None:
            nans = int(np.count_nonzero(np.isnan(flat)))
            m.nan += nans
            m.inf += flat.size - int(np.count_nonzero(finite)) - nans
            w = flat[finite]
            total, sumsq = float(np.add.reduce(w)), float(np.einsum("i,i->", w, w))
        else:
            w, sumsq = flat, float(np.add.reduce(norm2))
        for key, other in others.items():
            o = other[rows, cols].astype(np.float64)
            d = c - o
            if key == "update":
                units["update"][cols] += _unit_sumsq(d)
            d, o = d.reshape(-1), o.reshape(-1)
            if finite is None and math.isfinite(np.add.reduce(o)):
                _add_diff(diffs[key], d, o, sumsq)
            else:
                joint = np.isfinite(flat) & np.isfinite(o)
                wj = flat[joint]
                _add_diff(diffs[key], d[joint], o[joint], float(np.einsum("i,i->", wj, wj)))
        if w.size:
            m.n += w.size
            m.sum += total
            m.sumsq += sumsq
            m.min = min(m.min, float(w.min()))
            m.max = max(m.max, float(w.max()))
            m.zeros += int(np.count_nonzero(np.abs(w) <= ZERO_TOL))
            if w.size == x3.size and _needs_centring(m):  # one block: centre it here
                m.shift = m.sum / m.n
                c = w - m.shift
                m.centred_sumsq = float(np.einsum("i,i->", c, c))


def _add_diff(acc, d, o, w_sumsq):
    if not d.size:
        return
    acc.n += d.size
    acc.sumsq += float(np.einsum("i,i->", d, d))
    acc.absmax = max(acc.absmax, float(d.max()), -float(d.min()))
    acc.other_sumsq += float(np.einsum("i,i->", o, o))
    acc.w_sumsq += w_sumsq


def _fast_pass(x3, others, m, diffs, units, known_sumsq):
    """float32 blocks read once while cached; False if something was not
    finite (then the caller takes the exact pass)."""
    a, u, b = x3.shape
    scratch = np.empty(min(x3.size, max(_BLOCK, u * b)), np.float32)
    near_zero = np.empty(scratch.size, bool)
    sums, mins, maxs = [], [], []
    dsq = {key: [] for key in others}
    dmax = {key: [] for key in others}
    osq = {key: [] for key in others if key not in known_sumsq}
    zeros = 0
    for rows, cols in _blocks(a, u, b):
        c = x3[rows, cols]
        flat = c.reshape(-1)
        n = flat.size
        units["norm"][cols] += _unit_sumsq(c)
        sums.append(np.add.reduce(flat))
        mins.append(flat.min())
        maxs.append(flat.max())
        zeros += np.count_nonzero(np.less_equal(np.square(flat, out=scratch[:n]), _ZERO_TOL_SQ32,
                                                out=near_zero[:n]))
        for key, other in others.items():
            o = other[rows, cols]
            if key in osq:
                of = o.reshape(-1)
                osq[key].append(np.einsum("i,i->", of, of))
            d = np.subtract(c, o, out=scratch[:n].reshape(c.shape))
            df = d.reshape(-1)
            dmax[key] += [df.max(), -df.min()]
            if key == "update":
                units["update"][cols] += _unit_sumsq(d)
            else:
                dsq[key].append(np.einsum("i,i->", df, df))
    total = _fsum(sums)
    sumsq = float(np.add.reduce(units["norm"]))
    if not (math.isfinite(total) and math.isfinite(sumsq)):
        return False
    m.n, m.sum, m.sumsq = x3.size, total, sumsq
    m.min, m.max, m.zeros = float(min(mins)), float(max(maxs)), int(zeros)
    for key, acc in diffs.items():
        acc.n = x3.size
        acc.absmax = float(np.max(dmax[key]))  # NaN if any
        acc.sumsq = (float(np.add.reduce(units["update"])) if key == "update"
                     else _fsum(dsq[key]))
        acc.w_sumsq = sumsq
        acc.other_sumsq = known_sumsq[key] if key in known_sumsq else _fsum(osq[key])
        if not (math.isfinite(acc.absmax) and math.isfinite(acc.sumsq)
                and math.isfinite(acc.other_sumsq)):
            return False
    return True


def _needs_centring(m):
    """|mean| > ~2 std (`_centre`), for m.n > 0: scalars or arrays."""
    mean = m.sum / m.n
    spread = m.sumsq / m.n - mean * mean
    return m.sumsq / m.n > 4 * np.where(spread < 0.0, 0.0, spread)


def _centre(m, x3, exact):
    """When |mean| > ~2 std, the std from sumsq/n - mean^2 would be a
    difference of nearly equal numbers: sums squares about the mean instead
    (a second pass, for such tensors only)."""
    if not m.n or m.centred_sumsq is not None or not _needs_centring(m):
        return
    mean = m.sum / m.n
    dtype = np.float64 if exact else x3.dtype.type
    m.shift = float(dtype(mean))  # var = sum (x - shift)^2 / n - (mean - shift)^2
    out = []
    for rows, cols in _blocks(*x3.shape):
        d = (x3[rows, cols].astype(dtype, copy=False) - dtype(m.shift)).reshape(-1)
        if m.nan or m.inf:
            d = d[np.isfinite(d)]
        out.append(np.einsum("i,i->", d, d))
    m.centred_sumsq = _fsum(out)


def _fsum(values):
    return float(np.add.reduce(np.asarray(values, dtype=np.float64)))


def _exact_zero_units(x3, other3, sums):
    """Units whose float32 sum of squares came out 0: 0 only if W[u] is
    bit-identical to other[u] (None: to zero); float64 otherwise.

    A frozen tensor has every unit here: the equality test is one cheap
    pass, float64 is taken only for the units that did move."""
    zero = np.flatnonzero(sums == 0)
    if zero.size == 0:
        return
    if zero.size == sums.size:
        w, o = x3, other3
    else:
        w, o = x3[:, zero, :], None if other3 is None else other3[:, zero, :]
    same = (w == 0) if o is None else (w == o)
    moved = zero[~same.all(axis=(0, 2))]
    if moved.size:
        d = x3[:, moved, :].astype(np.float64)
        if other3 is not None:
            d -= other3[:, moved, :]
        sums[moved] = _unit_sumsq(d)


# --- entry points ------------------------------------------------------------------


def _as_numeric(w):
    """A float32/float64 array (ints, bools, float16, bfloat16 widened)."""
    w = np.asarray(w)
    if w.dtype not in (np.float32, np.float64):
        w = w.astype(np.float64 if w.dtype.itemsize > 4 else np.float32)
    return w


def measure(w, prev=None, init=None, unit_axes=None, prev_sumsq=None, init_sumsq=None,
            layout=None, frame_dtype=np.float32):
    """Statistics, per-unit norms and (with `layout`) the frame of a weight
    snapshot (module docstring).

    Args:
      w: the weight now (any shape, any numeric dtype).
      prev: the weight at the previous snapshot, or None.
      init: the weight at the first snapshot (W_0), or None.
      unit_axes: the tensor axes whose index is a unit (the layout's
        `unit_axes`); default the last axis.
      prev_sumsq, init_sumsq: ||prev||**2 and ||init||**2 as `measure`
        returned them (`Measurement.sumsq`) when those were all finite;
        the numpy path saves reading them twice. None: computed here.
      layout: a layout with its `block` (`layout.frame_block`): the
        frame comes out of the same pass. None: no frame.
      frame_dtype: the frame's dtype (the writer's float16 for a reduced
        frame: rounded once, from the float64 block sums).

    Returns:
      A `Measurement`.
    """
    request = Request(w, prev, init, unit_axes, prev_sumsq, init_sumsq, layout, frame_dtype)
    x, unit_axes, prev, init = _normalised(request)
    kernel = _fused_kernel() if x.size else None
    if kernel is not None:
        try:
            return _measure_fused(kernel, x, prev, init, unit_axes, layout, frame_dtype)
        except Exception:  # a compiler or platform failure: numpy from now on
            _disable_fused()
    return _measure_numpy_many([request])[0]


def _normalised(request):
    """(W as an array, its unit axes, W_prev and W_0 or None where absent
    or of another shape) of a `Request`."""
    x = np.asarray(request.w)
    unit_axes = default_unit_axes(x.ndim) if request.unit_axes is None else request.unit_axes
    prev, init = (None if o is None or np.shape(o) != x.shape else np.asarray(o)
                  for o in (request.prev, request.init))
    return x, unit_axes, prev, init


def _measure_numpy_many(requests):
    """`measure` on the numpy path for each `Request`, finished together."""
    sums, frames = [], []
    for r in requests:
        x, unit_axes, prev, init = _normalised(r)
        sums.append(_numpy_sums(x, prev, init, unit_axes, r.prev_sumsq, r.init_sumsq))
        frame = None
        if r.layout is not None:
            frame, _ = layout_lib.make_frame(x, r.layout, None, r.layout["block"])
            frame = frame.astype(r.frame_dtype, copy=False)
        frames.append(frame)
    return [m._replace(frame=f) for m, f in zip(_finish_all(sums), frames)]


def _numpy_sums(w, prev, init, unit_axes, prev_sumsq, init_sumsq):
    """(moments, diffs, unit sums, sample, flat) of the numpy path, for `_finish_all`."""
    x = _as_numeric(w)
    x3 = _unit_view(x, unit_axes)
    others, known = {}, {}
    for key, other, sumsq in (("update", prev, prev_sumsq), ("init", init, init_sumsq)):
        if other is not None and other.shape == x.shape:
            others[key] = _unit_view(_as_numeric(other).astype(x.dtype, copy=False), unit_axes)
            if sumsq is not None:
                known[key] = sumsq
    m, diffs, units = _fresh(x3, others)
    fast = x.dtype == np.float32 and x.size > EXACT_SIZE
    if fast:
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            fast = _fast_pass(x3, others, m, diffs, units, known)
        if fast:
            _exact_zero_units(x3, None, units["norm"])
            if "update" in units:
                _exact_zero_units(x3, others["update"], units["update"])
        else:
            m, diffs, units = _fresh(x3, others)
    if not fast:
        with np.errstate(over="ignore", invalid="ignore"):  # inf - inf, NaN: expected
            _exact_pass(x3, others, m, diffs, units)
    _centre(m, x3, exact=not fast)
    flat = x.reshape(-1)
    return m, diffs, units, _sample(flat), flat


def _finish(m, diffs, units, sample, flat, percentiles=_percentiles):
    """The `Measurement` from the sums of either path; `flat`: the tensor,
    read again only when the sample missed every finite entry."""
    return _finish_all([(m, diffs, units, sample, flat)], percentiles)[0]


def _finish_all(items, percentiles=_percentiles):
    """`_finish` of many (m, diffs, units, sample, flat), together."""
    if not items:
        return []
    pcts, stills, updates, finite = [], [], [], []
    for m, _, units, sample, flat in items:
        finite.append(m.nan == 0 and m.inf == 0)
        if not finite[-1] and m.n and not np.isfinite(sample).any():
            flat = _as_numeric(flat).reshape(-1)
            sample = _sample(flat[np.isfinite(flat)])  # it missed them all
        # The sample holds NaN/Inf only if the tensor does.
        p = percentiles(sample, finite=finite[-1]) if m.n else (None, None)
        pcts.append([math.nan if v is None else v for v in p])
        update = np.sqrt(units["update"]) if "update" in units else None
        updates.append(update)
        stills.append(math.nan if update is None else float(np.count_nonzero(update == 0)))
    diffs = {key: (_columns([item[1].get(key, _Diff()) for item in items], _Diff),
                   np.array([key in item[1] for item in items], bool))
             for key in ("update", "init")}
    stats = _stats_rows(_columns([item[0] for item in items], _Moments), diffs,
                        np.array(pcts, np.float64).reshape(-1, 2), np.array(stills))
    return [Measurement(st, np.sqrt(units["norm"]), update, m.sumsq, ok)
            for st, (m, _, units, _, _), update, ok in zip(stats, items, updates, finite)]


# --- the fused path --------------------------------------------------------------

_fused = None  # the fused module once imported; False: numpy only


def _fused_kernel():
    """fused.py, or None where numba is missing or failed (numpy then)."""
    global _fused
    if _fused is None:
        try:
            from tensorboard_nnviz.record import fused
        except Exception:  # not installed, or does not load on this platform
            logger.info("nnviz: numba unavailable, stats run on the numpy path", exc_info=True)
            fused = False
        _fused = fused
    return _fused or None


def _disable_fused():
    global _fused
    logger.warning("nnviz: the compiled stats kernel failed; the numpy path takes over",
                   exc_info=True)
    _fused = False


def sample_positions(n):
    """Flat positions of the entries the percentiles are taken from."""
    return _all_positions(n) if n <= SAMPLE_SIZE else _sample_index(n)


@functools.lru_cache(maxsize=64)
def _all_positions(n):
    index = np.arange(n, dtype=np.int64)
    index.flags.writeable = False
    return index


def fused_plan(shape, unit_axes, layout=None, start=None, local=None):
    """The fused pass's `Plan` of a tensor (with `layout`, and its
    "block": the frame too); with `start` and `local`, of the shard that
    is the block of the tensor from index `start` of shape `local`."""
    rows, cols, block = (), (), None
    if layout is not None:
        rows, cols, block = (tuple(layout[k]) for k in ("row_axes", "col_axes", "block"))
    tuples = lambda v: None if v is None else tuple(v)  # noqa: E731
    return _plan(tuple(shape), tuple(unit_axes), rows, cols, block, tuples(start), tuples(local))


@functools.lru_cache(maxsize=1024)
def _plan(shape, unit_axes, rows, cols, block, start, local):
    """`fused_plan`, cached by its arguments as tuples (numbers of any int
    type: equal ints hash alike); fused.plan takes Python ints."""
    ints = lambda v: None if v is None else tuple(int(d) for d in v)  # noqa: E731
    return _fused_kernel().plan(ints(shape), ints(rows), ints(cols), ints(unit_axes), ints(block),
                                ints(start), ints(local))


def partial_size(plan, n):
    """Entries of the partial buffer of a tensor of `plan` and n entries."""
    return _fused_kernel().partial_size(plan, len(sample_positions(n)))


def new_partial(plan, n, out=None):
    """An empty partial buffer (fused.py) for a tensor of `plan` and n
    entries (into `out`, a float64 array of `partial_size`, if given)."""
    kernel = _fused_kernel()
    buf = np.zeros(partial_size(plan, n)) if out is None else out
    buf[:] = 0.0
    buf[kernel.MIN] = math.inf
    buf[kernel.MAX] = -math.inf
    return buf


def partial_entries():
    """(how many entries of a partial buffer hold the tensor's sums, those
    of them that combine by a min, those that combine by a max); every
    other entry combines by a sum."""
    kernel = _fused_kernel()
    return kernel.ACC_SIZE, kernel.MIN_ENTRIES, kernel.MAX_ENTRIES


def centring_shift(buf):
    """The shift `finish` will ask `centre` about for this (combined)
    partial buffer, or None when it asks nothing."""
    m = _moments(buf[:_fused_kernel().ACC_SIZE].tolist())
    return m.sum / m.n if m.n and _needs_centring(m) else None


def centred_sumsq(w, shift):
    """sum (w - shift)^2 over the finite entries of `w` (any shape), in float64."""
    kernel = _fused_kernel()
    return kernel.centred_sumsq(_kernel_input(kernel, w), float(shift))


def combine(a, b):
    """Two shards' partial buffers as one: the sum, but for the min and max
    entries (a sampled entry is filled by the one shard that holds it, 0
    elsewhere, so it sums too)."""
    kernel = _fused_kernel()
    out = a + b
    for i in kernel.MIN_ENTRIES:
        out[i] = min(a[i], b[i])
    for i in kernel.MAX_ENTRIES:
        out[i] = max(a[i], b[i])
    return out


def _kernel_input(kernel, x):
    """The flat array the kernel reads: float32 and float64 as they are,
    float16 and bfloat16 as their bits (no copy; the kernel widens them)."""
    x = np.ascontiguousarray(x)
    if x.dtype == np.float32 or x.dtype == np.float64:
        return x.reshape(-1)
    bits = kernel.VIEWS.get(x.dtype.name)
    if bits is not None:
        return x.reshape(-1).view(bits)
    return _as_numeric(x).reshape(-1)


def accumulate(buf, plan, w, prev=None, init=None, shard=None):
    """Adds `w` (and its `prev`, `init`: same shape and dtype) into the
    partial buffer `buf` (`new_partial`).

    A shard: `shard` = (the tensor's shape, the shard's first index along
    each axis), `w` the block of the tensor from there, `plan` the shard's
    (`fused_plan` with `start` and `local`) and `buf` one of the whole
    tensor's size; the shards' buffers combine (`combine`) into the whole
    tensor's.
    """
    kernel = _fused_kernel()
    flat = _kernel_input(kernel, w)
    p = flat if prev is None else _kernel_input(kernel, prev)
    q = flat if init is None else _kernel_input(kernel, init)
    positions = sample_positions(flat.size) if shard is None else _EMPTY
    size = flat.size if shard is None else math.prod(shard[0])
    kernel.accumulate(flat, p, q, ZERO_TOL, plan.plan, plan.tables, plan.cells, positions,
                      buf, size > _float32_rows_above(flat.dtype))
    if shard is not None:
        slots, mine = shard_sample(shard[0], shard[1], np.shape(w))
        first = kernel.ACC_SIZE + 2 * plan.units + math.prod(plan.frame_shape)
        buf[first + slots] = np.ascontiguousarray(w).reshape(-1)[mine]


_EMPTY = np.zeros(0, np.int64)


def _float32_rows_above(dtype):
    """The kernel takes float32 rows for tensors of more entries than this,
    where the numpy path has its fast path (docstring): float32 and 16-bit
    input past EXACT_SIZE, never float64."""
    return EXACT_SIZE if dtype != np.float64 else np.iinfo(np.int64).max


@functools.lru_cache(maxsize=1024)
def shard_sample(shape, start, local):
    """(slots, positions): which entries of the percentile sample of a
    tensor of `shape` lie in its block from `start` of shape `local`, and
    where in the block's C-order data (fixed per shape and block, cached)."""
    shape, start, local = (tuple(int(d) for d in v) for v in (shape, start, local))
    n = math.prod(shape)
    index = np.unravel_index(sample_positions(n), shape) if shape else ()
    inside = np.ones(len(sample_positions(n)), bool)
    for axis, at in enumerate(index):
        inside &= (at >= start[axis]) & (at < start[axis] + local[axis])
    slots = np.flatnonzero(inside)
    mine = np.ravel_multi_index(tuple(at[slots] - s for at, s in zip(index, start)), local) \
        if shape else np.zeros(slots.size, np.int64)
    for a in (slots, mine):
        a.flags.writeable = False
    return slots, mine


def finish(buf, plan, compared, centre, flat, frame_dtype=np.float32):
    """The `Measurement` from a whole tensor's partial buffer (with the
    frame when the plan has one).

    Args:
      compared: which of "update", "init" were accumulated.
      centre: shift → sum (w - shift)^2 over the finite entries, asked for
        tensors whose mean dwarfs their spread (`_needs_centring`).
      flat: the tensor, read only if the sample missed every finite entry.
    """
    kernel = _fused_kernel()
    acc = buf[:kernel.ACC_SIZE].tolist()
    m = _moments(acc)
    if m.n and _needs_centring(m):
        m.shift = m.sum / m.n
        m.centred_sumsq = float(centre(m.shift))
    diffs = {}
    for key in compared:
        base = kernel.UPDATE if key == "update" else kernel.INIT
        d = diffs[key] = _Diff()
        d.n = int(acc[base + kernel.DN])
        d.sumsq, d.absmax = acc[base + kernel.DSQ], acc[base + kernel.DMAX]
        d.w_sumsq, d.other_sumsq = acc[base + kernel.DWSQ], acc[base + kernel.DOSQ]
    units, cells = plan.units, math.prod(plan.frame_shape)
    start = kernel.ACC_SIZE
    sums = {"norm": buf[start:start + units]}
    if "update" in compared:
        sums["update"] = buf[start + units:start + 2 * units]
    measured = _finish(m, diffs, sums, buf[start + 2 * units + cells:], flat, _fused_percentiles)
    if not cells:
        return measured
    frame = np.empty(plan.frame_shape, frame_dtype)
    out = frame.view(np.uint16) if frame.dtype == np.float16 else frame
    kernel.frame_means(buf[start + 2 * units:start + 2 * units + cells], *plan.covered, out)
    return measured._replace(frame=frame)


def _fused_percentiles(values, finite=False):
    """`_percentiles`, compiled (fused.py): the same order statistics and
    interpolation, without numpy's per-call overhead on small samples."""
    out = np.empty(2)
    _fused_kernel().percentiles(np.ascontiguousarray(values, np.float64), finite, out)
    return tuple(None if math.isnan(v) else float(v) for v in out)


def _moments(acc):
    """`_Moments` from the acc entries of a partial buffer (a list)."""
    kernel = _fused_kernel()
    m = _Moments()
    m.n, m.sum, m.sumsq = int(acc[kernel.N]), acc[kernel.SUM], acc[kernel.SUMSQ]
    m.min, m.max = acc[kernel.MIN], acc[kernel.MAX]
    m.zeros, m.nan, m.inf = int(acc[kernel.ZEROS]), int(acc[kernel.NAN]), int(acc[kernel.INF])
    return m


def _measure_fused(kernel, x, prev, init, unit_axes, layout, frame_dtype):
    run = _run(kernel, [Request(x, prev, init, unit_axes, layout=layout)], np.dtype(frame_dtype))
    return _finish_runs(kernel, [run])[0]


Request = collections.namedtuple("Request", "w prev init unit_axes prev_sumsq init_sumsq layout "
                                            "frame_dtype",
                                 defaults=(None, None, None, None, None, None, np.float32))
Request.__doc__ = """One tensor for `measure_many`: `measure`'s arguments."""

# Tensors up to this many entries are measured together (`measure_many`):
# all of each is its percentile sample, and its units fit one column each.
BATCH_SIZE = 1 << 14
assert BATCH_SIZE <= min(SAMPLE_SIZE, nnviz_format.MAX_UNITS)


def measure_many(requests, between=None):
    """`measure` of each `Request`: the same `Measurement`s, cheaper. The
    small tensors (up to `BATCH_SIZE` entries, of one float dtype and
    frame dtype) are measured together, with one compiled call for all of
    them; the others each with one call, as they lie; then all are
    finished together with array operations. So a BatchNormalization
    vector costs its entries rather than a call's Python
    (docs/architecture.md, "The fused pass").

    Args:
      between: called before each compiled call (each large tensor, each
        batch of small ones): the writer waits there while the training
        thread copies a snapshot.
    """
    kernel = _fused_kernel()
    groups, alone = {}, []
    for i, r in enumerate(requests):
        x = np.asarray(r.w)
        if kernel is None or not x.size:
            continue  # `measure`: the numpy path
        if x.size <= BATCH_SIZE and x.dtype.kind == "f":
            groups.setdefault((x.dtype, np.dtype(r.frame_dtype)), []).append(i)
        else:
            alone.append(i)
    out = [None] * len(requests)
    try:
        calls = [(members, frame_dtype) for (_, frame_dtype), members in groups.items()]
        calls += [([i], np.dtype(requests[i].frame_dtype)) for i in alone]
        runs = []
        for members, frame_dtype in calls:
            if between is not None:
                between()
            runs.append((members, _run(kernel, [requests[i] for i in members], frame_dtype)))
        measured = _finish_runs(kernel, [raw for _, raw in runs])
        for i, m in zip([i for members, _ in runs for i in members], measured):
            out[i] = m
    except Exception:  # a compiler or platform failure: numpy from now on
        _disable_fused()
        out = [None] * len(requests)
    rest = [i for i, m in enumerate(out) if m is None]
    for i, m in zip(rest, _measure_numpy_many([requests[i] for i in rest])):
        out[i] = m
    return out


# What `_run` leaves for `_finish_runs`: per tensor (rows of acc, centred,
# pcts, still, and compared: {"prev", "init": bools}), its unit sums and
# frames end to end with `slices` saying where, and the kernel's input.
_Run = collections.namedtuple("_Run", "acc centred pcts still compared unit_sums frames slices "
                                      "x w")


def _run(kernel, requests, frame_dtype):
    """One call of `fused.measure_many`: one tensor of any size, as it
    lies, or many small ones (of one float dtype, each its own sample)
    laid end to end. Returns a `_Run`."""
    ws = [np.asarray(r.w) for r in requests]
    compared = {key: [_comparable(getattr(r, key), w) for r, w in zip(requests, ws)]
                for key in ("prev", "init")}
    if len(ws) == 1:
        x = _kernel_input(kernel, ws[0])
        p, q = (_kernel_input(kernel, getattr(requests[0], key).astype(ws[0].dtype, copy=False))
                if compared[key][0] else x for key in ("prev", "init"))
        positions = sample_positions(x.size)
    else:
        x = _kernel_input(kernel, np.concatenate(ws, axis=None))
        p, q = (_kernel_input(kernel, np.concatenate(
            [getattr(r, key) if c else w for r, w, c in zip(requests, ws, compared[key])],
            axis=None, dtype=ws[0].dtype, casting="unsafe")) for key in ("prev", "init"))
        positions = _all_positions(BATCH_SIZE)
    plans = tuple(fused_plan(w.shape, default_unit_axes(w.ndim) if r.unit_axes is None
                             else r.unit_axes, r.layout) for r, w in zip(requests, ws))
    batch = _batch_layout(kernel, plans, tuple(w.size for w in ws), tuple(compared["prev"]))
    k = len(ws)
    acc, unit_sums = np.empty((k, kernel.ACC_SIZE)), np.empty(batch.units)
    centred, pcts, still = np.full(k, math.nan), np.full((k, 2), math.nan), np.full(k, math.nan)
    frames = np.empty(batch.cells, frame_dtype)
    kernel.measure_many(x, p, q, ZERO_TOL, _float32_rows_above(x.dtype), batch.index,
                        *batch.parts, positions, _scratch(batch.buffers), acc, unit_sums,
                        centred, pcts, still,
                        frames.view(np.uint16) if frames.dtype == np.float16 else frames)
    return _Run(acc, centred, pcts, still, compared, unit_sums, frames, batch.slices, x,
                ws[0] if k == 1 else None)


def _finish_runs(kernel, runs):
    """The `Measurement`s of the tensors of `runs` (`_Run`s), in order,
    finished together."""
    if not runs:
        return []
    acc = np.concatenate([r.acc for r in runs])
    centred = np.concatenate([r.centred for r in runs])
    pcts = np.concatenate([r.pcts for r in runs])
    m = _moments_of(kernel, acc)
    with np.errstate(divide="ignore", invalid="ignore"):
        m.shift = m.sum / m.n
        centre = (m.n > 0) & _needs_centring(m)
    finite = (m.nan == 0) & (m.inf == 0)
    t = 0
    for r in runs:  # what a large tensor's call left to do, when needed (rare)
        if r.w is not None and centre[t] and math.isnan(centred[t]):
            centred[t] = kernel.centred_sumsq(r.x, float(m.shift[t]))
        if r.w is not None and not finite[t] and m.n[t] and math.isnan(pcts[t, 0]):
            # The sample missed every finite entry: from all of them.
            flat = _as_numeric(r.w).reshape(-1)
            pcts[t] = _fused_percentiles(_sample(flat[np.isfinite(flat)]))
        t += len(r.acc)
    m.centred_sumsq = np.where(centre, centred, math.nan)
    diffs = {}
    for key, other in (("update", "prev"), ("init", "init")):
        base = kernel.UPDATE if key == "update" else kernel.INIT
        d = _Diff()
        d.n, d.sumsq, d.absmax, d.w_sumsq, d.other_sumsq = (
            acc[:, base + e] for e in (kernel.DN, kernel.DSQ, kernel.DMAX, kernel.DWSQ,
                                       kernel.DOSQ))
        diffs[key] = (d, np.array([c for r in runs for c in r.compared[other]], bool))
    stats = _stats_rows(m, diffs, pcts, np.concatenate([r.still for r in runs]))
    rows = iter(zip(stats, m.sumsq.tolist(), finite.tolist()))
    out = []
    for r in runs:
        roots = np.sqrt(r.unit_sums)
        for (at, units, update, cell, shape), (st, sumsq, ok) in zip(r.slices, rows):
            frame = r.frames[cell:cell + shape[0] * shape[1]].reshape(shape) if shape[0] else None
            out.append(Measurement(st, roots[at:at + units],
                                   roots[at + units:at + 2 * units] if update else None, sumsq,
                                   ok, frame))
    return out


def _comparable(other, w):
    """Whether `other` (W_prev or W_0) is there to compare `w` with."""
    return other is not None and other.shape == w.shape


_BatchLayout = collections.namedtuple("_BatchLayout", "index parts buffers units cells slices")


@functools.lru_cache(maxsize=1024)
def _batch_layout(kernel, plans, sizes, updates):
    """`fused.measure_many`'s index of tensors of these plans and sizes,
    its plans, tables, cells and covered counts end to end, the entries of
    the partial buffers, of the unit sums and of the frames, and per
    tensor where its unit sums start, how many units, whether it has an
    update, where its frame starts and its shape (fixed while the same
    weights recur, so cached)."""
    k = len(plans)
    index = np.zeros((k, kernel.BATCH_COLUMNS), np.int64)
    index[:, kernel.B_N] = sizes
    index[:, kernel.B_PLAN_N] = [pl.plan.size for pl in plans]
    index[:, kernel.B_TABLES_N] = [pl.tables.shape[1] for pl in plans]
    index[:, kernel.B_CELLS_N] = [pl.cells.size for pl in plans]
    index[:, kernel.B_ROWS], index[:, kernel.B_COLS] = np.array([pl.frame_shape for pl in plans]).T
    index[:, kernel.B_SAMPLE_N] = [len(sample_positions(n)) for n in sizes]
    index[:, kernel.B_UPDATE] = updates
    index[:, kernel.B_CENTRE] = index[:, kernel.B_N] <= BATCH_SIZE  # in the cache: cheap
    cells = index[:, kernel.B_ROWS] * index[:, kernel.B_COLS]
    units = np.array([pl.units for pl in plans], np.int64)
    index[:, kernel.B_BUF_N] = (kernel.ACC_SIZE + 2 * units + cells
                                + index[:, kernel.B_SAMPLE_N])
    ends = {}
    for start, counts in ((kernel.B_X, index[:, kernel.B_N]),
                          (kernel.B_PLAN, index[:, kernel.B_PLAN_N]),
                          (kernel.B_TABLES, 3 * index[:, kernel.B_TABLES_N]),
                          (kernel.B_CELLS, index[:, kernel.B_CELLS_N]),
                          (kernel.B_BUF, index[:, kernel.B_BUF_N]), (kernel.B_FRAME, cells),
                          (kernel.B_COVERED, index[:, kernel.B_ROWS] + index[:, kernel.B_COLS]),
                          (kernel.B_UNITS, 2 * units)):
        total = np.cumsum(counts)
        index[1:, start] = total[:-1]
        ends[start] = int(total[-1])
    covered = [c for pl in plans if pl.covered is not None for c in pl.covered]
    join = lambda arrays, dtype: np.concatenate(arrays or [np.zeros(0)]).astype(dtype)  # noqa: E731
    parts = (join([pl.plan for pl in plans], np.int64),
             join([pl.tables.reshape(-1) for pl in plans], np.int64),
             join([pl.cells for pl in plans], np.int64), join(covered, np.float64))
    slices = list(zip(index[:, kernel.B_UNITS].tolist(), units.tolist(), list(updates),
                      index[:, kernel.B_FRAME].tolist(), [pl.frame_shape for pl in plans]))
    return _BatchLayout(index, parts, ends[kernel.B_BUF], ends[kernel.B_UNITS],
                        ends[kernel.B_FRAME], slices)


_local = threading.local()


def _scratch(size):
    """A float64 array of at least `size` entries, this thread's, reused:
    partial buffers filled and read within one call (pages mapped once)."""
    buf = getattr(_local, "scratch", None)
    if buf is None or buf.size < size:
        buf = _local.scratch = np.empty(size)
    return buf[:size]


def _moments_of(kernel, acc):
    """`_Moments` of arrays from the acc rows (k, ACC_SIZE) of partial buffers."""
    m = _Moments()
    m.n, m.sum, m.sumsq, m.min, m.max, m.zeros, m.nan, m.inf = (
        acc[:, i] for i in (kernel.N, kernel.SUM, kernel.SUMSQ, kernel.MIN,
                            kernel.MAX, kernel.ZEROS, kernel.NAN, kernel.INF))
    return m


def _fresh(x3, others):
    """Empty accumulators: moments, a diff per other tensor, unit sums."""
    units = {"norm": np.zeros(x3.shape[1])}
    if "update" in others:
        units["update"] = np.zeros(x3.shape[1])
    return _Moments(), {key: _Diff() for key in others}, units


def compute_stats(w, prev=None, init=None, unit_axes=None):
    """Statistics of a weight snapshot, see the module docstring.

    Returns:
      `{name: float or None}` for every name in `format.STAT_FIELDS`.
    """
    return measure(w, prev, init, unit_axes).stats
