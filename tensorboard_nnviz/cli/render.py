"""Draws nnviz frames with matplotlib, for `nnviz export`.

A `Grid` is one figure with a heatmap per weight tensor: each layer is a
cell of the grid with its tensors stacked (kernel above bias), conv kernels
tiled (thin separators between the kh x kw tiles), vectors as strips, a
diverging colour map centred on zero, NaN and ±Inf cells in the panel's
colours for them (`SPECIAL_COLORS`), and colour bars.
For a GIF the same figure is redrawn step after step, so every frame has
the same geometry and the same colour scale.

The caller reads the frames (through `reader.py`); this module only draws.
matplotlib is imported here, never by the plugin, with the Agg backend.
"""


import collections

import numpy as np

from tensorboard_nnviz.core import layout as layout_lib

CMAP = "RdBu_r"  # diverging: blue < 0 < red, white at zero
# Non-finite cells: the panel's colours (frontend/model/colors.js), checked against
# tests/fixtures/shared_rules.json. {kind: (colour, label, colour's name)}
SPECIAL_COLORS = {
    "nan": ("#ff00ff", "NaN", "magenta"),
    "posinf": ("#00e676", "+Inf", "green"),
    "neginf": ("#ffea00", "−Inf", "yellow"),
}
SEPARATOR_COLOR = "#777777"

# Figure geometry, in inches.
_COL_WIDTH = 3.4
_MIN_HEIGHT = 0.22
_MAX_HEIGHT = 3.4
_TITLE_HEIGHT = 0.34  # two lines at 8 pt: tag and shape, then notes
_TICKS_HEIGHT = 0.22
_SUPTITLE_HEIGHT = 0.45
_LEFT = 0.45  # y tick labels of the first column
_GAP = 0.5  # between columns: the next column's y tick labels
_OWN_BAR = 0.6  # a per-tensor colour bar and its labels
_BAR_AREA = 0.9  # the shared colour bar and its labels
_MAX_BAR = 5.0
_WIDE = 6  # a frame this many times wider than high spans a whole row
_WIDE_CELL = 0.2  # cell width of such a frame, up to…
_MAX_WIDTH = 14.0  # …a figure this wide
_SPIKE = 100  # see `robust_limit`
_GIF_LEVELS = 224  # colour-map levels in a GIF; then the special colours and greys


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _finite_absmax(value):
    if value is None:
        return None
    a = np.asarray(value, dtype=np.float64)
    a = np.abs(a[np.isfinite(a)])
    return float(a.max()) if a.size else None


def _peaks(values):
    """The nonzero finite peaks |value| of `values` (arrays or numbers)."""
    return [p for p in map(_finite_absmax, values) if p]


def symmetric_limit(values):
    """The largest finite |value| over `values` (arrays or numbers), or 1.0.

    The colour scale is [-limit, +limit], so zero is always the midpoint.
    """
    peaks = _peaks(values)
    return max(peaks) if peaks else 1.0


