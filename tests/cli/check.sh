# `parrots check` on the shipped examples and on bad input.
source "$(dirname "$0")/lib.bash" "$@"

expect_rc 0 "$PARROTS" check "$ROOT/examples/polynet.yaml"
expect_in "$TMP/out" "params    95,366,600 trainable"
expect_in "$TMP/out" "output    "
expect_in "$TMP/out" "[1000]"

expect_rc 0 "$PARROTS" check --json "$ROOT/examples/polynet.yaml"
expect_in "$TMP/out" '"params": 95366600'
expect_in "$TMP/out" '"flops_per_image": '
expect_in "$TMP/out" '"shape": [1000]'
# The JSON must parse, with the keys the issue names.
if command -v python3 >/dev/null; then
  checks=$((checks + 1))
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["params"]==95366600 and d["flops_per_image"]>0 and d["outputs"][0]["shape"]==[1000]' "$TMP/out" \
    || { echo "FAIL: check --json output is not the expected JSON"; failures=$((failures + 1)); }
fi

for net in polynet-mini fashion-cnn; do
  expect_rc 0 "$PARROTS" check --layers "$ROOT/examples/$net.yaml"
  expect_in "$TMP/out" "[10]"
done

expect_rc 2 "$PARROTS" check "$TMP/missing.yaml"
expect_in "$TMP/err" "missing.yaml"

printf 'parrots: 1\ninput: {x: [3, 8, 8]}\nlayers:\n  - conv: {out: 4, kernal: 3}\n' >"$TMP/typo.yaml"
expect_rc 2 "$PARROTS" check "$TMP/typo.yaml"
expect_in "$TMP/err" "typo.yaml:4:"
expect_in "$TMP/err" "did you mean 'kernel'?"

expect_rc 0 "$PARROTS" check --help
expect_in "$TMP/out" "usage: parrots check"
expect_rc 2 "$PARROTS" check
expect_rc 2 "$PARROTS" check --jsn "$ROOT/examples/polynet.yaml"
expect_in "$TMP/err" "did you mean '--json'?"
finish
