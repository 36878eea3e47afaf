"""frontend/model/colormaps.js holds matplotlib's colormaps, as tools/gen_colormaps.py samples them."""

import importlib.util
import os
import re

import matplotlib
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _generator():
    spec = importlib.util.spec_from_file_location("gen_colormaps", os.path.join(ROOT, "tools", "gen_colormaps.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _committed_maps():
    with open(os.path.join(ROOT, "frontend", "model", "colormaps.js")) as f:
        text = f.read()
    maps = {}
    for name, kind, body in re.findall(r"^  (\w+): \{kind: '(\w+)', hex:\n(.*?)\}", text, re.S | re.M):
        hexes = "".join(re.findall(r"'([0-9a-f]+)'", body))
        maps[name] = (kind, np.frombuffer(bytes.fromhex(hexes), dtype=np.uint8).reshape(-1, 3))
    return maps


def test_committed_colormaps_match_matplotlib():
    gen = _generator()
    maps = _committed_maps()
    assert set(maps) == set(gen.COLORMAPS)
    for name, (kind, rgb) in maps.items():
        assert kind == gen.COLORMAPS[name]
        assert rgb.shape == (256, 3)
        expected = matplotlib.colormaps[name].resampled(256)(np.arange(256))[:, :3] * 255
        # Within rounding of matplotlib's own float colours.
        assert np.abs(rgb.astype(float) - expected).max() <= 0.5 + 1e-9, name


def test_committed_file_is_what_the_generator_writes():
    gen = _generator()
    assert gen.main(["--check"]) == 0, "run tools/gen_colormaps.py"
