"""The nnviz demo: four runs on scikit-learn's digits that tell a story.

    python demo/digits.py [--logdir demo_logs] [--quick] [--retrain]
    (or `nnviz demo`, which then serves TensorBoard on them)

Runs (one nnviz run per directory; Keras's TensorBoard callback writes its
loss curves into that run's train/ and validation/ subdirectories):

- mlp_tuned: a 64-64-32-10 MLP (leaky ReLU), SGD with momentum at lr 0.05.
  Learns; the weights grow smoothly and settle.
- mlp_high_lr: the same MLP, same seed and data, at lr 0.5. The updates
  feed on themselves: within a few dozen steps the weights blow up and
  every tensor turns NaN (the panel paints NaN cells in its NaN colour
  and counts them), and the loss goes NaN.
- cnn: a small CNN whose first layer has 16 3x3 kernels; they start as
  noise and become oriented stroke and edge detectors.
- cnn_torch: the same CNN in PyTorch (`tensorboard_nnviz.torch.watch`), the
  same data, batches and optimizer, so the panel compares a Keras run and
  a torch run side by side (skipped when torch is not installed). Its loss
  curves are written with torch's own SummaryWriter under the names Keras
  uses, so the Scalars tab overlays them.

The digits (1797 8x8 images) ship inside scikit-learn: nothing is downloaded.
Seeds are fixed, so the runs are reproducible on a given machine.
"""

import argparse
import os
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

BATCH = 32
SEED = 0
DONE_MARKER = ".nnviz_demo_complete"  # a run with it is not trained again


