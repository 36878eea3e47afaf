"""The one place where nnviz answers become HTTP responses.

- JSON is written by us, with NaN and ±Inf as null (TensorBoard's helper
  would write the string "NaN").
- Every error a route can meet becomes JSON `{"error": message}` with its
  status: a `tensorboard.errors.PublicError`, ours (errors.py) or one
  TensorBoard's data provider raised (TensorBoard itself would answer it as
  text/plain). Other exceptions are bugs and are not hidden.
- Query parameters are parsed here, strictly, into 400s.
"""

import functools
import json
import math
import re

from tensorboard import errors as tb_errors
from tensorboard.backend import http_util
from werkzeug import wrappers

from tensorboard_nnviz.serve import errors

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"

_INT = re.compile(r"-?[0-9]{1,19}\Z")
_INT64 = (-(2**63), 2**63 - 1)


def _finite(value):
    """`value` with non-finite floats replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _dumps(value):
    try:  # the common case: the reader already wrote null for non-finite
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False, separators=(",", ":"))


def json_response(request, value, code=200):
    body = _dumps(value)
    return http_util.Respond(request, body.encode("utf-8"), JSON, code=code)


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
