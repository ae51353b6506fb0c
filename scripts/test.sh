#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite: first the
# normal build, then the same suite under AddressSanitizer and UBSan, then the
# fuzz targets for PARROTS_FUZZ_SECONDS (default 30) each.
# Usage: scripts/test.sh [ctest options, e.g. -L unit or -R yaml]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$PARROTS_ROOT"

# The command-line tests also use python3 (to read --json output and write raw input).
PARROTS_PACKAGES+=(python3)
parrots_setup build -DPARROTS_WERROR=ON
echo "== test suite (release build)"
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"

parrots_build build-asan -DPARROTS_WERROR=ON -DPARROTS_SANITIZE=ON
echo "== test suite under AddressSanitizer + UBSan"
# OpenMP's thread pool lives until exit by design; leaks are still checked in our code.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export LSAN_OPTIONS="suppressions=$PARROTS_ROOT/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir build-asan --output-on-failure -j "$(nproc)" "$@"

# The file loaders (checkpoints, programs) under libFuzzer for a bounded time,
# from the seed corpora in fuzz/corpus/.
if compgen -G "$PARROTS_ROOT/fuzz/*.c" > /dev/null; then
  echo "== fuzzing the file loaders"
  bash "$PARROTS_ROOT/scripts/fuzz.sh" "${PARROTS_FUZZ_SECONDS:-30}"
fi
