"""A run's stats, every weight and every snapshot, kept decoded and extended
as the run grows (see docs/architecture.md, "Whole-run answers").

`RunStatsCache.get` answers `RunStats` for one run: {weight tag: `TagStats`}
read from the run's stats table (format version 3: one datum per snapshot)
and from per-weight stats series (versions 1 and 2), merged by step when a
run has both; and the stats of each quantity recorded beside the weights
(gradients, optimizer state) from the quantities' table. Only what is new since the last call is decoded: when the
datums TensorBoard returns begin with the ones decoded before (same steps,
same wall times), the rest are appended; anything else (a restart that
rewrote steps) is decoded again from the start.

A `TagStats` carries a `lineage`: an object that stays the same while its
rows only grow, so a consumer that folded the first n rows (findings_cache)
can fold the rest.

This module imports neither Keras nor TensorFlow.
"""

import logging
import math
import threading

import numpy as np

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.serve import decode
from tensorboard_nnviz.serve.errors import BadRequestError

logger = logging.getLogger(__name__)


class _Block:
    """Stats rows of one table header (the same rows of tags and the same
    fields), in step order. Each snapshot's cells are kept as read until a
    field is asked for; a field is then decoded for every tag at once
    (one strided pass) and kept, so a request for one field never pays
    for the others. Once every field is decoded the cells are let go.
    A block of one tag's rows from a dense matrix (`dense`) is decoded
    from the start."""

    def __init__(self, fields):
        self.fields = tuple(fields)
        self._index = {f: i for i, f in enumerate(self.fields)}
        self._lock = threading.Lock()
        self._cells = []  # (tags, fields) arrays of rows [self._cells_from, self._rows)
        self._cells_from = 0
        self._rows = 0
        self._decoded = {}  # field -> (tags, rows decoded so far)

    @classmethod
    def dense(cls, values, fields):
        """A block of one tag: `values` (rows, fields)."""
        block = cls(fields)
        block._rows = block._cells_from = len(values)
        block._decoded = {f: values[:, i].reshape(1, -1) for i, f in enumerate(block.fields)}
        return block

    def __contains__(self, field):
        return field in self._index

    def index(self, field):
        """The column of `field` in a row, or None."""
        return self._index.get(field)

    @property
    def rows(self):
        return self._rows

    def append(self, cells):
        """Adds rows: `cells`, one (tags, fields) array per snapshot."""
        with self._lock:
            self._cells.extend(cells)
            self._rows += len(cells)

    def tag_rows(self, row, start, count):
        """(count, fields) float64: the rows [start, start + count) of the
        tag at `row`, read from the cells (no field decoded for every tag)
        while they are kept, else from the decoded fields."""
        with self._lock:
            if start >= self._cells_from:
                cells = self._cells[start - self._cells_from : start - self._cells_from + count]
                return np.array([c[row] for c in cells], dtype=np.float64).reshape(count, len(self.fields))
        if not self.fields:
            return np.zeros((count, 0))
        return np.column_stack([self.field(f)[row, start : start + count] for f in self.fields])

    def field(self, name):
        """(tags, rows) float64 of field `name`, every row appended so far."""
        with self._lock:
            done = self._decoded.get(name)
            have = 0 if done is None else done.shape[1]
            if have < self._rows:
                i = self._index[name]
                new = np.stack([c[:, i] for c in self._cells[have - self._cells_from :]], axis=1)
                done = new if done is None else np.concatenate([done, new], axis=1)
                self._decoded[name] = done
                if len(self._decoded) == len(self.fields) and all(
                        d.shape[1] == self._rows for d in self._decoded.values()):
                    self._cells, self._cells_from = [], self._rows
            return done


