# `parrots train --save-every/--checkpoint-dir/--keep/--resume` (docs/checkpoints.md):
# exact resume (bit-identical weights after a mid-epoch stop), saves interrupted by
# SIGKILL at each stage, keep-K pruning, and damaged or hostile checkpoints, each
# refused with its exact message.
source "$(dirname "$0")/lib.bash" "$@"

NET="$ROOT/examples/fashion-cnn.yaml"
# 64 synthetic images in batches of 8: 8 steps per epoch, 16 steps in all.
# fashion-cnn has batch norm (running statistics), dropout (RNG keyed by step),
# SGD momentum (optimizer state) and a warm-up + cosine schedule (the step).
RUN=(--data synthetic:64 --test-limit 16 --batch 8 --epochs 2 --threads 1 --log-every 4)

check() { # check DESCRIPTION COMMAND...
  checks=$((checks + 1))
  local what="$1"; shift
  if ! "$@" >"$TMP/check.out" 2>&1; then
    echo "FAIL: $what"; sed 's/^/  | /' "$TMP/check.out" | head -8
    failures=$((failures + 1))
  fi
}
listing() { (cd "$1" && ls -A | tr '\n' ' '); }
ck() { printf '%s/ckpt-%012d.prtc' "$1" "$2"; }

# ---- the reference: 16 steps in one run, no checkpoints ----------------------------
expect_rc 0 "$PARROTS" train "$NET" "${RUN[@]}" --save "$TMP/ref.prtw"

# ---- periodic saves and pruning: every 5 steps and at the end, keep 2 --------------
expect_rc 0 "$PARROTS" train "$NET" "${RUN[@]}" --save-every 5 --checkpoint-dir "$TMP/d" --keep 2 \
  --save "$TMP/full.prtw"
expect_in "$TMP/err" "checkpoint written to $(ck "$TMP/d" 5)"
expect_in "$TMP/err" "checkpoint written to $(ck "$TMP/d" 16)"
check "checkpointing does not change training" cmp "$TMP/ref.prtw" "$TMP/full.prtw"
check "keep 2: the two newest remain, no temporary files" \
  test "$(listing "$TMP/d")" = "ckpt-000000000015.prtc ckpt-000000000016.prtc "
check "the header: magic, version 1" python3 - "$(ck "$TMP/d" 16)" <<'EOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"PRTCKPT\0", b[:8]
ver, res, plen, crc, res2 = struct.unpack("<IIQII", b[8:32])
assert (ver, res, res2) == (1, 0, 0) and plen == len(b) - 32, (ver, plen, len(b))
EOF

# ---- resume from a FILE mid-epoch: step 15 is epoch 2 step 7 ------------------------
expect_rc 0 "$PARROTS" train "$NET" "${RUN[@]}" --resume "$(ck "$TMP/d" 15)" --save "$TMP/r15.prtw"
expect_in "$TMP/err" "resumed from $(ck "$TMP/d" 15) at epoch 2 step 7"
check "resume at step 15 gives bit-identical weights" cmp "$TMP/ref.prtw" "$TMP/r15.prtw"

# ---- a save killed while writing: the previous checkpoint survives -------------------
for stage in mid_write before_rename; do
  expect_rc 137 env PARROTS_TEST_CRASH_IN_SAVE=$stage:10 "$PARROTS" train "$NET" "${RUN[@]}" --save-every 5 \
    --checkpoint-dir "$TMP/$stage"
  check "$stage: ckpt 5 remains, nothing named like a checkpoint for step 10" \
    test "$(ls "$TMP/$stage" | tr '\n' ' ')" = "ckpt-000000000005.prtc "
done
# resume the directory (newest: step 5, epoch 1 step 5 of 8) and finish the 11 steps left
expect_rc 0 "$PARROTS" train "$NET" "${RUN[@]}" --resume "$TMP/mid_write" --save "$TMP/r5.prtw"
expect_in "$TMP/err" "resumed from $(ck "$TMP/mid_write" 5) at epoch 1 step 5"
check "killed at step 10, resumed from step 5: bit-identical weights" cmp "$TMP/ref.prtw" "$TMP/r5.prtw"
# killed right after the rename: the new checkpoint is complete and is the one resumed
expect_rc 137 env PARROTS_TEST_CRASH_IN_SAVE=after_rename:10 "$PARROTS" train "$NET" "${RUN[@]}" --save-every 5 \
  --checkpoint-dir "$TMP/ar"
