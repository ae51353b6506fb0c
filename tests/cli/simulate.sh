# `parrots simulate` (the scaling model) and `parrots profile`: the table and the
# JSON's fields on PolyNet-mini with the shipped CPU profile, efficiency 1 at one
# GPU, a profile measured here read back by simulate, and the exact messages of
# bad --gpus, --network and --profile values. Predicted times are not asserted
# (docs/scaling.md); their relations are.
source "$(dirname "$0")/lib.bash" "$@"

MINI="$ROOT/examples/polynet-mini.yaml"
CPU="$ROOT/profiles/cpu-epyc-2core.profile"

# ---- help ---------------------------------------------------------------------
expect_rc 0 "$PARROTS" --help
expect_in "$TMP/out" "simulate  predict data-parallel step time"
expect_in "$TMP/out" "profile   measure per-op times"
expect_rc 0 "$PARROTS" simulate --help
for opt in "--profile FILE" "--gpus LIST" "--network SPEC" "--batch N" "--bucket-size SIZE" "--json"; do
  expect_in "$TMP/out" "  $opt "
done
expect_in "$TMP/out" "h200-ib, cpu-shm"

# ---- the table ---------------------------------------------------------------------
expect_rc 0 "$PARROTS" simulate "$MINI" --profile "$CPU" --network cpu-shm --gpus 2,4 --batch 8
for field in "network          polynet-mini" "training step, batch 8 per GPU" "gradient bucket" \
  "profile          $CPU" "network model    cpu-shm: 1024 GPUs per node" "2 cores per node shared by its ranks" \
  "compute " "gpus  nodes    step_ms    images/s efficiency  compute_ms   comm_ms  exposed_ms  overlap"; do
  expect_in "$TMP/out" "$field"
done
# the 1-GPU row comes first even when --gpus does not list it, with efficiency 1
checks=$((checks + 1))
if ! awk '$1 == 1 && $2 == 1 && $5 == "1.000" { found = 1 } END { exit !found }' "$TMP/out"; then
  echo "FAIL: no 1-GPU row with efficiency 1.000"; sed 's/^/  | /' "$TMP/out"; failures=$((failures + 1))
fi
# 4 ranks of 2 threads on 2 cores: compute 4 times the 1-rank compute
checks=$((checks + 1))
if ! awk '$1 == 1 { c1 = $6 } $1 == 4 { c4 = $6 } END { r = c4 / c1; exit !(r > 3.99 && r < 4.01) }' "$TMP/out"; then
  echo "FAIL: 4 oversubscribed ranks should compute 4x slower"; sed 's/^/  | /' "$TMP/out"; failures=$((failures + 1))
fi

# ---- JSON ----------------------------------------------------------------------------
expect_rc 0 "$PARROTS" simulate "$MINI" --profile "$CPU" --gpus 1,8,16 --batch 8 --json
for key in '"network": "polynet-mini"' '"batch_per_gpu": 8' '"buckets": ' '"bucket_source": ' '"grad_bytes": ' \
  '"network_model": {"name": "h200-ib", "gpus_per_node": 8' '"results": [{"gpus": 1, "nodes": 1,' \
  '"step_s": ' '"images_per_s": ' '"efficiency": 1,' '"compute_s": ' '"comm_s": 0,' '"exposed_comm_s": 0,' \
  '"overlap_fraction": null' '{"gpus": 16, "nodes": 2,' '"compute_slowdown": 1}'; do
  expect_in "$TMP/out" "$key"
done
checks=$((checks + 1))
if ! python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); r=d["results"]; assert [x["gpus"] for x in r]==[1,8,16]; assert all(0 < x["efficiency"] <= 1 for x in r); assert all(abs(x["images_per_s"]-x["gpus"]*8/x["step_s"])<1e-6*x["images_per_s"] for x in r); assert r[2]["comm_s"] > 0 and 0 <= r[2]["overlap_fraction"] <= 1' "$TMP/out"; then
  echo "FAIL: JSON arithmetic"; head -c 600 "$TMP/out"; failures=$((failures + 1))
fi

