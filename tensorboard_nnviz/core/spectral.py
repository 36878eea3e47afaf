"""Spectral health of weight matrices (pure numpy; no Keras, TF or torch).

Per matrix and snapshot: `sv_max` (the spectral norm σ_max), `stable_rank`
(‖W‖_F² / σ_max²), `alpha` (exponent of a power law fitted to the tail of
the eigenvalues of WᵀW) and `alpha_weighted` (alpha · log10 λ_max), the
metrics weightwatcher (CalculatedContent/WeightWatcher, 0.7.x) reports for a
finished model, here computed at every snapshot.

Which tensors are matrices, and how (`plan`):

- a tensor is read through its layout (layout.py): rows × cols is a linear
  map from its inputs to its outputs. Dense kernels, EinsumDense kernels
  (MultiHeadAttention query/key/value (d, heads, hd) → d × heads·hd, output
  (heads, hd, d) → heads·hd × d), LSTM/GRU kernels and recurrent kernels
  (in × gates·units, all gates one matrix), Embedding tables, torch's
  Linear weights and `in_proj_weight` (E × 3E, q, k and v one matrix, as
  weightwatcher treats GPT-2's fused `c_attn`);
- convolution kernels are read as weightwatcher reads them: one in × out
  matrix per kernel position (kh·kw of them for 2-D), the eigenvalues of all
  positions pooled into one spectrum. `spatial_axes` names the kernel
  positions' axes for Keras (kh, kw, in, out) and torch (out, in, kh, kw)
  convolutions; a layout carrying `spatial_axes` itself needs no class name;
- not matrices: vectors and scalars, biases and normalisation parameters,
  depthwise kernels (each output sees one input channel, so a position's
  "matrix" is a vector of per-channel weights), and convolutions whose
  slices are vectors (one input or output channel).

Eigenvalues (`eigenvalues`): those of the smaller Gram matrix of each slice
(XᵀX or XXᵀ), `eigvalsh` in float64, batched over the slices: a fraction
of float64 SVD's CPU time, with the same metrics to rounding. float32
would save a little more but moves alpha; power iteration for sv_max alone
costs more than the full spectrum (benchmarks/spectral_methods.py; the
figures: the README, "Spectral stats").

The fit (`fit_alpha`) is weightwatcher's default (`pl_package="ww"`,
`xmax=None`, `fix_fingers=False`): eigenvalues ≤ 1e-5 dropped, each sorted
eigenvalue but the largest a candidate xmin, the continuous maximum
likelihood alpha = 1 + n / Σ ln(λ_i / xmin) over the n eigenvalues ≥ xmin,
and the xmin whose Kolmogorov–Smirnov distance
D = max_j |1 − (λ_j / xmin)^(1 − alpha) − j / n| is smallest (the first on
a tie). weightwatcher evaluates D at every candidate (O(N²)); this module
finds the same minimum exactly with far fewer evaluations (see
`fit_alpha`).

Where this differs from weightwatcher, and why:

- Conv2D weights are not scaled. weightwatcher multiplies Conv2D slices by
  sqrt(1/2) (`conv2d_norm=True`, its default), which halves the eigenvalues:
  its `sv_max` is σ_max/√2, its `lambda_max` λ_max/2 and its
  alpha_weighted is alpha·log10(λ_max/2). Here sv_max is the true spectral
  norm (max over positions) and alpha_weighted uses the true λ_max, so a
  number means the same for Dense and conv layers. alpha and stable_rank are
  scale-free and agree.
- weightwatcher's column `spectral_norm` is λ_max = σ_max²; `sv_max` here is
  σ_max (its `sv_max` column).
- Conv1D/Conv3D: weightwatcher skips them in practice (a Conv1D kernel goes
  whole to its SVD, and its size check takes the smallest axis, the kernel
  width, as the eigenvalue count); here they are pooled over kernel
  positions like Conv2D.
- LSTM/GRU and attention projections: weightwatcher skips them (its layer
  types are Dense, Conv1D/2D and Embedding); here they are matrices too.
- Depthwise kernels, and convolutions with one input or output channel
  (a grayscale image's first layer): weightwatcher analyses them as Conv2D
  once they pool 8 (0.7.7) or 10 (0.7.5) "eigenvalues", each the squared
  norm of a vector; here they are not matrices (null).
- Small spectra: alpha needs at least MIN_EVALS (20) eigenvalues above
  1e-5. weightwatcher's releases disagree below that: 0.7.5 fits any layer
  with 10 or more pooled eigenvalues the standard way; 0.7.7 starts at 8 and,
  under 20 fitted eigenvalues, switches to a bias-corrected estimator
  (1 + (n − 1)/Σ ln) over tails of at least 8, because the standard fit is
  unreliable there. A tail of a handful of eigenvalues says nothing about
  training, and a noisy alpha would raise false `alpha` findings: null.
  sv_max and stable_rank need no fit and are given for every matrix
  (weightwatcher skips layers under its floor entirely).
- Size limits as weightwatcher's: a matrix with more than MAX_EVALS (15000)
  pooled eigenvalues or a side longer than MAX_N (50000) gets no metrics
  (weightwatcher skips those layers).

benchmarks/weightwatcher_compare.py checks all this against weightwatcher
0.7.7's analyze(): wherever both give a value, the numbers agree to 1e-15.

Undefined values are None, never NaN: not a matrix, non-finite weights, a
zero matrix's stable rank, alpha with fewer than MIN_EVALS eigenvalues above
the threshold or no candidate whose alpha exceeds 1.
"""

