"""The `nnviz` command: demo, serve, export, inspect, findings, compact,
render. May use every other folder (docs/architecture.md, "Modules")."""

from tensorboard_nnviz.cli.commands import main

__all__ = ["main"]
