#!/usr/bin/env bash
# The project's GPU check (docs/gpu.md, ../shared/GPU.md), run on the GPU
# machine from the repository root with build-gpu/ made by scripts/build-gpu.sh:
#   1. the GPU name (nvidia-smi) and the library check of the binaries;
#   2. the gpu-labelled tests: ctest --test-dir build-gpu -L gpu;
#   3. the GPU benchmark build-gpu/bench/gpu_train, if it was built;
#   4. the PyTorch reference bench/pytorch_polynet.py, if present;
#   5. a table of the results, printed last.
# The full log goes to $OUT/gpu-check.log when $OUT is set, else ./gpu-check.log.
# Each part has its own time limit; the whole stays under about 8 minutes.
# Exit status: 0 when every test that ran passed and no part failed; 77 on a
# machine without a GPU (everything skipped, nothing checked).
# Usage: scripts/gpu-check.sh   (env, in seconds: GPU_CHECK_TEST_TIMEOUT (180),
#        GPU_CHECK_BENCH_TIMEOUT (75 a run), GPU_CHECK_TOTAL (450: no benchmark
#        starts after it); GPU_TRAIN_ARGS, TORCH_ARGS: extra benchmark arguments)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
B=build-gpu
LOG="${OUT:-$ROOT}/gpu-check.log"
mkdir -p "$(dirname "$LOG")"
: >"$LOG"
T_TESTS="${GPU_CHECK_TEST_TIMEOUT:-180}"
T_BENCH="${GPU_CHECK_BENCH_TIMEOUT:-75}"
# the whole check stops starting benchmarks after this many seconds
DEADLINE=$(( $(date +%s) + ${GPU_CHECK_TOTAL:-450} ))
failed_parts=()
rows=()

say() { echo "$*" | tee -a "$LOG"; }
# run a command with a time limit, its output to the log and the terminal
part() {
  local limit="$1"; shift
  say "\$ $*"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 124 ] && say "gpu-check: timed out after ${limit}s: $*"
  return "$rc"
}

say "== gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ) in $ROOT"
if command -v nvidia-smi >/dev/null; then
  gpu_name=$(timeout 30 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)
else
  gpu_name="(no nvidia-smi)"
fi
say "GPU: $gpu_name"
[ -d "$B" ] || { say "gpu-check: $B/ missing: run scripts/build-gpu.sh on the build machine and carry $B"; exit 2; }

# ---- the binaries' libraries -------------------------------------------------
# scripts/build-gpu.sh ships the copied libraries xz-compressed (the carry limit)
for f in "$B"/lib/*.xz; do
  [ -f "$f" ] || continue
  xz -dkf "$f" || { say "gpu-check: cannot unpack $f"; failed_parts+=("libraries"); }
done
# build-gpu/lib also serves the copied libraries' own needs (oneDNN's OpenCL
# loader), which the binaries' $ORIGIN RUNPATH does not reach.
export LD_LIBRARY_PATH="$ROOT/$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# CUDA libraries come from this machine. Where one is not on the default path
# or the /usr/local/cuda rpath, look in the usual places (PyTorch's wheels
# carry cuDNN, cuBLAS and NCCL too) and add the folder to LD_LIBRARY_PATH.
missing_libs() {
  for f in "$B/parrots" "$B"/tests/* "$B"/bench/*; do
    [ -f "$f" ] && [ -x "$f" ] && ldd "$f" 2>/dev/null | awk '/not found/ {print $1}'
  done | sort -u
}
for lib in $(missing_libs); do
  dir=$(find /usr/local/cuda*/ /usr/lib/x86_64-linux-gnu /usr/lib64 /opt \
              $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null) \
              -name "$lib" -print -quit 2>/dev/null | xargs -r dirname)
  if [ -n "$dir" ]; then
    say "gpu-check: $lib found in $dir (added to LD_LIBRARY_PATH)"
    export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
done
still=$(missing_libs | tr '\n' ' ')
[ -n "$still" ] && { say "gpu-check: libraries not found: $still"; failed_parts+=("libraries"); }
ldd "$B/parrots" >>"$LOG" 2>&1

# ---- the CTest files: point them at this checkout ----------------------------
# They hold absolute paths of the machine that built them (SOURCE_DIR).
built_root=$(cat "$B/SOURCE_DIR" 2>/dev/null || echo "$ROOT")
if [ "$built_root" != "$ROOT" ]; then
  say "gpu-check: test paths $built_root -> $ROOT"
  find "$B" -name CTestTestfile.cmake -exec sed -i "s#$built_root/#$ROOT/#g; s#$built_root\"#$ROOT\"#g; s#$built_root;#$ROOT;#g" {} +
  echo "$ROOT" >"$B/SOURCE_DIR"
fi

# ---- 1. GPU tests ------------------------------------------------------------
say ""
say "== GPU tests (ctest -L gpu, ${T_TESTS}s)"
ctest_log="$B/ctest-gpu.log"
part "$T_TESTS" ctest --test-dir "$B" -L gpu --output-on-failure --timeout 150 -j 1 \
  --output-junit "$ROOT/$B/ctest-gpu.xml" | tee "$ctest_log"
