"""The errors a request can meet, each with its HTTP status.

They are `tensorboard.errors.PublicError`s (messages safe to show), so
`http.py` answers ours and those TensorBoard's data provider raises the
same way. Where TensorBoard has the class, ours derives from it
(`BadRequestError` is an `InvalidArgumentError`, `NotFoundError` TensorBoard's
`NotFoundError`), so code catching TensorBoard's catches ours too. The
message is kept as given (TensorBoard's classes would prefix "Not found: ").

This module imports neither Keras nor TensorFlow.
"""

from tensorboard import errors as tb_errors


class NNVizError(tb_errors.PublicError):
    """An error with a message safe to show to the user and an HTTP status."""

    http_code = 500

    def __init__(self, message):
        tb_errors.PublicError.__init__(self, message)  # no TensorBoard prefix
        self.message = message


class BadRequestError(NNVizError, tb_errors.InvalidArgumentError):
    """A malformed request parameter (400)."""

    http_code = 400


class NotFoundError(NNVizError, tb_errors.NotFoundError):
    """An unknown run, tag, step or file (404)."""

    http_code = 404


class DataError(NNVizError):
    """Data on disk that cannot be served: damaged, or written by a newer
    tensorboard_nnviz (422). Only the affected item fails."""

    http_code = 422
