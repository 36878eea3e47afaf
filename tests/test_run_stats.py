"""A run's stats decoded a field at a time (serve/run_stats.py) and its
stats tables read ahead in the background (serve/disk_stats.py): the
answers are the same however, and in whatever order, they are asked, as
the run grows. Real runs written by the real writer, read through
TensorBoard's own data provider."""

import time

import pytest

from runs import SyntheticWriter
from tensorboard_nnviz.cli.local_provider import local_data_provider
from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.serve import disk_stats
from tensorboard_nnviz.serve.reader import NNVizReader

WEIGHTS = {"d1/kernel": (5, 4), "d1/bias": (4,), "d2/kernel": (4, 3)}
SUBSETS = [["update_ratio", "nan", "inf"], ["l2"], ["alpha", "mean", "units_still"]]


def whole(r, eid, run):
    return r.stats_impl(None, eid, run)


def asked(r, eid, run, order):
    """Every answer, asked in `order` ("fields": the subsets, one request
    each; "tags": each weight alone; "all": the whole run)."""
    out = {}
    for kind in order:
        if kind == "fields":
            for fields in SUBSETS:
                out[tuple(fields)] = r.stats_impl(None, eid, run, fields=fields)
        elif kind == "tags":
            for tag in WEIGHTS:
                out[tag] = r.stats_impl(None, eid, run, tag=tag)
        else:
            out["all"] = whole(r, eid, run)
    return out


def restricted(answer, fields):
    return {tag: {k: v for k, v in series.items() if k in ("steps", "wall_times") or k in fields}
            for tag, series in answer.items()}


def check(out):
    full = out["all"]
    assert set(full) == set(WEIGHTS)
    for fields in SUBSETS:
        assert out[tuple(fields)] == restricted(full, fields), fields
    for tag in WEIGHTS:
        assert out[tag] == full[tag], tag


@pytest.mark.parametrize("order", [("fields", "tags", "all"), ("all", "fields", "tags"), ("tags", "all", "fields")])
def test_stats_asked_field_by_field_equal_the_whole_answer_as_the_run_grows(tmp_path, order):
    writer = SyntheticWriter(str(tmp_path / "run"), weights=WEIGHTS).write(range(0, 30, 3))
    provider, eid = local_data_provider(str(tmp_path))
    growing = NNVizReader(provider, logdir=str(tmp_path))
    before = asked(growing, eid, "run", order)
    check(before)
    assert before["all"]["d1/kernel"]["steps"] == list(range(0, 30, 3))
    writer.write(range(30, 60, 3))
    writer.close()
    provider._multiplexer.Reload()
    after = asked(growing, eid, "run", order)  # the rows added to what was decoded
    check(after)
    assert after["all"]["d1/kernel"]["steps"] == list(range(0, 60, 3))
    fresh_provider, fresh_eid = local_data_provider(str(tmp_path))
    fresh = asked(NNVizReader(fresh_provider, logdir=str(tmp_path)), fresh_eid, "run", reversed(order))
    assert fresh == after
    # Real values: the update ratio is undefined at the first snapshot only.
    ratio = after[("update_ratio", "nan", "inf")]["d2/kernel"]["update_ratio"]
    assert ratio[0] is None and all(v is not None and v > 0 for v in ratio[1:])


def table_locations(r, eid, run):
    index = r._disk_tables._indexes.get(eid, run)
    _, steps, locations = index.records(fmt.STATS_TABLE_TAG)
    return [locations[i] for i in range(len(steps))]


@pytest.mark.parametrize("budget", [None, 2], ids=["all", "two_tables"])
def test_tables_read_ahead_give_the_same_answers_and_are_not_kept_twice(tmp_path, monkeypatch, budget):
    for name in ("a", "b"):
        SyntheticWriter(str(tmp_path / name), weights=WEIGHTS).write(range(0, 40, 4)).close()
    plain_provider, plain_eid = local_data_provider(str(tmp_path))
    plain = NNVizReader(plain_provider, logdir=str(tmp_path))
    expected = {run: whole(plain, plain_eid, run) for run in ("a", "b")}
    sizes = [location[2] for location in table_locations(plain, plain_eid, "a")]
    if budget is not None:
        monkeypatch.setattr(disk_stats, "PREREAD_BYTES", sum(sizes[:budget]))
    provider, eid = local_data_provider(str(tmp_path))
    r = NNVizReader(provider, logdir=str(tmp_path), warm=True)  # indexes, then reads ahead, in the background
    tables = r._disk_tables
    wanted = len(sizes) * 2 if budget is None else budget
    deadline = time.monotonic() + 30
    while len(tables._ahead) < wanted and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # nothing more past the budget
    assert len(tables._ahead) == wanted
    assert tables._ahead_bytes <= disk_stats.PREREAD_BYTES
    for run in ("a", "b"):
        assert whole(r, eid, run) == expected[run]
    # What was read ahead went to the run's stats, not kept beside them.
    assert tables._ahead == {} and tables._ahead_bytes == 0