def robust_limit(values):
    """Like `symmetric_limit` over snapshots, but a snapshot whose peak is
    more than 100x the median peak (a run blowing up) is left to saturate
    instead of washing every other frame out to white.

    The panel's rule (frontend/model/scale.js `robustBound`; cases in
    tests/fixtures/shared_rules.json): the median of an even count is the
    lower of the middle two, a peak that occurred.
    """
    peaks = sorted(_peaks(values))
    if not peaks:
        return 1.0
    ceiling = _SPIKE * peaks[(len(peaks) - 1) // 2]
    return max(p for p in peaks if p <= ceiling)


def separators(tensor):
    """Where to draw tile and group separators: `(rows, cols)` in image
    coordinates (cell centres at integers).

    The lines are the panel's (layout.py `separators` and `group_lines`);
    tiles or groups less than two cells apart get no lines (they would
    hide the data).
    """
    layout = tensor.get("layout") or {}
    if "row_axes" not in layout:
        return [], []
    shape = tensor.get("shape") or []
    kinds = (layout_lib.separators(layout, shape), layout_lib.group_lines(layout, shape))
    out = []
    for side in ("rows", "cols"):
        lines = set()
        for kind in kinds:
            if kind[side] and kind[side][0] >= 2:
                lines.update(x - 0.5 for x in kind[side])
        out.append(sorted(lines))
    return tuple(out)


def _box_height(tensor, width):
    """Height of a heatmap box `width` wide, cells as square as fits."""
    if tensor["rows"] == 1:
        return _MIN_HEIGHT  # a vector: a strip
    h = width * tensor["rows"] / max(tensor["cols"], 1)
    return min(max(h, _MIN_HEIGHT), _MAX_HEIGHT)


def _layers(tensors):
    """Tensors grouped by layer (first appearance order); within a layer,
    matrices first, then vectors."""
    layers, index = [], {}
    for t in tensors:
        layer = t.get("layer", t["tag"].rpartition("/")[0])
        if layer not in index:
            index[layer] = len(layers)
            layers.append([])
        layers[index[layer]].append(t)
    return [sorted(ts, key=lambda t: t["rows"] == 1) for ts in layers]


def _is_wide(layer):
    # e.g. a conv kernel of one input channel: a single row of kh x kw tiles.
    return any(t["rows"] > 1 and t["cols"] >= _WIDE * t["rows"] for t in layer)


def plan(tensors, max_cols=3):
    """Places layers on a grid: `(ncols, rows)`, each row a list of
    `(layer_tensors, span)`. Layers flow left to right; a wide layer takes a
    whole row so that its tiles stay legible."""
    layers = _layers(tensors)
    any_wide = any(_is_wide(layer) for layer in layers)
    ncols = max(1, min(max_cols, max(len(layers), 2 if any_wide else 1)))
    rows, current = [], []
    for layer in layers:
        if _is_wide(layer):
            if current:
                rows.append(current)
                current = []
            rows.append([(layer, ncols)])
            continue
        current.append((layer, 1))
        if len(current) == ncols:
            rows.append(current)
            current = []
    if current:
        rows.append(current)
    return ncols, rows


def shape_text(shape):
    """A weight's shape for people: "3×3×16×32", or "scalar"."""
    return "×".join(str(d) for d in shape) if shape else "scalar"


def _describe(tensor):
    text = "%s  (%s)" % (tensor["tag"], shape_text(tensor.get("shape")))
    block = (tensor.get("layout") or {}).get("block") or [1, 1]
    if tensor.get("downsampled") or list(block) != [1, 1]:
        text += "  mean of %d×%d" % tuple(block[:2])
    return text


# One heatmap's place, in inches from the figure's top-left corner.
Box = collections.namedtuple("Box", "tensor x top width height")
Geometry = collections.namedtuple("Geometry", "width height boxes bar")


def grid_geometry(tensors, shared=True):
    """Where a `Grid` puts everything, in inches (a pure function).

    Layers flow on the grid of `plan`; a layer's tensors stack in its cell,
    each a title line, its heatmap (`_box_height`: cells about square) and
    tick labels. With `shared`, one colour bar right of the grid; without,
    room for a bar beside each heatmap.

    Returns:
      `Geometry(width, height, boxes, bar)`: the figure's size, a `Box` per
      tensor (the heatmap's rectangle), and the shared colour bar's
      `(x, top, width, height)` or None.
    """
    ncols, rows = plan(tensors)
    col_w = _COL_WIDTH + (0 if shared else _OWN_BAR)
    # A layer across the whole row gets enough width for its tiles.
    widest = max([t["cols"] for t in tensors if _is_wide([t])] or [0])
    full_w = max(ncols * col_w, min(_WIDE_CELL * widest, _MAX_WIDTH))
    boxes, top = [], _SUPTITLE_HEIGHT
    for row in rows:
        x, row_h = _LEFT, 0.0
        for layer, span in row:
            w = (full_w if span == ncols else span * col_w) - _GAP - (0 if shared else _OWN_BAR)
            y = top
            for t in layer:
                h = _box_height(t, w)
                boxes.append(Box(t, x, y + _TITLE_HEIGHT, w, h))
                y += _TITLE_HEIGHT + h + _TICKS_HEIGHT
            row_h = max(row_h, y - top)
            x += span * col_w
        top += row_h
    bar = None
    if shared and tensors:
        bar_h = min(top - _SUPTITLE_HEIGHT - _TICKS_HEIGHT - _TITLE_HEIGHT, _MAX_BAR)
        bar = (_LEFT + full_w, _SUPTITLE_HEIGHT + _TITLE_HEIGHT, 0.15, max(bar_h, 0.5))
    return Geometry(_LEFT + full_w + (_BAR_AREA if shared else 0), top + 0.1, boxes, bar)


class Grid:
    """A figure of heatmaps, one per tensor, that can be redrawn per step.

    Placed by hand in inches (no layout engine: the geometry is known, it
    never collapses, and redrawing for a GIF stays cheap). A heatmap's
    height follows its frame's aspect, so cells stay about square and
    vectors are thin strips.

    Attributes:
      fig: the matplotlib Figure.
      axes: {tag: Axes}; images: {tag: AxesImage}; colorbars: [Colorbar].
    """

    def __init__(self, tensors, limits, title="", levels=256):
        """Args:
          tensors: dicts with "tag", "layer", "shape", "rows", "cols",
            "layout" (and "downsampled"), as `/tags` answers them, in the
            order to draw them.
          limits: {tag: limit} — each tensor's colour scale is
            [-limit, +limit]; equal limits make one shared scale, drawn as
            one colour bar, else each heatmap gets its own.
          title: the figure's title (e.g. the run and step).
          levels: colours of the colour map (fewer for a GIF's palette).
        """
        plt = _pyplot()
        import matplotlib

        self.tensors = list(tensors)
        self.limits = dict(limits)
        shared = len(set(self.limits.values())) <= 1
        geo = grid_geometry(self.tensors, shared)
        self.fig = plt.figure(figsize=(geo.width, geo.height))
        # NaN is "bad"; ±Inf are drawn beyond the scale (see `_displayed`).
        self.cmap = cmap = matplotlib.colormaps[CMAP].resampled(levels).with_extremes(
            bad=SPECIAL_COLORS["nan"][0], over=SPECIAL_COLORS["posinf"][0],
            under=SPECIAL_COLORS["neginf"][0])

        def rect(x, top, w, h):  # inches from the top-left -> figure fraction
            return [x / geo.width, 1 - (top + h) / geo.height, w / geo.width, h / geo.height]

        self.axes, self.images, self.colorbars, self._titles = {}, {}, [], {}
        for box in geo.boxes:
            t = box.tensor
            ax = self.fig.add_axes(rect(box.x, box.top, box.width, box.height))
            self._draw_empty(ax, t, cmap, self.limits[t["tag"]])
            if not shared:
                cax = self.fig.add_axes(rect(box.x + box.width + 0.08, box.top, 0.12, box.height))
                self.colorbars.append(self.fig.colorbar(self.images[t["tag"]], cax=cax))
                cax.tick_params(labelsize=6)
        if geo.bar is not None:
            cax = self.fig.add_axes(rect(*geo.bar))
            self.colorbars.append(
                self.fig.colorbar(self.images[self.tensors[0]["tag"]], cax=cax))
            cax.tick_params(labelsize=7)
        self.suptitle = self.fig.suptitle(title, y=1 - 0.12 / geo.height, va="top")

    def _draw_empty(self, ax, t, cmap, limit):
        tag = t["tag"]
        im = ax.imshow(
            np.full((t["rows"], t["cols"]), np.nan, dtype=np.float32),
            cmap=cmap, vmin=-limit, vmax=limit,
            interpolation="nearest", aspect="auto",
        )
        row_lines, col_lines = separators(t)
        for y in row_lines:
            ax.axhline(y, color=SEPARATOR_COLOR, linewidth=0.6)
        for x in col_lines:
            ax.axvline(x, color=SEPARATOR_COLOR, linewidth=0.6)
        if t["rows"] == 1:
            ax.set_yticks([])
        ax.tick_params(labelsize=6, length=2)
        self._titles[tag] = ax.set_title(_describe(t), fontsize=8, loc="left", pad=3,
                                         linespacing=1.1)
        self.axes[tag], self.images[tag] = ax, im

    def update(self, frames, title=None):
        """Shows `frames` ({tag: 2-D array or None}); None hides a tensor.
        A title notes non-finite cells and values beyond the colour scale."""
        for t in self.tensors:
            tag = t["tag"]
            frame = frames.get(tag)
            im = self.images[tag]
            im.set_visible(frame is not None)
            text = _describe(t)
            if frame is None:
                text += "\nno readable snapshot at this step"
            else:
                im.set_data(_displayed(frame, self.limits[tag]))
                notes = ["%d %s (%s)" % (n, SPECIAL_COLORS[k][1], SPECIAL_COLORS[k][2])
                         for k, n in _non_finite(frame).items() if n]
                peak = _finite_absmax(frame)
                if peak is not None and peak > self.limits[tag] * 1.001:
                    notes.append("|w| up to %.3g, beyond the scale" % peak)
                if notes:
                    text += "\n" + ", ".join(notes)
            self._titles[tag].set_text(text)
        if title is not None:
            self.suptitle.set_text(title)

    def save(self, path, dpi=100):
        self.fig.savefig(path, dpi=dpi)

    def close(self):
        _pyplot().close(self.fig)

    # --- animation: draw the static parts once, then only what changes ---

    def start_animation(self, dpi):
        """Draws the static parts once (axes, ticks, colour bars) and keeps
        their pixels; `frame_image` then redraws only images, separators and
        titles (a title's pixels are cached per text): redrawing the whole
        figure per frame is what makes a GIF slow (the README, "Command
        line")."""
        self.fig.set_dpi(dpi)
        canvas = self.fig.canvas
        self._dynamic = []
        for t in self.tensors:
            ax = self.axes[t["tag"]]
            # The image first, then the lines drawn on top of it.
            artists = [self.images[t["tag"]]] + list(ax.lines) + [self._titles[t["tag"]]]
            self._dynamic.append((ax, artists))
        self._dynamic.append((self.fig, [self.suptitle]))
        for _, artists in self._dynamic:
            for a in artists:
                a.set_animated(True)
        canvas.draw()
        self._background = canvas.copy_from_bbox(self.fig.bbox)
        self._cached_titles = {id(t): t for t in self._titles.values()}
        self._patches = {}
        self._palette = _palette_image(self.cmap)

    def _draw_title(self, owner, text):
        key = (id(text), text.get_text())
        patch = self._patches.get(key)
        canvas = self.fig.canvas
        if patch is not None:
            canvas.restore_region(patch)
            return
        owner.draw_artist(text)
        box = text.get_window_extent(canvas.get_renderer()).padded(1)
        self._patches[key] = canvas.copy_from_bbox(box)

    def frame_image(self, frames, title):
        """The figure showing `frames`, as a palette PIL image (after
        `start_animation`)."""
        from PIL import Image

        self.update(frames, title)
        canvas = self.fig.canvas
        canvas.restore_region(self._background)
        for owner, artists in self._dynamic:
            for a in artists:
                if not a.get_visible():
                    continue
                if id(a) in self._cached_titles:
                    self._draw_title(owner, a)
                else:
                    owner.draw_artist(a)
        rgb = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())
        # One fixed palette (the colour map's levels + greys) instead of an
        # adaptive one per frame: faster, and colours never shift between frames.
        return rgb.quantize(palette=self._palette, dither=Image.Dither.NONE)


