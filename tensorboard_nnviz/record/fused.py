"""The fused pass: every stat, the per-unit sums and the block-mean frame of
a weight from one read of W, W_prev and W_0, compiled by numba
(docs/architecture.md, "The fused pass").

`accumulate` is the partial-sum stage: it adds a tensor (or a shard of it)
into a `partial` buffer whose entries are sums, except three minima and
maxima (`MIN_ENTRIES`, `MAX_ENTRIES`), so shards combine entry by entry
(an all-reduce). stats.py finishes a buffer into the stats, the unit norms
and the frame with the same code as its numpy path.

How (the figures: README, "Recording cost"):

- The tensor is walked in memory order, as rows of its last axes. Per row,
  one loop reads W, W_prev and W_0 once and takes every sum, the squares
  per unit, and W into a `line` for the frame. It is compiled with
  reassociation allowed, so LLVM vectorises the sums; without
  `nnan`/`ninf`, so a NaN or Inf shows in the sums of its chunk of rows,
  whose stats alone are then summed again entry by entry over the finite
  entries (units and frame keep NaN and Inf on purpose).
- Precision as stats.py's docstring states it: float64 rows (`_row`) for
  float64 and small tensors; float32 rows (`_row32`, twice the lanes) for
  larger float32 and 16-bit ones, summed in float32 over at most _SEG
  entries, then in float64. A chunk of float32 rows that could be wrong
  (NaN, Inf, a square near float32's overflow or underflow) has its stats
  and units taken again in float64. Lines and frame cells are float64 on
  either kind of row, so a reduced frame is rounded once, to float16, from
  the same sums. min and max are LLVM's NaN-propagating `minimum` /
  `maximum`, which it vectorises.
- Frame cells: consecutive rows that land in the same cells one for one
  (a Dense kernel's rows inside one block row) add into the `line`, which
  goes to the cells once for all of them. Along one side of the layout, a
  line's cells are runs of equal length; any other layout takes a table of
  each entry's layout row and column. No transposed copy of the tensor.
- float16 and bfloat16 are read as their bits and widened in registers
  (`VIEWS`): no widened copy either.
"""

import functools
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

# The partial buffer (float64): acc, then per-unit sums of W^2 and of
# (W - W_prev)^2, the frame's cell sums (row-major), the sampled entries.
# acc: sums over the finite entries, except MIN (a min) and MAX (a max).
N, SUM, SUMSQ, MIN, MAX, ZEROS, NAN, INF = range(8)
# Per compared tensor (W_prev at UPDATE, W_0 at INIT), over the entries
# finite in both: count, sum (W - other)^2, max |W - other| (a max),
# sum W^2, sum other^2.
UPDATE, INIT = 8, 13
DN, DSQ, DMAX, DWSQ, DOSQ = range(5)
ACC_SIZE = 18
MIN_ENTRIES = (MIN,)
MAX_ENTRIES = (MAX, UPDATE + DMAX, INIT + DMAX)

# The plan (int64): how `accumulate` walks a tensor (see `plan`).
(P_SIZE, P_RS, P_CS, P_US, P_GROUP, P_BR, P_BC, P_CB, P_ROWS, P_UNITS, P_CELLS,
 P_LEAD, P_KEY, P_LINES, P_R0, P_C0, P_U0, P_DIRECT) = range(18)
PLAN_HEAD = 18  # then, per leading axis: its size, row step, col step, unit step
# P_R0, P_C0, P_U0: the layout row, column and unit of the first entry (not
# 0 for a shard: a block of the tensor, `plan`'s `start`).
US_TABLE = -1  # P_US: each entry's unit is in the tables
# P_KEY: which rows share a line. KEY_EXACT: those at the same layout row
# and column; KEY_ROW / KEY_COL: those in the same row / column of cells
# (a row along one side, every row of the tensor with the same cells along
# it). P_LINES lines: one per key when rows of a key are not consecutive.
KEY_EXACT, KEY_ROW, KEY_COL = range(3)
# P_DIRECT: a row's entries fall one each into consecutive frame cells (it
# runs along a row of cells, and cells are as wide as its step): the row
# adds into the frame itself, with no line to flush.

_CHUNK = 1 << 14  # entries per chunk of rows whose stats are checked for NaN/Inf
_MIN_INNER = 64  # a row spans the last axes up to at least this many entries
_CHUNK32 = 1 << 16  # the same for float32 rows, whose unit sums stay float32 within one
_SEG = 1024  # float32 sums run over at most this many entries, then go to float64
# A float32 row's sums of squares stay below this, or its chunk is taken in
# float64: a unit summed over a chunk's rows (at most _CHUNK32 / _MIN_INNER)
# stays far from float32's overflow.
_BIG32 = np.float32(2.0 ** 100)
_TINY32 = np.float32(2.0 ** -40)  # below this (not 0), squares may underflow float32
_FAST = {"reassoc", "contract", "nsz", "arcp"}  # not nnan/ninf: NaN and Inf must show


def _llvm_binary(name, flags=()):
    """An LLVM floating-point intrinsic of two arguments, as a numba function."""

    @intrinsic
    def call(typingctx, a, b):
        if not (isinstance(a, types.Float) and a == b):
            return None

        def codegen(context, builder, signature, args):
            t = context.get_value_type(signature.return_type)
            suffix = ".f64" if t == ir.DoubleType() else ".f32"
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(t, [t, t]),
                                                name + suffix)
            return builder.call(fn, args, fastmath=flags)

        return a(a, b), codegen

    return call


# In `_row` only: one instruction each, assuming no NaN (a chunk holding
# NaN or Inf is summed again by `_add_masked`, and its result discarded).
_min_finite = _llvm_binary("llvm.minnum", ("nnan", "nsz"))
_max_finite = _llvm_binary("llvm.maxnum", ("nnan", "nsz"))


