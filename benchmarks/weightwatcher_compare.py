"""tensorboard_nnviz.core.spectral next to weightwatcher's analyze(), layer by layer,
on the same trained weights: alpha, stable rank, spectral norm (sv_max) and
alpha_weighted.

weightwatcher 0.7.x needs torch or TensorFlow's tf.keras and breaks on Keras 3
(WeightWatcher#317, #322), so it is fed torch modules holding the weights.
Two steps in two environments (`make bench-ww` runs both):

    # Keras (.venv): train the digits demo's models (demo/digits.py: the MLP
    # at lr 0.05 and the CNN, all epochs), save their weights
    .venv/bin/python benchmarks/weightwatcher_compare.py export bench_logs/ww_weights.npz

    # torch + weightwatcher (.venv-ww): the Keras weights in torch modules
    # (Linear weight = kernel.T, Conv2d weight = kernel.transpose(3, 2, 0, 1)),
    # plus a torch model trained here on the same digits (no torchvision)
    .venv-ww/bin/python benchmarks/weightwatcher_compare.py compare bench_logs/ww_weights.npz

Ours is computed from the arrays and layouts the recorder would see (Keras
kernels with Keras layouts; torch weights with torch class names), theirs
by `WeightWatcher(model).analyze()` with its defaults. Where weightwatcher
scales by design, the "ww*" column undoes it: Conv2D slices are multiplied
by sqrt(1/2) (`conv2d_norm=True`), so its sv_max is ours/√2 and its
alpha_weighted uses λ_max/2. A "-" is a value that is not given (null).
"""

import argparse
import contextlib
import io
import json
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tensorboard_nnviz.core import layout as layout_lib  # noqa: E402
from tensorboard_nnviz.core import spectral  # noqa: E402

DEMO_RUNS = ("mlp_tuned", "cnn")

# --- step 1 (Keras) ---------------------------------------------------------------------


def load_demo():
    import importlib.util

    path = os.path.join(os.path.dirname(HERE), "demo", "digits.py")
    spec = importlib.util.spec_from_file_location("nnviz_demo_digits", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def export(path):
    """Trains the demo's models as demo/digits.py does (same seed, optimizer,
    epochs, data) and saves every weight with its tag and layer class."""
    import keras

    from tensorboard_nnviz.record import structure

    digits = load_demo()
    (x, y), (xv, yv) = digits.load_data()
    arrays, index = {}, []
    for run in DEMO_RUNS:
        builder, optimizer, epochs, _, _ = digits.RUNS[run]
        keras.utils.set_random_seed(digits.SEED)
        model = builder(keras)
        model.compile(optimizer=optimizer(keras), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        xs, xvs = (x[..., None], xv[..., None]) if builder is digits.cnn else (x, xv)
        hist = model.fit(xs, y, batch_size=digits.BATCH, epochs=epochs, verbose=0,
                         validation_data=(xvs, yv))
        print("%s: %d epochs, validation accuracy %.3f" % (
            run, epochs, hist.history["val_accuracy"][-1]))
        for i, ref in enumerate(structure.weight_refs(model)):
            key = "%s_%d" % (run, i)
            arrays[key] = np.asarray(ref.variable.numpy())
            index.append({"key": key, "run": run, "tag": ref.tag, "class": ref.layer_class,
                          "layer": ref.layer_name})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, index=json.dumps(index), **arrays)
    print("wrote %s" % path)


# --- step 2 (torch + weightwatcher) --------------------------------------------------------


def torch_from_keras(entries):
    """A torch module holding one Keras model's kernels, named by Keras layer."""
    import torch

    model = torch.nn.Module()
    for e in entries:
        value = e["value"]
        if not e["tag"].endswith("/kernel"):
            continue
        name = e["tag"].rsplit("/", 1)[0].replace("/", "_")
        if value.ndim == 2:  # Dense (in, out) → Linear weight (out, in)
            module = torch.nn.Linear(value.shape[0], value.shape[1], bias=False)
            module.weight.data = torch.from_numpy(np.ascontiguousarray(value.T))
        elif value.ndim == 4:  # Conv2D (kh, kw, in, out) → Conv2d weight (out, in, kh, kw)
            module = torch.nn.Conv2d(value.shape[2], value.shape[3], value.shape[:2], bias=False)
            module.weight.data = torch.from_numpy(np.ascontiguousarray(value.transpose(3, 2, 0, 1)))
        else:
            continue
        model.add_module(name, module)
    return model


def digits_net():
    """A torch model (no torchvision) with Conv2d, Conv1d and Linear layers:
    a 2-D conv branch over the 8x8 image and a 1-D conv branch over its rows."""
    import torch
    from torch import nn

    class DigitsNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
            self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
            self.rows = nn.Conv1d(8, 64, 3, padding=1)
            self.fc1 = nn.Linear(64 * 4 + 64 * 8, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):  # x: (batch, 8, 8)
            a = torch.relu(self.conv2(torch.relu(self.conv1(x[:, None]))))
            a = nn.functional.adaptive_avg_pool2d(a, 2).flatten(1)
            b = torch.relu(self.rows(x)).flatten(1)
            return self.fc2(torch.relu(self.fc1(torch.cat([a, b], 1))))

    return DigitsNet()


def train_digits_net(epochs=30):
    import torch
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(x)))
    x, y = x[order], y[order]
    (xt, yt), (xv, yv) = (x[:1437], y[:1437]), (x[1437:], y[1437:])
    model = digits_net()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(epochs):
        for i in range(0, len(xt), 32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[i:i + 32]), yt[i:i + 32]).backward()
            opt.step()
    with torch.no_grad():
        acc = (model(xv).argmax(1) == yv).float().mean().item()
    print("digits_net (torch): %d epochs, validation accuracy %.3f" % (epochs, acc))
    return model


