# `parrots train --device cuda` where it cannot run: without a GPU (or in a build
# without CUDA) it stops before training with the device error, printing nothing
# else and writing no file; the option combinations that cannot work on a GPU are
# usage errors on every machine. (Training on a GPU itself: tests/test_cuda_train.c.)
source "$(dirname "$0")/lib.bash" "$@"

NET="$ROOT/examples/fashion-cnn.yaml"
WORK="$TMP/work"
mkdir "$WORK"
OUTS=(--metrics "$WORK/m.jsonl" --plot "$WORK/p.svg" --save "$WORK/w.prtw" --checkpoint-dir "$WORK/ck"
      --save-every 1 --timeline "$WORK/t.json")

check() { # check DESCRIPTION COMMAND...
  checks=$((checks + 1))
  local what="$1"; shift
  if ! "$@" >"$TMP/check.out" 2>&1; then
    echo "FAIL: $what"; sed 's/^/  | /' "$TMP/check.out" | head -8
    failures=$((failures + 1))
  fi
}

# exactly one line on stderr, the device error of GPU N, nothing on stdout, no file
device_error() { # device_error CMD N
  local cmd="$1" n="$2"
  [ ! -s "$TMP/out" ] || { echo "stdout:"; cat "$TMP/out"; return 1; }
  [ "$(wc -l <"$TMP/err")" -eq 1 ] || { echo "stderr is not one line:"; cat "$TMP/err"; return 1; }
  grep -Eq "^parrots $cmd: CUDA device $n: (.* \(cuda[A-Za-z]+\)|this build of Parrots has no CUDA support .*)\$" \
    "$TMP/err" || { echo "not the device error:"; cat "$TMP/err"; return 1; }
  [ -z "$(ls -A "$WORK")" ] || { echo "files written:"; ls -la "$WORK"; return 1; }
}

expect_rc 0 "$PARROTS" train --help
expect_in "$TMP/out" "--device DEV"
expect_in "$TMP/out" "mpi, nccl (GPUs only)"
expect_in "$TMP/out" "--device cpu|cuda[:N]"

# ---- usage errors, on every machine ------------------------------------------------
expect_rc 2 "$PARROTS" train "$NET" --device tpu "${OUTS[@]}"
expect_in "$TMP/err" "parrots train: --device 'tpu': expected cpu, cuda or cuda:N"
expect_rc 2 "$PARROTS" train "$NET" --device cuda:x "${OUTS[@]}"
expect_in "$TMP/err" "parrots train: --device 'cuda:x': expected cpu, cuda or cuda:N"
expect_rc 2 "$PARROTS" train "$NET" --comm nccl "${OUTS[@]}"
expect_in "$TMP/err" "parrots train: --comm nccl needs --device cuda (NCCL reduces GPU memory)"
expect_rc 2 "$PARROTS" train "$NET" --device cuda --comm mpi "${OUTS[@]}"
expect_in "$TMP/err" "parrots train: --comm mpi reduces host memory, but with --device cuda the gradients are on the GPU: use --comm nccl (or auto)"
expect_rc 2 "$PARROTS" train "$NET" --device cuda --sync-bn "${OUTS[@]}"
expect_in "$TMP/err" "parrots train: --sync-bn is not supported with --device cuda yet (the CUDA batch norm cannot reduce its statistics over the ranks); train without it, or on the CPU"
expect_rc 2 "$PARROTS" train "$NET" --comm gloo "${OUTS[@]}"
expect_in "$TMP/err" "parrots train: --comm 'gloo': expected auto, mpi, nccl or local"
expect_rc 2 "$PARROTS" eval "$NET" --weights "$WORK/none.prtw" --device cuda:-1
expect_in "$TMP/err" "parrots eval: --device 'cuda:-1': expected cpu, cuda or cuda:N"
check "usage errors write no file" test -z "$(ls -A "$WORK")"

# ---- no GPU: the device error before anything else -------------------------------
if nvidia-smi -L >/dev/null 2>&1; then
  echo "a GPU is present: the no-GPU checks do not apply (tests/test_cuda_train.c trains on it)"
else
  t0=$(date +%s%N)
  expect_rc 1 "$PARROTS" train "$NET" --device cuda "${OUTS[@]}"
  t1=$(date +%s%N)
  check "train --device cuda without a GPU: the device error only, no file" device_error train 0
  check "train --device cuda fails fast (under 5 s, before loading data: took $(((t1 - t0) / 1000000)) ms)" \
    test $(((t1 - t0) / 1000000)) -lt 5000
  expect_rc 1 "$PARROTS" train "$NET" --device cuda:3 "${OUTS[@]}"
  check "train --device cuda:3: GPU 3's error" device_error train 3
  # a dataset that does not exist: the device is opened first
  expect_rc 1 "$PARROTS" train "$NET" --device cuda --data "$WORK/no-such-data" "${OUTS[@]}"
  check "the device is opened before the data" device_error train 0
  # --comm nccl starts MPI (a singleton) to bootstrap NCCL: under the sanitizers
  # leak checking is off for it, as for every MPI job (tests/CMakeLists.txt:
  # Open MPI's dlclose()d components leave allocations no suppression can name)
  expect_rc 1 env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    "$PARROTS" train "$NET" --device cuda --comm nccl "${OUTS[@]}"
  check "train --device cuda --comm nccl without a GPU: the device error only, no file" device_error train 0
  expect_rc 1 "$PARROTS" eval "$NET" --weights "$WORK/none.prtw" --device cuda
  check "eval --device cuda without a GPU: the device error" device_error eval 0
fi

finish
