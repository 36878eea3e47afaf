"""Frame precision on disk for block-reduced frames: float32 vs float16 vs
8-bit, and whether Δ views stay exact.

Trains a small real model whose kernels exceed max_cells (Adam and SGD,
lr 1e-3), records every weight after each step, block-reduces it with
layout.make_frame, then rounds the reduced frame through each candidate
encoding. For each pair of consecutive snapshots (every 1, 10 and 100
steps) compares Δ of the rounded frames with the true Δ of the reduced
frames:

  rel_err   ‖Δ_rounded − Δ_true‖ / ‖Δ_true‖ (median over tensors and pairs)
  sign      fraction of cells whose Δ sign differs (cells with |Δ_true| >
            1% of the frame's Δ absmax)

Usage: python benchmarks/precision.py  (about 4 minutes on 2 shared cores)
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from tensorboard_nnviz.core import layout as layout_lib

MAX_CELLS = 65536


def encode_u8(frame):
    """8-bit with a per-frame scale: (codes, lo, scale), frame ≈ lo + codes * scale."""
    frame = np.asarray(frame, dtype=np.float64)
    lo, hi = float(np.nanmin(frame)), float(np.nanmax(frame))
    scale = (hi - lo) / 255.0 or 1.0
    codes = np.clip(np.rint((frame - lo) / scale), 0, 255).astype(np.uint8)
    return codes, lo, scale


def decode_u8(codes, lo, scale):
    return (lo + codes.astype(np.float64) * scale).astype(np.float32)


def encodings():
    return {
        "f16": lambda f: f.astype(np.float16).astype(np.float32),
        "u8/frame": lambda f: decode_u8(*encode_u8(f)),
    }


def build_model(keras):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(128, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(128, 3, padding="same", activation="relu", name="c2")(x)  # 147k cells
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(512, activation="relu", name="d1")(x)
    x = keras.layers.Dense(512, activation="relu", name="d2")(x)  # 262k cells
    outputs = keras.layers.Dense(10, name="out")(x)
    return keras.Model(inputs, outputs)


def record(optimizer_name, steps=300):
    import keras

    model = build_model(keras)
    opt = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}[optimizer_name]
    model.compile(optimizer=opt(learning_rate=1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps * 16, 16, 16, 3)).astype("float32")
    y = (x[:, :8, :8, 0].mean(axis=(1, 2)) > 0).astype("int32") + 2 * (x[:, 8:, 8:, 1].mean(axis=(1, 2)) > 0)
    big = [(l.name, l.kernel) for l in model.layers if hasattr(l, "kernel") and np.prod(l.kernel.shape) > MAX_CELLS]
    layouts = {n: layout_lib.choose_layout(type(model.get_layer(n)).__name__, "kernel", v.shape) for n, v in big}
    frames = {n: [] for n, _ in big}

    class Rec(keras.callbacks.Callback):
        def _rec(self):
            for n, v in big:
                frames[n].append(layout_lib.make_frame(v.numpy(), layouts[n], MAX_CELLS)[0])

        def on_train_begin(self, logs=None):
            self._rec()

        def on_train_batch_end(self, batch, logs=None):
            self._rec()

    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False, callbacks=[Rec()])
    return frames


def compare(frames, every):
    rows = []
    for name, enc in encodings().items():
        errs, signs, view_errs = [], [], []
        for n, fs in frames.items():
            picked = fs[::every]
            rounded = [enc(f) for f in picked]
            for a in range(len(picked) - 1):
                true = picked[a + 1].astype(np.float64) - picked[a]
                got = rounded[a + 1].astype(np.float64) - rounded[a]
                errs.append(np.linalg.norm(got - true) / np.linalg.norm(true))
                big = np.abs(true) > 0.01 * np.abs(true).max()
                signs.append(np.mean(np.sign(got[big]) != np.sign(true[big])))
            for f, r in zip(picked, rounded):
                view_errs.append(np.abs(r - f).max() / np.abs(f).max())
        rows.append((name, every, np.median(errs), np.percentile(errs, 90), np.median(signs),
                     np.median(view_errs)))
    return rows


def main():
    print("frame precision of block-reduced kernels (max_cells %d), lr 1e-3" % MAX_CELLS)
    print("%-5s %-9s %6s %14s %14s %12s %16s" % ("opt", "encoding", "every", "Δ rel_err p50",
                                              "Δ rel_err p90", "Δ sign flip", "frame err/absmax"))
    for opt in ("adam", "sgd"):
        frames = record(opt)
        for n, fs in frames.items():
            print("  %s: %s, reduced frame %s, |frame| absmax %.3g, Δ/step absmax %.3g" % (
                opt, n, fs[0].shape, np.abs(fs[0]).max(), np.abs(fs[1] - fs[0]).max()))
        for every in (1, 10, 100):
            for name, ev, e50, e90, sg, ve in compare(frames, every):
                print("%-5s %-9s %6d %14.3g %14.3g %12.3g %16.3g" % (opt, name, ev, e50, e90, sg, ve))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
