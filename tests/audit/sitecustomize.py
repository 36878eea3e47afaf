"""Loaded by Python at start-up when this folder is on PYTHONPATH (tests
that must see which files the plugin opens: test_long_runs_e2e.py).

With NNVIZ_OPEN_LOG set, every file or directory that code of
tensorboard_nnviz/serve opens or lists is appended to that file, one path
a line, except what the import system reads (paths under sys.path).
"""

import os
import sys

_LOG = os.environ.get("NNVIZ_OPEN_LOG")
_SERVE = os.sep + os.path.join("tensorboard_nnviz", "serve") + os.sep
_EVENTS = ("open", "os.listdir", "os.scandir")


def _from_serve():
    frame = sys._getframe(0)
    while frame is not None:
        if _SERVE in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def _imported(path):
    return any(p and path.startswith(os.path.abspath(p) + os.sep) for p in sys.path)


if _LOG:
    _fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # os.write is not audited

    def _hook(event, args):
        if event not in _EVENTS or not args or isinstance(args[0], int) or args[0] is None:
            return
        try:  # a hook that raises would fail the open it watches
            if not _from_serve():
                return
            path = os.path.abspath(os.fsdecode(args[0]))
            if not _imported(path):
                os.write(_fd, (event + "\t" + path + "\n").encode("utf-8", "surrogateescape"))
        except Exception as e:
            os.write(_fd, ("error\t%r\n" % e).encode("utf-8", "replace"))

    sys.addaudithook(_hook)
