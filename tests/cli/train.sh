# `parrots train` and `parrots eval` on a few hundred Fashion-MNIST images: the
# metrics file, falling loss, bit-identical reruns, saved weights giving the same
# test accuracy in eval, pictures, bad hyper-parameters and divergence.
source "$(dirname "$0")/lib.bash" "$@"

NET="$ROOT/examples/fashion-cnn.yaml"
# 2 epochs of 12 steps of 64 images, tested on 300 images (a short last batch of 44)
SHORT=(--train-limit 768 --test-limit 300 --epochs 2 --batch 64 --threads 2
       --set solver.lr=0.02 --set solver.warmup_epochs=0 --set solver.schedule=constant --log-every 3)

check() { # check DESCRIPTION COMMAND...: one more check; fails when COMMAND does
  checks=$((checks + 1))
  local what="$1"; shift
  if ! "$@" >"$TMP/check.out" 2>&1; then
    echo "FAIL: $what"; sed 's/^/  | /' "$TMP/check.out" | head -8
    failures=$((failures + 1))
  fi
}

expect_rc 0 "$PARROTS" --help
expect_in "$TMP/out" "train"
expect_in "$TMP/out" "eval"
expect_rc 0 "$PARROTS" train --help
expect_in "$TMP/out" "--set solver.KEY=VALUE"

# ---- a short run: metrics, plot, weights -------------------------------------
expect_rc 0 "$PARROTS" train "$NET" "${SHORT[@]}" --metrics "$TMP/m1.jsonl" --plot "$TMP/curves.png" \
  --save "$TMP/w.prtw"
cp "$TMP/out" "$TMP/train1.out"
expect_in "$TMP/out" "epoch 2/2  train_loss "
expect_in "$TMP/err" "epoch 1/2  step 3/12  loss "

check "metrics: keys, types and falling loss" python3 - "$TMP/m1.jsonl" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
steps = [r for r in recs if r["type"] == "step"]
epochs = [r for r in recs if r["type"] == "epoch"]
assert len(steps) == 8, len(steps)            # every 3rd of 12 steps, 2 epochs
assert [s["step"] for s in steps[:4]] == [3, 6, 9, 12]
for s in steps:
    for k, t in (("epoch", int), ("step", int), ("loss", float), ("lr", (int, float)), ("images_per_s", (int, float))):
        assert isinstance(s[k], t), (k, s)
    assert s["lr"] == 0.02, s
assert [e["epoch"] for e in epochs] == [1, 2]
for e in epochs:
    for k in ("train_loss", "train_acc", "test_loss", "test_acc", "elapsed_s"):
        assert isinstance(e[k], float), (k, e)
    assert 0 <= e["test_acc"] <= 1 and 0 <= e["train_acc"] <= 1
assert epochs[1]["elapsed_s"] > epochs[0]["elapsed_s"] > 0
assert epochs[1]["train_loss"] < epochs[0]["train_loss"], epochs
assert steps[-1]["loss"] < steps[0]["loss"] * 0.8, (steps[0], steps[-1])
# 300 test images: accuracies are multiples of 1/300
assert abs(epochs[1]["test_acc"] * 300 - round(epochs[1]["test_acc"] * 300)) < 1e-6
EOF

check "the PNG is a valid, non-trivial image" python3 - "$TMP/curves.png" <<'EOF'
import struct, sys, zlib
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n", b[:8]
pos, idat, chunks = 8, b"", []
while pos < len(b):
    n, = struct.unpack(">I", b[pos:pos + 4]); typ = b[pos + 4:pos + 8]; data = b[pos + 8:pos + 8 + n]
    crc, = struct.unpack(">I", b[pos + 8 + n:pos + 12 + n])
    assert zlib.crc32(typ + data) == crc, typ
    chunks.append(typ); idat += data if typ == b"IDAT" else b""
    if typ == b"IHDR": w, h, depth, color = struct.unpack(">IIBB", data[:10])
    pos += 12 + n
assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND"
assert depth == 8 and color == 2 and w >= 600 and h >= 300, (w, h)
raw = zlib.decompress(idat)
assert len(raw) == h * (1 + 3 * w)
# more than a blank page: many pixels that are neither white nor grey
rows = [raw[r * (1 + 3 * w) + 1:(r + 1) * (1 + 3 * w)] for r in range(h)]
colored = sum(1 for row in rows for i in range(0, 3 * w, 3) if max(row[i:i + 3]) - min(row[i:i + 3]) > 60)
assert colored > 500, colored
EOF

