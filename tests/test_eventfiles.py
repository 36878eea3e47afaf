"""eventfiles.py: listing, writing and reading event files, and the typed errors."""

import os

import pytest
from tensorboard import errors as tb_errors
from tensorboard.compat.proto import event_pb2, summary_pb2

from runs import write_synthetic_run
from tensorboard_nnviz.record import eventfiles
from tensorboard_nnviz.serve import errors


def test_event_files_are_listed_in_name_order_without_profile_dummies(tmp_path):
    for name in ("events.out.tfevents.2.b", "events.out.tfevents.1.a", "notes.txt",
                 "events.out.tfevents.3.c.profile-empty"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "events.out.tfevents.9.z").write_bytes(b"x" * 10)
    assert [os.path.basename(p) for p in eventfiles.event_files(tmp_path)] == [
        "events.out.tfevents.1.a", "events.out.tfevents.2.b"]
    assert eventfiles.event_bytes(tmp_path) == 10  # below it too
    with pytest.raises(OSError):
        eventfiles.event_files(tmp_path / "missing")


def test_a_new_writer_writes_what_read_events_reads_back(tmp_path):
    writer = eventfiles.new_writer(tmp_path)
    for step in (3, 7):
        value = summary_pb2.Summary.Value(tag="loss", simple_value=float(step))
        writer.add_event(event_pb2.Event(step=step, summary=summary_pb2.Summary(value=[value])))
    writer.close()
    events = list(eventfiles.read_events(tmp_path))
    assert events[0].HasField("file_version")
    assert [(e.step, e.summary.value[0].simple_value) for e in events[1:]] == [(3, 3.0), (7, 7.0)]


def test_read_last_step_finds_the_last_nnviz_snapshot(tmp_path):
    write_synthetic_run(str(tmp_path), [0, 4, 9])
    assert eventfiles.read_last_step(str(tmp_path)) == 9


def test_read_last_step_of_an_empty_or_missing_log_dir(tmp_path):
    assert eventfiles.read_last_step(str(tmp_path)) is None
    assert eventfiles.read_last_step(str(tmp_path / "missing")) is None


def test_errors_are_tensorboards_public_errors_with_our_messages():
    assert issubclass(errors.NotFoundError, tb_errors.NotFoundError)
    assert issubclass(errors.BadRequestError, tb_errors.InvalidArgumentError)
    for cls, code in ((errors.BadRequestError, 400), (errors.NotFoundError, 404),
                      (errors.DataError, 422)):
        e = cls("unknown run 'x'")
        assert isinstance(e, tb_errors.PublicError) and e.http_code == code
        assert str(e) == e.message == "unknown run 'x'"  # no "Not found: " prefix
