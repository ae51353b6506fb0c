# `parrots plan` (the memory plan without running the network) and --memory-limit
# in plan, run and train: the report's fields, the JSON's arithmetic, pictures,
# --input, --recompute and the exact messages of bad options. Memory figures are
# not asserted (bench/RESULTS.md has them); their relations are.
source "$(dirname "$0")/lib.bash" "$@"

FCNN="$ROOT/examples/fashion-cnn.yaml"
MINI="$ROOT/examples/polynet-mini.yaml"
POLY="$ROOT/examples/polynet.yaml"

check() { # check DESCRIPTION COMMAND...: one more check; fails when COMMAND does
  checks=$((checks + 1))
  local what="$1"; shift
  if ! "$@" >"$TMP/check.out" 2>&1; then
    echo "FAIL: $what"; sed 's/^/  | /' "$TMP/check.out" | head -8
    failures=$((failures + 1))
  fi
}

# expect_first FILE TEXT: the file's first line starts with TEXT.
expect_first() {
  checks=$((checks + 1))
  local first
  first="$(head -n 1 "$1")"
  if [[ "$first" != "$2"* ]]; then
    echo "FAIL: expected $(basename "$1") to start with '$2':"; sed 's/^/  | /' "$1" | head -4
    failures=$((failures + 1))
  fi
}

# ---- help --------------------------------------------------------------------
expect_rc 0 "$PARROTS" --help
expect_in "$TMP/out" "plan      plan the memory"
expect_rc 0 "$PARROTS" plan --help
expect_in "$TMP/out" "usage: parrots plan NET.yaml"
for opt in "--batch N" "--train" "--input HxW" "--recompute MODE" "--memory-limit SIZE" "--top K" "--json" \
  "--plot FILE"; do
  expect_in "$TMP/out" "  $opt "
done
expect_in "$TMP/out" "auto (default: cheap when it saves a quarter of the memory"
expect_in "$TMP/out" "(default 10)"
expect_rc 0 "$PARROTS" run --help
expect_in "$TMP/out" "--memory-limit SIZE"
expect_rc 0 "$PARROTS" train --help
expect_in "$TMP/out" "--memory-limit SIZE"
expect_in "$TMP/out" "--recompute MODE"

# ---- the text report -------------------------------------------------------------
expect_rc 0 "$PARROTS" plan "$FCNN" --batch 16
for field in "network          fashion-cnn" "plan             forward pass, batch 16, input image [1, 28, 28]" \
  "parameters " "421,738 trainable values" "running stats " "optimizer state " "persistent " "gradients " \
  "inputs " "workspace " "planned inside the arena" "naive " "lower bound " "arena " "x the lower bound, strategy " \
  "strategies       by_size " "total " "in place " "planning " "peak             instruction " \
  "largest arena buffers (10 of " "instructions   name"; do
  expect_in "$TMP/out" "$field"
done
check "a forward plan says nothing about recomputation" bash -c "! grep -q '^recompute' '$TMP/out'"

expect_rc 0 "$PARROTS" plan "$FCNN" --train --top 3 --recompute cheap
expect_in "$TMP/out" "plan             training step, batch 128,"
expect_in "$TMP/out" "solver           sgd lr 0.05, recompute cheap"
expect_in "$TMP/out" "recompute        cheap: "
expect_in "$TMP/out" "peak             instruction "
expect_in "$TMP/out" "largest arena buffers (3 of "
expect_in "$TMP/out" "workspace of '"
expect_rc 0 "$PARROTS" plan "$FCNN" --train --recompute none --batch 8
expect_in "$TMP/out" "recompute        none: nothing recomputed"

