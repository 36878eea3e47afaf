"""The run index (serve/frame_index.py) on real event files written by the
real writer: what it finds, and what it does with damage, growth, a file
that shrank, long tags and files outside the logdir."""

import os
import time

import numpy as np
import pytest

from runs import SyntheticWriter, frame_record_ends, write_events, write_synthetic_run
from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.core import records
from tensorboard_nnviz.serve import frame_index


def _index(run_dir):
    path = os.path.realpath(run_dir)
    index = frame_index.RunIndex(path, os.path.dirname(path))
    index.refresh()
    return index


def _frames(index, tag):
    _, steps, locations = index.records(fmt.frame_tag(tag))
    return steps, [frame_index.read_frame(locations[i], fmt.frame_tag(tag)) for i in range(len(steps))]


def test_every_frame_and_units_record_is_found_and_read_back(tmp_path):
    written = write_synthetic_run(str(tmp_path / "run"), [0, 4, 9])
    index = _index(tmp_path / "run")
    for tag, frames in written.items():
        steps, read = _frames(index, tag)
        assert steps == [0, 4, 9]
        for step, frame in zip(steps, read):
            np.testing.assert_array_equal(frame, frames[step])
        _, steps, locations = index.records(fmt.units_tag(tag))
        assert steps == [0, 4, 9]
        value = frame_index.read_value(locations[0], fmt.units_tag(tag))
        assert fmt.units_array_of(value).shape == (2, 3)  # 3 units: the kernel's columns, the bias's entries
    assert index.records(fmt.stats_tag("dense/kernel")) is None  # earlier versions' stats stay TensorBoard's
    assert index.records(fmt.STATS_TABLE_TAG)[1] == [0, 4, 9]  # the tables are read from disk too
    # Memory: 24 bytes per record (step, file number, offset, length).
    assert index.nbytes() == 24 * index.record_count() == 24 * 15


def test_a_tag_longer_than_the_first_bytes_read(tmp_path):
    tag = "encoder/" + "block_" * 60 + "/kernel"  # ~370 characters
    written = write_synthetic_run(str(tmp_path / "run"), [0, 1], weights={tag: (3, 2)})
    steps, read = _frames(_index(tmp_path / "run"), tag)
    assert steps == [0, 1]
    np.testing.assert_array_equal(read[1], written[tag][1])


def test_growth_is_read_from_where_it_stopped(tmp_path):
    writer = SyntheticWriter(str(tmp_path / "run")).write([0, 1])
    index = _index(tmp_path / "run")
    scanned = index.bytes_scanned
    writer.write([2, 3])
    writer.close()
    index.refresh()
    assert _frames(index, "dense/kernel")[0] == [0, 1, 2, 3]
    (name,) = os.listdir(tmp_path / "run")
    assert index.bytes_scanned == os.path.getsize(tmp_path / "run" / name)  # nothing read twice
    assert scanned < index.bytes_scanned


def test_a_damaged_header_ends_the_file_and_a_damaged_record_fails_alone(tmp_path):
    write_synthetic_run(str(tmp_path / "run"), [0, 1, 2], weights={"d/kernel": (5, 5)})
    (name,) = os.listdir(tmp_path / "run")
    path = tmp_path / "run" / name
    data = bytearray(path.read_bytes())
    ends = frame_record_ends(bytes(data))
    # A bit flipped in step 1's frame data: indexed, and that read fails.
    data[ends[1] - 30] ^= 0x10
    # The length header of the record after step 1's frame: reading stops there.
    data[ends[1] + 2] ^= 0x01
    path.write_bytes(bytes(data))
    index = _index(tmp_path / "run")
    _, steps, locations = index.records(fmt.frame_tag("d/kernel"))
    assert steps == [0, 1]
    frame_index.read_frame(locations[0], fmt.frame_tag("d/kernel"))
    with pytest.raises(records.RecordError, match="checksum"):
        frame_index.read_frame(locations[1], fmt.frame_tag("d/kernel"))


