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


def _finish_moments(m, sample, percentiles=_percentiles):
    # The sample holds NaN/Inf only if the tensor does.
    """mean, std, ..., p01, p99 from `_Moments` and the percentile sample
    (`percentiles`: `_percentiles`, or the fused pass's twin)."""
    stats = {"nan": float(m.nan), "inf": float(m.inf)}
    if not m.n:
        return stats
    mean = m.sum / m.n
    if m.centred_sumsq is not None:
        var = m.centred_sumsq / m.n - (mean - m.shift) ** 2
    else:
        var = m.sumsq / m.n - mean * mean
    stats.update(
        mean=mean,
        std=math.sqrt(max(var, 0.0)),
        min=m.min,
        max=m.max,
        l2=math.sqrt(m.sumsq),
        absmax=max(abs(m.min), abs(m.max)),
        zero_frac=m.zeros / m.n,
    )
    stats["p01"], stats["p99"] = percentiles(sample, finite=not (m.nan or m.inf))
    return stats


def _finish_diff(key, d):
    """`<key>_l2`, `<key>_absmax`, and update_ratio or init_cos, from `_Diff`."""
    if not d.n:
        return {}
    l2 = math.sqrt(d.sumsq)
    out = {key + "_l2": l2, key + "_absmax": d.absmax}
    if key == "update":
        out["update_ratio"] = l2 / math.sqrt(d.other_sumsq) if d.other_sumsq > 0 else None
    else:
        den = math.sqrt(d.w_sumsq) * math.sqrt(d.other_sumsq)
        if den > 0:
            # W.W0 from the three norms: ||W-W0||^2 = ||W||^2 + ||W0||^2 - 2 W.W0.
            dot = (d.w_sumsq + d.other_sumsq - d.sumsq) / 2
            out["init_cos"] = max(-1.0, min(1.0, dot / den))
        else:
            out["init_cos"] = None
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
    mean = m.sum / m.n
    return m.sumsq / m.n > 4 * max(m.sumsq / m.n - mean * mean, 0.0)


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
    x = np.asarray(w)
    if unit_axes is None:
        unit_axes = default_unit_axes(x.ndim)
    prev, init = (None if o is None or np.shape(o) != x.shape else np.asarray(o)
                  for o in (prev, init))
    kernel = _fused_kernel() if x.size else None
    if kernel is not None:
        try:
            return _measure_fused(kernel, x, prev, init, unit_axes, layout, frame_dtype)
        except Exception:  # a compiler or platform failure: numpy from now on
            _disable_fused()
    measured = _measure_numpy(x, prev, init, unit_axes, prev_sumsq, init_sumsq)
    if layout is None:
        return measured
    frame, _ = layout_lib.make_frame(x, layout, None, layout["block"])
    return measured._replace(frame=frame.astype(frame_dtype, copy=False))


def _measure_numpy(w, prev, init, unit_axes, prev_sumsq, init_sumsq):
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
    return _finish(m, diffs, units, _sample(flat), flat)


def _finish(m, diffs, units, sample, flat, percentiles=_percentiles):
    """The `Measurement` from the sums of either path; `flat`: the tensor,
    read again only when the sample missed every finite entry."""
    finite = m.nan == 0 and m.inf == 0
    if not finite and m.n and not np.isfinite(sample).any():
        flat = _as_numeric(flat).reshape(-1)
        sample = _sample(flat[np.isfinite(flat)])  # it missed them all
    stats = dict.fromkeys(nnviz_format.STAT_FIELDS)
    stats.update(_finish_moments(m, sample, percentiles))
    for key, acc in diffs.items():
        stats.update(_finish_diff(key, acc))
    update = None
    if "update" in units:
        update = np.sqrt(units["update"])
        stats["units_still"] = float(np.count_nonzero(update == 0))
    return Measurement(stats, np.sqrt(units["norm"]), update, m.sumsq, finite)


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
    kernel = _fused_kernel()
    rows, cols, block = (), (), None
    if layout is not None:
        rows, cols = tuple(layout["row_axes"]), tuple(layout["col_axes"])
        block = tuple(int(b) for b in layout["block"])
    ints = lambda v: None if v is None else tuple(int(d) for d in v)  # noqa: E731
    return kernel.plan(ints(shape), rows, cols, tuple(int(a) for a in unit_axes), block,
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
    flat, lut = _kernel_input(kernel, w)
    return kernel.centred_sumsq(flat, lut, float(shift))


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
    """(the flat array the kernel reads, its widening table): float32 and
    float64 as they are, float16 and bfloat16 as their bits (no copy)."""
    x = np.ascontiguousarray(x)
    if x.dtype == np.float32 or x.dtype == np.float64:
        return x.reshape(-1), kernel.NO_LUT
    bits = kernel.VIEWS.get(x.dtype.name)
    if bits is not None:
        return x.reshape(-1).view(bits), kernel.NO_LUT
    return _as_numeric(x).reshape(-1), kernel.NO_LUT


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
    flat, lut = _kernel_input(kernel, w)
    p = flat if prev is None else _kernel_input(kernel, prev)[0]
    q = flat if init is None else _kernel_input(kernel, init)[0]
    positions = sample_positions(flat.size) if shard is None else _EMPTY
    # float32 within blocks where the numpy path has its fast path (docstring)
    fast = flat.dtype != np.float64 and (flat.size if shard is None else math.prod(shard[0])) \
        > EXACT_SIZE
    kernel.accumulate(flat, p, q, lut, ZERO_TOL, plan.plan, plan.tables, plan.cells, positions,
                      buf, fast)
    if shard is not None:
        slots, mine = shard_sample(shard[0], shard[1], np.shape(w))
        first = kernel.ACC_SIZE + 2 * plan.units + math.prod(plan.frame_shape)
        buf[first + slots] = np.ascontiguousarray(w).reshape(-1)[mine]


_EMPTY = np.zeros(0, np.int64)


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
    plan = fused_plan(x.shape, unit_axes, layout)
    buf = new_partial(plan, x.size)
    compared = {}
    if prev is not None:
        compared["update"] = prev.astype(x.dtype, copy=False)
    if init is not None:
        compared["init"] = init.astype(x.dtype, copy=False)
    accumulate(buf, plan, x, compared.get("update"), compared.get("init"))
    flat, lut = _kernel_input(kernel, x)
    return finish(buf, plan, compared, lambda shift: kernel.centred_sumsq(flat, lut, shift), x,
                  frame_dtype)


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