# ---- JSON: keys, types and the arithmetic of the plan ------------------------------
cat >"$TMP/check_plan.py" <<'EOF'
import json, sys
path, train, batch, recompute = sys.argv[1], sys.argv[2] == "train", int(sys.argv[3]), sys.argv[4]
d = json.load(open(path))
ints = ("param_bytes", "state_bytes", "optimizer_bytes", "persistent_bytes", "grad_bytes", "input_bytes",
        "workspace_bytes", "naive_bytes", "lower_bound_bytes", "arena_bytes", "total_bytes", "peak_instruction",
        "peak_live_bytes", "recomputed_instructions", "recompute_flops", "step_flops", "batch", "instructions",
        "buffers", "inplace_outputs", "grad_buckets")
for k in ints:
    assert isinstance(d[k], int) and not isinstance(d[k], bool) and d[k] >= 0, (k, d.get(k))
for k in ("ratio", "plan_seconds"):
    assert isinstance(d[k], float) and d[k] >= 0, (k, d[k])
assert d["train"] is train and d["batch"] == batch, (d["train"], d["batch"])
assert isinstance(d["input"], list) and all(isinstance(v, int) for v in d["input"])
assert d["total_bytes"] == d["persistent_bytes"] + d["arena_bytes"], d
assert d["param_bytes"] + d["state_bytes"] + d["optimizer_bytes"] <= d["persistent_bytes"]
assert 0 < d["lower_bound_bytes"] <= d["arena_bytes"] <= d["naive_bytes"], d
assert abs(d["ratio"] - d["arena_bytes"] / d["lower_bound_bytes"]) < 1e-5
assert d["peak_live_bytes"] == d["lower_bound_bytes"]
assert 0 <= d["peak_instruction"] < d["instructions"]
assert isinstance(d["peak_op"], str) and isinstance(d["peak_node"], str) and d["peak_phase"] in ("forward", "backward", "update")
assert d["workspace_bytes"] <= d["arena_bytes"] and d["input_bytes"] <= d["arena_bytes"]
# every strategy was tried and the smallest plan kept
assert d["strategy"] in d["strategies"] and d["strategies"][d["strategy"]] == d["arena_bytes"]
assert d["arena_bytes"] == min(d["strategies"].values())
tb = d["top_buffers"]
assert len(tb) == min(10, d["buffers"]), len(tb)
assert [b["bytes"] for b in tb] == sorted((b["bytes"] for b in tb), reverse=True)
for b in tb:
    assert isinstance(b["name"], str) and b["name"] and 0 <= b["first"] <= b["last"] < d["instructions"], b
    assert b["offset"] + b["bytes"] <= d["arena_bytes"], b
if train:
    assert d["optimizer_bytes"] > 0 and d["grad_bytes"] > 0 and d["grad_buckets"] >= 1, d
    assert d["recompute"] == recompute
    assert d["step_flops"] > d["recompute_flops"]
    if recompute == "none":
        assert d["recomputed_instructions"] == 0 and d["recompute_flops"] == 0
    if recompute == "segments":
        assert d["recomputed_instructions"] > 0 and d["recompute_flops"] > 0
else:
    assert d["recompute"] is None and d["grad_bytes"] == 0 and d["optimizer_bytes"] == 0
    assert d["recomputed_instructions"] == 0 and d["recompute_flops"] == 0
print(d["network"], "train" if train else "forward", recompute, "ratio %.4f" % d["ratio"])
EOF