import collections
import contextlib
import math
import re

import numpy as np

FIELDS = ("sv_max", "stable_rank", "alpha", "alpha_weighted")

# weightwatcher's limits (constants.py): with more than MAX_EVALS pooled
# eigenvalues, or a side longer than MAX_N, a layer is not analysed;
# eigenvalues at or below EVALS_THRESH are left out of the fit. MIN_EVALS is
# the fewest fitted eigenvalues alpha is given for (weightwatcher 0.7.7's
# SMALL_N_CUTOFF, below which it changes estimator; see above).
MIN_EVALS = 20
MAX_EVALS = 15000
MAX_N = 50000
EVALS_THRESH = 1e-5

# Convolution classes whose kernels are sliced per kernel position.
# Keras kernels put the positions first: (k..., in, out), or (k..., out, in)
# for the transposed ones; torch's put them last: (out, in, k...), or
# (in, out, k...) for ConvTranspose.
_KERAS_CONV = re.compile(
    r"^(Conv|Convolution|SeparableConv|SeparableConvolution)[123]D(Transpose)?$"
    r"|^ConvLSTM([123]D|Cell)$"
)
_TORCH_CONV = re.compile(r"^(torch\.nn\.)?(modules\.[a-z]+\.)?(Conv|ConvTranspose)[123]d$")
_DEPTHWISE = re.compile(r"^Depthwise")
_MATRIX_NAME = re.compile(r"kernel|weight|embedding")
_NOT_MATRIX_NAME = re.compile(r"bias|depthwise|gamma|beta|moving_|running_|scale")


class MatrixPlan(collections.namedtuple("MatrixPlan", "slice_axes row_axes col_axes")):
    """How a tensor is read as a stack of matrices.

    Slice s of the stack (s runs over `slice_axes` in C order) is the
    prod(rows) × prod(cols) matrix transpose(W, slice + row + col axes)
    [s]; a plain matrix has no slice axes (one slice).
    """

    __slots__ = ()

    def dims(self, shape):
        """(slices, rows, cols) for a tensor of `shape`."""
        # math.prod of Python ints: np.prod of a short list costs several
        # microseconds, and this runs per matrix at every snapshot.
        size = lambda axes: math.prod(int(shape[a]) for a in axes)
        return size(self.slice_axes), size(self.row_axes), size(self.col_axes)

    def num_evals(self, shape):
        """How many eigenvalues the pooled spectrum holds."""
        k, n, m = self.dims(shape)
        return k * min(n, m)


