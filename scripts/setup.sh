#!/usr/bin/env bash
# Shared set-up for scripts/test.sh and scripts/demo.sh: installs the Debian
# packages the build needs (only those missing), then configures and builds.
# Usage: source scripts/setup.sh; parrots_setup BUILD_DIR [cmake options...]
set -euo pipefail

PARROTS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PARROTS_PACKAGES=(cmake make gcc pkg-config libyaml-dev check libdnnl-dev
  zlib1g-dev dataset-fashion-mnist protobuf-c-compiler libprotobuf-c-dev libonnx-dev
  libonnx-testdata openmpi-bin libopenmpi-dev)

parrots_install_packages() {
  local missing=()
  for p in "${PARROTS_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  echo "setup: installing missing packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

parrots_build() {
  local dir="$1"; shift
  cmake -S "$PARROTS_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
  cmake --build "$dir" -j "$(nproc)"
}

parrots_setup() {
  parrots_install_packages
  parrots_build "$@"
}
