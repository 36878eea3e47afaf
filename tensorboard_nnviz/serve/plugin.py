"""The nnviz TensorBoard plugin: HTTP routes over `reader.NNVizReader`.

TensorBoard finds `NNVizLoader` through the `tensorboard_plugins` entry
point. Every route is a thin adapter: parse the query (http.py), call the
reader's `*_impl` with the request's context and experiment id, respond
(http.py). The panel's static files are served from `frontend/`.

This module imports neither Keras nor TensorFlow.
"""

import os

from tensorboard import plugin_util
from tensorboard.plugins import base_plugin
from werkzeug import security

from tensorboard_nnviz.core import format as fmt
from tensorboard_nnviz.serve import errors
from tensorboard_nnviz.serve import http
from tensorboard_nnviz.serve import reader

# The kinds of file the panel ships, with explicit types: the platform's
# mimetypes table may map .js to something a browser refuses for a module
# script. Any other file is not served.
_CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
}


def frontend_dir():
    """The panel's folder: in the wheel `<package>/frontend`, in a source
    checkout `<repo>/frontend`."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    packaged = os.path.join(package, "frontend")
    if os.path.isdir(packaged):
        return packaged
    return os.path.join(os.path.dirname(package), "frontend")


class NNVizPlugin(base_plugin.TBPlugin):
    """Serves weight frames, stats, per-unit stats, findings and model structure
    for the nnviz panel."""

    plugin_name = fmt.PLUGIN_NAME

    def __init__(self, context):
        self._reader = reader.NNVizReader(
            context.data_provider, logdir=direct_logdir(context),
            samples_per_plugin=getattr(context.flags, "samples_per_plugin", None))
        self._static_dir = frontend_dir()

    def get_plugin_apps(self):
        return {
            "/runs": self.runs_route,
            "/structure": self.structure_route,
            "/tags": self.tags_route,
            "/stats": self.stats_route,
            "/frame": self.frame_route,
            "/units": self.units_route,
            "/findings": self.findings_route,
            "/*": self.static_route,
        }

    def data_plugin_names(self):
        return tuple(fmt.SAMPLES_PER_PLUGIN)

    def is_active(self):
        # TensorBoard decides activity from `data_plugin_names` through the
        # data provider's list_plugins; nothing to compute here.
        return False

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path="/index.js")

    # --- routes ----------------------------------------------------------------

    @http.route
    def runs_route(self, request):
        ctx, eid = _context(request)
        return http.json_response(request, self._reader.runs_impl(ctx, eid))

    @http.route
    def structure_route(self, request):
        ctx, eid = _context(request)
        run = http.string_param(request, "run")
        return http.json_response(request, self._reader.structure_impl(ctx, eid, run))

    @http.route
    def tags_route(self, request):
        ctx, eid = _context(request)
        run = http.string_param(request, "run")
        return http.json_response(request, self._reader.tags_impl(ctx, eid, run))

    @http.route
    def stats_route(self, request):
        ctx, eid = _context(request)
        run = http.string_param(request, "run")
        tag = http.string_param(request, "tag", required=False)
        fields = http.fields_param(request)
        quantity = _quantity(request)
        answer = self._reader.stats_impl(ctx, eid, run, tag, fields, arrays=True,
                                         quantity=quantity)
        return http.json_response(request, answer)

    @http.route
    def frame_route(self, request):
        ctx, eid = _context(request)
        run = http.string_param(request, "run")
        tag = http.string_param(request, "tag")
        step = http.int_param(request, "step", required=False)
        frame, served = self._reader.frame_impl(ctx, eid, run, tag, step, _quantity(request))
        return http.frame_response(request, frame, served)

    @http.route
    def units_route(self, request):
        ctx, eid = _context(request)
        run = http.string_param(request, "run")
        tag = http.string_param(request, "tag")
        stat = http.string_param(request, "stat")
        cells, block, _ = self._reader.units_impl(ctx, eid, run, tag, stat, _quantity(request))
        return http.units_response(request, cells, block)

    @http.route
    def findings_route(self, request):
        ctx, eid = _context(request)
        run = http.string_param(request, "run")
        return http.json_response(request, self._reader.findings_impl(ctx, eid, run))

    @http.route
    def static_route(self, request):
        path = _static_path(request.path)
        content_type = _CONTENT_TYPES.get(os.path.splitext(path)[1].lower())
        full = security.safe_join(self._static_dir, path) if path else None
        if content_type is None or full is None or not os.path.isfile(full):
            raise errors.NotFoundError("no such file: %r" % path[:200])
        with open(full, "rb") as f:
            contents = f.read()
        return http.static_response(request, contents, content_type)


def direct_logdir(context):
    """The real path of the local logdir whose event files the plugin reads
    frames from itself, or None where it does not: `--logdir_spec`, a gRPC
    data provider (`--grpc_data_provider`), a logdir that is a URL (gs://,
    s3://, ...: each positioned read a network round trip) or is not a
    directory (docs/architecture.md, "Frames from disk")."""
    flags = context.flags
    if flags is not None and (getattr(flags, "logdir_spec", "")
                              or getattr(flags, "grpc_data_provider", "")):
        return None
    logdir = context.logdir or getattr(flags, "logdir", "")
    if not logdir or "://" in logdir:
        return None
    path = os.path.realpath(os.path.expanduser(logdir))
    return path if os.path.isdir(path) else None


def _quantity(request):
    """The `quantity` parameter (default the weights); the reader checks it."""
    return http.string_param(request, "quantity", required=False) or fmt.WEIGHTS


def _context(request):
    return plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)


_ROUTE_PREFIX = "/data/plugin/%s/" % fmt.PLUGIN_NAME


def _static_path(request_path):
    """The file path below the static folder named by `request_path`, or ""
    when it is not a plain relative path (backslashes, NUL, absolute paths
    and `..` however encoded: the WSGI server has already decoded %XX)."""
    if not request_path.startswith(_ROUTE_PREFIX):
        return ""
    path = request_path[len(_ROUTE_PREFIX) :]
    if not path or "\\" in path or "\0" in path or path.startswith("/"):
        return ""
    if any(part in ("", ".", "..") for part in path.split("/")):
        return ""
    return path


class NNVizLoader(base_plugin.TBLoader):
    """Loads `NNVizPlugin`; tells TensorBoard how many nnviz samples to keep."""

    def fix_flags(self, flags):
        # TensorBoard keeps 10 samples per tag of an unknown plugin (RustBoard:
        # 10 per blob sequence). Stats and structure (`nnviz`) are small and
        # a timeline needs all of them; of the frames and per-unit stats
        # (`nnviz_frames`, `nnviz_units`) it keeps the latest, the plugin
        # reads the rest from disk (format.SAMPLES_PER_PLUGIN). A user's own
        # setting wins.
        # After argparse, `samples_per_plugin` is a dict ("" parses to {}).
        samples = getattr(flags, "samples_per_plugin", None)
        if samples is None:
            samples = flags.samples_per_plugin = {}
        if isinstance(samples, dict):
            for plugin_name, kept in fmt.SAMPLES_PER_PLUGIN.items():
                samples.setdefault(plugin_name, kept)

    def load(self, context):
        return NNVizPlugin(context)