ctest_rc=${PIPESTATUS[0]}
n_total=$(grep -c -E '^ *[0-9]+/[0-9]+ Test +#' "$ctest_log" || true)
n_pass=$(grep -c -E '^ *[0-9]+/[0-9]+ Test +#.* +Passed +' "$ctest_log" || true)
n_skip=$(grep -c -E '^ *[0-9]+/[0-9]+ Test +#.*\*\*\*Skipped' "$ctest_log" || true)
n_fail=$(( n_total - n_pass - n_skip ))
[ "$ctest_rc" -ne 0 ] && failed_parts+=("tests (ctest status $ctest_rc)")
[ "$n_total" -eq 0 ] && failed_parts+=("tests (none ran)")
# with a GPU present, a check where nothing passed checked nothing
if command -v nvidia-smi >/dev/null && [ "$n_pass" -eq 0 ]; then failed_parts+=("tests (none passed on a GPU machine)"); fi
rows+=("GPU tests|$n_pass passed, $n_fail failed, $n_skip skipped of $n_total")
while IFS= read -r l; do rows+=("  ${l#*Test }|"); done < <(grep -E 'Test +#.*(Failed|\*\*\*|Timeout|Not Run)' "$ctest_log" | grep -v Skipped || true)

# ---- 2 and 3. benchmarks: Parrots, then PyTorch, each run one JSON line -------
# Both print {"framework", "mode", "precision", "batch", "images_per_s",
# "step_ms_median", "peak_mem_gib", ...}; they are collected in bench.jsonl.
: >"$B/bench.jsonl"
bench_run() { # LABEL CMD...: runs it, keeps its JSON line
  local label="$1"; shift
  local left=$(( DEADLINE - $(date +%s) ))
  local limit=$(( left < T_BENCH ? left : T_BENCH ))
  if [ "$limit" -lt 20 ]; then
    say "gpu-check: no time left for $label (skipped)"; rows+=("$label|skipped: out of time"); return
  fi
  part "$limit" "$@" | tee "$B/bench.out"
  local rc=${PIPESTATUS[0]}
  local json; json=$(grep '^{' "$B/bench.out" | tail -1)
  if [ "$rc" -eq 77 ]; then rows+=("$label|skipped: $(grep -m1 SKIP "$B/bench.out")")
  elif [ "$rc" -ne 0 ] || [ -z "$json" ]; then failed_parts+=("$label (status $rc)"); rows+=("$label|FAILED (status $rc)")
  else echo "$json" >>"$B/bench.jsonl"
  fi
}
say ""
if [ -x "$B/bench/gpu_train" ]; then
  say "== Parrots GPU benchmark ($B/bench/gpu_train, ${T_BENCH}s a run)"
  bench_run "parrots train fp32" "$B/bench/gpu_train" --batch 32 ${GPU_TRAIN_ARGS:-}
  if "$B/bench/gpu_train" --help 2>&1 | grep -q -- '--precision'; then
    bench_run "parrots train bf16" "$B/bench/gpu_train" --batch 32 --precision bf16 ${GPU_TRAIN_ARGS:-}
  fi
  bench_run "parrots infer fp32" "$B/bench/gpu_train" --batch 32 --infer ${GPU_TRAIN_ARGS:-}
else
  say "== Parrots GPU benchmark: skipped ($B/bench/gpu_train not built: add bench/gpu_train.c and rerun scripts/build-gpu.sh)"
  rows+=("parrots benchmark|not built (skipped)")
fi
say ""
if [ -f bench/pytorch_polynet.py ]; then
  say "== PyTorch reference (bench/pytorch_polynet.py, ${T_BENCH}s a run)"
  bench_run "pytorch train fp32" python3 bench/pytorch_polynet.py --train --batch 32 ${TORCH_ARGS:-}
  bench_run "pytorch train bf16" python3 bench/pytorch_polynet.py --train --bf16 --batch 32 ${TORCH_ARGS:-}
  bench_run "pytorch infer fp32" python3 bench/pytorch_polynet.py --infer --batch 32 ${TORCH_ARGS:-}
else
  say "== PyTorch reference: skipped (bench/pytorch_polynet.py not present)"
  rows+=("pytorch reference|not present (skipped)")
fi

# ---- the table -----------------------------------------------------------------
say ""
say "== gpu-check summary ($gpu_name)"
for r in "${rows[@]}"; do
  printf '%-40s %s\n' "${r%%|*}" "${r#*|}" | tee -a "$LOG"
done
python3 - "$B/bench.jsonl" <<'PY' 2>&1 | tee -a "$LOG"
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if runs:
    print(f"{'benchmark (batch)':<30} {'images/s':>9} {'step ms':>9} {'peak GiB':>9}")
    key = lambda r: (r.get("mode"), r.get("precision"))
    for r in runs:
        name = f"{r.get('framework')} {r.get('mode')} {r.get('precision')} ({r.get('batch')})"
        print(f"{name:<30} {r.get('images_per_s', 0):>9.1f} {r.get('step_ms_median', 0):>9.2f} {r.get('peak_mem_gib', 0):>9.3f}")
    par = {key(r): r for r in runs if r.get("framework") == "parrots"}
    ref = {key(r): r for r in runs if r.get("framework") != "parrots"}
    for k in par:
        if k in ref and ref[k].get("images_per_s") and ref[k].get("peak_mem_gib"):
            p, t = par[k], ref[k]
            print(f"parrots / pytorch {k[0]} {k[1]}: {p['images_per_s'] / t['images_per_s']:.2f}x images/s, "
                  f"{p['peak_mem_gib'] / t['peak_mem_gib']:.2f}x peak memory")
PY
if [ ${#failed_parts[@]} -gt 0 ]; then
  say "gpu-check: FAILED: ${failed_parts[*]}"
  say "full log: $LOG"
  exit 1
fi
if ! command -v nvidia-smi >/dev/null; then
  say "gpu-check: no GPU here (no nvidia-smi): every part that needs one skipped, nothing was checked (full log: $LOG)"
  exit 77
fi
say "gpu-check: passed (full log: $LOG)"