def spatial_axes(layer_class, shape):
    """The kernel-position axes of a convolution kernel, or None if not one.

    Args:
      layer_class: a class name ("Conv2D", "torch.nn.Conv2d", ...) or a
        list of them (the first known wins).
      shape: the kernel's shape.

    Returns:
      A tuple of axes: Keras (kh, kw, in, out) → (0, 1); torch
      (out, in, kh, kw) → (2, 3). None for anything that is not a
      convolution kernel; "depthwise" for Keras's depthwise layers (not
      matrices; a separable layer's depthwise_kernel is left out by name).
    """
    names = [layer_class] if isinstance(layer_class, str) else list(layer_class or ())
    ndim = len(shape)
    for name in names:
        name = str(name)
        if _DEPTHWISE.search(name):
            return "depthwise"
        if _KERAS_CONV.search(name) and ndim >= 3:
            return tuple(range(ndim - 2))
        if _TORCH_CONV.search(name) and ndim >= 3:
            return tuple(range(2, ndim))
    return None


def plan(layout, shape, layer_class=None, weight_name=""):
    """How to read a weight as matrices, or None when it is not a matrix.

    Args:
      layout: the weight's layout (`row_axes`, `col_axes`, and optionally
        `spatial_axes`: the kernel-position axes of a convolution, which
        then need no `layer_class`).
      shape: the weight's shape.
      layer_class: the owning layer's class name (Keras "Conv2D", torch
        "torch.nn.Conv2d", or a list of names), used only to find the kernel
        positions of convolutions and to leave depthwise kernels out.
      weight_name: the variable's name ("kernel", "weight",
        "in_proj_weight", "recurrent_kernel", ...; a tag's last part).

    Returns:
      A `MatrixPlan`: the layout's rows × cols without the kernel-position
      axes, one slice per kernel position; or None for vectors, biases,
      normalisation parameters, depthwise kernels, slices that are vectors,
      and matrices past weightwatcher's size limits (MAX_EVALS, MAX_N).
    """
    shape = tuple(int(d) for d in shape)
    name = str(weight_name).rsplit("/", 1)[-1].lower()
    if len(shape) < 2 or not _MATRIX_NAME.search(name) or _NOT_MATRIX_NAME.search(name):
        return None
    spatial = layout.get("spatial_axes")
    if spatial is None:
        spatial = spatial_axes(layer_class, shape)
    if spatial == "depthwise":
        return None
    spatial = tuple(int(a) for a in (spatial or ()))
    rows = tuple(a for a in layout["row_axes"] if a not in spatial)
    cols = tuple(a for a in layout["col_axes"] if a not in spatial)
    if sorted(spatial + rows + cols) != list(range(len(shape))):
        return None
    result = MatrixPlan(spatial, rows, cols)
    k, n, m = result.dims(shape)
    if min(n, m) < 2 and k > 1:
        return None  # a conv with one input or output channel: vectors
    if min(n, m) < 1 or max(n, m) > MAX_N or k * min(n, m) > MAX_EVALS:
        return None
    return result


def matrices(w, matrix_plan):
    """The (slices, rows, cols) stack of matrices of `w` (a view when it can)."""
    w = np.asarray(w)
    k, n, m = matrix_plan.dims(w.shape)
    axes = matrix_plan.slice_axes + matrix_plan.row_axes + matrix_plan.col_axes
    return np.transpose(w, axes).reshape(k, n, m)


def eigenvalues(w, matrix_plan, dtype=np.float64):
    """The pooled eigenvalues of WᵀW over the slices, ascending.

    Each slice contributes the min(rows, cols) eigenvalues of its smaller
    Gram matrix (the squared singular values), from `eigvalsh` batched over
    the slices. Rounding can make a zero eigenvalue slightly negative: they
    are clipped at 0.

    Args:
      w: the weight (any float dtype).
      matrix_plan: from `plan`.
      dtype: of the Gram matrix and the eigensolver (float64: exact enough
        to match an SVD to ~1e-12; float32 is faster but moves alpha).

    Returns:
      A 1-D float64 array of slices · min(rows, cols) eigenvalues.
    """
    x = matrices(w, matrix_plan).astype(dtype, copy=False)
    xt = np.swapaxes(x, 1, 2)
    return gram_eigenvalues(xt @ x if x.shape[1] >= x.shape[2] else x @ xt)


