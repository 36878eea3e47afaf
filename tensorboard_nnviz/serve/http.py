"""The one place where nnviz answers become HTTP responses.

- JSON is written by us, with orjson: NaN and ±Inf become null
  (TensorBoard's helper would write the string "NaN"), and a whole run's
  stats (millions of floats) take tens of milliseconds, not the stdlib's
  half second. Large answers are gzipped here by ISA-L (isal) at its
  level 1: a third of zlib's time at level 1, in fewer bytes
  (TensorBoard would use zlib at level 3; benchmarks/gzip_answer.py).
- Every error a route can meet becomes JSON `{"error": message}` with its
  status: a `tensorboard.errors.PublicError`, ours (errors.py) or one
  TensorBoard's data provider raised (TensorBoard itself would answer it as
  text/plain). Other exceptions are bugs and are not hidden.
- Query parameters are parsed here, strictly, into 400s.
"""

import functools
import re

import orjson

try:
    from isal import igzip as _gzip
except ImportError:  # a platform without its wheel: the stdlib's zlib, slower
    import gzip as _gzip

from tensorboard import errors as tb_errors
from tensorboard.backend import http_util
from werkzeug import wrappers

from tensorboard_nnviz.serve import errors

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"

_INT = re.compile(r"-?[0-9]{1,19}\Z")
_INT64 = (-(2**63), 2**63 - 1)


# Below this many bytes TensorBoard's own gzip costs nothing worth saving.
_GZIP_HERE = 1 << 16


def _dumps(value):
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def json_response(request, value, code=200):
    body = _dumps(value)
    if len(body) < _GZIP_HERE:
        return http_util.Respond(request, body, JSON, code=code)
    # TensorBoard unzips it again for a client that does not accept gzip.
    body = _gzip.compress(body, compresslevel=1, mtime=0)
    return http_util.Respond(request, body, JSON, code=code, content_encoding="gzip")


def error_response(request, message, code):
    return json_response(request, {"error": str(message)}, code=code)


def _float32_response(request, cells, extra_headers):
    """Little-endian float32 cells, row-major, with their rows and cols."""
    rows, cols = cells.shape
    body = cells.astype("<f4", copy=False).tobytes(order="C")
    headers = [("X-NNViz-Rows", str(rows)), ("X-NNViz-Cols", str(cols))] + extra_headers
    return http_util.Respond(request, body, OCTET_STREAM, headers=headers)


def frame_response(request, frame, step):
    """A frame's cells and the step it was recorded at."""
    return _float32_response(request, frame, [("X-NNViz-Step", str(step))])


def units_response(request, cells, block):
    """Per-unit stats: one row per step, one column per `block` consecutive
    units."""
    return _float32_response(request, cells, [("X-NNViz-Unit-Block", str(block))])


def static_response(request, contents, content_type):
    return http_util.Respond(request, contents, content_type)


def route(handler):
    """Makes `handler(self, request)` a WSGI app whose errors are JSON."""

    @wrappers.Request.application
    @functools.wraps(handler)
    def app(self, request):
        try:
            return handler(self, request)
        except tb_errors.PublicError as e:
            return error_response(request, e, e.http_code)

    return app


# --- query parameters -----------------------------------------------------------


def string_param(request, name, required=True):
    values = request.args.getlist(name)
    if len(values) > 1:
        raise errors.BadRequestError("parameter %r given %d times" % (name, len(values)))
    if not values or values[0] == "":
        if required:
            raise errors.BadRequestError("missing parameter %r" % name)
        return None
    return values[0]


def int_param(request, name, required=True):
    text = string_param(request, name, required)
    if text is None:
        return None
    if not _INT.match(text) or not _INT64[0] <= int(text) <= _INT64[1]:
        raise errors.BadRequestError(
            "parameter %r must be a 64-bit integer, got %r" % (name, text[:100])
        )
    return int(text)


_FIELD = re.compile(r"[A-Za-z0-9_]{1,100}\Z")


def fields_param(request, name="fields"):
    """A comma-separated list of stat names (`fields=l2,update_ratio`), in
    order, each once; None when the parameter is absent."""
    text = string_param(request, name, required=False)
    if text is None:
        if request.args.getlist(name):  # given, but empty
            raise errors.BadRequestError("parameter %r names no field" % name)
        return None
    names = text.split(",")
    bad = [n for n in names if not _FIELD.match(n)]
    if bad:
        raise errors.BadRequestError(
            "parameter %r must be comma-separated stat names (letters, digits, _), got %r"
            % (name, text[:100]))
    return list(dict.fromkeys(names))