# Layouts the torch recorder gives these families (inputs down the rows,
# outputs across, conv kernels as kh x kw tiles), for this script only.
TORCH_LAYOUTS = {
    "torch.nn.Linear": lambda ndim: {"row_axes": [1], "col_axes": [0]},
    "torch.nn.Conv1d": lambda ndim: {"row_axes": [1], "col_axes": [0, 2]},
    "torch.nn.Conv2d": lambda ndim: {"row_axes": [1, 2], "col_axes": [0, 3]},
}


def ours_keras(entry):
    name = entry["tag"].rsplit("/", 1)[-1]
    value = entry["value"]
    layout = layout_lib.choose_layout(entry["class"], name, value.shape, entry["layer"])
    p = spectral.plan(layout, value.shape, entry["class"], name)
    return (spectral.compute(value, p), p.num_evals(value.shape)) if p else (None, 0)


def ours_torch(module):
    value = module.weight.detach().numpy()
    cls = "torch.nn." + type(module).__name__
    p = spectral.plan(TORCH_LAYOUTS[cls](value.ndim), value.shape, cls, "weight")
    return (spectral.compute(value, p), p.num_evals(value.shape)) if p else (None, 0)


def analyze(model):
    """weightwatcher's details, by module name (its own prints silenced)."""
    import weightwatcher

    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        details = weightwatcher.WeightWatcher(model=model).analyze()
    return {row["longname"]: row for _, row in details.iterrows()}


def ww_values(row):
    """weightwatcher's numbers as reported, and with its conv2d scaling undone."""
    if row is None:
        return None, None
    alpha = row["alpha"] if row["alpha"] > 0 else None  # -1: its fit failed
    raw = {"alpha": alpha, "stable_rank": row["stable_rank"], "sv_max": row["sv_max"],
           "alpha_weighted": row["alpha_weighted"] if alpha is not None else None,
           "num_evals": int(row["num_evals"])}
    scale = 2.0 if str(row["layer_type"]).endswith("conv2d") else 1.0  # λ scaled by 1/2
    fixed = dict(raw, sv_max=row["sv_max"] * math.sqrt(scale),
                 alpha_weighted=(alpha * math.log10(row["lambda_max"] * scale)
                                 if alpha is not None else None))
    return raw, fixed


