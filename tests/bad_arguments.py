"""Bad arguments every recorder refuses when it is made, naming the API the
user called (the recorder skeleton, record/recorder.py): one table for the
Keras callback, `watch`, and the Lightning and Hugging Face callbacks."""

import re

import pytest

BAD = [
    ("snapshot_freq", "step"),
    ("snapshot_freq", 0),
    ("snapshot_freq", 2.5),
    ("snapshot_freq", True),
    ("max_cells", 0),
    ("max_cells", -3),
    ("max_cells", 2.5),
    ("max_cells", "many"),
    ("include", "("),
    ("exclude", "[a"),
    ("spectral", "everything"),
    ("quantities", "gradient"),
    ("quantities", ("grad", "adam_v")),
    ("quantities", 3),
    ("quantity_frames", ("weights",)),
]


def assert_refused_when_made(make, api, tmp_path):
    """`make(log_dir, **kwargs)` raises each bad argument's ValueError, and
    an OSError for an unwritable log_dir, each message starting with `api`.

    Made outside training, so an error raised only once training runs (as
    Lightning's `max_cells` did) fails here.
    """
    for name, value in BAD:
        with pytest.raises(ValueError) as caught:
            make(str(tmp_path / "run"), **{name: value})
        message = str(caught.value)
        assert message.startswith(api + ": ") and name in message, (name, value, message)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match="^" + re.escape(api) + " cannot write to log_dir"):
        make(str(blocker / "run"))
    assert not (tmp_path / "run").exists(), "nothing is written for a refused recorder"