expect_rc 0 "$PARROTS" plan "$FCNN" --json --batch 4
check "fashion-cnn forward JSON" python3 "$TMP/check_plan.py" "$TMP/out" forward 4 -
expect_rc 0 "$PARROTS" plan "$FCNN" --json --train --recompute cheap
check "fashion-cnn training JSON (batch from the solver section)" python3 "$TMP/check_plan.py" "$TMP/out" train 128 cheap
# auto: cheap saves fashion-cnn less than a quarter, polynet-mini at batch 128 about half
expect_rc 0 "$PARROTS" plan "$FCNN" --train
expect_in "$TMP/out" "solver           sgd lr 0.05, recompute none (chosen by --recompute auto)"
expect_rc 0 "$PARROTS" plan "$MINI" --train --json
check "polynet-mini auto picks cheap" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["recompute"] == "cheap" and d["recompute_auto"] is True, d["recompute"]' "$TMP/out"
expect_rc 0 "$PARROTS" plan "$MINI" --json --batch 8
check "polynet-mini forward JSON" python3 "$TMP/check_plan.py" "$TMP/out" forward 8 -
for mode in none cheap segments; do
  expect_rc 0 "$PARROTS" plan "$MINI" --json --train --batch 8 --recompute "$mode"
  cp "$TMP/out" "$TMP/mini_$mode.json"
  check "polynet-mini training JSON, recompute $mode" python3 "$TMP/check_plan.py" "$TMP/out" train 8 "$mode"
done
check "cheap recomputation needs no more arena than none" python3 -c '
import json, sys
n, c = (json.load(open(p)) for p in sys.argv[1:])
assert c["arena_bytes"] <= n["arena_bytes"], (c["arena_bytes"], n["arena_bytes"])' "$TMP/mini_none.json" "$TMP/mini_cheap.json"
expect_rc 0 "$PARROTS" plan "$MINI" --json --top 2
check "--top K lists K buffers" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["top_buffers"]) == 2' "$TMP/out"

# ---- --input HxW -----------------------------------------------------------------
expect_rc 0 "$PARROTS" plan "$FCNN" --input 56x40
expect_in "$TMP/out" "input image [1, 56, 40]"
# the classifier after the flatten takes 64 x 14 x 10 features at 56 x 40
expect_in "$TMP/out" "1,167,210 trainable values"
expect_rc 0 "$PARROTS" plan "$MINI" --input 56x56 --train --batch 2 --json --recompute cheap
check "polynet-mini at 56x56" python3 "$TMP/check_plan.py" "$TMP/out" train 2 cheap
check "the JSON names the new input shape" python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["input"] == [1, 56, 56]' "$TMP/out"
for bad in 5 0x5 5x 5x5x5 -5x5 x5 5X5 99999999x2; do
  expect_rc 2 "$PARROTS" plan "$FCNN" --input "$bad"
  expect_in "$TMP/err" "parrots plan: --input '$bad': expected HxW, such as 224x224 (H and W from 1 to 65536)"
done
printf 'parrots: 1\nname: mlp\ninput: {x: [16]}\nlayers:\n  - linear: {out: 8}\n  - relu:\n  - linear: {out: 4}\n' \
  >"$TMP/mlp.yaml"
expect_rc 2 "$PARROTS" plan "$TMP/mlp.yaml" --input 4x4
expect_in "$TMP/err" "parrots plan: --input 4x4: input 'x' has the per-sample shape [16]; HxW needs an input of at least 3 dimensions (C, H, W)"
expect_rc 2 "$PARROTS" plan "$FCNN" --input 1x1
expect_first "$TMP/err" "parrots plan: --input 1x1: "
expect_in "$TMP/err" "smaller than the kernel 2x2"

# ---- other bad usage ----------------------------------------------------------------
expect_rc 2 "$PARROTS" plan "$FCNN" --recompute none
expect_in "$TMP/err" "parrots plan: --recompute rewrites the training step: add --train"
expect_rc 2 "$PARROTS" plan "$FCNN" --train --recompute all
expect_in "$TMP/err" "parrots plan: --recompute 'all': expected auto, none, cheap or segments"
expect_rc 2 "$PARROTS" plan "$FCNN" --batch 0
expect_in "$TMP/err" "parrots plan: --batch must be at least 1"
expect_rc 2 "$PARROTS" plan "$FCNN" --plot "$TMP/m.jpg"
expect_in "$TMP/err" "m.jpg: the file name must end in .svg or .png"
expect_rc 2 "$PARROTS" plan
expect_rc 2 "$PARROTS" plan "$TMP/missing.yaml"
expect_in "$TMP/err" "missing.yaml"

