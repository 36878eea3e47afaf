"""Full-resolution statistics of one weight snapshot (pure numpy).

`compute_stats(w, prev, init)` returns every name of `format.STAT_FIELDS`:

- `mean, std, min, max, l2, absmax`: over the finite entries, accumulated in
  float64 (`std` is the population standard deviation, ddof = 0).
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

Undefined values are None, never NaN: no finite entry, no `prev`/`init`
(or one of another shape), a zero norm in a ratio or cosine.

Speed: the tensor is streamed in chunks that fit in the CPU cache; each
chunk is widened to float64 once into a reused buffer and every sum is
taken there (no full-size float64 or temporary copies). The finiteness
check is free in the common case: a chunk whose float64 sum is finite holds
no NaN/Inf, so masks are built only for chunks that do.
"""

import math

import numpy as np

from tensorboard_nnviz import format as nnviz_format

SAMPLE_SIZE = 65536
ZERO_TOL = 1e-8
_CHUNK = 1 << 16

_jitter = np.random.default_rng(20240601).random(SAMPLE_SIZE)


def _sample_index(n):
    """Fixed stratified sample: one position in each of SAMPLE_SIZE equal
    strata of range(n) (n >= SAMPLE_SIZE), so distinct and sorted."""
    bounds = np.arange(SAMPLE_SIZE + 1, dtype=np.int64) * n // SAMPLE_SIZE
    widths = np.diff(bounds)
    return bounds[:-1] + (_jitter * widths).astype(np.int64)


def _percentiles(values):
    """(p01, p99) of the finite `values` (a small 1-D array), or Nones."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None, None
    p01, p99 = np.percentile(values, [1.0, 99.0])
    return float(p01), float(p99)


def _as_numeric(w):
    """A flat float32/float64 view (ints, bools, float16, bfloat16 widened)."""
    w = np.asarray(w)
    if w.dtype not in (np.float32, np.float64):
        w = w.astype(np.float64 if w.dtype.itemsize > 4 else np.float32)
    return w.reshape(-1)


class _Moments:
    """Running sums over one tensor's finite entries, in float64."""

    def __init__(self, shift):
        self.shift = shift
        self.n = 0
        self.sum = 0.0
        self.sumsq = 0.0
        self.shifted_sumsq = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.zeros = 0
        self.nan = 0
        self.inf = 0

    def add(self, c, scratch):
        """Adds a float64 chunk of finite values (shifted in place)."""
        if c.size == 0:
            return
        self.n += c.size
        self.sum += float(c.sum())
        self.sumsq += _dot(c, c)
        self.min = min(self.min, float(c.min()))
        self.max = max(self.max, float(c.max()))
        self.zeros += int(np.count_nonzero(np.abs(c, out=scratch[: c.size]) <= ZERO_TOL))
        # Squares about a shift near the mean: no cancellation in the std.
        c -= self.shift
        self.shifted_sumsq += _dot(c, c)


class _Diff:
    """Running sums of W - other over entries finite in both."""

    def __init__(self, with_cos):
        self.with_cos = with_cos  # the cosine needs W.other and ||W|| too
        self.n = 0
        self.sumsq = 0.0
        self.absmax = 0.0
        self.dot = 0.0
        self.w_sumsq = 0.0
        self.other_sumsq = 0.0

    def add(self, c, o, buf):
        """c, o: float64 chunks finite in both; buf: scratch, >= c's size."""
        if c.size == 0:
            return
        self.n += c.size
        if self.with_cos:
            self.dot += _dot(c, o)
            self.w_sumsq += _dot(c, c)
        self.other_sumsq += _dot(o, o)
        d = np.subtract(c, o, out=buf[: c.size])
        self.sumsq += _dot(d, d)
        self.absmax = max(self.absmax, float(d.max()), -float(d.min()))


def _dot(a, b):
    # einsum, not BLAS: OpenBLAS threads its dot above ~10k entries, and
    # those threads stall badly on cores that training keeps busy.
    return float(np.einsum("i,i->", a, b))