def gram_eigenvalues(gram):
    """The pooled eigenvalues of a (slices, s, s) stack of Gram matrices,
    ascending, clipped at 0 (a sharded matrix's Gram is the sum of its
    shards': record/sharded.py)."""
    evals = np.linalg.eigvalsh(gram).astype(np.float64).ravel()
    np.maximum(evals, 0.0, out=evals)
    evals.sort()
    return evals


# --- the power-law fit --------------------------------------------------------

_SAMPLES = 64  # points per candidate in the bounding pass of fit_alpha


def _ks_at(logs, i, alpha, positions):
    """KS distance of candidate i (alpha) evaluated at tail positions ≥ i."""
    n = logs.size - i
    model = -np.expm1((1.0 - alpha) * (logs[positions] - logs[i]))
    empirical = (positions - i) / n
    return np.abs(model - empirical).max(axis=-1)


def fit_alpha(evals, details=False, min_evals=MIN_EVALS):
    """weightwatcher's power-law fit of the eigenvalues' tail.

    The fitted eigenvalues are those > EVALS_THRESH, sorted: x_0 ≤ … ≤
    x_{N-1}. Candidate i (xmin = x_i, i < N-1) has the n = N - i eigenvalues
    from x_i up, the maximum-likelihood exponent alpha_i = 1 + n / Σ_j
    ln(x_j / x_i), and the Kolmogorov–Smirnov distance D_i = max_j
    |1 − (x_j/x_i)^(1−alpha_i) − (j−i)/n| (j = i … N-1; 1 when alpha_i ≤ 1).
    The answer is the candidate with the smallest D (the first on a tie).

    weightwatcher computes every D_i in full: O(N²). Here a first pass
    evaluates each D_i at `_SAMPLES` evenly spaced positions of its tail.
    Both the model CDF and the empirical one rise with j, so between two
    sampled positions a < b the distance can exceed the sampled maximum by
    at most (b − a)/n: each D_i lies in [sampled, sampled + gap_i/n]. Only
    candidates whose lower bound is at most the best upper bound can win;
    those are evaluated in full, best lower bound first, each time lowering
    the bar to the best exact D found. The result is the same candidate as
    the full scan.

    Args:
      evals: eigenvalues (any order).
      details: also return xmin, D and the number of eigenvalues in the tail.
      min_evals: the fewest eigenvalues above the threshold to fit (at least 2).

    Returns:
      alpha (float) or None when fewer than `min_evals` eigenvalues exceed
      the threshold or no candidate has alpha > 1; with `details`, a dict
      `{"alpha", "xmin", "D", "num_pl_spikes"}` or None.
    """
    x = np.asarray(evals, dtype=np.float64)
    x = np.sort(x[x > EVALS_THRESH])
    count = x.size
    if count < max(int(min_evals), 2) or not np.isfinite(x[-1]):
        return None
    logs = np.log(x)
    idx = np.arange(count - 1)
    n = (count - idx).astype(np.float64)
    # Σ_{j ≥ i} ln x_j − n ln x_i, summed from the top so it stays accurate.
    tail_sums = np.cumsum(logs[::-1])[::-1][:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        alphas = 1.0 + n / (tail_sums - n * logs[:-1])
    valid = np.isfinite(alphas) & (alphas > 1.0)
    if not valid.any():
        return None
    cand = idx[valid]
    # Bounding pass: each tail sampled at _SAMPLES positions, ends included.
    steps = np.linspace(0.0, 1.0, _SAMPLES)
    span = (count - 1 - cand).astype(np.float64)
    positions = cand[:, None] + np.floor(steps[None, :] * span[:, None]).astype(np.int64)
    positions[:, -1] = count - 1
    lower = np.empty(cand.size)
    for start in range(0, cand.size, 4096):  # bounded memory
        part = slice(start, start + 4096)
        c = cand[part]
        model = -np.expm1((1.0 - alphas[c])[:, None] * (logs[positions[part]] - logs[c][:, None]))
        empirical = (positions[part] - c[:, None]) / n[c][:, None]
        lower[part] = np.abs(model - empirical).max(axis=1)
    gap = np.ceil(span / (_SAMPLES - 1))
    upper = lower + gap / n[cand] + 1e-12
    bar = upper.min()
    best_d, best_i = math.inf, None
    for k in np.argsort(lower, kind="stable"):
        if lower[k] > bar:
            break
        i = int(cand[k])
        d = float(_ks_at(logs, i, alphas[i], np.arange(i, count)))
        if d < best_d or (d == best_d and i < best_i):
            best_d, best_i = d, i
            bar = min(bar, d)
    alpha = float(alphas[best_i])
    if not details:
        return alpha
    return {"alpha": alpha, "xmin": float(x[best_i]), "D": best_d,
            "num_pl_spikes": int(count - best_i)}


# --- metrics --------------------------------------------------------------------


def _finite_or_none(v):
    return float(v) if v is not None and math.isfinite(v) else None


def metrics(evals, fro_sq=None):
    """sv_max, stable_rank, alpha and alpha_weighted of a pooled spectrum.

    Args:
      evals: the eigenvalues of WᵀW (pooled over slices), e.g. from
        `eigenvalues`.
      fro_sq: ‖W‖_F² if known (e.g. l2² from the stats); default Σ evals
        (the same number: the eigenvalues of WᵀW sum to ‖W‖_F²).

    Returns:
      `{"sv_max", "stable_rank", "alpha", "alpha_weighted"}`, each a float
      or None (never NaN): sv_max = sqrt(λ_max); stable_rank =
      ‖W‖_F²/λ_max (None for a zero matrix); alpha from `fit_alpha` (None
      with fewer than MIN_EVALS eigenvalues above EVALS_THRESH);
      alpha_weighted = alpha·log10(λ_max).
    """
    out = dict.fromkeys(FIELDS)
    evals = np.asarray(evals, dtype=np.float64).ravel()
    if evals.size == 0 or not np.isfinite(evals).all():
        return out
    lam_max = float(evals.max())
    out["sv_max"] = math.sqrt(max(lam_max, 0.0))
    if lam_max > 0:
        total = float(evals.sum()) if fro_sq is None else float(fro_sq)
        out["stable_rank"] = _finite_or_none(total / lam_max)
    out["alpha"] = _finite_or_none(fit_alpha(evals))
    if out["alpha"] is not None:
        out["alpha_weighted"] = _finite_or_none(out["alpha"] * math.log10(lam_max))
    return out


def compute(w, matrix_plan, dtype=np.float64):
    """The four metrics of one weight (all None when it is not finite)."""
    w = np.asarray(w)
    if w.dtype not in (np.float32, np.float64):
        w = w.astype(np.float32)
    if not np.isfinite(w).all():
        return dict.fromkeys(FIELDS)
    return metrics(eigenvalues(w, matrix_plan, dtype=dtype))


def cost(shape, matrix_plan):
    """A rough operation count of `compute`, to budget matrices never timed.

    Per slice: the Gram matrix n·m² (m the smaller side), `eigvalsh` about
    3·m³ of the same units (its time against the Gram's, one BLAS thread as
    the writer runs it), the fit about 100 per eigenvalue. Only the ratios
    matter: the scheduler replaces the estimate by the measured time once
    a matrix has been computed (record/spectral_budget.py).
    """
    k, n, m = matrix_plan.dims(shape)
    m, n = min(n, m), max(n, m)
    return float(k) * (n * m * m + 3.0 * m ** 3 + 100.0 * m)


def blas_single_thread():
    """A context in which numpy's BLAS/LAPACK run on one thread.

    The writer's worker runs beside training: a multi-threaded eigensolver
    would take the cores training uses, and OpenBLAS's waiting threads spin,
    costing several times the CPU of one thread for the same eigvalsh (the
    README, "Spectral stats"). Uses threadpoolctl when it is installed, else
    does nothing.
    """
    global _controller
    if _controller is None:
        try:
            import threadpoolctl

            _controller = threadpoolctl.ThreadpoolController()
        except Exception:  # not installed, or no BLAS it knows
            _controller = False
    if _controller is False:
        return contextlib.nullcontext()
    return _controller.limit(limits=1, user_api="blas")


_controller = None