class TagStats:
    """Stats of one weight: `steps` (int64, ascending), `wall_times`, and
    per name in `fields` a float64 column, one value per step (NaN where
    undefined), read by `column`. The columns come from `parts`: (block,
    the tag's row in it, first block row, count), in step order; a field a
    part's block lacks is NaN there."""

    def __init__(self, steps, wall_times, values, fields, lineage=None, parts=None):
        self.steps = steps
        self.wall_times = wall_times
        self.fields = tuple(fields)
        self._index = {f: i for i, f in enumerate(self.fields)}
        self._parts = parts if parts is not None else [(_Block.dense(values, fields), 0, 0, len(steps))]
        self.lineage = lineage if lineage is not None else object()

    def __len__(self):
        return len(self.steps)

    @property
    def values(self):
        """(steps, fields) float64 of every field, as stored."""
        if not self.fields:
            return np.zeros((len(self.steps), 0))
        return np.column_stack([self._stored(f) for f in self.fields])

    def _stored(self, field):
        pieces = [block.field(field)[row, start : start + count] if field in block else np.full(count, np.nan)
                  for block, row, start, count in self._parts]
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def column(self, field, start=0):
        """Values of `field` from row `start` on, non-finite as NaN (all NaN
        when the series has no such field)."""
        if field not in self._index:
            return np.full(len(self.steps) - start, np.nan)
        column = self._stored(field)[start:]
        return np.where(np.isfinite(column), column, np.nan)

    def answer(self, fields=None, arrays=False, alone=False):
        """The /stats columns: {"steps", "wall_times", <field>: [float or
        None]}, every field (and the spectral ones as null when absent), or
        only `fields`. With `arrays`, numpy arrays (NaN where undefined) for
        a JSON writer that writes NaN as null: no Python float per value.
        `alone`: this weight's answer is the only one asked for, so its
        rows are read without decoding its fields for every weight."""
        if fields is None:
            fields = self.fields + tuple(f for f in fmt.SPECTRAL_FIELDS if f not in self._index)
        known = [f for f in fields if f in self._index]
        stored = self._rows_alone(known) if alone else {f: self._stored(f) for f in known}
        out = {"steps": self.steps, "wall_times": self.wall_times}
        if not arrays:
            out = {"steps": self.steps.tolist(), "wall_times": self.wall_times.tolist()}
        for f in fields:
            column = stored.get(f)
            if column is None:
                out[f] = np.full(len(self.steps), np.nan) if arrays else [None] * len(self.steps)
            elif arrays:
                out[f] = np.where(np.isfinite(column), column, np.nan)
            elif np.isfinite(column).all():
                out[f] = column.tolist()
            else:  # NaN and ±Inf → None
                out[f] = [v if math.isfinite(v) else None for v in column.tolist()]
        return out

    def _rows_alone(self, fields):
        """{field: stored column} of `fields` (known ones), from this
        weight's rows alone (`_Block.tag_rows`)."""
        pieces = {f: [] for f in fields}
        for block, row, start, count in self._parts:
            rows = block.tag_rows(row, start, count)
            for f in fields:
                i = block.index(f)
                pieces[f].append(np.full(count, np.nan) if i is None else rows[:, i])
        return {f: p[0] if len(p) == 1 else np.concatenate(p) for f, p in pieces.items()}

    def extended(self, steps, wall_times, part, fields):
        """These stats followed by more rows (same lineage): `part` (block,
        row, first block row, count) with columns `fields`, which may name
        fields this series lacks (NaN before)."""
        names = self.fields + tuple(f for f in fields if f not in self._index)
        parts = list(self._parts)
        block, row, start, count = part
        last_block, last_row, last_start, last_count = parts[-1]
        if last_block is block and last_row == row and last_start + last_count == start:
            parts[-1] = (block, row, last_start, last_count + count)
        else:
            parts.append(part)
        return TagStats(np.concatenate([self.steps, steps]), np.concatenate([self.wall_times, wall_times]),
                        None, names, self.lineage, parts)


def _widen(values, fields, names):
    """`values` (columns `fields`) with columns `names`, NaN where missing."""
    out = np.full((len(values), len(names)), np.nan)
    index = {f: i for i, f in enumerate(fields)}
    for j, name in enumerate(names):
        if name in index:
            out[:, j] = values[:, index[name]]
    return out


