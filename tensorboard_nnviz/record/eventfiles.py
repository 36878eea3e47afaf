"""Event-file I/O outside TensorBoard's data provider: listing, writing, reading.

The plugin never uses this module: it reads through TensorBoard's data
provider. These helpers serve the processes that write or copy event files
(the callback's writer, `compact`) and the CLI's look at a logdir before it
decides whether to import TensorFlow.

Nothing here imports TensorFlow at import time; `tensorboard` modules that
may reach it are imported inside the functions that need them.
"""

import logging
import os

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.record import fast_crc

logger = logging.getLogger(__name__)


def _is_url(path):
    return "://" in path


def is_event_file(name):
    """Whether a file name is an event file TensorBoard reads summaries from.

    The rule of TensorBoard's `io_wrapper.IsSummaryEventsFile`, which we
    cannot call from the CLI before it decides whether to import TensorFlow
    (that function does).
    """
    base = os.path.basename(name)
    return "tfevents" in base and not base.endswith(".profile-empty")


def event_files(run_dir):
    """The event files directly in `run_dir`, in TensorBoard's (name) order.

    Local directories are listed with `os`, URLs (gs://, s3://) with
    TensorBoard's `tf.io.gfile`.

    Raises:
      OSError (or the file system's own error for a URL): `run_dir` cannot
        be listed.
    """
    run_dir = os.fspath(run_dir)
    if _is_url(run_dir):
        from tensorboard.compat import tf

        names = tf.io.gfile.listdir(run_dir)
        join = lambda n: run_dir.rstrip("/") + "/" + n  # noqa: E731
    else:
        names = os.listdir(run_dir)
        join = lambda n: os.path.join(run_dir, n)  # noqa: E731
    return [join(n) for n in sorted(names) if is_event_file(n)]


def event_bytes(logdir, stop_at=None):
    """Bytes of the event files anywhere below the local `logdir`; stops
    counting once the total reaches `stop_at`."""
    total = 0
    for root, _, names in os.walk(logdir):
        for name in names:
            if is_event_file(name):
                total += os.path.getsize(os.path.join(root, name))
                if stop_at is not None and total >= stop_at:
                    return total
    return total


def new_writer(log_dir, max_queue_size=4):
    """TensorBoard's `EventFileWriter` on a new event file in `log_dir`,
    checksumming in C (`fast_crc`) when google-crc32c is installed."""
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    fast_crc.install()
    # flush_secs is moot: our writers flush after every snapshot or at close.
    return EventFileWriter(os.fspath(log_dir), max_queue_size=max_queue_size, flush_secs=120)


def read_file_events(path):
    """The events of one event file, as `event_pb2.Event`, in order.

    TensorBoard's raw loader: nothing is migrated or altered. A truncated
    last record ends the file, as it does for TensorBoard.
    """
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.compat.proto import event_pb2

    for raw in event_file_loader.RawEventFileLoader(path).Load():
        yield event_pb2.Event.FromString(raw)


def read_events(run_dir):
    """Every event of the run in `run_dir` (its files in order, see
    `read_file_events`)."""
    for path in event_files(run_dir):
        yield from read_file_events(path)


def read_last_step(log_dir):
    """The largest step of nnviz stats already in `log_dir`'s event files, or None.

    A missing or unreadable `log_dir` has none. A damaged file ends its own
    reading (with a warning), not the caller.
    """
    try:
        paths = event_files(log_dir)
    except Exception:  # missing, or a file system that cannot list it
        return None
    last = None
    for path in paths:
        try:
            for event in read_file_events(path):
                if last is not None and event.step <= last:
                    continue
                if any(v.tag.startswith(fmt.STATS_PREFIX) or v.tag == fmt.STATS_TABLE_TAG
                       for v in event.summary.value):
                    last = event.step
        except Exception as e:
            logger.warning("nnviz: stopped reading %s: %s", path, e)
    return last
