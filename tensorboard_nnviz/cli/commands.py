"""The `nnviz` command: demo, serve, export, inspect.

    nnviz demo [--logdir DIR] [--port N] [--no-serve] [--quick]
    nnviz serve LOGDIR [--port N]
    nnviz export LOGDIR --run RUN [--tag TAG] [--quantity Q] [--step STEP] -o OUT.png
    nnviz export LOGDIR --run RUN [--tag TAG] [--quantity Q] [--steps A:B] [--every K] -o OUT.gif
    nnviz inspect LOGDIR [--run RUN] [--quantity Q]
    nnviz findings LOGDIR [--run RUN] [--json] [--fail-on error|warning]

Logdirs are read through `reader.py` on TensorBoard's own data provider,
the same code that serves the panel. A name that does not exist (logdir,
run, tensor, step) ends the command with one line naming what was asked and
what exists, and exit code 2; so does a quantity (`--quantity grad`) that is
not one of the names, or that the run did not record. `findings --fail-on` exits 1 when a finding
of that severity or worse exists, so a pipeline can gate on it.
"""

import argparse
import collections
import os
import subprocess
import sys
import time

EXIT_USAGE = 2  # unknown logdir, run, tag or step; bad option
EXIT_DATA = 1  # data that cannot be read (damaged, newer format)
EXIT_FINDINGS = 1  # `findings --fail-on`: a finding that severe or worse exists

DEFAULT_DEMO_LOGDIR = "demo_logs"
# Stats shown by `inspect` (latest snapshot), with their column titles.
INSPECT_STATS = (
    ("mean", "mean"),
    ("std", "std"),
    ("absmax", "absmax"),
    ("nan", "nan"),
    ("inf", "inf"),
    ("zero_frac", "zero"),
    ("update_ratio", "upd/|W|"),
)
# Spectral stats shown by `inspect`: the last value computed (the budget of
# spectral="auto" leaves some snapshots null; a non-matrix has none: "-").
INSPECT_SPECTRAL = (
    ("sv_max", "sv_max"),
    ("stable_rank", "srank"),
    ("alpha", "alpha"),
    ("alpha_weighted", "alpha_w"),
)


class UsageError(Exception):
    """What the user asked for does not exist; the message says what does."""


# --- helpers -----------------------------------------------------------------


def _names(items, limit=8):
    items = list(items)
    if not items:
        return "none"
    shown = ", ".join(str(i) for i in items[:limit])
    if len(items) > limit:
        shown += ", … (%d in all)" % len(items)
    return shown


def _did_you_mean(asked, names):
    import difflib

    close = difflib.get_close_matches(asked, names, n=1)
    return "; did you mean %r?" % close[0] if close else ""


def _steps_text(steps):
    if len(steps) <= 8:
        return "%d snapshots: %s" % (len(steps), ", ".join(map(str, steps)))
    return "%d snapshots: %s … %s" % (
        len(steps), ", ".join(map(str, steps[:4])), ", ".join(map(str, steps[-2:])))


def _num(v):
    """3 significant digits, like TensorBoard; counts as integers."""
    if v is None:
        return "-"
    if float(v).is_integer() and abs(v) < 1e6:
        return "%d" % v
    return "%.3g" % v


def check_quantity(quantity):
    """Raises UsageError for a name that is not a quantity."""
    from tensorboard_nnviz.core import format as fmt

    names = (fmt.WEIGHTS,) + fmt.QUANTITIES
    if quantity not in names:
        raise UsageError("unknown quantity %r%s (quantities: %s)" % (
            quantity, _did_you_mean(quantity, names), ", ".join(names)))


def _quantities(tensor):
    """The quantities a `/tags` entry lists (a run without them: the weights)."""
    return tensor.get("quantities") or ["weights"]


def _recorded(tensors):
    """The quantities some of `tensors` recorded, in the format's order."""
    from tensorboard_nnviz.core import format as fmt

    found = set(q for t in tensors for q in _quantities(t))
    return [q for q in (fmt.WEIGHTS,) + fmt.QUANTITIES if q in found]


def _rms(columns):
    """RMS of the entries at the last snapshot: sqrt(mean^2 + std^2) (std
    is the population std), or None."""
    mean, std = columns.get("mean", [None])[-1], columns.get("std", [None])[-1]
    return None if mean is None or std is None else (mean * mean + std * std) ** 0.5