class RunStats:
    """Stats of every weight of one run.

    Attributes:
      tags: {weight tag: TagStats or an error message (str)}.
      version: the lowest format version among the run's stats series.
      error: why the stats table cannot be read (None when it can).
      quantities: {quantity: {weight tag: TagStats}} of the quantities
        recorded beside the weights (none in runs without).
      quantities_error: why the quantities' table cannot be read, or None.
    """

    def __init__(self, tags, version, error=None, quantities=None, quantities_error=None):
        self.tags = tags
        self.version = version
        self.error = error
        self.quantities = quantities or {}
        self.quantities_error = quantities_error

    def of(self, quantity):
        """{weight tag: TagStats or error} of `quantity` ("weights": `tags`)."""
        return self.tags if quantity == fmt.WEIGHTS else self.quantities.get(quantity, {})

    def known_fields(self):
        """Every stat field this run can answer."""
        names = set(fmt.STAT_FIELDS)
        for stats in self.tags.values():
            if isinstance(stats, TagStats):
                names.update(stats.fields)
        return names


def check_fields(fields, known):
    """Raises BadRequestError unless every name of `fields` is in `known`."""
    unknown = [f for f in fields if f not in known]
    if unknown:
        raise BadRequestError("unknown stat field%s %s; known: %s" % (
            "s" if len(unknown) > 1 else "", ", ".join(repr(f[:100]) for f in unknown[:5]),
            ", ".join(sorted(known))))


# --- decoding ------------------------------------------------------------------------


def _in_step_order(datums):
    """Datums sorted by step, the last written of each step kept: the
    writer writes the last snapshot's table again, complete, when it adds
    the spectral stats the budget skipped (record/writer.py); RustBoard
    keeps only that one, the Python ingester both, in the order written."""
    latest = {}
    for d in sorted(datums, key=lambda d: d.step):  # stable: written order within a step
        latest[d.step] = d
    return list(latest.values())


def _vectors_stats(content, datums, lineage=None):
    """TagStats of a per-weight stats series (versions 1 and 2).

    Raises:
      FormatError: newer version, or a vector that does not match its fields.
    """
    doc = fmt.parse_content(content)
    fields = doc.get("fields")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise fmt.FormatError("stats metadata has no list of fields")
    datums = _in_step_order(datums)
    vectors = [d.numpy for d in datums]
    if not vectors:  # listed, but TensorBoard holds no step (e.g. all purged)
        table = np.zeros((0, len(fields)))
    elif len({np.size(v) for v in vectors}) == 1 and np.size(vectors[0]) >= len(fields):
        table = np.stack(vectors).astype(np.float64, copy=False).reshape(len(vectors), -1)
    else:  # a series whose vectors changed length: each checked on its own
        table = np.array([fmt.stats_row(v, fields) for v in vectors], dtype=np.float64)
    table = table[:, : len(fields)].reshape(len(vectors), len(fields))
    return TagStats(np.array([d.step for d in datums], dtype=np.int64),
                    np.array([d.wall_time for d in datums], dtype=np.float64),
                    table, fields, lineage)