def test_a_file_that_shrank_starts_the_index_over(tmp_path):
    write_synthetic_run(str(tmp_path / "run"), [0, 1, 2])
    index = _index(tmp_path / "run")
    version = index.version(fmt.frame_tag("dense/kernel"))
    (name,) = os.listdir(tmp_path / "run")
    path = tmp_path / "run" / name
    path.write_bytes(path.read_bytes()[:frame_record_ends(path.read_bytes())[1]])
    index.refresh()
    assert _frames(index, "dense/kernel")[0] == [0, 1]
    assert index.version(fmt.frame_tag("dense/kernel")) != version


def test_snapshots_of_earlier_versions_in_one_event_are_indexed_whole(tmp_path):
    """An earlier version's event holds a whole snapshot (the structure
    first, then every frame): every frame in it is found."""
    written = write_synthetic_run(str(tmp_path / "run"), [0, 1], legacy=True)
    index = _index(tmp_path / "run")
    for tag, frames in written.items():
        steps, read = _frames(index, tag)
        assert steps == [0, 1]
        np.testing.assert_array_equal(read[1], frames[1])


def test_other_events_are_skipped_unread(tmp_path):
    from tensorboard.plugins.scalar import summary_v2

    write_events(str(tmp_path / "run"), [(s, list(summary_v2.scalar_pb("loss", 1.0).value)) for s in range(5)])
    index = _index(tmp_path / "run")
    assert index.record_count() == 0 and index.records_scanned == 6  # 5 scalars, the file version


def test_run_directories_and_event_files_outside_the_logdir_are_refused(tmp_path):
    logdir, outside = tmp_path / "logs", tmp_path / "outside"
    write_synthetic_run(str(outside / "run"), [0])
    write_synthetic_run(str(logdir / "run"), [0])
    os.symlink(outside / "run", logdir / "linked")
    (name,) = os.listdir(outside / "run")
    os.symlink(outside / "run" / name, logdir / "run" / ("events.out.tfevents.9999999999.linked"))
    root = os.path.realpath(logdir)
    for run in ("..", "../outside/run", "/", str(outside / "run"), "linked", "run/../..", "run\0", ""):
        assert frame_index.run_directory(root, run) is None, run
    assert frame_index.run_directory(root, ".") == root
    index = frame_index.RunIndex(frame_index.run_directory(root, "run"), root)
    index.refresh()
    assert index.records(fmt.frame_tag("dense/kernel"))[1] == [0]
    assert all(os.path.dirname(p) == os.path.join(root, "run") for p in index._paths)
    assert len(index._paths) == 1  # the linked file is not read


def _all_records(index):
    return {tag: (steps, [locations[i] for i in range(len(steps))])
            for tag in index._tags for _, steps, locations in [index.records(tag)]}


@pytest.mark.parametrize("first, chunk, big", [(16, 64, 100), (300, 1000, 10 ** 9), (16 << 10, 4 << 20, 64 << 10)])
def test_chunked_reading_finds_the_same_records_whatever_the_chunk(tmp_path, monkeypatch, first, chunk, big):
    """Records cut by a chunk's end, big records skipped over (only their
    head read) and small ones walked within a chunk: the same records as
    one record at a time, every frame read back equal."""
    weights = {"big/kernel": (120, 90), "dense/kernel": (4, 3), "dense/bias": (3,)}
    written = write_synthetic_run(str(tmp_path / "run"), [0, 3, 4, 9], weights=weights)
    reference = _all_records(_index(tmp_path / "run"))
    monkeypatch.setattr(frame_index, "_FIRST_READ", first)
    monkeypatch.setattr(frame_index, "_CHUNK", chunk)
    monkeypatch.setattr(frame_index, "_BIG", big)
    index = _index(tmp_path / "run")
    assert _all_records(index) == reference
    (name,) = os.listdir(tmp_path / "run")
    assert index.bytes_scanned == os.path.getsize(tmp_path / "run" / name)
    for tag, frames in written.items():
        steps, read = _frames(index, tag)
        assert steps == [0, 3, 4, 9]
        for step, frame in zip(steps, read):
            np.testing.assert_array_equal(frame, frames[step])


