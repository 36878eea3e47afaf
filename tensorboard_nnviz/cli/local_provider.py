"""An in-process data provider over a logdir, for the CLI and tests.

The plugin never uses this: inside TensorBoard it reads through
`context.data_provider`, whichever ingester serves it. The `nnviz` command
has no TensorBoard around it, so it builds TensorBoard's own multiplexer and
`MultiplexerDataProvider` here and hands that to the same `NNVizReader`.
"""

from tensorboard_nnviz.core import format as fmt


def local_data_provider(logdir):
    """Loads `logdir` in-process, every nnviz sample kept.

    Returns:
      `(provider, experiment_id)`: a TensorBoard `MultiplexerDataProvider`
      over an `EventMultiplexer` that has read the logdir once.
    """
    from tensorboard.backend.event_processing import data_ingester
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer

    guidance = dict(data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE)
    guidance[fmt.PLUGIN_NAME] = 0  # keep all
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE,
        tensor_size_guidance=guidance,
    )
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    return data_provider.MultiplexerDataProvider(multiplexer, str(logdir)), ""