def _displayed(frame, limit):
    """What the image shows of `frame`: finite values clipped to the scale
    (so they take its end colours), ±Inf beyond it (the colour map's
    over/under colours: matplotlib would draw them as NaN), NaN as is."""
    shown = np.clip(np.asarray(frame, dtype=np.float64), -limit, limit)
    shown[frame == np.inf] = 2 * limit
    shown[frame == -np.inf] = -2 * limit
    return shown


def _non_finite(frame):
    """{"nan", "posinf", "neginf": cell counts}."""
    return {"nan": int(np.count_nonzero(np.isnan(frame))),
            "posinf": int(np.count_nonzero(frame == np.inf)),
            "neginf": int(np.count_nonzero(frame == -np.inf))}


def _palette_image(cmap, greys=256 - _GIF_LEVELS - len(SPECIAL_COLORS)):
    from PIL import Image

    colours = [tuple(int(round(255 * c)) for c in cmap(i)[:3]) for i in range(cmap.N)]
    colours += [tuple(int(SPECIAL_COLORS[k][0][i:i + 2], 16) for i in (1, 3, 5))
                for k in SPECIAL_COLORS]
    colours += [(g, g, g) for g in np.linspace(0, 255, greys).round().astype(int)]
    flat = [v for c in colours[:256] for v in c]
    palette = Image.new("P", (1, 1))
    palette.putpalette(flat + [0] * (768 - len(flat)))
    return palette


