# ONNX on the command line: onnx-test over a few of ONNX's own backend test
# cases (Debian's libonnx-testdata; scripts/setup.sh installs it), run and check
# of an ONNX model, export -> import of an example network, and the messages of
# bad models and bad usage.
source "$(dirname "$0")/lib.bash" "$@"

DATA=/usr/share/libonnx-testdata/data
if [ ! -d "$DATA/node/test_relu" ]; then
  echo "FAIL: $DATA is missing: install libonnx-testdata (scripts/setup.sh)"
  exit 1
fi

# ---- onnx-test: table, JSON, exit status -------------------------------------
expect_rc 0 "$PARROTS" onnx-test "$DATA/node/test_relu" "$DATA/node/test_gemm_default_vector_bias" \
  "$DATA/pytorch-converted/test_Conv2d" "$DATA/node/test_elu"
expect_in "$TMP/out" "pass         test_relu"
expect_in "$TMP/out" "pass         test_Conv2d"
expect_in "$TMP/out" "unsupported  test_elu  ($DATA/node/test_elu/model.onnx: unsupported ops: Elu (node 'y'))"
expect_in "$TMP/out" "total: 4 cases, 3 passed, 0 failed, 1 unsupported (rtol 0.001, atol 1e-07)"

expect_rc 0 "$PARROTS" onnx-test --json "$DATA/node/test_relu" "$DATA/node/test_elu"
expect_in "$TMP/out" '"passed": 1,'
expect_in "$TMP/out" '"failed": 0,'
expect_in "$TMP/out" '"unsupported": 1,'
expect_in "$TMP/out" '"failing": [],'

# a case whose expected output is wrong fails, is named, and sets the exit status
mkdir -p "$TMP/bad"
cp -r "$DATA/node/test_relu" "$TMP/bad/test_relu_wrong"
cp "$DATA/node/test_sigmoid/test_data_set_0/output_0.pb" "$TMP/bad/test_relu_wrong/test_data_set_0/output_0.pb"
expect_rc 1 "$PARROTS" onnx-test --json "$TMP/bad/test_relu_wrong"
expect_in "$TMP/out" '"failed": 1,'
expect_in "$TMP/out" '{"name": "test_relu_wrong", "reason": "test_data_set_0: output 0: '

# ---- an ONNX model in check and run ---------------------------------------------
expect_rc 0 "$PARROTS" check "$DATA/pytorch-converted/test_Conv2d/model.onnx"
expect_in "$TMP/out" "layers    1 (conv 1)"
expect_rc 0 "$PARROTS" run "$DATA/pytorch-converted/test_Conv2d/model.onnx" --iters 1 --warmup 0

# ---- export -> import -> run ------------------------------------------------------
NET="$ROOT/examples/fashion-cnn.yaml"
expect_rc 0 "$PARROTS" export "$NET" -o "$TMP/fc.onnx"
expect_in "$TMP/out" "wrote $TMP/fc.onnx (ONNX opset 13, 13 nodes)"
expect_rc 0 "$PARROTS" check "$TMP/fc.onnx"
expect_in "$TMP/out" "params    421,738 trainable"
expect_rc 0 "$PARROTS" import "$TMP/fc.onnx" -o "$TMP/fc.yaml"
expect_in "$TMP/out" "wrote $TMP/fc.yaml and $TMP/fc.prtw"
expect_rc 0 "$PARROTS" check "$TMP/fc.yaml"
expect_in "$TMP/out" "params    421,738 trainable"
# the same numbers from the YAML network, the ONNX model and the original
"$PARROTS" run "$NET" --iters 1 --warmup 0 >"$TMP/run_yaml.out" 2>&1
"$PARROTS" run "$TMP/fc.onnx" --iters 1 --warmup 0 >"$TMP/run_onnx.out" 2>&1
checks=$((checks + 1))
if [ "$(grep '^output' "$TMP/run_yaml.out")" != "$(grep '^output' "$TMP/run_onnx.out")" ]; then
  echo "FAIL: run of the exported model differs:"; grep '^output' "$TMP/run_yaml.out" "$TMP/run_onnx.out"
  failures=$((failures + 1))
fi

# ---- bad models and usage -----------------------------------------------------------
printf 'not a model' >"$TMP/junk.onnx"
expect_rc 2 "$PARROTS" check "$TMP/junk.onnx"
expect_in "$TMP/err" "parrots check: $TMP/junk.onnx: not a valid ONNX model (protobuf-c could not unpack a ModelProto)"
expect_rc 1 "$PARROTS" import "$DATA/node/test_elu/model.onnx" -o "$TMP/elu.yaml"
expect_in "$TMP/err" "unsupported ops: Elu (node 'y')"
expect_rc 2 "$PARROTS" export "$NET"
expect_in "$TMP/err" "parrots export: missing -o MODEL.onnx"
expect_rc 2 "$PARROTS" import "$TMP/fc.onnx"
expect_in "$TMP/err" "parrots import: missing -o NET.yaml"

# ---- the whole conformance suite: every case runs; none may fail -------------
for suite in node pytorch-converted pytorch-operator; do
  expect_rc 0 "$PARROTS" onnx-test --json "$DATA/$suite"/*/
  check "onnx-test $suite: no failing case, some passing" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["failed"] == 0 and not d["failing"], d["failing"]
assert d["passed"] > 0, d
print("%s: %d passed, %d failed, %d unsupported" % (sys.argv[2], d["passed"], d["failed"], d["unsupported"]))' \
    "$TMP/out" "$suite"
done

finish