class _Table:
    """The decoded stats table of one run: the (step, wall time) of each
    datum decoded so far, and TagStats per weight (per (weight, quantity)
    for the quantities' table: `parse` is `format.parse_qstats_table_header`)."""

    def __init__(self, parse=fmt.parse_stats_table_header):
        self.parse = parse
        self.steps = np.zeros(0, np.int64)
        self.wall_times = np.zeros(0, np.float64)
        self.tags = {}
        self.skipped = 0  # datums that could not be decoded
        self.block, self.header = None, None  # the block the last rows went to, and its header

    def extend(self, datums):
        """Decodes `datums` (the whole series, in step order) into a new
        _Table, reusing this one when they only add steps."""
        steps = np.array([d.step for d in datums], dtype=np.int64)
        walls = np.array([d.wall_time for d in datums], dtype=np.float64)
        n = len(self.steps)
        if n <= len(steps) and np.array_equal(steps[:n], self.steps) and np.array_equal(walls[:n], self.wall_times):
            out, new = _Table(self.parse), datums[n:]
            out.tags, out.skipped = dict(self.tags), self.skipped
            out.block, out.header = self.block, self.header
        else:
            out, new = _Table(self.parse), datums
        out.steps, out.wall_times = steps, walls
        out._append(new)
        return out

    def _append(self, datums):
        """Groups consecutive datums of one header and appends their rows."""
        group, header, names = [], None, None
        for d in datums:
            try:
                h = fmt.stats_table_header(d.numpy)
                if h != header:
                    self._append_group(group, header, names)
                    group, header, names = [], h, self.parse(h)
                group.append((d, fmt.stats_table_cells(d.numpy, *names)))
            except fmt.FormatError as e:
                self.skipped += 1
                logger.warning("nnviz: stats table at step %d skipped: %s", d.step, e)
        self._append_group(group, header, names)

    def _append_group(self, group, header, names):
        """Appends the rows of `group` (datums of one header) to the block
        of that header, or to a new one; the cells stay undecoded."""
        if not group:
            return
        tags, fields = names
        steps = np.array([d.step for d, _ in group], dtype=np.int64)
        walls = np.array([d.wall_time for d, _ in group], dtype=np.float64)
        if self.block is None or self.header != header:
            self.block, self.header = _Block(fields), header
        start = self.block.rows
        self.block.append([c for _, c in group])
        for j, tag in enumerate(tags):
            part = (self.block, j, start, len(group))
            old = self.tags.get(tag)
            if old is None:
                self.tags[tag] = TagStats(steps, walls, None, fields, parts=[part])
            else:
                self.tags[tag] = old.extended(steps, walls, part, fields)


def _merged(a, b):
    """One TagStats of a weight with both per-weight and table stats (a run
    continued across format versions): rows by step, `a`'s first."""
    names = a.fields + tuple(f for f in b.fields if f not in a.fields)
    steps = np.concatenate([a.steps, b.steps])
    order = np.argsort(steps, kind="stable")
    _, first = np.unique(steps[order], return_index=True)
    keep = order[first]
    values = np.concatenate([_widen(a.values, a.fields, names), _widen(b.values, b.fields, names)])
    return TagStats(steps[keep], np.concatenate([a.wall_times, b.wall_times])[keep], values[keep], names)


# --- the cache ----------------------------------------------------------------------


class RunStatsCache:
    """RunStats per (experiment, run), decoded once and extended.

    Args:
      read_tensors: `read_tensors(ctx, eid, run, summary_tags)` → {summary
        tag: [TensorDatum]} (every datum of each series).
      stamp: `stamp(series)` → what changes when a listed series changes.
      read_table: `read_table(eid, run, series)` → the run's stats tables
        in step order, one per step, read from disk (disk_stats.py), or
        None to read them with `read_tensors`; None: always so.
    """

    def __init__(self, read_tensors, stamp, read_table=None):
        self._read = read_tensors
        self._stamp = stamp
        self._read_table = read_table
        self._lock = threading.Lock()
        self._runs = {}  # (eid, run) -> _RunEntry

    def get(self, ctx, eid, run, listing, part=None):
        """RunStats of `run` from its tensor listing ({summary tag: series};
        the stats table and the per-weight stats series are used). `part`
        names a cache entry of its own for a listing of some series only
        (one weight's)."""
        with self._lock:
            entry = self._runs.setdefault((eid, run, part), _RunEntry())
        with entry.lock:  # one request decodes; a concurrent one waits for it
            return entry.update(ctx, eid, run, listing, self._read, self._stamp, self._read_table)

    def forget(self, eid, run):
        """Drops what is kept of `run` (gone from TensorBoard)."""
        with self._lock:
            for key in [k for k in self._runs if k[:2] == (eid, run)]:
                del self._runs[key]