# ---- profile: measured here, then read by simulate --------------------------------------
expect_rc 0 "$PARROTS" profile "$MINI" --train --batch 2 --steps 2 --threads 1 -o "$TMP/mini.profile"
expect_in "$TMP/out" "conv_bwd_weight"
expect_in "$TMP/out" "step: measured "
expect_in "$TMP/mini.profile" "parrots-profile 1"
expect_in "$TMP/mini.profile" "threads 1"
expect_in "$TMP/mini.profile" "op conv "
expect_rc 0 "$PARROTS" simulate "$MINI" --profile "$TMP/mini.profile" --gpus 2 --batch 2 --network cpu-shm
expect_in "$TMP/out" "1 thread, "
expect_rc 0 "$PARROTS" profile "$MINI" --train --batch 2 --roofline h200 --target-ms 50 -o "$TMP/roof.profile"
expect_in "$TMP/out" "roofline h200: calibration factor "
expect_in "$TMP/roof.profile" "device NVIDIA H200 SXM (roofline, not measured)"
expect_rc 0 "$PARROTS" simulate "$MINI" --profile "$TMP/roof.profile" --gpus 8 --batch 2
expect_in "$TMP/out" "compute          50.00 ms per step on 1 GPU"

# ---- bad values -------------------------------------------------------------------------
expect_rc 2 "$PARROTS" simulate "$MINI" --profile "$CPU" --gpus 8,,16
expect_in "$TMP/err" "parrots simulate: --gpus '8,,16': expected a comma-separated list of at most 64 GPU counts from 1 to 1048576, such as 8,16,32"
expect_rc 2 "$PARROTS" simulate "$MINI" --profile "$CPU" --gpus 0
expect_in "$TMP/err" "parrots simulate: --gpus '0': expected a comma-separated list"
expect_rc 2 "$PARROTS" simulate "$MINI" --profile "$CPU" --network infiniband
expect_in "$TMP/err" "parrots simulate: --network 'infiniband': not a preset (h200-ib, cpu-shm) nor a key=value list"
expect_rc 2 "$PARROTS" simulate "$MINI" --profile "$CPU" --network inter_bw=fast
expect_in "$TMP/err" "parrots simulate: --network 'inter_bw=fast': inter_bw 'fast': expected a number above 0"
expect_rc 2 "$PARROTS" simulate "$MINI"
expect_in "$TMP/err" "parrots simulate: --profile FILE is required"
expect_rc 1 "$PARROTS" simulate "$MINI" --profile "$TMP/none.profile"
expect_in "$TMP/err" "parrots simulate: $TMP/none.profile: cannot open the profile: No such file or directory"
printf 'parrots-profile 1\ndevice x\nthreads 2\ndate d\nsource s\nop conv 1 2 -3 4\n' >"$TMP/bad.profile"
expect_rc 2 "$PARROTS" simulate "$MINI" --profile "$TMP/bad.profile"
expect_in "$TMP/err" "parrots simulate: $TMP/bad.profile:6: op 'conv': coefficient c -3 is negative (time models are non-negative)"
printf 'parrots-profile 1\ndevice x\nthreads 2\ndate d\nsource s\nop conv 1e-6 1e-11 0 4\n' >"$TMP/partial.profile"
expect_rc 2 "$PARROTS" simulate "$MINI" --profile "$TMP/partial.profile"
expect_in "$TMP/err" "parrots simulate: the profile has no time model for op 'batchnorm' (used by '"
expect_in "$TMP/err" "and no 'default' line"
expect_rc 2 "$PARROTS" simulate "$MINI" --profile "$CPU" --bucket-size 0
expect_in "$TMP/err" "parrots simulate: --bucket-size '0': expected a size above 0 such as 25MiB, 4MB or 1048576"
expect_rc 2 "$PARROTS" profile "$MINI" --train
expect_in "$TMP/err" "parrots profile: -o FILE is required (the profile to write)"
expect_rc 2 "$PARROTS" profile "$MINI" -o "$TMP/x.profile" --roofline a100
expect_in "$TMP/err" "parrots profile: --roofline 'a100': expected h200"

finish
