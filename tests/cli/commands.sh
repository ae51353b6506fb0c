# The command table, compile, disasm and run.
source "$(dirname "$0")/lib.bash" "$@"

expect_rc 0 "$PARROTS" --help
expect_in "$TMP/out" "commands:"
expect_rc 0 "$PARROTS" --version
expect_in "$TMP/out" "parrots "
expect_rc 2 "$PARROTS"
expect_rc 2 "$PARROTS" chek x.yaml
expect_in "$TMP/err" "did you mean 'check'?"

NET="$ROOT/examples/fashion-cnn.yaml"
expect_rc 0 "$PARROTS" compile --batch 4 "$NET"
expect_in "$TMP/out" "instructions for batch 4, verified"
expect_rc 0 "$PARROTS" disasm "$NET"
expect_in "$TMP/out" "CALL"
expect_in "$TMP/out" "HALT"

expect_rc 0 "$PARROTS" run --batch 3 --iters 2 "$NET"
expect_in "$TMP/out" "output    "
expect_in "$TMP/out" "[3, 10]"
expect_in "$TMP/out" "images/s"

# Given input: the same bytes give the same output, fast and reference agree.
python3 -c 'import struct,sys; open(sys.argv[1],"wb").write(struct.pack("<%df" % (2*784), *[((i*37)%101)/50.0-1 for i in range(2*784)]))' "$TMP/in.raw"
expect_rc 0 "$PARROTS" run --batch 2 --iters 1 --input "$TMP/in.raw" "$NET"
grep '^output' "$TMP/out" >"$TMP/fast"
expect_rc 0 "$PARROTS" run --batch 2 --iters 1 --reference --input "$TMP/in.raw" "$NET"
grep '^argmax' "$TMP/out" >"$TMP/ref_argmax"
expect_rc 0 "$PARROTS" run --batch 2 --iters 1 --input "$TMP/in.raw" "$NET"
grep '^argmax' "$TMP/out" >"$TMP/fast_argmax"
checks=$((checks + 1))
cmp -s "$TMP/ref_argmax" "$TMP/fast_argmax" || { echo "FAIL: fast and reference kernels disagree on argmax"; failures=$((failures + 1)); }

head -c 100 /dev/zero >"$TMP/short.raw"
expect_rc 2 "$PARROTS" run --batch 2 --input "$TMP/short.raw" "$NET"
expect_in "$TMP/err" "expected exactly 1568 float32 values"
expect_rc 2 "$PARROTS" run --batch 0 "$NET"
expect_rc 2 "$PARROTS" run --batch x "$NET"
expect_in "$TMP/err" "expects a non-negative integer"

expect_rc 0 "$PARROTS" run --batch 2 --iters 1 "$ROOT/examples/polynet-mini.yaml"
expect_in "$TMP/out" "[2, 10]"
finish