def load_data():
    """Digits scaled to [0, 1]: a fixed split of 1437 train / 360 validation."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")
    y = digits.target.astype("int32")
    order = np.random.default_rng(SEED).permutation(len(x))
    x, y = x[order], y[order]
    n = 1437
    return (x[:n], y[:n]), (x[n:], y[n:])


def mlp(keras):
    return keras.Sequential(
        [
            keras.Input((8, 8), name="pixels"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(64, activation="leaky_relu", name="hidden1"),
            keras.layers.Dense(32, activation="leaky_relu", name="hidden2"),
            keras.layers.Dense(10, activation="softmax", name="output"),
        ],
        name="mlp",
    )


def cnn(keras):
    return keras.Sequential(
        [
            keras.Input((8, 8, 1), name="pixels"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(2, name="pool1"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(10, activation="softmax", name="output"),
        ],
        name="cnn",
    )


def torch_cnn():
    """cnn's twin in torch: conv 1→16 3x3 same, max-pool, conv 16→32, global
    average pool, linear 32→10 (the softmax is in the loss)."""
    import collections

    from torch import nn

    return nn.Sequential(collections.OrderedDict([
        ("conv1", nn.Conv2d(1, 16, 3, padding=1)), ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(16, 32, 3, padding=1)), ("relu2", nn.ReLU()),
        ("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
        ("output", nn.Linear(32, 10)),
    ]))


def _torch_adam(params, lr):
    import torch

    return torch.optim.Adam(params, lr)


# name: (builder, optimizer factory, epochs, quick epochs, what it shows)
RUNS = {
    "mlp_tuned": (
        mlp, lambda keras: keras.optimizers.SGD(0.05, momentum=0.9), 20, 3,
        "MLP, SGD lr 0.05: learns, weights settle",
    ),
    "mlp_high_lr": (
        mlp, lambda keras: keras.optimizers.SGD(0.5, momentum=0.9), 20, 3,
        "same MLP, lr 0.5: weights blow up, then NaN",
    ),
    "cnn": (
        cnn, lambda keras: keras.optimizers.Adam(0.01), 20, 3,
        "small CNN: first-layer 3x3 kernels become stroke detectors",
    ),
    "cnn_torch": (
        torch_cnn, lambda params: _torch_adam(params, 0.01), 20, 3,
        "the same CNN in PyTorch, recorded by tensorboard_nnviz.torch.watch",
    ),
}
TORCH_RUNS = {"cnn_torch"}
SNAPSHOT_FREQ = 5  # steps between snapshots (45 steps per epoch)


def train(name, logdir, quick=False):
    import keras

    from tensorboard_nnviz import NNVizCallback

    builder, optimizer, epochs, quick_epochs, _ = RUNS[name]
    (x, y), (xv, yv) = load_data()
    if builder is cnn:
        x, xv = x[..., None], xv[..., None]
    keras.utils.set_random_seed(SEED)
    model = builder(keras)
    model.compile(optimizer=optimizer(keras), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    run_dir = os.path.join(logdir, name)
    callbacks = [
        NNVizCallback(run_dir, snapshot_freq=SNAPSHOT_FREQ),
        # Writes run_dir/train and run_dir/validation: separate runs.
        keras.callbacks.TensorBoard(run_dir, write_graph=False),
    ]
    print("\n== %s: %s" % (name, RUNS[name][4]), flush=True)
    history = model.fit(x, y, batch_size=BATCH, epochs=quick_epochs if quick else epochs,
                        validation_data=(xv, yv), callbacks=callbacks, verbose=1)
    return history.history


def train_torch(name, logdir, quick=False):
    """A PyTorch training loop with `watch`; loss and accuracy per epoch go to
    <run>/train and <run>/validation as Keras's TensorBoard callback writes
    them (`epoch_loss`, `epoch_accuracy`)."""
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from tensorboard_nnviz.torch import watch

    builder, optimizer, epochs, quick_epochs, _ = RUNS[name]
    (x, y), (xv, yv) = load_data()
    x, xv = torch.from_numpy(x[:, None]), torch.from_numpy(xv[:, None])
    y, yv = torch.from_numpy(y).long(), torch.from_numpy(yv).long()
    torch.manual_seed(SEED)
    model = builder()
    opt = optimizer(model.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()
    run_dir = os.path.join(logdir, name)
    writers = {split: SummaryWriter(os.path.join(run_dir, split)) for split in ("train", "validation")}
    history = {"loss": [], "val_accuracy": []}
    print("\n== %s: %s" % (name, RUNS[name][4]), flush=True)
    shuffle = torch.Generator().manual_seed(SEED)
    with watch(model, run_dir, optimizer=opt, snapshot_freq=SNAPSHOT_FREQ):
        for epoch in range(quick_epochs if quick else epochs):
            model.train()
            total, correct, count = 0.0, 0, 0
            for batch in torch.randperm(len(x), generator=shuffle).split(BATCH):
                opt.zero_grad()
                logits = model(x[batch])
                loss = loss_fn(logits, y[batch])
                loss.backward()
                opt.step()  # watch counts this step
                total += loss.item() * len(batch)
                correct += int((logits.argmax(1) == y[batch]).sum())
                count += len(batch)
            model.eval()
            with torch.no_grad():
                val_logits = model(xv)
            logs = {"train": (total / count, correct / count),
                    "validation": (float(loss_fn(val_logits, yv)),
                                   float((val_logits.argmax(1) == yv).float().mean()))}
            for split, (loss_value, accuracy) in logs.items():
                writers[split].add_scalar("epoch_loss", loss_value, epoch)
                writers[split].add_scalar("epoch_accuracy", accuracy, epoch)
            history["loss"].append(logs["train"][0])
            history["val_accuracy"].append(logs["validation"][1])
            print("epoch %d: loss %.4f, accuracy %.3f, val_accuracy %.3f"
                  % (epoch + 1, logs["train"][0], logs["train"][1], logs["validation"][1]),
                  flush=True)
    for w in writers.values():
        w.close()
    return history


def _torch_available():
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _prepare(run_dir, retrain):
    """False if the run is already complete. A partial run of ours is cleared;
    anything else in the way stops the demo rather than being deleted."""
    if not os.path.isdir(run_dir):
        return True
    if os.path.exists(os.path.join(run_dir, DONE_MARKER)) and not retrain:
        return False
    ours = all(n.startswith("events.out.tfevents.") or n in ("train", "validation", DONE_MARKER)
               for n in os.listdir(run_dir))
    if not ours:
        sys.exit("demo: %s holds files the demo did not write; choose another --logdir"
                 % run_dir)
    shutil.rmtree(run_dir)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logdir", default="demo_logs")
    parser.add_argument("--quick", action="store_true", help="3 epochs per run")
    parser.add_argument("--retrain", action="store_true",
                        help="train again runs already complete in LOGDIR")
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=list(RUNS))
    args = parser.parse_args(argv)
    start, trained = time.time(), 0
    for name in args.runs:
        run_dir = os.path.join(args.logdir, name)
        if not _prepare(run_dir, args.retrain):
            print("== %s: already trained in %s (--retrain to train again)" % (name, run_dir))
            continue
        if name in TORCH_RUNS and not _torch_available():
            print("== %s: skipped, PyTorch is not installed (pip install torch)" % name)
            continue
        trainer = train_torch if name in TORCH_RUNS else train
        history = trainer(name, args.logdir, quick=args.quick)
        print("== %s: final loss %.4g, validation accuracy %.3f"
              % (name, history["loss"][-1], history["val_accuracy"][-1]), flush=True)
        with open(os.path.join(run_dir, DONE_MARKER), "w") as f:
            f.write("complete\n")
        trained += 1
    if trained:
        print("\ndemo: trained %d runs in %.0f s; runs in %s"
              % (trained, time.time() - start, args.logdir))


if __name__ == "__main__":
    main()
