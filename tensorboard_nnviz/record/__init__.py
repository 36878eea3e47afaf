"""The training side: the recorders (Keras callback, torch `watch`,
Lightning), what they name and when (structure, schedule), and the writer
that measures and writes snapshots (stats, budget). Runs in the training
process; the only folder that imports a framework (docs/architecture.md,
"Modules")."""
