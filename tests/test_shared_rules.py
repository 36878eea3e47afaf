"""Rules the exports and the panel share, checked against one fixture of
cases that the panel's node tests read too (tests/js/shared_rules.test.mjs),
so the two languages cannot drift apart."""

import json
import os

import pytest

from tensorboard_nnviz.cli import render
from tensorboard_nnviz.core import layout as layout_lib
from tensorboard_nnviz.serve import findings

with open(os.path.join(os.path.dirname(__file__), "fixtures", "shared_rules.json")) as f:
    RULES = json.load(f)

TILES = RULES["tiles"]["cases"]


@pytest.mark.parametrize("case", TILES, ids=[c["name"] for c in TILES])
def test_tile_separators_and_group_lines(case):
    assert layout_lib.separators(case["layout"], case["shape"]) == case["separators"]
    assert layout_lib.group_lines(case["layout"], case["shape"]) == case["group_lines"]


@pytest.mark.parametrize("case", TILES, ids=[c["name"] for c in TILES])
def test_exports_draw_the_shared_lines_at_least_two_cells_apart(case):
    rows, cols = layout_lib.layout_size(case["layout"], case["shape"])
    br, bc = case["layout"]["block"]
    tensor = {"shape": case["shape"], "layout": case["layout"], "rows": -(-rows // br),
              "cols": -(-cols // bc)}
    drawn = render.separators(tensor)
    for side, lines in zip(("rows", "cols"), drawn):
        shared = [x for kind in ("separators", "group_lines") for x in case[kind][side]
                  if case[kind][side][0] >= 2]
        assert lines == sorted({x - 0.5 for x in shared})  # image coordinates


@pytest.mark.parametrize("case", RULES["exploded_steps"]["cases"], ids=str)
def test_exploded_steps_saturate(case):
    # No positive bound: the panel has an empty scale, an export a scale of ±1.
    assert render.robust_limit(case["bounds"]) == (case["bound"] or 1.0)


def test_non_finite_colours_are_the_panels():
    colors = RULES["special_colors"]["colors"]
    assert {k: {"css": v[0], "label": v[1]} for k, v in render.SPECIAL_COLORS.items()} == colors


@pytest.mark.parametrize("case", RULES["epsilon_floor"]["cases"], ids=str)
def test_the_floor_a_recorded_optimizers_eps_sets(case):
    floor, _ = findings.optimizer_epsilon({"model": case["model"]})
    assert floor == (None if case["floor"] is None else pytest.approx(case["floor"], rel=1e-12))

