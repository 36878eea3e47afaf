"""Keras's distribution API on JAX with NNVizCallback, in a fresh process.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 KERAS_BACKEND=jax \\
        python tests/jax_distribution_run.py devices OUT
    XLA_FLAGS=--xla_force_host_platform_device_count=4 KERAS_BACKEND=jax \\
        python tests/jax_distribution_run.py processes OUT PROCESS_ID PORT   # two of them

`devices`: one process, 8 virtual CPU devices; trains the same model from
the same seed three times into OUT/<name> (spectral=True): `single` (one
device), `data` (DataParallel over the 8) and `model` (ModelParallel, a
LayoutMap that shards the embedding's rows, the Dense kernels' columns,
a bias, the attention kernels' heads 4 ways, and one Dense kernel along
both axes 8 ways). For each it saves the weights at the snapshot steps,
read whole through JAX (OUT/<name>.npz), and how many distinct parts each
weight is split into (OUT/<name>.json). Then OUT/model_gathered: the run
the writer makes from `model`'s whole weights (the gathered path).

`processes`: two processes of 4 devices joined by `jax.distributed`, one
mesh of 8 whose "model" axis spans both processes, so process 0 holds only
half of `dense/kernel` and its snapshots need the other process's shards.
Both train with the callback on the same log_dir OUT/run; each saves its
own shards of every weight at the snapshot steps (OUT/shards_<id>.npz) and
its pid (OUT/pid_<id>).

The flags must be set before JAX starts, hence a process of its own
(tests/test_jax_distribution.py).
"""

import json
import os
import sys

import numpy as np

SAMPLES, BATCH, FREQ = 32, 8, 2  # 4 steps, snapshots at 0, 2, 4
QUANTITIES = ("m_hat", "v_rms")  # Adam's, with frames


VOCAB = 20


def data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, (SAMPLES, 5)).astype("int32")
    y = rng.standard_normal((SAMPLES, 4)).astype("float32")
    return x, y


def build():
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((5,), dtype="int32")
    e = keras.layers.Embedding(VOCAB, 8, name="embed")(x)
    h = keras.layers.MultiHeadAttention(num_heads=4, key_dim=2, name="mha")(e, e)
    h = keras.layers.GlobalAveragePooling1D(name="pool")(h)
    h = keras.layers.Dense(8, activation="tanh", name="dense")(h)
    y = keras.layers.Dense(4, name="dense_1")(h)
    model = keras.Model(x, y, name="sharded")
    # Adam, for its slots (the quantities m_hat and v_rms, sharded as their
    # weights); a large epsilon, so rounding of a near-zero gradient is not
    # turned into a step.
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01, epsilon=1e-3), loss="mse")
    return model


class Record:
    """A callback after NNVizCallback's: at each snapshot step, `take(tag,
    variable)` for every weight; what it returns is kept under (tag, step)."""

    def __init__(self, take):
        import keras

        from tensorboard_nnviz.record import structure

        record = self

        class Callback(keras.callbacks.Callback):
            def _record(self):
                it = int(np.asarray(self.model.optimizer.iterations))
                if it % FREQ == 0:
                    for ref in structure.weight_refs(self.model):
                        record.values[(ref.tag, it)] = take(ref.tag, ref.variable)

            def on_train_begin(self, logs=None):
                self._record()

            def on_train_batch_end(self, batch, logs=None):
                self._record()

        self.values = {}
        self.callback = Callback()