@pytest.mark.parametrize("chunk", [64, 4 << 20])
def test_a_truncated_tail_is_skipped_until_it_is_whole(tmp_path, monkeypatch, chunk):
    """The file cut inside a record's header, its data and its footer: the
    records before it are indexed, then the rest once the file is whole."""
    monkeypatch.setattr(frame_index, "_FIRST_READ", chunk)
    monkeypatch.setattr(frame_index, "_CHUNK", chunk)
    write_synthetic_run(str(tmp_path / "whole"), [0, 1, 2], weights={"d/kernel": (6, 5)})
    (name,) = os.listdir(tmp_path / "whole")
    data = (tmp_path / "whole" / name).read_bytes()
    end = frame_record_ends(data)[2]  # step 2's frame record
    os.makedirs(tmp_path / "run")
    path = tmp_path / "run" / name
    for cut in (end - 3, end - 40, end - 200):
        path.write_bytes(data[:cut])
        index = _index(tmp_path / "run")
        assert index.records(fmt.frame_tag("d/kernel"))[1] == [0, 1], cut
        with open(path, "ab") as f:
            f.write(data[cut:])
        index.refresh()
        assert _frames(index, "d/kernel")[0] == [0, 1, 2]
        assert index.bytes_scanned == len(data)


def test_a_growing_run_is_read_while_its_index_builds_in_the_background(tmp_path, monkeypatch):
    """A request that does not wait gets the records indexed so far (a
    prefix of the steps, never a torn record) and has the rest built in
    the background; snapshots written meanwhile are found too."""
    monkeypatch.setattr(frame_index, "_FIRST_READ", 512)  # many chunks: the build takes a while
    monkeypatch.setattr(frame_index, "_CHUNK", 2048)
    monkeypatch.setattr(frame_index, "LISTING_WAIT_SECONDS", 0)
    writer = SyntheticWriter(str(tmp_path / "logs" / "run"), weights={"w/kernel": (6, 5)})
    try:
        writer.write(range(200))
        indexes = frame_index.RunIndexes(str(tmp_path / "logs"), recheck_seconds=0, clock=lambda: 0.0)
        seen = []
        while True:
            index = indexes.get("", "run", wait=False)
            found = index.records(fmt.frame_tag("w/kernel"))
            seen.append([] if found is None else found[1])
            if index.ready:
                break
            if len(seen) == 3:
                writer.write(range(200, 230))  # the run grows while it is indexed
        assert len(seen) > 1, "the first answer waited for the whole build"
        for steps in seen:
            assert steps == list(range(len(steps)))
        index = indexes.get("", "run")  # waits for what the file holds now
        steps, read = _frames(index, "w/kernel")
        assert steps == list(range(230))
        for step in (0, 199, 229):
            np.testing.assert_array_equal(read[step], writer.written["w/kernel"][step])
    finally:
        writer.close()


def test_the_logdir_is_indexed_in_the_background_from_the_start(tmp_path):
    write_synthetic_run(str(tmp_path / "logs" / "a"), [0, 1])
    write_synthetic_run(str(tmp_path / "logs" / "b" / "c"), [0, 5])
    indexes = frame_index.RunIndexes(str(tmp_path / "logs"), recheck_seconds=1, clock=lambda: 0.0)
    indexes.warm()
    deadline = time.monotonic() + 30
    while not all(i.ready for i in list(indexes._by_dir.values())) or len(indexes._by_dir) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    index = indexes.get("", "b/c", wait=False)  # ready: no waiting, nothing to build
    assert index.ready and index.records(fmt.frame_tag("dense/kernel"))[1] == [0, 5]