def fmt(v, digits=4):
    return "-" if v is None else ("%.*g" % (digits, v))


def diff(a, b, relative):
    if a is None or b is None:
        return None
    return abs(a - b) / abs(b) if relative else abs(a - b)


def table(rows):
    head = ("%-10s %-22s %-17s %5s %5s | %7s %7s %8s | %7s %7s %8s | %7s %7s %7s %8s | "
            "%7s %7s %8s")
    print(head % ("model", "layer", "shape", "evals", "ww", "alpha", "ww", "Δ", "s.rank", "ww",
                  "rel Δ", "sv_max", "ww", "ww*", "rel Δ*", "alpha_w", "ww*", "Δ*"))
    worst = {"alpha": 0.0, "stable_rank": 0.0, "sv_max": 0.0, "alpha_weighted": 0.0}
    for model, layer, shape, ours, n_ours, raw, fixed in rows:
        ours = ours or dict.fromkeys(spectral.FIELDS)
        raw = raw or {"alpha": None, "stable_rank": None, "sv_max": None, "num_evals": 0}
        fixed = fixed or dict(raw, alpha_weighted=None)
        d = {"alpha": diff(ours["alpha"], raw["alpha"], False),
             "stable_rank": diff(ours["stable_rank"], raw["stable_rank"], True),
             "sv_max": diff(ours["sv_max"], fixed["sv_max"], True),
             "alpha_weighted": diff(ours["alpha_weighted"], fixed["alpha_weighted"], False)}
        for k, v in d.items():
            if v is not None:
                worst[k] = max(worst[k], v)
        print(head.replace("%7s %7s %8s |", "%7s %7s %8s |") % (
            model, layer, shape, n_ours or "-", raw["num_evals"] or "-",
            fmt(ours["alpha"]), fmt(raw["alpha"]), fmt(d["alpha"], 2),
            fmt(ours["stable_rank"]), fmt(raw["stable_rank"]), fmt(d["stable_rank"], 2),
            fmt(ours["sv_max"]), fmt(raw["sv_max"]), fmt(fixed["sv_max"]), fmt(d["sv_max"], 2),
            fmt(ours["alpha_weighted"]), fmt(fixed["alpha_weighted"]), fmt(d["alpha_weighted"], 2)))
    print("\nlargest difference where both give a value: alpha %.1e, stable_rank %.1e (relative), "
          "sv_max %.1e (relative, ww*), alpha_weighted %.1e (ww*)" % (
              worst["alpha"], worst["stable_rank"], worst["sv_max"], worst["alpha_weighted"]))


def compare(path):
    import torch
    import weightwatcher

    print("weightwatcher %s, torch %s, numpy %s" % (weightwatcher.__version__, torch.__version__,
                                                    np.__version__))
    data = np.load(path)
    index = json.loads(str(data["index"]))
    rows = []
    for run in DEMO_RUNS:
        entries = [dict(e, value=data[e["key"]]) for e in index if e["run"] == run]
        details = analyze(torch_from_keras(entries))
        for e in entries:
            if e["value"].ndim < 2:
                continue
            ours, n = ours_keras(e)
            name = e["tag"].rsplit("/", 1)[0].replace("/", "_")
            raw, fixed = ww_values(details.get(name))
            rows.append((run, e["tag"], "x".join(map(str, e["value"].shape)), ours, n, raw, fixed))
    net = train_digits_net()
    details = analyze(net)
    for name, module in net.named_modules():
        if not hasattr(module, "weight") or module.weight is None or module.weight.ndim < 2:
            continue
        ours, n = ours_torch(module)
        raw, fixed = ww_values(details.get(name))
        rows.append(("digits_net", name + "/weight", "x".join(map(str, module.weight.shape)),
                     ours, n, raw, fixed))
    print()
    table(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["export", "compare"])
    parser.add_argument("path", help="the .npz of trained weights")
    args = parser.parse_args(argv)
    export(args.path) if args.step == "export" else compare(args.path)


if __name__ == "__main__":
    main()
