"""One worker of a `tf.distribute.MultiWorkerMirroredStrategy` job with
NNVizCallback (run twice, by tests/test_multi_worker.py).

    TF_CONFIG='{"cluster": {"worker": [...]}, "task": {"type": "worker", "index": I}}' \\
        python tests/multi_worker_run.py LOGDIR OUT

Both workers train the same model on the same log_dir LOGDIR. Each saves
the weights it holds at every step (OUT/worker_I.npz, keys "tag@step") and
its pid (OUT/pid_I), so the test can compare the chief's snapshots with
what the other worker holds.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def main(logdir, out):
    import keras
    import tensorflow as tf

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import keras_models as km
    from tensorboard_nnviz import NNVizCallback

    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    with strategy.scope():
        model, (x, y) = km.build("mlp")
        km.compile_model(model)
        model.optimizer.build(model.trainable_variables)
    # A global batch of 8, split between the workers by the strategy.
    data = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(km.BATCH))

    @tf.function
    def train_step(batch):
        def replica_step(x, y):
            with tf.GradientTape() as tape:
                error = model(x, training=True) - y
                loss = tf.reduce_sum(tf.reduce_mean(tf.square(error), axis=1)) / km.BATCH
            grads = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply(grads, model.trainable_variables)  # all-reduced

        strategy.run(replica_step, args=batch)

    # Keras 3's model.fit fails under this strategy before training starts
    # (keras-team/keras#20585), so this is the custom loop TensorFlow's
    # multi-worker guide uses, calling the callbacks as fit would.
    rec = km.recorder()
    epochs, steps = 2, len(x) // km.BATCH
    callbacks = keras.callbacks.CallbackList(
        [NNVizCallback(logdir, snapshot_freq=2), rec], model=model, epochs=epochs, steps=steps,
        verbose=0)
    callbacks.on_train_begin()
    for epoch in range(epochs):
        callbacks.on_epoch_begin(epoch)
        for batch_index, batch in enumerate(data):
            train_step(batch)
            callbacks.on_train_batch_end(batch_index)
        callbacks.on_epoch_end(epoch)
    callbacks.on_train_end()
    np.savez(os.path.join(out, "worker_%d.npz" % index),
             **{"%s@%d" % (tag, step): value for step, weights in rec.weights.items()
                for tag, value in weights.items()})
    with open(os.path.join(out, "pid_%d" % index), "w") as f:
        f.write(str(os.getpid()))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    print("done")