def _norm_ratio(num, den_sq):
    return num / math.sqrt(den_sq) if den_sq > 0 else None


def _accumulate(flat, others, moments, diffs):
    """Streams `flat` (and `others`) chunk by chunk; True if all finite."""
    n = flat.size
    size = min(_CHUNK, max(n, 1))
    c = np.empty(size, np.float64)
    o = np.empty(size, np.float64)
    scratch = np.empty(size, np.float64)
    all_finite = True
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        cc = c[: stop - start]
        cc[...] = flat[start:stop]
        # A finite float64 sum means no NaN/Inf here: no mask needed.
        mask = None if math.isfinite(float(cc.sum())) else np.isfinite(cc)
        if mask is not None:
            all_finite = False
            nans = int(np.count_nonzero(np.isnan(cc)))
            moments.nan += nans
            moments.inf += cc.size - int(np.count_nonzero(mask)) - nans
        for key, other in others.items():
            oo = o[: cc.size]
            oo[...] = other[start:stop]
            if mask is None and math.isfinite(float(oo.sum())):
                diffs[key].add(cc, oo, scratch)
            else:
                joint = np.isfinite(cc) & np.isfinite(oo)
                diffs[key].add(cc[joint], oo[joint], scratch)
        # The moments shift their chunk in place: after the diffs.
        moments.add(cc if mask is None else cc[mask], scratch)
    return all_finite


def compute_stats(w, prev=None, init=None):
    """Statistics of a weight snapshot, see the module docstring.

    Args:
      w: the weight now (any shape, any numeric dtype).
      prev: the weight at the previous snapshot, or None.
      init: the weight at the first snapshot (W_0), or None.

    Returns:
      `{name: float or None}` for every name in `format.STAT_FIELDS`.
    """
    shape = np.shape(w)
    flat = _as_numeric(w)
    others = {}
    for key, other in (("update", prev), ("init", init)):
        if other is not None and np.shape(other) == shape:
            others[key] = _as_numeric(other)

    n = flat.size
    if n <= SAMPLE_SIZE:
        sample = flat
    else:
        sample = flat[_sample_index(n)]
    sample64 = sample.astype(np.float64)
    finite_sample = sample64[np.isfinite(sample64)]
    shift = float(finite_sample.mean()) if finite_sample.size else 0.0

    moments = _Moments(shift)
    diffs = {key: _Diff(with_cos=key == "init") for key in others}
    # inf - inf in a sum only tells us a chunk holds non-finite entries.
    with np.errstate(invalid="ignore", over="ignore"):
        all_finite = _accumulate(flat, others, moments, diffs)

    stats = dict.fromkeys(nnviz_format.STAT_FIELDS)
    stats["nan"] = float(moments.nan)
    stats["inf"] = float(moments.inf)
    if moments.n:
        k = moments.n
        mean = moments.sum / k
        var = max(moments.shifted_sumsq / k - (mean - shift) ** 2, 0.0)
        stats.update(
            mean=mean,
            std=math.sqrt(var),
            min=moments.min,
            max=moments.max,
            l2=math.sqrt(moments.sumsq),
            absmax=max(abs(moments.min), abs(moments.max)),
            zero_frac=moments.zeros / k,
        )
        if all_finite or finite_sample.size:
            stats["p01"], stats["p99"] = _percentiles(finite_sample)
        else:
            # The sample missed every finite entry: take them all.
            finite = flat[np.isfinite(flat)]
            if finite.size > SAMPLE_SIZE:
                finite = finite[_sample_index(finite.size)]
            stats["p01"], stats["p99"] = _percentiles(finite)
    for key, d in diffs.items():
        if not d.n:
            continue
        l2 = math.sqrt(d.sumsq)
        stats[key + "_l2"] = l2
        stats[key + "_absmax"] = d.absmax
        if key == "update":
            stats["update_ratio"] = _norm_ratio(l2, d.other_sumsq)
        else:
            den = math.sqrt(d.w_sumsq) * math.sqrt(d.other_sumsq)
            stats["init_cos"] = max(-1.0, min(1.0, d.dot / den)) if den > 0 else None
    return stats