@intrinsic
def _float16_bits(typingctx, v):
    """The float32 value of float16 bits (int16: see `VIEWS`), the CPU's
    conversion (F16C), which LLVM vectorises."""
    if v != types.int16:
        return None

    def codegen(context, builder, signature, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    return types.float32(v), codegen


@intrinsic
def _bfloat16_bits(typingctx, v):
    """The float32 value of bfloat16 bits (uint16): the top half of a float32."""
    if v != types.uint16:
        return None

    def codegen(context, builder, signature, args):
        wide = builder.shl(builder.zext(args[0], ir.IntType(32)), ir.Constant(ir.IntType(32), 16))
        return builder.bitcast(wide, ir.FloatType())

    return types.float32(v), codegen


def _widen32(v):
    """An entry as float32 (numba only: see its overload)."""


@overload(_widen32)
def _widen32_impl(v):
    if isinstance(v, types.Float):
        return lambda v: np.float32(v)
    if v == types.int16:
        return lambda v: _float16_bits(v)
    return lambda v: _bfloat16_bits(v)


def _widen(v):
    """An entry as float64 (numba only: see its overload)."""


@overload(_widen)
def _widen_impl(v):
    if isinstance(v, types.Float):
        return lambda v: np.float64(v)
    return lambda v: np.float64(_widen32(v))  # bits of float16 / bfloat16


# 16-bit floats are read as their bits, in the integer type that says
# which: no widened copy (stats._kernel_input).
VIEWS = {"float16": np.int16, "bfloat16": np.uint16}


# --- the kernel (numba) --------------------------------------------------------------
# Slices and unsigned indices throughout: numba checks a signed index for
# wraparound, and that check stops LLVM vectorising.


def _constants(zero):
    """(0, 1, inf) in the type of `zero` (numba only: see its overload)."""


@overload(_constants)
def _constants_impl(zero):
    if zero == types.float32:
        return lambda zero: (np.float32(0.0), np.float32(1.0), np.float32(np.inf))
    return lambda zero: (0.0, 1.0, np.inf)


def _widen_as(v, zero):
    """An entry in the type of `zero` (numba only: see its overload)."""


@overload(_widen_as)
def _widen_as_impl(v, zero):
    if zero == types.float32:
        return lambda v, zero: _widen32(v)
    return lambda v, zero: _widen(v)


@njit(nogil=True, fastmath=_FAST, inline="always")
def _entries(xs, ps, qs, tol, along, nv, uv, line, zero):
    """The loop of a row: its sums in the type of `zero` (float64, or
    float32 with 8 lanes where float64 has 4), returned as `sums` orders
    them; its entries into `line`, and with `along` (the units run along
    the row) its squares into the units nv[m], uv[m]."""
    s, one, inf = _constants(zero)
    ss = z = dd = pp = ee = qq = dm = em = s
    mn = inf
    mx = -inf
    for m in range(xs.size):
        v = _widen_as(xs[m], zero)
        a = _widen_as(ps[m], zero)
        b = _widen_as(qs[m], zero)
        sq = v * v
        d = v - a
        dsq = d * d
        e = v - b
        s += v
        ss += sq
        dd += dsq
        mn = _min_finite(mn, v)
        mx = _max_finite(mx, v)
        z += one if abs(v) <= tol else zero
        dm = _max_finite(dm, abs(d))
        pp += a * a
        ee += e * e
        em = _max_finite(em, abs(e))
        qq += b * b
        line[m] += v
        if along:
            nv[m] += sq
            uv[m] += dsq
    return s, ss, mn, mx, z, dd, dm, pp, ee, em, qq


@njit(nogil=True, fastmath=_FAST, inline="always")
def _add_entries(sums, r):
    """Adds `_entries`' sums `r` into `sums` (min and max: their min, max)."""
    s, ss, mn, mx, z, dd, dm, pp, ee, em, qq = r
    sums[0] += s
    sums[1] += ss
    sums[2] = min(sums[2], mn)
    sums[3] = max(sums[3], mx)
    sums[4] += z
    sums[5] += dd
    sums[6] = max(sums[6], dm)
    sums[7] += pp
    sums[8] += ee
    sums[9] = max(sums[9], em)
    sums[10] += qq


@njit(nogil=True, cache=True, fastmath=_FAST)
def _row(xs, ps, qs, zero_tol, along, nv, uv, line, sums):
    """One row of W (`ps`, `qs`: of W_prev and W_0) in float64: its stats
    added to `sums` (assuming every entry finite: the caller checks the
    chunk), its entries to `line`, and with `along` its squares to the
    units nv[m], uv[m]. Returns the row's sum W^2 and sum (W - prev)^2,
    NaN and Inf included (a unit holding NaN shows it)."""
    r = _entries(xs, ps, qs, zero_tol, along, nv, uv, line, 0.0)
    _add_entries(sums, r)
    return r[1], r[5]


@njit(nogil=True, cache=True, fastmath=_FAST)
def _row32(xs, ps, qs, tol, along, nv, uv, line, sums):
    """`_row` in float32: sums of _SEG entries added to `sums` in float64,
    units (`nv`, `uv`: float32) and `line` as `_row`. Returns the row's
    sum W^2 and sum (W - prev)^2, and whether no square came near
    float32's overflow (nor was NaN)."""
    rs = rd = 0.0
    fine = True
    zero = np.float32(0.0)
    for lo in range(0, xs.size, _SEG):
        hi = min(xs.size, lo + _SEG)
        # nv, uv: the units along the row, or empty (read only with `along`)
        r = _entries(xs[lo:hi], ps[lo:hi], qs[lo:hi], tol, along, nv[lo:hi], uv[lo:hi],
                     line[lo:hi], zero)
        fine = fine and (r[1] < _BIG32 and r[5] < _BIG32 and r[7] < _BIG32 and r[8] < _BIG32
                         and r[10] < _BIG32)
        _add_entries(sums, r)
        rs += r[1]
        rd += r[5]
    return rs, rd, fine


def _fast_row(xs, ps, qs, tol, along, nv, uv, line, sums):
    """`_row32`, but for float64 input (numba only: see its overload)."""


@overload(_fast_row)
def _fast_row_impl(xs, ps, qs, tol, along, nv, uv, line, sums):
    if xs.dtype == types.float64:  # never float32 rows (stats.accumulate): not compiled
        return lambda xs, ps, qs, tol, along, nv, uv, line, sums: (0.0, 0.0, False)
    return lambda xs, ps, qs, tol, along, nv, uv, line, sums: _row32(
        xs, ps, qs, tol, along, nv, uv, line, sums)


@njit(nogil=True, cache=True, fastmath=_FAST)
def _has_tiny(xs, ps):
    """Whether an entry of xs or ps is not 0 but below _TINY32 in size:
    its square, or a difference's, may underflow float32."""
    n = 0
    for m in range(xs.size):
        v = abs(_widen32(xs[m]))
        a = abs(_widen32(ps[m]))
        n += 1 if (v < _TINY32 and v > 0) or (a < _TINY32 and a > 0) else 0
    return n > 0


@njit(nogil=True, cache=True, fastmath=_FAST)
def _units64(xs, ps, along, nv, uv):
    """A row's sum W^2 and sum (W - prev)^2 in float64, NaN and Inf
    included; with `along`, each entry's into nv[m], uv[m]."""
    ss = dd = 0.0
    for m in range(xs.size):
        v = _widen(xs[m])
        d = v - _widen(ps[m])
        ss += v * v
        dd += d * d
        if along:
            nv[m] += v * v
            uv[m] += d * d
    return ss, dd


@njit(nogil=True, cache=True, fastmath=_FAST)
def _flush_units(part, total):
    """total += part, then part = 0 (float32 unit sums into float64)."""
    for u in range(part.size):
        total[u] += part[u]
        part[u] = 0.0


@njit(nogil=True, cache=True)
def _widen_into(xs, out):
    for m in range(xs.size):
        out[m] = _widen(xs[m])


@njit(nogil=True, cache=True)
def _gather(x, at, out):
    for t in range(at.size):
        out[t] = _widen(x[np.uint64(at[t])])


@njit(nogil=True, cache=True)
def _add_masked(x, p, q, zero_tol, acc):
    """A chunk holding NaN or Inf, entry by entry over the finite entries."""
    for j in range(x.size):
        v = _widen(x[j])
        ok = np.isfinite(v)
        if ok:
            acc[N] += 1.0
            acc[SUM] += v
            acc[SUMSQ] += v * v
            acc[MIN] = min(acc[MIN], v)
            acc[MAX] = max(acc[MAX], v)
            if abs(v) <= zero_tol:
                acc[ZEROS] += 1.0
        elif np.isnan(v):
            acc[NAN] += 1.0
        else:
            acc[INF] += 1.0
        for base, o in ((UPDATE, _widen(p[j])), (INIT, _widen(q[j]))):
            if ok and np.isfinite(o):
                d = v - o
                acc[base + DN] += 1.0
                acc[base + DSQ] += d * d
                acc[base + DMAX] = max(acc[base + DMAX], abs(d))
                acc[base + DWSQ] += v * v
                acc[base + DOSQ] += o * o


@njit(nogil=True, cache=True)
def _add_sums(x, p, q, zero_tol, acc, sums):
    """Adds a chunk's `sums` (from `_row`) to `acc`, or the chunk again
    entry by entry when it holds NaN or Inf."""
    # Any NaN or Inf in x, p or q makes one of these sums NaN or Inf.
    if not (np.isfinite(sums[0]) and np.isfinite(sums[1]) and np.isfinite(sums[5])
            and np.isfinite(sums[7]) and np.isfinite(sums[8]) and np.isfinite(sums[10])):
        _add_masked(x, p, q, zero_tol, acc)
        return
    n = float(x.size)
    acc[N] += n
    acc[SUM] += sums[0]
    acc[SUMSQ] += sums[1]
    acc[MIN] = min(acc[MIN], sums[2])
    acc[MAX] = max(acc[MAX], sums[3])
    acc[ZEROS] += sums[4]
    for base, dsq, dmax, osq in ((UPDATE, sums[5], sums[6], sums[7]),
                                 (INIT, sums[8], sums[9], sums[10])):
        acc[base + DN] += n
        acc[base + DSQ] += dsq
        acc[base + DMAX] = max(acc[base + DMAX], dmax)
        acc[base + DWSQ] += sums[1]
        acc[base + DOSQ] += osq


@njit(nogil=True, cache=True)
def _add_units(xs, ps, u0, us, du, norm, upd):
    """Units of a row neither along it nor one per row: entry m belongs to
    u0 + m * us, or to u0 + du[m] when us is US_TABLE."""
    for m in range(xs.size):
        v = _widen(xs[m])
        d = v - _widen(ps[m])
        u = np.uint64(u0 + (du[m] if us == US_TABLE else m * us))
        norm[u] += v * v
        upd[u] += d * d


@njit(nogil=True, fastmath=_FAST, inline="always")
def _sum_runs(line, run, cells):
    """cells[j] += the sum of the j-th run of `run` entries of `line`."""
    for j in range(cells.size):
        total = 0.0
        for t in range(run):
            total += line[j * run + t]
        cells[j] += total


@njit(nogil=True, cache=True, fastmath=_FAST)
def _add_runs(line, run, frame, cell, step):
    """frame[cell + j * step] += the sum of the j-th run of `run` entries
    of `line` (the last run: what is left), for every j. Consecutive cells
    (step 1): cell by cell, the common runs compiled each with their
    length known, so LLVM vectorises their strided reads; otherwise offset
    by offset across the runs."""
    full = line.size // run
    if step == 1:
        cells = frame[np.uint64(cell):np.uint64(cell + full)]
        if run == 2:
            _sum_runs(line, 2, cells)
        elif run == 3:
            _sum_runs(line, 3, cells)
        elif run == 4:
            _sum_runs(line, 4, cells)
        elif run == 6:
            _sum_runs(line, 6, cells)
        elif run == 8:
            _sum_runs(line, 8, cells)
        else:
            _sum_runs(line, run, cells)
    else:
        for t in range(run):
            for j in range(full):
                frame[np.uint64(cell + j * step)] += line[j * run + t]
    if full * run < line.size:
        total = 0.0
        for j in range(full * run, line.size):
            total += line[j]
        frame[np.uint64(cell + full * step)] += total


@njit(nogil=True, cache=True)
def _flush(line, r0, c0, plan, dr, dc, rowcell, colcell, frame):
    """Adds `line` (rows that share their cells) into the frame, and empties it.

    Entry m sits at layout (r0 + m * rs, c0 + m * cs) when there are no
    tables, else at (r0 + dr[m], c0 + dc[m]). Along one side, with a block
    b and a step st that divide each other, cells come in runs of b / st
    entries (or one entry each); otherwise each run of `group` entries
    (`_presum`) looks its cell up, and neighbours that share one are summed
    in a register (adding each into memory would chain the adds)."""
    size = line.size
    rs, cs, group = plan[P_RS], plan[P_CS], plan[P_GROUP]
    br, bc, cb = plan[P_BR], plan[P_BC], plan[P_CB]
    if dr.size == 0 and (rs == 0 or cs == 0):
        st, b, p0, step = (cs, bc, c0, 1) if rs == 0 else (rs, br, r0, cb)
        if b % st == 0 or st % b == 0:
            cell = rowcell[np.uint64(r0)] + colcell[np.uint64(c0)]
            if b % st == 0:
                run, first = b // st, min(size, (b - p0 % b + st - 1) // st)
            else:
                run, first, step = 1, 1, step * (st // b)
            total = 0.0
            for j in range(first):
                total += line[j]
            frame[np.uint64(cell)] += total
            _add_runs(line[first:], run, frame, cell + step, step)
            line[:] = 0.0
            return
    cur = -1
    total = 0.0
    for g in range(size // group):
        m = g * group
        if dr.size == 0:
            r, c = r0 + m * rs, c0 + m * cs
        else:
            r, c = r0 + dr[m], c0 + dc[m]
        cell = rowcell[np.uint64(r)] + colcell[np.uint64(c)]
        if cell != cur:
            if cur >= 0:
                frame[np.uint64(cur)] += total
            cur = cell
            total = 0.0
        for j in range(m, m + group):
            total += line[j]
    if cur >= 0:
        frame[np.uint64(cur)] += total
    line[:] = 0.0


@njit(nogil=True, cache=True)
def accumulate(x, p, q, zero_tol, plan, tables, cells, sample_at, buf, fast):
    """Adds the flat C-order tensor `x` (with `p` = W_prev and `q` = W_0,
    the same array as x when absent) into `buf`, a partial buffer (see
    `ACC_SIZE`, `partial_size`): acc, per-unit sums, frame cell sums (none
    when the plan has no cells), and the entries at the sorted flat
    positions `sample_at` into the sample (a shard passes none: its
    sampled entries are not consecutive in the sample, stats.py places
    them).

    `x` may be a shard of the tensor, any block of it (`plan`'s `start`,
    `local`): the plan walks the block's rows with the tensor's steps from
    the block's first layout row, column and unit.

    `plan` (see `plan`): rows of plan[P_SIZE] entries (the last axes); per
    leading axis, what a step adds to a row's first layout row, column and
    unit; within a row, entry m adds m times (rs, cs, us), or `tables`
    (3, size) hold its (row, column, unit) offsets. `cells`: the frame
    cell of each layout row (times the columns of cells), then of each
    layout column; the cell of (r, c) is their sum.

    `fast`: a float32 or 16-bit tensor of more than stats.EXACT_SIZE
    entries (stats.py's docstring): rows in float32 (`_row32`), their
    sums in float32 within _SEG entries, units within a chunk (lines and
    the frame float64, as on float64 rows);
    a chunk where that could go wrong (NaN, Inf, a square near float32's
    overflow or underflow) is taken again in float64.
    """
    size, rs, cs, us = plan[P_SIZE], plan[P_RS], plan[P_CS], plan[P_US]
    units, ncells, lead = plan[P_UNITS], plan[P_CELLS], plan[P_LEAD]
    acc = buf[:ACC_SIZE]
    norm = buf[ACC_SIZE:ACC_SIZE + units]
    upd = buf[ACC_SIZE + units:ACC_SIZE + 2 * units]
    frame = buf[ACC_SIZE + 2 * units:ACC_SIZE + 2 * units + ncells]
    sample = buf[ACC_SIZE + 2 * units + ncells:]
    rowcell, colcell = cells[:plan[P_ROWS]], cells[plan[P_ROWS]:]
    dr, dc, du = tables[0], tables[1], tables[2]
    outer = plan[PLAN_HEAD:].reshape(lead, 4)
    idx = np.zeros(lead, np.int64)
    r0, c0, u0 = plan[P_R0], plan[P_C0], plan[P_U0]
    sums = np.empty(11)
    keyed, nlines, direct = plan[P_KEY], plan[P_LINES], plan[P_DIRECT] != 0
    # Lines are float64 on float32 rows too: a frame is rounded once, to
    # float16, from cell sums as the float64 rows make them.
    lines = np.zeros((0 if direct else nlines, size))
    line = lines[0] if not direct else frame[:0]
    nv32 = np.zeros(units if fast and us == 1 else 0, np.float32)
    uv32 = np.zeros_like(nv32)
    tol = np.float32(zero_tol)
    if tol > zero_tol:  # |v| <= zero_tol for a float32 v: |v| <= the float32 below it
        tol = np.nextafter(tol, np.float32(0.0))
    line_r = np.full(nlines, -1, np.int64)  # a row of each line: where it sits
    line_c = np.zeros(nlines, np.int64)
    key_r = key_c = -1
    along = us == 1
    rows = x.size // size
    chunk_rows = max(1, (_CHUNK32 if fast else _CHUNK) // size)
    s = 0
    row_u = np.zeros(chunk_rows if fast else 0, np.int64)  # float32 chunks: each row's
    row_ss = np.zeros(row_u.size)  # first unit, and with one unit per row its sums
    row_dd = np.zeros(row_u.size)
    for start in range(0, rows, chunk_rows):
        stop = min(rows, start + chunk_rows)
        lo, hi = start * size, stop * size
        sums[:] = 0.0
        sums[2] = np.inf
        sums[3] = -np.inf
        fine = True
        ulo, uhi = units, 0  # the units nv32, uv32 hold
        for row in range(start, stop):
            li = 0
            if direct:
                cell = rowcell[np.uint64(r0)] + colcell[np.uint64(c0)]
                line = frame[cell:cell + size]
            elif ncells:
                kr, kc = r0, c0
                if keyed == KEY_ROW:
                    kr, kc = rowcell[np.uint64(r0)] // plan[P_CB], 0
                elif keyed == KEY_COL:
                    kr, kc = 0, colcell[np.uint64(c0)]
                if nlines > 1:
                    li = kr + kc
                elif kr != key_r or kc != key_c:
                    if line_r[0] >= 0:
                        _flush(lines[0], line_r[0], line_c[0], plan, dr, dc, rowcell, colcell,
                               frame)
                    key_r, key_c = kr, kc
                    line_r[0] = -1
                if line_r[li] < 0:
                    line_r[li], line_c[li] = r0, c0
            if not direct:
                line = lines[li]
            at = row * size
            xs, ps, qs = x[at:at + size], p[at:at + size], q[at:at + size]
            if fast:
                row_u[row - start] = u0
                if along:
                    ulo, uhi = min(ulo, u0), max(uhi, u0 + size)
                nv, uv = (nv32[u0:u0 + size], uv32[u0:u0 + size]) if along else (nv32, uv32)
                ss, dd, ok = _fast_row(xs, ps, qs, tol, along, nv, uv, line, sums)
                fine = fine and ok
                row_ss[row - start], row_dd[row - start] = ss, dd
            else:
                nv, uv = (norm[u0:u0 + size], upd[u0:u0 + size]) if along else (norm, upd)
                ss, dd = _row(xs, ps, qs, zero_tol, along, nv, uv, line, sums)
                if us == 0:
                    norm[u0] += ss
                    upd[u0] += dd
            if not along and us != 0:
                _add_units(xs, ps, u0, us, du, norm, upd)
            for a in range(lead - 1, -1, -1):  # the next row: an odometer
                idx[a] += 1
                r0 += outer[a, 1]
                c0 += outer[a, 2]
                u0 += outer[a, 3]
                if idx[a] < outer[a, 0]:
                    break
                r0 -= outer[a, 1] * outer[a, 0]
                c0 -= outer[a, 2] * outer[a, 0]
                u0 -= outer[a, 3] * outer[a, 0]
                idx[a] = 0
        if not fast:
            _add_sums(x[lo:hi], p[lo:hi], q[lo:hi], zero_tol, acc, sums)
        elif fine and (sums[4] == 0 or not _has_tiny(x[lo:hi], p[lo:hi])):
            _add_sums(x[lo:hi], p[lo:hi], q[lo:hi], zero_tol, acc, sums)
            if along:
                _flush_units(nv32[ulo:uhi], norm[ulo:uhi])
                _flush_units(uv32[ulo:uhi], upd[ulo:uhi])
            elif us == 0:
                for i in range(stop - start):
                    norm[row_u[i]] += row_ss[i]
                    upd[row_u[i]] += row_dd[i]
        else:  # NaN, Inf, or squares float32 would get wrong: the chunk in float64
            _add_masked(x[lo:hi], p[lo:hi], q[lo:hi], zero_tol, acc)
            nv32[ulo:uhi] = 0.0
            uv32[ulo:uhi] = 0.0
            for i in range(stop - start):
                at, u = (start + i) * size, row_u[i]
                if along:
                    _units64(x[at:at + size], p[at:at + size], True, norm[u:u + size],
                             upd[u:u + size])
                elif us == 0:
                    ss, dd = _units64(x[at:at + size], p[at:at + size], False, norm, upd)
                    norm[u] += ss
                    upd[u] += dd
        if sample_at.size == x.size:  # a small tensor: all of it
            _widen_into(x[lo:hi], sample[lo:hi])
        else:
            e = np.searchsorted(sample_at, hi)
            _gather(x, sample_at[s:e], sample[s:e])
            s = e
    for li in range(nlines):
        if ncells and line_r[li] >= 0:
            _flush(lines[li], line_r[li], line_c[li], plan, dr, dc, rowcell, colcell, frame)


@intrinsic
def _half_bits(typingctx, v):
    """The bits of the float16 nearest a float32 (the CPU's conversion)."""
    if v != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return types.uint16(v), codegen


def _put(out, r, c, v):
    """out[r, c] = v (numba only: see its overload)."""


@overload(_put)
def _put_impl(out, r, c, v):
    if out.dtype == types.uint16:
        def put(out, r, c, v):
            out[r, c] = _half_bits(v)
        return put

    def put(out, r, c, v):
        out[r, c] = v
    return put


# numpy's error model: no check for a zero divisor (a cell covers at least
# one entry), which would stop LLVM vectorising the divisions.
@njit(nogil=True, cache=True, error_model="numpy")
def frame_means(sums, rows_covered, cols_covered, out):
    """out[r, c] = the mean of the cell from its sum and how many layout
    rows and columns it covers, rounded once to float32 (and from there
    to float16 when `out` is uint16: float16 bits, as numpy rounds)."""
    rows, cols = out.shape
    for r in range(rows):
        for c in range(cols):
            mean = sums[r * cols + c] / (rows_covered[r] * cols_covered[c])
            _put(out, r, c, np.float32(mean))


@njit(nogil=True, cache=True)
def centred_sumsq(x, shift):
    """sum (x - shift)^2 over the finite entries, in float64."""
    total = 0.0
    for j in range(x.size):
        v = _widen(x[j])
        if np.isfinite(v):
            d = v - shift
            total += d * d
    return total


@njit(nogil=True, cache=True)
def _pair(values, k):
    """The k-th and (k+1)-th smallest of `values` (the k-th twice when it
    is the last); reorders `values`."""
    part = np.partition(values, k)
    return part[k], part[k + 1:].min() if k + 1 < values.size else part[k]


@njit(nogil=True, cache=True)
def _select_pair(a, k):
    """`_pair` in place (Hoare's quickselect, pivots the median of three):
    numpy's partition copies and runs several times slower on the few
    thousand values `_ranked` keeps."""
    lo, hi = 0, a.size - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot = a[mid]
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return a[k], a[k + 1:].min() if k + 1 < a.size else a[k]


@njit(nogil=True, cache=True)
def _ranked(values, los):
    """The los[i]-th and (los[i]+1)-th smallest of `values` (at most their
    number), for ranks near either end, as stats._ranked: the values beyond
    a cut read off a sorted strided subsample are a few hundred per end,
    and holding as many as a rank needs proves they hold it, so only those
    are partitioned."""
    n = values.size
    out = np.empty(2 * los.size)
    if n > 8192:
        sub = values[::n // 1024]
        need_lo = need_hi = 0
        for k in los:
            if k < n // 2:
                need_lo = max(need_lo, k + 2)
            else:
                need_hi = max(need_hi, n - k)
        at_lo = min(sub.size - 1, 2 * need_lo * sub.size // n + 8)
        at_hi = sub.size - 1 - min(sub.size - 1, 2 * need_hi * sub.size // n + 8)
        sub = np.partition(sub, np.array([at_lo, at_hi]))
        cut_lo, cut_hi = sub[at_lo], sub[at_hi]
        # Room for twice the expected count (fresh pages per call cost more
        # than the scan); more than that, the cuts were wrong: all of them.
        room = min(n, 4 * (need_lo + need_hi) + 32 * (n // sub.size) + 64)
        low = np.empty(room + 1)  # the last entry: where values past room go
        high = np.empty(room + 1)
        nl = nh = 0
        for j in range(n):  # without branches: a few in a hundred pass, at random
            v = values[j]
            low[np.uint64(min(nl, room))] = v
            nl += 1 if v <= cut_lo else 0
            high[np.uint64(min(nh, room))] = v
            nh += 1 if v >= cut_hi else 0
        if need_lo <= nl <= room and need_hi <= nh <= room:
            for i, k in enumerate(los):
                if k < n // 2:
                    out[2 * i], out[2 * i + 1] = _select_pair(low[:nl], k)
                else:
                    out[2 * i], out[2 * i + 1] = _select_pair(high[:nh], k - n + nh)
            return out
    if _near_ends(n, los) <= _FEW:
        for i, k in enumerate(los):
            nxt = min(k + 1, n - 1)
            if k < n // 2:
                ends = _smallest(values, min(n, k + 2), 1.0)
                out[2 * i], out[2 * i + 1] = ends[k], ends[nxt]
            else:  # the k-th smallest is the (n - 1 - k)-th largest
                ends = _smallest(values, n - k, -1.0)
                out[2 * i], out[2 * i + 1] = -ends[n - 1 - k], -ends[n - 1 - nxt]
        return out
    for i, k in enumerate(los):
        out[2 * i], out[2 * i + 1] = _pair(values, k)
    return out


_FEW = 64  # ranks this near an end: kept by insertion in one read


@njit(nogil=True, cache=True)
def _near_ends(n, los):
    """How many values the rank farthest from its end needs kept."""
    most = 0
    for k in los:
        most = max(most, min(n, k + 2) if k < n // 2 else n - k)
    return most


@njit(nogil=True, cache=True)
def _smallest(values, m, sign):
    """The m smallest of sign * values, ascending: a sorted buffer that a
    value below its last is inserted into (few are, m being small)."""
    best = np.full(m, np.inf)
    for j in range(values.size):
        v = sign * values[j]
        if v < best[m - 1]:
            i = m - 1
            while i > 0 and best[i - 1] > v:
                best[i] = best[i - 1]
                i -= 1
            best[i] = v
    return best


@njit(nogil=True, cache=True)
def percentiles(sample, finite, out):
    """out[0], out[1] = p01, p99 of the finite entries of `sample`
    (`finite`: known to be all finite; NaN: none), numpy's linear
    interpolation, as stats._percentiles."""
    values = sample
    if not finite:
        values = np.empty(sample.size)
        n = 0
        for j in range(sample.size):
            if np.isfinite(sample[j]):
                values[n] = sample[j]
                n += 1
        values = values[:n]
    n = values.size
    if n == 0:
        out[0] = out[1] = np.nan
        return
    ranks = np.array([(n - 1) * 0.01, (n - 1) * 0.99])
    los = np.floor(ranks).astype(np.int64)
    ranked = _ranked(values, los)
    for i in range(2):
        a, b = ranked[2 * i], ranked[2 * i + 1]
        t = ranks[i] - los[i]
        # numpy's _lerp: exact at both ends.
        out[i] = b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t


# --- the plan (plain Python) -------------------------------------------------------

_MAX_TABLE = 1 << 16  # a row over several axes: tables of at most this many entries
_MAX_LINES = 1 << 19  # entries of the lines of rows not yet in the frame (float64)
_NO_TABLES = np.zeros((3, 0), np.int64)
_EMPTY = np.zeros(0, np.int64)


class Plan:
    """How `accumulate` walks one tensor shape with one layout.

    plan, tables, cells: its arguments. units: the number of units;
    frame_shape: the frame's (rows, cols) of cells, (0, 0) without one;
    covered: how many layout rows each row of cells covers, and columns
    each column (float64 arrays; `frame_means`).
    """

    __slots__ = ("plan", "tables", "cells", "units", "frame_shape", "covered")

    def __init__(self, plan, tables, cells, units, frame_shape, covered):
        self.plan, self.tables, self.cells = plan, tables, cells
        self.units, self.frame_shape, self.covered = units, frame_shape, covered


def partial_size(plan, samples):
    """Entries of the partial buffer of a tensor of `plan` with `samples`
    sampled entries."""
    return ACC_SIZE + 2 * plan.units + math.prod(plan.frame_shape) + samples


def _strides(shape, axes):
    """What one step along each axis adds to the C-order index over `axes`."""
    out = [0] * len(shape)
    step = 1
    for a in reversed(list(axes)):
        out[a] = step
        step *= shape[a]
    return out


def _covered(n, block):
    """Lines each run of `block` covers along a side of n lines."""
    return np.minimum(block, n - np.arange(0, n, block)).astype(np.float64)


def _presum(shape, local, lead, strides, row_axes, block):
    """How many trailing entries of a row always share a frame cell: the
    last axes, as long as each is the next innermost of its side of the
    layout, whole in the shard (`local`), and the block on that side covers
    it whole (a conv kernel's tile, with a tile-aligned block)."""
    covered = [1, 1]
    group = 1
    for a in range(len(shape) - 1, lead - 1, -1):
        if local[a] != shape[a]:
            break
        side = 0 if a in row_axes else 1
        span = covered[side] * shape[a]
        if strides[side][a] != covered[side] or block[side] % span:
            break
        covered[side] = span
        group *= shape[a]
    return group


def _run_class(pos, block, step):
    """Positions along a side whose entries fall into cells alike: with
    cells of `block` lines and entries `step` lines apart, those at the
    same offset in their cell, up to a multiple of the step."""
    if block % step == 0:
        return (pos % block) // step
    if step % block == 0:
        return np.zeros_like(pos)
    return pos


def _lines(lead_shape, lead_rs, lead_cs, head, cells):
    """(P_KEY, P_LINES) of a tensor walked in rows along one side of its
    layout: KEY_ROW (KEY_COL) when every row lies within one layout row
    (column) and all rows meet the cells the same way along it, so rows
    in the same row (column) of cells share a line; one line when those
    rows come one after another, else one per row (column) of cells."""
    if not lead_shape:
        return KEY_EXACT, 1  # one row
    index = np.indices(lead_shape).reshape(len(lead_shape), -1)
    r0 = head[P_R0] + np.dot(np.array(lead_rs, np.int64), index)
    c0 = head[P_C0] + np.dot(np.array(lead_cs, np.int64), index)
    rowcell, colcell = cells[:head[P_ROWS]], cells[head[P_ROWS]:]
    if head[P_RS] == 0:
        key, base, along = rowcell[r0] // head[P_CB], colcell[c0], _run_class(c0, head[P_BC], head[P_CS])
        mode, count = KEY_ROW, head[P_CELLS] // head[P_CB]
    else:
        key, base, along = colcell[c0], rowcell[r0], _run_class(r0, head[P_BR], head[P_RS])
        mode, count = KEY_COL, head[P_CB]
    if np.ptp(base) or np.ptp(along):
        return KEY_EXACT, 1
    runs = 1 + np.count_nonzero(np.diff(key))
    if runs == len(np.unique(key)):
        return mode, 1  # each key's rows are consecutive: one line
    if count * head[P_SIZE] > _MAX_LINES:
        return KEY_EXACT, 1
    return mode, count


@functools.lru_cache(maxsize=1024)
def plan(shape, row_axes, col_axes, unit_axes, block=None, start=None, local=None):
    """The `Plan` of a tensor of `shape` laid out by `row_axes`, `col_axes`
    with units `unit_axes` (all tuples); `block` (br, bc), or None for no
    frame. A shard (any block of the tensor, as C-order data of its own):
    `start`, its first index along each axis, and `local`, its shape; the
    plan walks it with the whole tensor's layout rows, columns, units and
    cells."""
    if not shape:  # a scalar: one entry, one unit, a 1 x 1 frame
        shape, row_axes, col_axes = (1,), (), (0,)
    ndim = len(shape)
    local = shape if local is None else tuple(local) or (1,)
    start = (0,) * ndim if start is None else tuple(start) or (0,)
    rs, cs, us = _strides(shape, row_axes), _strides(shape, col_axes), _strides(shape, unit_axes)
    # A row: the last axis, or the last axes up to _MIN_INNER entries (a
    # torch conv kernel's 3 x 3 tile alone would make rows of 9 entries).
    k, size = 1, local[-1]
    while size < _MIN_INNER and k < ndim and size * local[-k - 1] <= _MAX_TABLE:
        k += 1
        size *= local[-k]
    lead = ndim - k
    origin = [int(np.dot(start, st)) for st in (rs, cs, us)]
    head = [size, rs[-1], cs[-1], us[-1], 1, 1, 1, 0, 0, 0, 0, lead, KEY_EXACT, 1] + origin + [0]
    tables = _NO_TABLES
    if k > 1:
        index = np.indices(local[lead:]).reshape(k, -1)
        tables = np.stack([np.dot(np.array(st[lead:], np.int64), index) for st in (rs, cs, us)])
        head[P_RS] = head[P_CS] = 0
        du = tables[2]
        head[P_US] = 0 if not du.any() else 1 if np.array_equal(du, np.arange(size)) else US_TABLE
    units = math.prod(shape[a] for a in unit_axes)
    head[P_UNITS] = units
    cells, frame_shape, covered = _EMPTY, (0, 0), None
    if block is not None:
        rows = math.prod(shape[a] for a in row_axes)
        cols = math.prod(shape[a] for a in col_axes)
        br, bc = int(block[0]), int(block[1])
        frame_shape = (-(-rows // br), -(-cols // bc))
        head[P_GROUP] = _presum(shape, local, lead, (rs, cs), row_axes, (br, bc))
        head[P_BR], head[P_BC], head[P_CB] = br, bc, frame_shape[1]
        head[P_ROWS], head[P_CELLS] = rows, math.prod(frame_shape)
        cells = np.concatenate([(np.arange(rows, dtype=np.int64) // br) * frame_shape[1],
                                np.arange(cols, dtype=np.int64) // bc])
        covered = (_covered(rows, br), _covered(cols, bc))
        if k == 1:
            head[P_KEY], head[P_LINES] = _lines(local[:lead], rs[:lead], cs[:lead], head, cells)
            head[P_DIRECT] = int(head[P_RS] == 0 and head[P_CS] == bc)
    outer = [[local[a], rs[a], cs[a], us[a]] for a in range(lead)]
    array = np.array(head + [v for axis in outer for v in axis], np.int64)
    return Plan(array, np.ascontiguousarray(tables), cells, units, frame_shape, covered)


# --- many small tensors in one call ------------------------------------------------

# Columns of `measure_many`'s index, one row per tensor: where its entries
# start in x (and p, q) and how many; where its plan, tables (flat: rows,
# columns, units; B_TABLES_N entries each), cells, partial buffer, frame
# cells, unit sums (B_UNITS) and sampled positions start, and how many;
# the frame's rows and columns (0: none), whose `covered` counts start at
# B_COVERED (rows, then columns); whether it has an update (W_prev), and
# whether to take its centred sum here (B_CENTRE).
(B_X, B_N, B_PLAN, B_PLAN_N, B_TABLES, B_TABLES_N, B_CELLS, B_CELLS_N, B_BUF, B_BUF_N,
 B_FRAME, B_ROWS, B_COLS, B_COVERED, B_UPDATE, B_UNITS, B_SAMPLE, B_SAMPLE_N,
 B_CENTRE) = range(19)
BATCH_COLUMNS = 19


@njit(nogil=True, cache=True)
def measure_many(x, p, q, zero_tol, fast_above, index, plans, tables, cells, covered,
                 positions, bufs, acc, unit_sums, centred, pcts, still, frames):
    """`accumulate` of tensors laid end to end in x (p, q: their W_prev and
    W_0, or themselves), each into its own (empty) partial buffer in
    `bufs`, and what finishing them needs beside it: the acc entries into
    acc[t], the unit sums into `unit_sums` (per tensor, of W^2 then of
    (W - W_prev)^2), with B_CENTRE sum (w - mean)^2 over the finite entries
    into centred[t] (stats.py takes it where the mean dwarfs the spread),
    p01 and p99 of its sample into pcts[t] (NaN: no finite entry), the
    units whose update is exactly 0 into still[t], and the frame's means
    into `frames` (float32, or float16 bits). The sample: the entries at
    its sorted `positions`. One call for many small tensors, so the cost
    of each is its entries, not a call's; a large tensor comes alone.
    A tensor of more than `fast_above` entries takes float32 rows
    (`accumulate`'s `fast`)."""
    for t in range(index.shape[0]):
        at = index[t]
        lo, n = at[B_X], at[B_N]
        xs = x[lo:lo + n]
        plan = plans[at[B_PLAN]:at[B_PLAN] + at[B_PLAN_N]]
        units = plan[P_UNITS]
        width = at[B_TABLES_N]
        table = tables[at[B_TABLES]:at[B_TABLES] + 3 * width].reshape(3, width)
        buf = bufs[at[B_BUF]:at[B_BUF] + at[B_BUF_N]]
        buf[:] = 0.0  # stats.new_partial's
        buf[MIN] = np.inf
        buf[MAX] = -np.inf
        ns = at[B_SAMPLE_N]
        accumulate(xs, p[lo:lo + n], q[lo:lo + n], zero_tol, plan, table,
                   cells[at[B_CELLS]:at[B_CELLS] + at[B_CELLS_N]],
                   positions[at[B_SAMPLE]:at[B_SAMPLE] + ns], buf, n > fast_above)
        acc[t] = buf[:ACC_SIZE]
        unit_sums[at[B_UNITS]:at[B_UNITS] + 2 * units] = buf[ACC_SIZE:ACC_SIZE + 2 * units]
        if at[B_CENTRE] and buf[N] > 0:
            centred[t] = centred_sumsq(xs, buf[SUM] / buf[N])
        percentiles(buf[buf.size - ns:], buf[NAN] == 0 and buf[INF] == 0, pcts[t])
        if at[B_UPDATE]:
            zeros = 0
            for u in range(ACC_SIZE + units, ACC_SIZE + 2 * units):
                if buf[u] == 0.0:
                    zeros += 1
            still[t] = zeros
        rows, cols = at[B_ROWS], at[B_COLS]
        if rows * cols:
            start = ACC_SIZE + 2 * units
            c0 = at[B_COVERED]
            frame_means(buf[start:start + rows * cols], covered[c0:c0 + rows],
                        covered[c0 + rows:c0 + rows + cols],
                        frames[at[B_FRAME]:at[B_FRAME] + rows * cols].reshape(rows, cols))
