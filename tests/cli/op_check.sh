# `parrots op-check`: the op-check harness from the command line (docs/op-check.md):
# the table, the exit codes (0 every check that ran passed, 1 one failed, 2 bad
# usage), exact usage messages, and --json that parses.
source "$(dirname "$0")/lib.bash" "$@"

# expect_err TEXT: stderr is exactly TEXT (one line)
expect_err() {
  checks=$((checks + 1))
  if [ "$(cat "$TMP/err")" != "$1" ]; then
    echo "FAIL: expected stderr '$1', got:"; sed 's/^/  | /' "$TMP/err" | head -4
    failures=$((failures + 1))
  fi
}

expect_rc 0 "$PARROTS" op-check relu --shape 2x3x4x4
expect_in "$TMP/out" "op-check relu: inputs [2, 3, 4, 4], outputs [2, 3, 4, 4], seed 1"
expect_in "$TMP/out" "check        result   worst error  tolerance  note"
expect_in "$TMP/out" "forward      passed"
expect_in "$TMP/out" "gradient     passed"
expect_in "$TMP/out" "in-place     passed"
expect_in "$TMP/out" "relu: passed"
# no GPU here: the CUDA check says so, never "passed"
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  expect_in "$TMP/out" "cuda-vs-cpu  skipped  -            -          skipped: no CUDA device"
fi

expect_rc 0 "$PARROTS" op-check conv --shape 1x2x5x5 --attr out=3 --attr kernel=3
expect_in "$TMP/out" "outputs [1, 3, 3, 3]"
expect_in "$TMP/out" "gradient     passed"
expect_in "$TMP/out" "in-place     skipped  -            -          skipped: conv declares no in-place pair"

expect_rc 0 "$PARROTS" op-check concat --shape 2x3x2x3 --shape 2x2x2x3 --device cpu
expect_in "$TMP/out" "outputs [2, 5, 2, 3]"
expect_in "$TMP/out" "cuda-vs-cpu  skipped  -            -          skipped: not asked (--device cpu)"

expect_rc 0 "$PARROTS" op-check softmax_xent --shape 4x5 --shape 4x1:i32
expect_in "$TMP/out" "gradient     passed"

# a non-differentiable op: the gradient check is skipped, not failed
expect_rc 0 "$PARROTS" op-check relu_bwd --shape 2x3 --shape 2x3
expect_in "$TMP/out" "gradient     skipped  -            -          skipped: relu_bwd is not differentiable (backward-only op)"

# --json parses, and says what the table says
expect_rc 0 "$PARROTS" op-check batchnorm --shape 4x3x3x3 --seed 7 --json
checks=$((checks + 1))
if ! python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["op"] == "batchnorm" and d["seed"] == 7 and d["passed"] is True, d
assert d["inputs"] == [[4, 3, 3, 3]] and d["outputs"] == [[4, 3, 3, 3]], d
c = {x["check"]: x for x in d["checks"]}
assert list(c) == ["forward", "fast-vs-ref", "gradient", "in-place", "cuda-vs-cpu"], list(c)
g = c["gradient"]
assert g["result"] == "passed" and g["checked"] > 0 and g["worst_error"] <= g["tolerance"] == 0.01, g
' "$TMP/out"; then
  echo "FAIL: --json output"; head -20 "$TMP/out"; failures=$((failures + 1))
fi

# a check that fails: exit 1, the table says which and by how much
expect_rc 1 "$PARROTS" op-check sigmoid --shape 2x3x4 --rtol 1e-9
expect_in "$TMP/out" "gradient     failed"
expect_in "$TMP/out" "1e-09      reference kernels: dL/dx0["
expect_in "$TMP/out" "sigmoid: FAILED (3 passed, 1 failed, 1 skipped)"

# usage errors: exit 2, exact messages
expect_rc 2 "$PARROTS" op-check relux --shape 2x3
expect_err "parrots op-check: unknown op 'relux' (did you mean 'relu'?)"
expect_rc 2 "$PARROTS" op-check relu --shape 2x3 --shape 2x3
expect_err "parrots op-check: relu takes 1 data input, given 2 shapes"
expect_rc 2 "$PARROTS" op-check relu
expect_err "parrots op-check: relu takes 1 data input, given 0 shapes"
expect_rc 2 "$PARROTS" op-check conv --shape 1x2x5x5 --attr kernal=3
expect_err "parrots op-check: conv has no attribute 'kernal' (did you mean 'kernel'?)"
expect_rc 2 "$PARROTS" op-check conv --shape 1x2x5x5 --attr out=x --attr kernel=3
expect_err "parrots op-check: conv: attribute 'out' expects an integer, found 'x'"
expect_rc 2 "$PARROTS" op-check conv --shape 1x2x5x5 --attr kernel=3
expect_err "parrots op-check: conv requires attribute 'out' (--attr out=VALUE)"
expect_rc 2 "$PARROTS" op-check relu --shape 2x3 --attr slope
expect_err "parrots op-check: --attr 'slope': expected NAME=VALUE"
expect_rc 2 "$PARROTS" op-check relu --shape 2x
expect_err "parrots op-check: --shape '2x': expected sizes like 2x3x8x8 (the batch first, 1 to 8 dimensions), optionally :i32"
expect_rc 2 "$PARROTS" op-check relu --shape 2x3 --device gpu
expect_err "parrots op-check: --device 'gpu': expected cpu or cuda"
expect_rc 2 "$PARROTS" op-check relu --shape 2x3 --eps 0
expect_err "parrots op-check: --eps '0': expected a positive number"
expect_rc 2 "$PARROTS" op-check relu --shpe 2x3
expect_err "parrots op-check: unknown option '--shpe' (did you mean '--shape'?)"
expect_rc 2 "$PARROTS" op-check
expect_err "parrots op-check: missing argument (usage: parrots op-check OP --shape SHAPE [--shape SHAPE ...] [options])"
expect_rc 2 "$PARROTS" op-check conv --shape 1x2x2x2 --attr out=3 --attr kernel=3
expect_in "$TMP/err" "parrots op-check: layer 'op' (conv): output would be 0x0"

expect_rc 0 "$PARROTS" op-check --help
expect_in "$TMP/out" "usage: parrots op-check OP --shape SHAPE"
expect_rc 0 "$PARROTS" --help
expect_in "$TMP/out" "op-check"

finish