# ---- --memory-limit ---------------------------------------------------------------------
expect_rc 0 "$PARROTS" plan "$FCNN" --train --json --recompute none
total=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total_bytes"])' "$TMP/out")
expect_rc 0 "$PARROTS" plan "$FCNN" --train --memory-limit "$total" --recompute none
expect_rc 1 "$PARROTS" plan "$FCNN" --train --memory-limit "$((total - 1))" --recompute none
expect_first "$TMP/err" "parrots plan: program 'fashion-cnn' needs "
# auto recomputes what it must to fit the limit
expect_rc 0 "$PARROTS" plan "$FCNN" --train --memory-limit "$((total - 1))"
expect_in "$TMP/out" "recompute cheap (chosen by --recompute auto)"
expect_in "$TMP/out" "total "
expect_rc 1 "$PARROTS" plan "$FCNN" --train --memory-limit 1MiB
expect_first "$TMP/err" "parrots plan: program 'fashion-cnn' needs "
expect_in "$TMP/err" " but the memory limit is 1.00 MiB (parameters, running statistics and optimizer state "
expect_in "$TMP/err" "; the arena peaks at instruction "
expect_rc 0 "$PARROTS" plan "$FCNN" --train --memory-limit 1.5GB
expect_rc 0 "$PARROTS" plan "$FCNN" --train --memory-limit 8GiB
for bad in lots 12XB 1e3x -5MiB ""; do
  expect_rc 2 "$PARROTS" plan "$FCNN" --memory-limit "$bad"
  expect_in "$TMP/err" "parrots plan: --memory-limit '$bad': expected a size such as 8GiB, 512MiB, 1.5GB or 4096 (bytes)"
done
expect_rc 2 "$PARROTS" plan "$FCNN" --memory-limit 0
expect_in "$TMP/err" "parrots plan: --memory-limit '0': the limit must be more than 0 bytes"

# run and train stop before running anything
expect_rc 1 "$PARROTS" run "$FCNN" --batch 2 --memory-limit 64KiB
expect_first "$TMP/err" "parrots run: program 'fashion-cnn' needs "
check "run ran nothing over the limit" test ! -s "$TMP/out"
expect_rc 0 "$PARROTS" run "$FCNN" --batch 2 --iters 1 --warmup 0 --memory-limit 1GiB
expect_in "$TMP/out" "[2, 10]"
expect_rc 2 "$PARROTS" run "$FCNN" --memory-limit 3Gib
expect_in "$TMP/err" "parrots run: --memory-limit '3Gib': expected a size such as 8GiB"

SHORT=(--data synthetic:64 --epochs 1 --batch 32 --threads 2)
expect_rc 1 "$PARROTS" train "$FCNN" "${SHORT[@]}" --memory-limit 2MiB
expect_first "$TMP/err" "parrots train: program 'fashion-cnn' needs "
check "train ran no epoch over the limit" test ! -s "$TMP/out"
expect_rc 2 "$PARROTS" train "$FCNN" "${SHORT[@]}" --memory-limit 2Mb
expect_in "$TMP/err" "parrots train: --memory-limit '2Mb': expected a size such as 8GiB"
expect_rc 2 "$PARROTS" train "$FCNN" "${SHORT[@]}" --recompute some
expect_in "$TMP/err" "parrots train: --recompute 'some': expected auto, none, cheap or segments"
expect_rc 0 "$PARROTS" train "$FCNN" "${SHORT[@]}" --memory-limit 1GiB --recompute none
expect_in "$TMP/err" "memory: "
expect_in "$TMP/err" "recompute none: nothing recomputed"
expect_in "$TMP/out" "trained 1 epoch"