def _check_logdir(logdir):
    """Raises UsageError for a local logdir that does not exist."""
    if "://" not in logdir and not os.path.isdir(logdir):
        raise UsageError("logdir %r does not exist" % logdir)


# Below this much event data, TensorBoard's TensorFlow-free reader (its TF
# stub) is faster than importing TensorFlow (seconds) even with its slow
# pure-Python CRC (README, "Checksums run in C"); with the C CRC it always is.
_SMALL_LOGDIR_BYTES = 4 << 20


def _skip_tensorflow(logdir):
    """Lets TensorBoard read a local logdir without importing TensorFlow,
    through its `tensorboard.compat.notf` switch (the stub it uses where
    TensorFlow is not installed), when that is faster. Only for a
    command-line process: the switch holds for the rest of the process."""
    if "tensorflow" in sys.modules or "://" in logdir or not os.path.isdir(logdir):
        return
    from tensorboard_nnviz.record import eventfiles
    from tensorboard_nnviz.record import fast_crc

    if not fast_crc.install():
        if eventfiles.event_bytes(logdir, stop_at=_SMALL_LOGDIR_BYTES) >= _SMALL_LOGDIR_BYTES:
            return
    import types

    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))


class Logdir:
    """A logdir loaded once through reader.py, with name checks."""

    def __init__(self, logdir):
        _check_logdir(logdir)
        from tensorboard import context as tb_context

        from tensorboard_nnviz.cli import local_provider

        self.path = logdir
        self._warned = set()
        self.ctx = tb_context.RequestContext()
        self.reader, self.provider, self.eid = local_provider.local_reader(logdir)
        self.runs = {r["run"]: r for r in self.reader.runs_impl(self.ctx, self.eid)["runs"]}
        if not self.runs:
            others = [r.run_name for r in self.provider.list_runs(self.ctx, experiment_id=self.eid)]
            raise UsageError(
                "logdir %r has no nnviz data (runs there: %s); train with "
                "NNVizCallback(log_dir) to write some" % (logdir, _names(others))
            )

    def check_run(self, run):
        if run not in self.runs:
            raise UsageError("run %r not found in %s%s (runs: %s)" % (
                run, self.path, _did_you_mean(run, list(self.runs)), _names(self.runs)))

    def tensors(self, run, tag=None):
        """The `/tags` entries of `run` that can be read (and only `tag` if given)."""
        self.check_run(run)
        from tensorboard_nnviz.serve import errors

        tensors = self.reader.tags_impl(self.ctx, self.eid, run)["tensors"]
        if tag is not None:
            chosen = [t for t in tensors if t["tag"] == tag]
            if not chosen:
                raise UsageError("run %r has no tensor %r%s (tensors: %s)" % (
                    run, tag, _did_you_mean(tag, [t["tag"] for t in tensors]),
                    _names(t["tag"] for t in tensors)))
            if "error" in chosen[0]:
                raise errors.DataError("tensor %r of run %r: %s" % (tag, run, chosen[0]["error"]))
            return chosen
        for t in tensors:
            if "error" in t:
                print("nnviz: left out %s: %s" % (t["tag"], t["error"]), file=sys.stderr)
        return self._model_order(run, [t for t in tensors if "error" not in t])

    def _model_order(self, run, tensors):
        """Tensors in the model's layer order (from its structure), else by tag."""
        from tensorboard import errors as tb_errors

        try:
            layers = self.reader.structure_impl(self.ctx, self.eid, run).get("layers") or []
        except tb_errors.PublicError:
            return tensors
        rank = {}
        for layer in layers:
            for w in layer.get("weights") or []:
                rank.setdefault(w.get("tag"), len(rank))
        return sorted(tensors, key=lambda t: rank.get(t["tag"], len(rank)))

    def with_quantity(self, run, tensors, quantity, tag=None):
        """The tensors of `tensors` that recorded `quantity` (all of them for
        the weights); UsageError when none did (or `tag` did not)."""
        if quantity == "weights":
            return tensors
        chosen = [t for t in tensors if quantity in _quantities(t)]
        if not chosen:
            recorded = _recorded(tensors)
            what = "tensor %r of run %r" % (tag, run) if tag else "run %r" % run
            raise UsageError("%s has no %s recorded (recorded: %s); record it with "
                             "quantities=(...) on the recorder" % (what, quantity, ", ".join(recorded)))
        return chosen

    def frames(self, run, tensors, step, quantity="weights"):
        """{tag: frame (of `quantity`) at the largest snapshot <= step, or
        None if there is none or it cannot be read (said once per tensor on
        stderr)}."""
        from tensorboard_nnviz.serve import errors

        out = {}
        for t in tensors:
            try:
                out[t["tag"]], _ = self.reader.frame_impl(self.ctx, self.eid, run, t["tag"], step,
                                                          quantity=quantity)
            except errors.NotFoundError:
                out[t["tag"]] = None
            except errors.DataError as e:
                out[t["tag"]] = None
                if t["tag"] not in self._warned:
                    self._warned.add(t["tag"])
                    print("nnviz: left out: %s" % e.message, file=sys.stderr)
        return out