expect_rc 0 "$PARROTS" train "$NET" "${RUN[@]}" --resume "$TMP/ar" --save "$TMP/r10.prtw"
expect_in "$TMP/err" "resumed from $(ck "$TMP/ar" 10) at epoch 2 step 2"
check "killed after the rename at step 10, resumed: bit-identical weights" cmp "$TMP/ref.prtw" "$TMP/r10.prtw"

# ---- damaged and hostile files --------------------------------------------------------
GOOD="$(ck "$TMP/d" 16)"
# a small network's checkpoint to damage (the file is refused before the network matters)
printf 'parrots: 1\nname: small\ninput: {image: [1, 28, 28]}\nlayers:\n  - flatten:\n  - linear: {out: 10}\n' \
  >"$TMP/small.yaml"
expect_rc 0 "$PARROTS" train "$TMP/small.yaml" "${RUN[@]}" --checkpoint-dir "$TMP/s"
SMALL="$(ck "$TMP/s" 16)"
cat >"$TMP/mutate.py" <<'EOF'
import struct, sys
src, dst, mode = sys.argv[1:4]
b = bytearray(open(src, "rb").read())
T = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82f63b78 if c & 1 else c >> 1
    T.append(c)
def crc32c(data):
    c = 0xffffffff
    for x in data:
        c = T[(c ^ x) & 0xff] ^ (c >> 8)
    return c ^ 0xffffffff
def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        if v < 0x80:
            out.append(v); return bytes(out)
        out.append(v & 0x7f | 0x80); v >>= 7
def field(num, wire, payload):
    return varint(num << 3 | wire) + (varint(len(payload)) + payload if wire == 2 else payload)
def tensor(name, dtype, shape, data):
    t = field(1, 2, name.encode()) + field(2, 0, varint(1)) + field(3, 2, dtype.encode())
    t += field(4, 2, b"".join(varint(d) for d in shape)) + field(5, 2, data)
    return field(4, 2, t)
def reseal(payload):
    return bytes(b[:16]) + struct.pack("<QI", len(payload), crc32c(payload)) + bytes(b[28:32]) + payload
