"""render.py's geometry and colour scale rules, on hand-made frames."""

import itertools

import numpy as np
from PIL import Image

from tensorboard_nnviz.cli import render


def _tensor(tag, shape, rows, cols, row_axes, col_axes, block=(1, 1), groups=()):
    return {
        "tag": tag, "layer": tag.rpartition("/")[0], "shape": list(shape),
        "rows": rows, "cols": cols, "downsampled": list(block) != [1, 1],
        "layout": {"row_axes": row_axes, "col_axes": col_axes, "block": list(block),
                   "groups": list(groups)},
    }


def test_separators_follow_tiles_groups_and_blocks():
    conv = _tensor("c/kernel", (3, 3, 2, 4), 6, 12, [2, 0], [3, 1])
    assert render.separators(conv) == ([2.5], [2.5, 5.5, 8.5])
    # Reduced by 2 x 1: tiles are 1.5 cells high, too thin for lines.
    reduced = _tensor("c/kernel", (3, 3, 2, 4), 3, 12, [2, 0], [3, 1], block=(2, 1))
    assert render.separators(reduced) == ([], [2.5, 5.5, 8.5])
    lstm = _tensor("l/kernel", (5, 12), 5, 12, [0], [1],
                   groups=[{"axis": "cols", "size": 3, "names": ["i", "f", "c", "o"]}])
    assert render.separators(lstm) == ([], [2.5, 5.5, 8.5])
    dense = _tensor("d/kernel", (5, 7), 5, 7, [0], [1])
    assert render.separators(dense) == ([], [])


def test_limits_are_symmetric_and_ignore_non_finite_values():
    assert render.symmetric_limit([np.array([[-3.0, 1.0], [np.nan, np.inf]])]) == 3.0
    assert render.symmetric_limit([np.array([np.nan]), None]) == 1.0
    assert render.symmetric_limit([np.zeros(3)]) == 1.0
    # One exploding snapshot saturates instead of washing out the others.
    assert render.robust_limit([1.0, 2.0, 3.0, 1e9]) == 3.0
    assert render.robust_limit([1.0, 2.0, 3.0, 50.0]) == 50.0


def test_non_finite_cells_are_drawn_in_the_panels_colours_and_named(tmp_path):
    t = _tensor("d/kernel", (4, 6), 4, 6, [0], [1])
    frame = np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6)
    frame[1, 2] = np.nan
    frame[2, 3] = np.inf
    frame[3, 0] = -np.inf
    out = tmp_path / "nan.png"
    grid = render.render_png([t], {"d/kernel": frame}, str(out), vmax=0.5)
    title = grid.axes["d/kernel"].get_title(loc="left")
    assert "1 NaN (magenta), 1 +Inf (green), 1 −Inf (yellow)" in title
    with Image.open(out) as png:
        rgb = [tuple(p) for p in np.asarray(png.convert("RGB")).reshape(-1, 3)]
    for color, _, _ in render.SPECIAL_COLORS.values():
        expected = tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
        assert rgb.count(expected) > 50, color  # a whole cell, not a stray pixel
    # Finite values beyond the scale saturate in its end colours, not +Inf's.
    top = tuple(int(round(255 * c)) for c in grid.cmap(grid.cmap.N - 1)[:3])
    assert rgb.count(top) > 50


def test_layers_flow_in_rows_and_wide_layers_take_a_row():
    conv1 = _tensor("conv1/kernel", (3, 3, 1, 16), 3, 48, [2, 0], [3, 1])
    bias1 = _tensor("conv1/bias", (16,), 1, 16, [], [0])
    dense = [_tensor("d%d/kernel" % i, (8, 8), 8, 8, [0], [1]) for i in range(4)]
    ncols, rows = render.plan([bias1, conv1] + dense)
    assert ncols == 3
    first_layer, span = rows[0][0]
    assert span == 3 and [t["tag"] for t in first_layer] == ["conv1/kernel", "conv1/bias"]
    assert [[layer[0]["tag"] for layer, _ in row] for row in rows[1:]] == [
        ["d0/kernel", "d1/kernel", "d2/kernel"], ["d3/kernel"]]


def test_gif_has_one_frame_per_step_with_a_fixed_scale(tmp_path):
    t = _tensor("d/kernel", (4, 6), 4, 6, [0], [1])
    steps = [0, 10, 20, 30]
    frames = {s: np.full((4, 6), s / 10 - 1.5, dtype=np.float32) for s in steps}
    frames[30][0, 0] = np.nan  # the palette holds the NaN colour
    limits = render.limits_for([t], {"d/kernel": list(frames.values())}, robust=True)
    done = []
    out = tmp_path / "a.gif"
    grid = render.render_gif([t], steps, lambda s: {"d/kernel": frames[s]}, limits, str(out),
                             title="run", progress=lambda i, n, s: done.append((i, n, s)))
    assert done == [(1, 4, 0), (2, 4, 10), (3, 4, 20), (4, 4, 30)]
    assert grid.images["d/kernel"].get_clim() == (-1.5, 1.5)
    with Image.open(out) as gif:
        assert gif.n_frames == 4
        pixels = []
        for i in range(4):
            gif.seek(i)
            pixels.append(np.asarray(gif.convert("RGB")))
    # Constant frames at -1.5, -0.5, 0.5, 1.5: blue, light blue, light red, red.
    centre = [p[p.shape[0] // 2, p.shape[1] // 3] for p in pixels]
    assert centre[0][2] > centre[0][0] and centre[3][0] > centre[3][2]
    assert all(not np.array_equal(a, b) for a, b in zip(pixels, pixels[1:]))
    magenta = (pixels[3] == (255, 0, 255)).all(axis=2)
    assert magenta.sum() > 20 and not (pixels[2] == (255, 0, 255)).all(axis=2).any()


def test_grid_geometry_places_every_heatmap_inside_the_figure_without_overlap():
    conv1 = _tensor("conv1/kernel", (3, 3, 1, 16), 3, 48, [2, 0], [3, 1])
    bias1 = _tensor("conv1/bias", (16,), 1, 16, [], [0])
    dense = [_tensor("d%d/kernel" % i, (8, 4 + 4 * i), 8, 4 + 4 * i, [0], [1]) for i in range(4)]
    for shared in (True, False):
        geo = render.grid_geometry([conv1, bias1] + dense, shared)
        assert [b.tensor["tag"] for b in geo.boxes] == [
            "conv1/kernel", "conv1/bias", "d0/kernel", "d1/kernel", "d2/kernel", "d3/kernel"]
        for b in geo.boxes:
            assert 0 < b.x and b.x + b.width <= geo.width and 0 < b.top
            assert b.top + b.height <= geo.height
        for a, b in itertools.combinations(geo.boxes, 2):
            apart = (a.x + a.width <= b.x or b.x + b.width <= a.x
                     or a.top + a.height <= b.top or b.top + b.height <= a.top)
            assert apart, (a.tensor["tag"], b.tensor["tag"])
        strip = geo.boxes[1]  # a vector: a thin strip under its kernel
        assert strip.height < 0.3 and strip.top > geo.boxes[0].top + geo.boxes[0].height
        assert (geo.bar is not None) == shared
        if shared:
            x, top, w, h = geo.bar
            assert x >= max(b.x + b.width for b in geo.boxes) and x + w <= geo.width
