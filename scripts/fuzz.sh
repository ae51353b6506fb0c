#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang (ASan + UBSan) and runs each
# for a bounded time over its seed corpus in fuzz/corpus/<target>/ (copied, so
# the repository's corpus only changes by hand). A crash, leak or sanitizer
# report fails the script and leaves the reproducer in build-fuzz/artifacts/.
# Usage: scripts/fuzz.sh [SECONDS per target, default 60]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$PARROTS_ROOT"
SECONDS_PER_TARGET="${1:-60}"
PARROTS_PACKAGES+=(clang libclang-rt-14-dev)
parrots_install_packages
CC=clang parrots_build build-fuzz -DPARROTS_FUZZ=ON -DPARROTS_TESTS=OFF -DPARROTS_CUDA=OFF
mkdir -p build-fuzz/artifacts
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export LSAN_OPTIONS="suppressions=$PARROTS_ROOT/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
for target in build-fuzz/fuzz/*; do
  [ -x "$target" ] || continue
  name="$(basename "$target")"
  work="build-fuzz/corpus/$name"
  rm -rf "$work" && mkdir -p "$work"
  if [ -d "fuzz/corpus/$name" ]; then cp -r "fuzz/corpus/$name/." "$work/"; fi
  if [ "$name" = fuzz_onnx ]; then
    # ONNX's own small test models (Debian's libonnx-testdata) as seeds
    for m in /usr/share/libonnx-testdata/data/node/test_{relu,conv_with_strides_padding,gemm_default_vector_bias,maxpool_2d_pads,concat_2d_axis_0,transpose_default,reshape_extended_dims,elu}/model.onnx \
             /usr/share/libonnx-testdata/data/pytorch-converted/test_Conv2d/model.onnx; do
      [ -f "$m" ] && cp "$m" "$work/$(basename "$(dirname "$m")").onnx"
    done
  fi
  echo "== fuzz $name for ${SECONDS_PER_TARGET}s ($(ls "$work" | wc -l) seeds)"
  if ! "$target" -max_total_time="$SECONDS_PER_TARGET" -max_len=1048576 -rss_limit_mb=2048 \
       -artifact_prefix="build-fuzz/artifacts/$name-" -print_final_stats=1 "$work" 2>"build-fuzz/$name.log"; then
    echo "fuzz $name FAILED:"; tail -40 "build-fuzz/$name.log"; status=1
  else
    grep -E "stat::number_of_executed_units|cov:" "build-fuzz/$name.log" | tail -2
  fi
done
exit $status