# --- subcommands -----------------------------------------------------------------


def cmd_inspect(args):
    from tensorboard_nnviz.cli import render

    quantity = args.quantity
    check_quantity(quantity)
    logdir = Logdir(args.logdir)
    runs = [args.run] if args.run else sorted(logdir.runs)
    for run in runs:
        logdir.check_run(run)
    every = {run: logdir.tensors(run) for run in runs}
    chosen = {}
    for run in runs:
        try:
            chosen[run] = logdir.with_quantity(run, every[run], quantity)
        except UsageError:
            if len(runs) == 1:
                raise
    if not chosen:
        raise UsageError("no run in %s has %s recorded (runs: %s)" % (logdir.path, quantity, _names(runs)))
    for n, run in enumerate(runs):
        if n:
            print()
        if run not in chosen:
            print("run %s: no %s recorded (recorded: %s)" % (run, quantity, ", ".join(_recorded(every[run]))))
            continue
        tensors = chosen[run]
        stats = logdir.reader.stats_impl(logdir.ctx, logdir.eid, run, quantity=quantity)
        steps = logdir.runs[run]["steps"]
        of = "" if quantity == "weights" else ", quantity %s" % quantity
        left = len(every[run]) - len(tensors)
        without = "" if not left else " (%d more without %s)" % (left, quantity)
        print("run %s: %d tensors%s%s, %s" % (run, len(tensors), without, of, _steps_text(steps)))
        # A gradient's size across layers reads best as its RMS.
        rms = [] if quantity == "weights" else ["rms"]
        header = (["tensor", "shape", "frame", "steps", "last"] + rms + [h for _, h in INSPECT_STATS]
                  + [h for _, h in INSPECT_SPECTRAL] + ["NaN/Inf since"])
        rows = []
        for t in tensors:
            frame = "%d×%d" % (t["rows"], t["cols"])
            if t.get("downsampled"):  # block means of br x bc cells
                frame += "÷%d×%d" % tuple(t["layout"]["block"][:2])
            if quantity not in (t.get("frame_quantities") or ["weights"]):
                frame = "none"  # the quantity's stats recorded without its frames
            row = [t["tag"], render.shape_text(t["shape"]), frame, str(len(t["steps"])),
                   str(t["steps"][-1]) if t["steps"] else "-"]
            columns = stats.get(t["tag"]) or {}
            if columns.get("steps") and "error" not in columns:
                row += [_num(_rms(columns))] if rms else []
                row += [_num(columns.get(k, [None])[-1]) for k, _ in INSPECT_STATS]
                row += [_num(_last_value(columns.get(k))) for k, _ in INSPECT_SPECTRAL]
                row.append(_first_non_finite(columns))
            else:
                row += ["-"] * (len(rms) + len(INSPECT_STATS) + len(INSPECT_SPECTRAL) + 1)
            rows.append(row)
        _print_table(header, rows)
        print()
        _print_findings(logdir.reader.findings_impl(logdir.ctx, logdir.eid, run),
                        title="findings of run %s" % run)
    return 0


def _print_findings(answer, indent="", title="findings"):
    """The findings of one run, one line each (most severe first)."""
    found = answer["findings"]
    if not found:
        print(indent + "%s: none" % title)
    else:
        counts = ", ".join("%d %s%s" % (n, sev, "" if n == 1 else "s") for sev, n in
                           ((sev, sum(f["severity"] == sev for f in found)) for sev in
                            ("error", "warning", "info")) if n)
        print(indent + "%s: %s" % (title, counts))
        width = max(len(f["kind"]) for f in found)
        for f in found:
            print(indent + "  %-7s  %-*s  %s" % (f["severity"], width, f["kind"], f["message"]))
    for note in answer.get("notes", []):
        print(indent + "  note: %s" % note)