def limits_for(tensors, values_by_tag, scale="shared", vmax=None, robust=False):
    """{tag: limit}: one shared limit, or one per tensor (`scale="tensor"`).

    Args:
      values_by_tag: {tag: list of arrays or numbers} the scale must cover
        (one per snapshot).
      vmax: a fixed limit, overriding the data.
      robust: use `robust_limit` (for animations over many snapshots).
    """
    if vmax is not None:
        return {t["tag"]: float(vmax) for t in tensors}
    if scale == "tensor":
        limit = robust_limit if robust else symmetric_limit
        return {t["tag"]: limit(values_by_tag.get(t["tag"], ())) for t in tensors}
    # Shared: the peak of each snapshot over all tensors, then over snapshots.
    n = max((len(v) for v in values_by_tag.values()), default=0)
    peaks = []
    for i in range(n):
        at_i = _peaks(v[i] for v in values_by_tag.values() if i < len(v))
        peaks.append(max(at_i) if at_i else None)
    shared = (robust_limit if robust else symmetric_limit)(peaks)
    return {t["tag"]: shared for t in tensors}


def render_png(tensors, frames, path, title="", scale="shared", vmax=None, dpi=100):
    """Draws one step of `tensors` into a PNG; returns the (closed) Grid."""
    limits = limits_for(tensors, {k: [v] for k, v in frames.items()}, scale, vmax)
    grid = Grid(tensors, limits, title)
    try:
        grid.update(frames)
        grid.save(path, dpi=dpi)
    finally:
        grid.close()
    return grid