class _TableState:
    """One stats table series of a run (the weights' or the quantities'),
    decoded and extended as it grows."""

    def __init__(self, summary_tag, parse, label):
        self.summary_tag, self.parse, self.label = summary_tag, parse, label
        self.stamp = None
        self.table = _Table(parse)
        self.error = None

    def update(self, ctx, eid, run, series, read, stamp, read_table=None):
        """`read_table(eid, run, series)`: the table's datums read from disk
        in step order, or None where only TensorBoard can give them."""
        if series is None:
            self.stamp, self.table, self.error = None, _Table(self.parse), None
            return
        if stamp(series) == self.stamp:
            return
        try:
            fmt.parse_content(series.plugin_content)
        except fmt.FormatError as e:
            self.stamp, self.table = stamp(series), _Table(self.parse)
            self.error = "%s of run %r: %s" % (self.label, run, e)
            return
        datums = read_table and read_table(eid, run, series)
        if datums is None:
            datums = _in_step_order(
                read(ctx, eid, run, [self.summary_tag]).get(self.summary_tag, []))
        self.table = self.table.extend(datums)
        self.stamp, self.error = stamp(series), None


class _RunEntry:
    def __init__(self):
        self.lock = threading.Lock()
        self.weights = _TableState(fmt.STATS_TABLE_TAG, fmt.parse_stats_table_header, "stats")
        self.quantities = _TableState(fmt.QSTATS_TABLE_TAG, fmt.parse_qstats_table_header,
                                      "quantities' stats")
        self.series = {}  # per-weight summary tag -> (stamp, TagStats or error, version)
        self.answer = None
        self.answer_key = None

    def update(self, ctx, eid, run, listing, read, stamp, read_table=None):
        table = listing.get(fmt.STATS_TABLE_TAG)
        qtable = listing.get(fmt.QSTATS_TABLE_TAG)
        vectors = {t: s for t, s in listing.items() if t.startswith(fmt.STATS_PREFIX)}
        key = (None if table is None else stamp(table), None if qtable is None else stamp(qtable),
               tuple(sorted((t, stamp(s)) for t, s in vectors.items())))
        if key == self.answer_key:
            return self.answer
        self.weights.update(ctx, eid, run, table, read, stamp, read_table)
        self.quantities.update(ctx, eid, run, qtable, read, stamp)
        self._update_series(ctx, eid, run, vectors, read, stamp)
        tags = dict(self.weights.table.tags)
        versions = [fmt.STATS_TABLE_VERSION] if table is not None else []
        for summary_tag, (_, stats, version) in self.series.items():
            tag = fmt.parse_summary_tag(summary_tag)[1]
            versions.append(version)
            if isinstance(stats, TagStats) and isinstance(tags.get(tag), TagStats):
                stats = _merged(stats, tags[tag])
            tags[tag] = stats
        quantities = {}
        for (tag, quantity), stats in sorted(self.quantities.table.tags.items()):
            quantities.setdefault(quantity, {})[tag] = stats
        self.answer = RunStats(dict(sorted(tags.items())), min(versions or [fmt.FORMAT_VERSION]),
                               self.weights.error, quantities, self.quantities.error)
        self.answer_key = key
        return self.answer

    def _update_series(self, ctx, eid, run, listing, read, stamp):
        stale = {t: s for t, s in listing.items()
                 if t not in self.series or self.series[t][0] != stamp(s)}
        for gone in [t for t in self.series if t not in listing]:
            del self.series[gone]
        if not stale:
            return
        data = read(ctx, eid, run, list(stale))
        for summary_tag, series in stale.items():
            version = decode.content_version(series.plugin_content)
            old = self.series.get(summary_tag)
            try:
                stats = _vectors_stats(series.plugin_content, data.get(summary_tag, []))
            except fmt.FormatError as e:
                stats = "stats of weight %r of run %r: %s" % (
                    fmt.parse_summary_tag(summary_tag)[1], run, e)
            if old is not None and isinstance(old[1], TagStats) and isinstance(stats, TagStats):
                stats = _same_lineage(old[1], stats)
            self.series[summary_tag] = (stamp(series), stats, version)


def _same_lineage(old, new):
    """`new` in `old`'s lineage when it only adds rows to it."""
    n = len(old)
    if (n <= len(new) and old.fields == new.fields and np.array_equal(new.steps[:n], old.steps)
            and np.array_equal(new.wall_times[:n], old.wall_times)
            and np.array_equal(new.values[:n], old.values[:n], equal_nan=True)):
        new.lineage = old.lineage
    return new