# ---- pictures ----------------------------------------------------------------------------
expect_rc 0 "$PARROTS" plan "$MINI" --train --batch 4 --recompute segments --plot "$TMP/mem.svg"
expect_in "$TMP/err" "plot written to"
check "the memory SVG is well-formed and labelled" python3 - "$TMP/mem.svg" <<'EOF'
import sys, xml.dom.minidom
d = xml.dom.minidom.parse(sys.argv[1])
texts = [t.firstChild.data for t in d.getElementsByTagName("text") if t.firstChild]
for want in ("forward", "backward", "update", "instruction", "live arena bytes", "recompute instruction"):
    assert want in texts, (want, texts)
assert any(t.startswith("planned arena ") for t in texts), texts
assert any(t.startswith("peak: instruction ") for t in texts), texts
assert any(t.startswith("live arena (") and t.endswith("iB)") for t in texts), texts
assert len(d.getElementsByTagName("rect")) > 20 and len(d.getElementsByTagName("line")) > 20
EOF
expect_rc 0 "$PARROTS" plan "$FCNN" --plot "$TMP/mem.png" --json
check "--json keeps stdout to the one object" python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$TMP/out"
check "the memory PNG is a valid, non-trivial image" python3 - "$TMP/mem.png" <<'EOF'
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
rows = [raw[r * (1 + 3 * w) + 1:(r + 1) * (1 + 3 * w)] for r in range(h)]
colored = sum(1 for row in rows for i in range(0, 3 * w, 3) if max(row[i:i + 3]) - min(row[i:i + 3]) > 60)
assert colored > 2000, colored
EOF

# ---- the GPU path's plan (no GPU needed): fusion, bf16, cuDNN workspaces ---------------
expect_rc 2 "$PARROTS" plan "$MINI" --train --precision bf16
expect_in "$TMP/err" "parrots plan: --precision bf16 needs --device cuda (the CPU kernels compute in f32)"
expect_rc 2 "$PARROTS" plan "$MINI" --train --device cuda --precision fp16
expect_in "$TMP/err" "parrots plan: --precision 'fp16': expected fp32 or bf16"
expect_rc 2 "$PARROTS" plan "$MINI" --fuse relu
expect_in "$TMP/err" "parrots plan: --fuse 'relu': expected auto, none or bn-relu"
expect_rc 0 "$PARROTS" plan "$MINI" --train --batch 32 --recompute none --device cuda --fuse none --json
cp "$TMP/out" "$TMP/gpu32.json"
expect_rc 0 "$PARROTS" plan "$MINI" --train --batch 32 --recompute none --device cuda --precision bf16 --json
cp "$TMP/out" "$TMP/gpu16.json"
# bf16 activations take half the bytes (the f32 parameter gradients and the cuDNN
# workspace budget do not shrink); parameters and optimizer state stay f32
check "bf16 plan: smaller arena, same persistent block" python3 - "$TMP/gpu32.json" "$TMP/gpu16.json" <<'EOF2'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
assert b["workspace_bytes"] == a["workspace_bytes"], (a["workspace_bytes"], b["workspace_bytes"])
act = lambda d: d["arena_bytes"] - d["workspace_bytes"]
assert act(b) < 0.65 * act(a), (act(a), act(b))
assert b["persistent_bytes"] == a["persistent_bytes"], (a["persistent_bytes"], b["persistent_bytes"])
EOF2

# ---- PolyNet's whole training step at batch 32, 331 x 331: planned only ------------------
t0=$(date +%s.%N)
expect_rc 0 "$PARROTS" plan "$POLY" --train --batch 32 --json
t1=$(date +%s.%N)
check "PolyNet training plan JSON" python3 "$TMP/check_plan.py" "$TMP/out" train 32 cheap
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("polynet --train --batch 32: planned in %.3f s, command %.2f s; total %.2f GiB, arena/lower bound %.4f" % (d["plan_seconds"], float(sys.argv[3]) - float(sys.argv[2]), d["total_bytes"] / 2**30, d["ratio"]))' \
  "$TMP/out" "$t0" "$t1" || true
finish
