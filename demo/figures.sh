#!/usr/bin/env bash
# Draws the README's figures from the demo runs, and writes the README's
# table of the demo's numbers from the same runs: `nnviz demo --no-serve` first.
# Usage: demo/figures.sh [LOGDIR] [OUTDIR]
set -euo pipefail
HERE=$(dirname "$0")
LOGDIR=${1:-demo_logs}
OUT=${2:-demo/figures}
mkdir -p "$OUT"
nnviz() { "$HERE/../.venv/bin/nnviz" "$@"; }
nnviz export "$LOGDIR" --run mlp_tuned -o "$OUT/mlp_tuned.png"
nnviz export "$LOGDIR" --run mlp_high_lr --step 25 --scale tensor -o "$OUT/mlp_high_lr_step25.png"
nnviz export "$LOGDIR" --run mlp_high_lr --steps 0:40 --fps 2 -o "$OUT/mlp_high_lr.gif"
nnviz export "$LOGDIR" --run cnn --tag conv1/kernel --every 4 -o "$OUT/cnn_conv1.gif"
nnviz export "$LOGDIR" --run cnn --tag conv1/kernel --step 0 -o "$OUT/cnn_conv1_step0.png"
nnviz export "$LOGDIR" --run cnn --tag conv1/kernel -o "$OUT/cnn_conv1_last.png"
"$HERE/../.venv/bin/python" "$HERE/readme_numbers.py" "$LOGDIR" --readme "$HERE/../README.md"
