# `parrots compile -o FILE.pb` and `parrots run FILE.pb`: a saved program runs
# without compiling and prints the same output as the YAML it came from; a
# different --batch, a damaged file and a non-program are refused.
source "$(dirname "$0")/lib.bash" "$@"

NET="$ROOT/examples/fashion-cnn.yaml"

expect_rc 0 "$PARROTS" compile "$NET" --batch 3 -o "$TMP/f.pb"
expect_in "$TMP/out" "14 instructions for batch 3, verified"
expect_in "$TMP/out" "saved $TMP/f.pb"

expect_rc 0 "$PARROTS" run "$TMP/f.pb" --iters 1 --warmup 0
expect_in "$TMP/err" "loaded program fashion-cnn (14 instructions, verified)"
grep -v '^time' "$TMP/out" >"$TMP/from_pb"
expect_rc 0 "$PARROTS" run "$NET" --batch 3 --iters 1 --warmup 0
grep -v '^time' "$TMP/out" >"$TMP/from_yaml"
checks=$((checks + 1))
if ! cmp -s "$TMP/from_pb" "$TMP/from_yaml" || [ ! -s "$TMP/from_pb" ]; then
  echo "FAIL: the saved program's output differs from the YAML's"; diff "$TMP/from_pb" "$TMP/from_yaml" | head -5
  failures=$((failures + 1))
fi

# the same batch may be given; another is refused
expect_rc 0 "$PARROTS" run "$TMP/f.pb" --batch 3 --iters 1 --warmup 0
expect_rc 2 "$PARROTS" run "$TMP/f.pb" --batch 2
expect_in "$TMP/err" "parrots run: $TMP/f.pb: the program is compiled for batch 3, not 2 (recompile it with parrots compile --batch 2)"

# found by its magic whatever its name
cp "$TMP/f.pb" "$TMP/prog.bin"
expect_rc 0 "$PARROTS" run "$TMP/prog.bin" --iters 1 --warmup 0
expect_in "$TMP/err" "loaded program fashion-cnn"

# damaged: one byte flipped in the payload
python3 - "$TMP/f.pb" "$TMP/bad.pb" <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read()); d[100] ^= 1; open(sys.argv[2], 'wb').write(d)
PY
expect_rc 2 "$PARROTS" run "$TMP/bad.pb"
expect_in "$TMP/err" "parrots run: $TMP/bad.pb: offset 12: CRC mismatch"
expect_in "$TMP/err" "the file is damaged"

# a .pb that is not a program
echo "hello" >"$TMP/not.pb"
expect_rc 2 "$PARROTS" run "$TMP/not.pb"
expect_in "$TMP/err" "parrots run: $TMP/not.pb: truncated: 6 bytes, a program file has at least 24 (the header)"

finish
