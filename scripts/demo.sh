#!/usr/bin/env bash
# Installs what is missing, builds, then the main job: checks PolyNet and runs
# PolyNet-mini forward on a batch, printing the result summary and timing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$PARROTS_ROOT"

parrots_setup build
echo
echo "== parrots check examples/polynet.yaml"
build/parrots check examples/polynet.yaml
echo
echo "== parrots run examples/polynet-mini.yaml --batch 32"
build/parrots run examples/polynet-mini.yaml --batch 32 --iters 10
