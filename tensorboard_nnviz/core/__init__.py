"""The format and the maths both sides share: what is on disk (format), how
a tensor becomes a frame (layout, layout_torch) and spectral maths. Imports
no framework and nothing of record/, serve/ or cli/ (docs/architecture.md,
"Modules")."""
