"""An in-process data provider (and reader) over a logdir, for the CLI and tests.

The plugin never uses this: inside TensorBoard it reads through
`context.data_provider`, whichever ingester serves it. The `nnviz` command
has no TensorBoard around it, so it builds TensorBoard's own multiplexer and
`MultiplexerDataProvider` here and hands that to the same `NNVizReader`.
"""

from tensorboard_nnviz.core import format as fmt


def local_data_provider(logdir):
    """Loads `logdir` in-process, the samples the plugin keeps kept
    (format.SAMPLES_PER_PLUGIN; the reader reads the other frames from
    disk, `NNVizReader(provider, logdir=...)`; a URL logdir keeps them all).

    Returns:
      `(provider, experiment_id)`: a TensorBoard `MultiplexerDataProvider`
      over an `EventMultiplexer` that has read the logdir once.
    """
    from tensorboard.backend.event_processing import data_ingester
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer

    guidance = dict(data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE)
    guidance.update(samples_per_plugin(logdir))
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE,
        tensor_size_guidance=guidance,
    )
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    return data_provider.MultiplexerDataProvider(multiplexer, str(logdir)), ""


def samples_per_plugin(logdir):
    """Samples per tag to keep in memory for `logdir`: the plugin's, except
    that a URL logdir, which the reader cannot read itself, keeps them all."""
    samples = dict(fmt.SAMPLES_PER_PLUGIN)
    if "://" in str(logdir):
        samples = dict.fromkeys(samples, 0)
    return samples


def local_reader(logdir):
    """`(reader, provider, experiment_id)`: an `NNVizReader` over
    `local_data_provider(logdir)`, reading frames from the event files
    itself where `logdir` is a local directory."""
    from tensorboard_nnviz.serve import reader

    provider, eid = local_data_provider(logdir)
    logdir = str(logdir)
    return reader.NNVizReader(provider, logdir=None if "://" in logdir else logdir,
                              samples_per_plugin=samples_per_plugin(logdir)), provider, eid