# ---- the same seed and threads: bit-identical losses ---------------------------
expect_rc 0 "$PARROTS" train "$NET" "${SHORT[@]}" --metrics "$TMP/m2.jsonl" --plot "$TMP/curves.svg" --quiet
check "two runs give identical losses and accuracies" python3 - "$TMP/m1.jsonl" "$TMP/m2.jsonl" <<'EOF'
import json, sys
def key(path):
    out = []
    for l in open(path):
        r = json.loads(l)
        out.append((r["type"], r["epoch"], r.get("step"), r.get("loss"), r.get("train_loss"), r.get("test_loss"),
                    r.get("test_acc"), r.get("train_acc")))
    return out
a, b = key(sys.argv[1]), key(sys.argv[2])
assert a == b, [x for x in zip(a, b) if x[0] != x[1]][:3]
EOF
check "the SVG is well-formed and labelled" python3 - "$TMP/curves.svg" <<'EOF'
import sys, xml.dom.minidom
d = xml.dom.minidom.parse(sys.argv[1])
texts = [t.firstChild.data for t in d.getElementsByTagName("text") if t.firstChild]
for want in ("Loss", "Accuracy", "epoch", "test accuracy", "train loss (epoch mean)"):
    assert want in texts, want
assert len(d.getElementsByTagName("line")) > 40
EOF
# A different seed gives a different run.
expect_rc 0 "$PARROTS" train "$NET" "${SHORT[@]}" --seed 7 --epochs 1 --metrics "$TMP/m3.jsonl" --quiet
check "another seed gives other losses" bash -c "! cmp -s <(grep -o '\"loss\":[^,]*' '$TMP/m1.jsonl' | head -4) <(grep -o '\"loss\":[^,]*' '$TMP/m3.jsonl' | head -4)"

# ---- eval with the saved weights ------------------------------------------------
expect_rc 0 "$PARROTS" eval "$NET" --weights "$TMP/w.prtw" --test-limit 300 --batch 64
acc=$(grep -o 'test_acc [0-9.]*' "$TMP/train1.out" | tail -1)
expect_in "$TMP/out" "$acc"
expect_rc 2 "$PARROTS" eval "$ROOT/examples/polynet-mini.yaml" --weights "$TMP/w.prtw" --test-limit 10
expect_in "$TMP/err" "w.prtw: missing tensor 'stem/conv_bn_relu_0/conv_0.weight'"
head -c 1000 "$TMP/w.prtw" >"$TMP/cut.prtw"
expect_rc 2 "$PARROTS" eval "$NET" --weights "$TMP/cut.prtw" --test-limit 10
expect_in "$TMP/err" "cut.prtw: offset "
expect_in "$TMP/err" "truncated: the data needs"
expect_rc 2 "$PARROTS" eval "$NET" --test-limit 10
expect_in "$TMP/err" "--weights FILE is required"

# ---- bad hyper-parameters and usage ---------------------------------------------
expect_rc 2 "$PARROTS" train "$NET" --train-limit 100 --set solver.lr=-1
expect_in "$TMP/err" "parrots train: solver.lr must be > 0, got -1"
expect_rc 2 "$PARROTS" train "$NET" --train-limit 100 --batch 0
expect_in "$TMP/err" "solver.batch must be >= 1, got 0"
expect_rc 2 "$PARROTS" train "$NET" --train-limit 100 --batch 128
expect_in "$TMP/err" "solver.batch 128 is larger than the training set (100 samples with --train-limit)"
expect_rc 2 "$PARROTS" train "$NET" --train-limit 100 --set solver.momentun=0.5
expect_in "$TMP/err" "unknown key 'momentun' (did you mean 'momentum'?)"
expect_rc 2 "$PARROTS" train "$NET" --set lr
expect_in "$TMP/err" "expected solver.KEY=VALUE"
expect_rc 2 "$PARROTS" train "$NET" --plot "$TMP/x.gif" --train-limit 64 --test-limit 64 --epochs 1 --quiet
expect_in "$TMP/err" "must end in .svg or .png"
expect_rc 2 "$PARROTS" train "$ROOT/examples/polynet.yaml" --train-limit 64
expect_in "$TMP/err" "its input 'image' is [3, 331, 331] per sample, but the fashion-mnist samples are [1, 28, 28]"

# ---- divergence: a clear message naming the step, exit 1 ------------------------
expect_rc 1 "$PARROTS" train "$NET" --train-limit 640 --test-limit 64 --batch 64 --epochs 1 --set solver.lr=1e6 \
  --metrics "$TMP/div.jsonl" --log-every 1 --save "$TMP/never.prtw"
expect_in "$TMP/err" "training diverged at epoch 1 step "
expect_in "$TMP/err" "loss is nan; try a smaller solver.lr (now 1e+06)"
check "no NaN in the metrics of a diverged run" bash -c "! grep -qi nan '$TMP/div.jsonl'"
check "a diverged run saves no weights" test ! -e "$TMP/never.prtw"
finish