def cmd_findings(args):
    import json

    logdir = Logdir(args.logdir)
    runs = [args.run] if args.run else sorted(logdir.runs)
    for run in runs:
        logdir.check_run(run)
    answers = [(run, logdir.reader.findings_impl(logdir.ctx, logdir.eid, run)) for run in runs]
    if args.json:
        doc = {"runs": [dict(answer, run=run) for run, answer in answers]}
        print(json.dumps(doc, allow_nan=False))
    else:
        for n, (run, answer) in enumerate(answers):
            if n:
                print()
            print("run %s:" % run)
            _print_findings(answer, indent="  ")
    if args.fail_on:
        gate = ("error",) if args.fail_on == "error" else ("error", "warning")
        if any(f["severity"] in gate for _, a in answers for f in a["findings"]):
            return EXIT_FINDINGS
    return 0


def _last_value(values):
    """The last value that is not null, or None."""
    return next((v for v in reversed(values or []) if v is not None), None)


def _first_non_finite(columns):
    """The first step whose weights held NaN or Inf, as text ("-" if none)."""
    for step, nan, inf in zip(columns["steps"], columns.get("nan", []), columns.get("inf", [])):
        if (nan or 0) + (inf or 0) > 0:
            return str(step)
    return "-"


def _print_table(header, rows):
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    # Text columns left-aligned, numbers right-aligned.
    def fmt(row):
        cells = [c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    print(fmt(header))
    for r in rows:
        print(fmt(r))


def cmd_export(args):
    from tensorboard_nnviz.cli import render

    export(args.logdir, args.run, args.output, tag=args.tag, step=args.step,
           steps=args.steps, every=args.every, scale=args.scale, vmax=args.vmax, fps=args.fps, dpi=args.dpi,
           progress=render.ProgressBar(sys.stderr, "rendering"), quantity=args.quantity)
    return 0


def export(logdir, run, output, tag=None, step=None, steps=None, every=1, scale="shared",
           vmax=None, fps=6, dpi=None, progress=None, quantity="weights"):
    """Draws `run` of `logdir` into `output` (.png: one step, the latest by
    default; .gif: every `every`-th step of `steps` = (first, last), by
    default all, and the last one), of the weights or of a recorded
    `quantity` (grad, m_hat, v_rms, momentum). Returns the
    `render.Grid` drawn (closed), for callers that check the figure.

    Raises:
      UsageError: an unknown logdir, run, tag, step or quantity, a quantity
        not recorded (or recorded without frames), or a bad option.
    """
    check_quantity(quantity)
    ext = _check_export_options(output, step, steps, every)
    data = Logdir(logdir)
    tensors = data.tensors(run, tag)
    if not tensors:
        raise UsageError("run %r has no readable tensors" % run)
    tensors = data.with_quantity(run, tensors, quantity, tag)
    if quantity != "weights":
        tensors = _framed(run, tensors, quantity)
    recorded = sorted(set(s for t in tensors for s in t["steps"]))
    what = tag or "%d tensors" % len(tensors)
    if quantity != "weights":
        what = "%s of %s" % (quantity, what)
    job = _Export(data, run, tensors, quantity)
    if ext == ".png":
        return _export_png(job, recorded, output, what, step, scale, vmax, dpi)
    return _export_gif(job, recorded, output, what, steps, every, scale, vmax, fps, dpi, progress)


def _framed(run, tensors, quantity):
    """The tensors whose `quantity` has frames (others said on stderr);
    UsageError when none has: its stats were recorded without frames."""
    framed = [t for t in tensors if quantity in (t.get("frame_quantities") or ["weights"])]
    if not framed:
        raise UsageError("run %r recorded the %s of %s without frames (only its stats: see "
                         "`nnviz inspect --quantity %s`); record frames with quantity_frames=(...)"
                         % (run, quantity, _names(t["tag"] for t in tensors), quantity))
    if len(framed) < len(tensors):
        print("nnviz: left out (%s recorded without frames): %s" % (
            quantity, _names(t["tag"] for t in tensors if t not in framed)), file=sys.stderr)
    return framed


class _Export(collections.namedtuple("_Export", "data run tensors quantity")):
    """What one export draws: the tensors of a run, of one quantity."""

    def frames(self, step, tensors=None):
        return self.data.frames(self.run, tensors or self.tensors, step, self.quantity)

    def title(self, text):
        return text if self.quantity == "weights" else "%s  (%s)" % (text, self.quantity)


def _check_export_options(output, step, steps, every):
    """The output's extension, once the options make sense for it."""
    ext = os.path.splitext(output)[1].lower()
    if ext not in (".png", ".gif"):
        raise UsageError("output %r must end in .png or .gif" % output)
    out_dir = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(out_dir):
        raise UsageError("output directory %r does not exist" % out_dir)
    if every < 1:
        raise UsageError("--every must be at least 1, got %d" % every)
    if ext == ".gif" and step is not None:
        raise UsageError("--step picks the snapshot of a .png; a .gif shows every step "
                         "(use --steps A:B and --every K to choose)")
    if ext == ".png" and steps is not None:
        raise UsageError("--steps A:B is for a .gif; a .png shows one --step")
    return ext


def _export_png(job, recorded, output, what, step, scale, vmax, dpi):
    from tensorboard_nnviz.cli import render

    run = job.run
    step = recorded[-1] if step is None else step
    if step not in recorded:
        raise UsageError("run %r has no snapshot at step %d (steps: %s)"
                         % (run, step, _steps_text(recorded)))
    grid = render.render_png(job.tensors, job.frames(step), output,
                             title=job.title("%s  step %d" % (run, step)), scale=scale,
                             vmax=vmax, dpi=dpi or 100)
    print("wrote %s (%s of run %s at step %d)" % (output, what, run, step))
    return grid


def _export_gif(job, recorded, output, what, steps, every, scale, vmax, fps, dpi, progress):
    from tensorboard_nnviz.cli import render

    run = job.run
    if steps is not None:
        first, last = steps
        in_range = [s for s in recorded if first <= s <= last]
        if not in_range:
            asked = "%s:%s" % (first or "", "" if last == sys.maxsize else last)
            raise UsageError("run %r has no snapshot in steps %s (steps: %s)"
                             % (run, asked, _steps_text(recorded)))
        recorded = in_range
    chosen = recorded[::every]
    if chosen[-1] != recorded[-1]:
        chosen.append(recorded[-1])  # always end on the last snapshot
    limits = _gif_limits(job, chosen, scale, vmax)
    grid = render.render_gif(
        job.tensors, chosen, job.frames, limits, output,
        title=job.title(run), fps=fps, dpi=dpi or 80, progress=progress,
    )
    print("wrote %s (%s of run %s, %d frames, steps %d … %d)"
          % (output, what, run, len(chosen), chosen[0], chosen[-1]))
    return grid


def _gif_limits(job, steps, scale, vmax):
    """Colour limits fixed over the animation, from the full-resolution
    `absmax` stats of the chosen steps (no second pass over the frames)."""
    from tensorboard_nnviz.cli import render

    data = job.data
    stats = data.reader.stats_impl(data.ctx, data.eid, job.run, quantity=job.quantity)
    wanted = set(steps)
    values = {}
    for t in job.tensors:
        columns = stats.get(t["tag"]) or {}
        if "error" in columns or not columns.get("steps"):
            values[t["tag"]] = list(job.frames(steps[-1], [t]).values())
            continue
        values[t["tag"]] = [a for s, a in zip(columns["steps"], columns["absmax"]) if s in wanted]
    return render.limits_for(job.tensors, values, scale, vmax, robust=True)


def cmd_compact(args):
    from tensorboard_nnviz.cli import compact
    from tensorboard_nnviz.record import budget

    try:
        result = compact.compact(args.logdir, args.run, args.keep, args.output,
                                 spacing=args.spacing)
    except compact.CompactError as e:
        raise UsageError(str(e))
    print("nnviz compact: run %r: kept %s of %d (%s -> %s) in %s" % (
        args.run, _steps_text(result["kept"]), len(result["steps"]),
        budget.format_bytes(result["bytes_in"]), budget.format_bytes(result["bytes_out"]),
        result["out"]))
    return 0


def cmd_serve(args):
    _check_logdir(args.logdir)
    return serve(args.logdir, args.port)


def serve(logdir, port=None):
    """Serves TensorBoard with the nnviz plugin on localhost until Ctrl+C."""
    from tensorboard import default, program

    from tensorboard_nnviz.serve import plugin

    plugins = default.get_plugins()  # includes entry-point plugins (nnviz when installed)
    if not any(p is plugin.NNVizLoader or isinstance(p, plugin.NNVizLoader) for p in plugins):
        plugins.append(plugin.NNVizLoader)
    tb = program.TensorBoard(plugins=plugins)
    argv = ["", "--logdir", logdir, "--host", "localhost"]
    if port is not None:
        argv += ["--port", str(port)]
    tb.configure(argv=argv)  # the plugin's loader keeps every nnviz step
    try:
        url = tb.launch()
    except program.TensorBoardServerException as e:
        raise UsageError(e.msg)
    print("TensorBoard with nnviz: %s#nnviz  (Ctrl+C to stop)" % url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


def demo_script():
    """demo/digits.py of the source tree this package runs from."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(os.path.dirname(package), "demo", "digits.py")


def cmd_demo(args):
    script = demo_script()
    if not os.path.isfile(script):
        raise UsageError("the demo lives in the source tree (demo/digits.py) and was not "
                         "found at %s; run it from a clone of tensorboard_nnviz" % script)
    cmd = [sys.executable, script, "--logdir", args.logdir]
    if args.quick:
        cmd.append("--quick")
    if args.retrain:
        cmd.append("--retrain")
    code = subprocess.call(cmd)
    if code:
        return code
    if args.no_serve:
        print("demo runs are in %s; look at them with: nnviz serve %s" % (args.logdir, args.logdir))
        return 0
    return serve(args.logdir, args.port)


# --- argument parsing -----------------------------------------------------------


def _step_range(text):
    first, sep, last = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return (int(first) if first else 0, int(last) if last else sys.maxsize)
    except ValueError:
        raise argparse.ArgumentTypeError("expected A:B (steps), got %r" % text)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="nnviz",
        description="Weight heatmaps that evolve across training steps, in TensorBoard.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _demo_parser(sub)
    _serve_parser(sub)
    _export_parser(sub)
    _compact_parser(sub)
    _inspect_parser(sub)
    _findings_parser(sub)
    return parser


def _demo_parser(sub):
    p = sub.add_parser("demo", help="train the demo runs, then serve TensorBoard on them",
                       description="Trains three runs on scikit-learn's digits (a tuned MLP, "
                       "the same MLP with a learning rate that blows up, a small CNN) with "
                       "NNVizCallback and Keras's TensorBoard callback, then serves TensorBoard.")
    p.add_argument("--logdir", default=DEFAULT_DEMO_LOGDIR,
                   help="where to write the runs (default: %(default)s)")
    p.add_argument("--port", type=int, default=None, help="TensorBoard port (default: 6006, "
                   "or the next free one)")
    p.add_argument("--no-serve", action="store_true", help="only train, do not serve")
    p.add_argument("--quick", action="store_true", help="fewer epochs (for tests)")
    p.add_argument("--retrain", action="store_true",
                   help="train again runs that are already complete in LOGDIR")
    p.set_defaults(func=cmd_demo)


def _serve_parser(sub):
    p = sub.add_parser("serve", help="serve TensorBoard with the nnviz plugin",
                       description="Serves TensorBoard on localhost with the nnviz plugin, "
                       "every nnviz step kept.")
    p.add_argument("logdir", metavar="LOGDIR")
    p.add_argument("--port", type=int, default=None,
                   help="port (default: 6006, or the next free one)")
    p.set_defaults(func=cmd_serve)


def _export_parser(sub):
    p = sub.add_parser("export", help="draw a run's weights into a .png or an animated .gif",
                       description="Draws the weights of a run as heatmaps: one per "
                       "tensor, a layer's tensors stacked (kernel above bias), conv kernels "
                       "as tiles, a diverging colour scale centred on zero, NaN and ±Inf in the "
                       "panel's colours (magenta, green, yellow). "
                       "OUT.png: one step (the latest by default). OUT.gif: every step, "
                       "with the colour scale fixed across the animation (a snapshot more "
                       "than 100x beyond the others, a run blowing up, saturates; its "
                       "title gives its real peak).")
    p.add_argument("logdir", metavar="LOGDIR")
    p.add_argument("--run", required=True, help="the run (see `nnviz inspect LOGDIR`)")
    p.add_argument("--tag", help="one tensor, e.g. dense/kernel (default: every tensor)")
    p.add_argument("--step", type=int, help="the snapshot step of a .png (default: latest)")
    p.add_argument("--steps", type=_step_range, metavar="A:B",
                   help="a .gif of the snapshots from step A to step B only (A: or :B "
                   "leave an end open)")
    p.add_argument("--every", type=int, default=1, metavar="K",
                   help="a .gif keeps every K-th snapshot, and the last (default: 1)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output file, .png or .gif")
    p.add_argument("--scale", choices=("shared", "tensor"), default="shared",
                   help="one colour scale for all tensors, or one per tensor (default: shared)")
    p.add_argument("--vmax", type=float, help="fix the colour scale to [-VMAX, VMAX]")
    p.add_argument("--fps", type=float, default=6, help="GIF frames per second (default: 6)")
    p.add_argument("--dpi", type=int, default=None, help="resolution (default: 100 png, 80 gif)")
    _quantity_argument(p, "draw")
    p.set_defaults(func=cmd_export)


def _quantity_argument(p, verb):
    p.add_argument("--quantity", default="weights", metavar="Q",
                   help="%s the weights (default) or a quantity the run recorded beside them: "
                   "grad, m_hat, v_rms (Adam's bias-corrected moments, v_rms as a square root) "
                   "or momentum (README, \"Gradients and optimizer state\")" % verb)


def _compact_parser(sub):
    p = sub.add_parser("compact", help="write a thinned copy of a finished run",
                       description="Copies RUN into the new directory OUT keeping N of its "
                       "weight snapshots: the first, the last, and the rest spread log-spaced "
                       "(dense early) or evenly; every other event (scalars, structure, ...) "
                       "is kept. RUN itself is never changed (event files are append-only).")
    p.add_argument("logdir", metavar="LOGDIR")
    p.add_argument("--run", required=True,
                   help="the run (see `nnviz inspect LOGDIR`; '.' for LOGDIR itself)")
    p.add_argument("--keep", type=int, required=True, metavar="N",
                   help="snapshots to keep, >= 2")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="a new (or empty) directory for the copy")
    p.add_argument("--spacing", choices=("log", "even"), default="log",
                   help="how kept snapshots are spread (default: log, dense early)")
    p.set_defaults(func=cmd_compact)


def _inspect_parser(sub):
    p = sub.add_parser("inspect", help="list runs, tensors, shapes, steps and latest stats",
                       description="Prints a table per run: each tensor's shape, its frame "
                       "(the heatmap's rows×cols; ÷br×bc when block-averaged to fit "
                       "max_cells), snapshot count, last step, stats at the last snapshot "
                       "(upd/|W|: last update's norm over the weights' norm) and the first "
                       "step whose weights held NaN or Inf, then the run's findings "
                       "(see `nnviz findings`).")
    p.add_argument("logdir", metavar="LOGDIR")
    p.add_argument("--run", help="only this run")
    _quantity_argument(p, "list")
    p.set_defaults(func=cmd_inspect)


def _findings_parser(sub):
    p = sub.add_parser("findings", help="what went wrong in training, per run",
                       description="Prints each run's findings, most severe first: NaN/Inf "
                       "weights (error), exploding norms (warning), trainable weights that "
                       "never changed (warning; error when no trainable weight changed: "
                       "nothing learns), units that stopped learning (warning). Exit code "
                       "1 with --fail-on when a finding of that severity or worse exists, "
                       "2 for a logdir or run that does not exist.")
    p.add_argument("logdir", metavar="LOGDIR")
    p.add_argument("--run", help="only this run")
    p.add_argument("--json", action="store_true",
                   help='print {"runs": [{"run", "findings": [...]}]} (as GET /findings)')
    p.add_argument("--fail-on", choices=("error", "warning"),
                   help="exit 1 if a finding of this severity or worse exists")
    p.set_defaults(func=cmd_findings)


def main(argv=None):
    """The console script (argv None: sys.argv); returns the exit code."""
    args = build_parser().parse_args(argv)
    # TensorBoard's readers may import TensorFlow: keep its start-up log quiet.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if argv is None and args.command in ("inspect", "export", "findings"):
        _skip_tensorflow(args.logdir)
    from tensorboard import errors as tb_errors

    try:
        return args.func(args)
    except (UsageError, tb_errors.NotFoundError) as e:  # errors.NotFoundError among them
        print("nnviz %s: %s" % (args.command, e), file=sys.stderr)
        return EXIT_USAGE
    except tb_errors.PublicError as e:  # errors.DataError: damaged or newer data
        print("nnviz %s: %s" % (args.command, e), file=sys.stderr)
        return EXIT_DATA
    except KeyboardInterrupt:
        print("nnviz %s: interrupted" % args.command, file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