def devices(out):
    import jax
    import keras

    from tensorboard_nnviz import NNVizCallback

    assert len(jax.devices()) == 8, jax.devices()
    mesh = keras.distribution.DeviceMesh((2, 4), ["batch", "model"], jax.devices())
    layout = keras.distribution.LayoutMap(mesh)
    layout[".*embed/embeddings"] = ("model", None)
    layout[".*dense/kernel"] = (None, "model")
    layout[".*dense/bias"] = ("model",)
    layout[".*dense_1/kernel"] = ("batch", "model")
    layout[".*mha/(query|key|value)/kernel"] = (None, "model", None)
    layout[".*mha/attention_output/kernel"] = ("model", None, None)
    runs = {
        "single": None,
        "data": keras.distribution.DataParallel(devices=jax.devices()),
        "model": keras.distribution.ModelParallel(layout_map=layout, batch_dim_name="batch"),
    }
    x, y = data()
    for name, distribution in runs.items():
        keras.distribution.set_distribution(distribution)
        model = build()
        parts = {}

        def whole(tag, variable):
            value = variable.value
            parts[tag] = len({str(s.index) for s in value.addressable_shards})
            return np.array(value)  # JAX's own gather

        record = Record(whole)
        callback = NNVizCallback(os.path.join(out, name), snapshot_freq=FREQ, spectral=True,
                                 quantities=QUANTITIES, quantity_frames=True)
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
                  callbacks=[callback, record.callback])
        # Sharded weights are measured where they lie, not gathered.
        assert (callback.recorder.shards is not None) == (name == "model"), name
        if name == "model":  # and so are their slots
            assert ("dense/kernel", "m_hat") in callback.recorder.shards.state
        np.savez(os.path.join(out, name + ".npz"),
                 **{"%s@%d" % key: value for key, value in record.values.items()})
        with open(os.path.join(out, name + ".json"), "w") as f:
            json.dump(parts, f)
    keras.distribution.set_distribution(None)
    write_gathered(os.path.join(out, "model_gathered"), model, record.values)


def write_gathered(log_dir, model, values):
    """What the writer makes of whole weights: `values` {(tag, step): array}."""
    from tensorboard_nnviz.record import structure
    from tensorboard_nnviz.record import writer as writer_lib

    refs = structure.weight_refs(model)
    writer = writer_lib.SnapshotWriter(log_dir, spectral=True)
    for step in sorted({step for _, step in values}):
        writer.write(step, [writer_lib.Weight(r.tag, values[(r.tag, step)], r.layer_class,
                                              r.layer_name, structure.dtype_name(r.variable))
                            for r in refs])
    writer.close()


def processes(out, process_id, port):
    import jax

    jax.distributed.initialize(coordinator_address="127.0.0.1:%d" % port, num_processes=2,
                               process_id=process_id)
    import keras

    from tensorboard_nnviz import NNVizCallback

    assert jax.process_count() == 2 and len(jax.devices()) == 8
    mine = [d for d in jax.devices() if d.process_index == 0]
    theirs = [d for d in jax.devices() if d.process_index == 1]
    # Each row of the mesh holds devices of both processes: "model" spans them.
    grid = np.array([mine[:2] + theirs[:2], mine[2:] + theirs[2:]])
    mesh = keras.distribution.DeviceMesh((2, 4), ["batch", "model"], grid.reshape(-1).tolist())
    layout = keras.distribution.LayoutMap(mesh)
    layout[".*dense/kernel"] = (None, "model")  # halves on each process
    layout[".*dense_1/kernel"] = ("batch", None)  # each process holds all of it
    distribution = keras.distribution.ModelParallel(layout_map=layout, batch_dim_name="batch")
    # Every process holds devices of both batch rows: each feeds the whole batch.
    distribution.auto_shard_dataset = False
    keras.distribution.set_distribution(distribution)
    model = build()

    def local_shards(tag, variable):
        return [(json.dumps([[s.start, s.stop] for s in shard.index]), np.array(shard.data))
                for shard in variable.value.addressable_shards]

    record = Record(local_shards)
    x, y = data()
    callback = NNVizCallback(os.path.join(out, "run"), snapshot_freq=FREQ,
                             quantities=QUANTITIES)
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[callback, record.callback])
    # dense/kernel was measured where it lies: no process gathered it.
    assert callback.recorder.shards is not None
    arrays = {}
    for (tag, step), shards in record.values.items():
        for index, value in shards:
            arrays["%s@%d@%s" % (tag, step, index)] = value
    np.savez(os.path.join(out, "shards_%d.npz" % process_id), **arrays)
    with open(os.path.join(out, "pid_%d" % process_id), "w") as f:
        f.write(str(os.getpid()))


if __name__ == "__main__":
    if sys.argv[1] == "devices":
        devices(sys.argv[2])
    else:
        processes(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    print("done", sys.argv[1])
