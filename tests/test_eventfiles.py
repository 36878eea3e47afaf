"""eventfiles.py: listing, writing and reading event files, and the typed errors."""

import os

import numpy as np
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


def test_writers_in_one_directory_in_one_second_keep_their_own_files(tmp_path):
    """Ours and TensorBoard's (a Trainer's SummaryWriter beside `watch`) in
    the same second: numbered in one sequence, none opened over another."""
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    theirs = EventFileWriter(str(tmp_path))
    ours = [eventfiles.EventFile(str(tmp_path)) for _ in range(2)]
    for step, writer in enumerate([theirs] + ours):
        value = summary_pb2.Summary.Value(tag="w%d" % step, simple_value=1.0)
        writer.add_event(event_pb2.Event(step=step, summary=summary_pb2.Summary(value=[value])))
        writer.close()
    assert len(eventfiles.event_files(tmp_path)) == 3
    tags = sorted(e.summary.value[0].tag for e in eventfiles.read_events(tmp_path) if e.summary.value)
    assert tags == ["w0", "w1", "w2"]


def test_event_pieces_are_the_event_serialized(tmp_path):
    """A frame's blob spliced in as pieces reads back as the proto holding it."""
    from tensorboard_nnviz.core import format as fmt

    blob = fmt.frame_pieces(np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5)
    content = fmt.frame_content(shape=(2, 3), dtype="float32", layout={}, rows=2, cols=3)
    event = event_pb2.Event(step=4, wall_time=12.5)
    fmt.stats_value("d/kernel", dict.fromkeys(fmt.STAT_FIELDS, 1.0), out=event.summary.value.add())
    frame = fmt.frame_value("d/kernel", None, content)
    want = event_pb2.Event()
    want.CopyFrom(event)
    fmt.frame_value("d/kernel", b"".join(blob), content, out=want.summary.value.add())
    got = event_pb2.Event.FromString(b"".join(eventfiles.event_pieces(event, [(frame, blob)])))
    assert got == want
    np.testing.assert_array_equal(
        fmt.decode_frame(got.summary.value[1].tensor.string_val[0]),
        np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5)


@pytest.mark.parametrize("columns", [3, 40, 5000])  # lengths of one, two and three bytes
def test_value_templates_hold_each_snapshots_payload_as_the_proto_would(columns):
    """The writer's per-tag templates: a frame and a units value serialized
    once, each snapshot's payload spliced in, read back as the protos."""
    from tensorboard_nnviz.core import format as fmt

    frame = np.linspace(-1, 1, columns * 2, dtype=np.float32).reshape(2, columns)
    content = fmt.frame_content(shape=frame.shape, dtype="float32", layout={}, rows=2, cols=columns)
    units_content = fmt.units_content(unit_axes=[1], units=columns, block=1)
    norm, update = np.linspace(0, 2, columns), np.linspace(0, 1e-3, columns)
    head = eventfiles.event_head(7, 3.25)
    frame_template = eventfiles.ValueTemplate(fmt.frame_value("d/kernel", None, content),
                                              eventfiles.STRING_VAL)
    units_template = fmt.units_value("d/kernel", np.zeros(columns), None, units_content)
    units_template.tensor.ClearField("tensor_content")
    units_template = eventfiles.ValueTemplate(units_template, eventfiles.TENSOR_CONTENT)
    for template, payload, value in [
            (frame_template, fmt.frame_pieces(frame),
             fmt.frame_value("d/kernel", fmt.encode_frame(frame), content)),
            (units_template, [fmt.units_cells(norm, update).tobytes()],
             fmt.units_value("d/kernel", norm, update, units_content))]:
        want = event_pb2.Event(step=7, wall_time=3.25, summary=summary_pb2.Summary(value=[value]))
        got = event_pb2.Event.FromString(b"".join(
            eventfiles.value_event_pieces(head, template, payload)))
        assert got == want


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