def render_gif(tensors, steps, read_frames, limits, path, title="", fps=6, dpi=80,
               progress=None):
    """Animates `tensors` over `steps` into a GIF, one frame per step.

    Args:
      read_frames: step -> {tag: 2-D array or None}.
      limits: {tag: limit}, fixed for the whole animation (see `limits_for`).
      title: prefix of each frame's title; the step is appended.
      progress: optional callable(done, total, step).
    Returns the (closed) Grid.
    """
    grid = Grid(tensors, limits, title, levels=_GIF_LEVELS)
    images = []
    try:
        grid.start_animation(dpi)
        for i, step in enumerate(steps):
            label = "%sstep %d" % (title + "  " if title else "", step)
            images.append(grid.frame_image(read_frames(step), label))
            if progress is not None:
                progress(i + 1, len(steps), step)
    finally:
        grid.close()
    images[0].save(path, save_all=True, append_images=images[1:],
                   duration=int(round(1000 / fps)), loop=0)
    return grid


class ProgressBar:
    """A one-line text progress bar on a stream (stderr), no dependency."""

    def __init__(self, stream, label, width=30):
        self.stream, self.label, self.width = stream, label, width
        self._tty = hasattr(stream, "isatty") and stream.isatty()
        self._last = -1

    def __call__(self, done, total, step=None):
        fraction = done / total if total else 1.0
        # On a terminal, redraw in place; in a log, print every 10% only.
        tenth = int(fraction * 10)
        if not self._tty and tenth == self._last and done != total:
            return
        self._last = tenth
        filled = int(round(fraction * self.width))
        line = "%s [%s%s] %d/%d" % (self.label, "#" * filled, "." * (self.width - filled),
                                    done, total)
        if step is not None:
            line += " (step %d)" % step
        end = "\n" if done == total or not self._tty else ""
        self.stream.write(("\r" if self._tty else "") + line + end)
        self.stream.flush()
