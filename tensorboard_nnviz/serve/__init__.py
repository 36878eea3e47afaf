"""The TensorBoard side: the plugin, its HTTP adapter and errors, the
reader over TensorBoard's data provider, and findings. Runs inside
TensorBoard; never imports a framework or record/ (docs/architecture.md,
"Modules")."""