if mode == "truncate":
    b = b[:len(b) // 2]
elif mode == "flip":
    b[len(b) // 2] ^= 0x01
    print("CRC32C mismatch (stored 0x%08x, computed 0x%08x): the checkpoint is damaged"
          % (struct.unpack("<I", b[24:28])[0], crc32c(b[32:])))
elif mode == "magic":
    b[:8] = b"PRTW\x01\x00\x00\x00"
elif mode == "version":
    b[8:12] = struct.pack("<I", 2)
elif mode.startswith("shape:"):
    dims = [int(x) for x in mode[6:].split(",")]
    b = reseal(bytes(b[32:]) + tensor("evil", "f32", dims, b""))
elif mode == "short-data":
    b = reseal(bytes(b[32:]) + tensor("evil", "f32", [3], b"\0" * 4))
elif mode == "garbage":
    b = reseal(b"\xff" * 40)
open(dst, "wb").write(b)
EOF
bad() { # bad MODE MESSAGE: the mutated checkpoint is refused with MESSAGE (after "parrots train: FILE: ")
  python3 "$TMP/mutate.py" "$SMALL" "$TMP/bad.prtc" "$1" >"$TMP/expected"
  expect_rc 2 "$PARROTS" train "$NET" "${RUN[@]}" --resume "$TMP/bad.prtc"
  expect_in "$TMP/err" "parrots train: $TMP/bad.prtc: $2"
}
SIZE=$(stat -c %s "$SMALL"); PLEN=$((SIZE - 32))
bad truncate "truncated: the header announces a $PLEN-byte payload, $((SIZE / 2 - 32)) bytes follow it"
bad flip "CRC32C mismatch (stored 0x"
expect_in "$TMP/err" "parrots train: $TMP/bad.prtc: $(cat "$TMP/expected")"
bad magic 'not a Parrots checkpoint (magic "PRTW\x01\x00\x00\x00", expected "PRTCKPT\x00")'
bad version "checkpoint format version 2 is newer than this Parrots reads (version 1)"
bad shape:4611686018427387904 "tensor 'evil': the shape [4611686018427387904] has more than 2^40 elements"
bad shape:4294967296,4294967296,4294967296 \
  "tensor 'evil': the shape [4294967296, 4294967296, 4294967296] has more than 2^40 elements"
bad shape:-1 "tensor 'evil': dimension 0 is -1 (dimensions must be positive)"
bad shape:1,1,1,1,1,1,1,1,1 "tensor 'evil': 9 dimensions exceed the limit of 8"
bad short-data "tensor 'evil': f32 [3] needs 12 bytes of data, the file has 4"
bad garbage "the 40-byte payload is not a valid Checkpoint message (protobuf-c cannot unpack it)"
python3 -c "open('$TMP/empty.prtc','wb')"
expect_rc 2 "$PARROTS" train "$NET" "${RUN[@]}" --resume "$TMP/empty.prtc"
expect_in "$TMP/err" "parrots train: $TMP/empty.prtc: truncated: 0 bytes, a checkpoint has at least a 32-byte header"

# the newest checkpoint in a directory is damaged: say so, do not fall back to an older one
cp -r "$TMP/d" "$TMP/e"
python3 "$TMP/mutate.py" "$(ck "$TMP/d" 16)" "$(ck "$TMP/e" 16)" flip >"$TMP/expected"
expect_rc 2 "$PARROTS" train "$NET" "${RUN[@]}" --resume "$TMP/e"
expect_in "$TMP/err" "parrots train: $(ck "$TMP/e" 16): $(cat "$TMP/expected")"
expect_rc 2 "$PARROTS" train "$NET" "${RUN[@]}" --resume "$TMP/nothing-here"
expect_in "$TMP/err" "parrots train: $TMP/nothing-here: cannot open the checkpoint: No such file or directory"
mkdir "$TMP/emptydir"
expect_rc 2 "$PARROTS" train "$NET" "${RUN[@]}" --resume "$TMP/emptydir"
expect_in "$TMP/err" "parrots train: $TMP/emptydir: no checkpoint (ckpt-<step>.prtc) in the directory"

# another network (fc1 narrower, same solver): the graph hash says so
sed 's/linear: {out: 128}/linear: {out: 64}/' "$NET" >"$TMP/other.yaml"
expect_rc 2 "$PARROTS" train "$TMP/other.yaml" "${RUN[@]}" --resume "$GOOD"
expect_in "$TMP/err" "parrots train: $GOOD: the checkpoint is of a different training graph (network 'fashion-cnn', graph hash 0x"
# the same network with another solver, seed or data
expect_rc 2 "$PARROTS" train "$NET" "${RUN[@]}" --resume "$GOOD" --set solver.lr=0.01
expect_in "$TMP/err" "parrots train: $GOOD: the checkpoint was trained with solver.lr 0.050000000000000003, this run has 0.01"
expect_rc 2 "$PARROTS" train "$NET" "${RUN[@]}" --resume "$GOOD" --seed 7
expect_in "$TMP/err" "parrots train: --seed 7 differs from the seed 24301 of $GOOD"
expect_rc 2 "$PARROTS" train "$NET" --data synthetic:128 --test-limit 16 --batch 8 --epochs 2 --resume "$GOOD"
expect_in "$TMP/err" "parrots train: $GOOD: the checkpoint was trained on 64 samples in batches of 8, this run has 128 in batches of 8"

# ---- options -------------------------------------------------------------------------
expect_rc 2 "$PARROTS" train "$NET" --save-every 5
expect_in "$TMP/err" "parrots train: --save-every needs --checkpoint-dir DIR"
expect_rc 2 "$PARROTS" train "$NET" --checkpoint-dir "$TMP/x" --keep 0
expect_in "$TMP/err" "parrots train: --keep must be between 1 and 1000000"

finish
