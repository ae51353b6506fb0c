#!/usr/bin/env bash
# Installs what is missing, builds, then the main job: trains the Fashion-MNIST CNN
# (examples/fashion-cnn.yaml) on the real dataset, evaluates the saved weights, and
# checks the full PolyNet graph. Outputs (metrics, plot, weights) go to demo-out/.
# Extra arguments are passed to `parrots train` (e.g. --epochs 2).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$PARROTS_ROOT"

parrots_setup build
out=demo-out
mkdir -p "$out"
echo
echo "== parrots check examples/polynet.yaml"
build/parrots check examples/polynet.yaml
echo
echo "== parrots train examples/fashion-cnn.yaml (Fashion-MNIST, 60,000 training images)"
start=$(date +%s)
build/parrots train examples/fashion-cnn.yaml --metrics "$out/fashion-cnn.jsonl" \
  --plot "$out/fashion-cnn.png" --save "$out/fashion-cnn.prtw" "$@"
echo "trained in $(( $(date +%s) - start )) s; curves in $out/fashion-cnn.png, metrics in $out/fashion-cnn.jsonl"
echo
echo "== parrots eval examples/fashion-cnn.yaml --weights $out/fashion-cnn.prtw"
build/parrots eval examples/fashion-cnn.yaml --weights "$out/fashion-cnn.prtw"
