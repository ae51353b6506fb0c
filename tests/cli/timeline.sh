# `parrots timeline-summary`: the numbers of a hand-written two-rank trace
# (tests/data/timeline/two_ranks.json, built so that the sums are known:
#   rank 0: compute 4+3+2+6+4 = 19 ms, allreduce 4+2 = 6 ms, waits 1 ms, 2 steps of 10 ms;
#   rank 1: compute 5+4 = 9 ms, allreduce 6 ms, waits 3 ms, 1 step of 12 ms;
#   overlap (6-1)/6, (6-3)/6 and in total (12-4)/12;
# plus a 0.5 ms broadcast, metadata and instant events, unknown keys, escapes),
# --json, --rank, --plot (SVG and PNG), and the exact messages of broken files.
source "$(dirname "$0")/lib.bash" "$@"

FIX="$ROOT/tests/data/timeline/two_ranks.json"

check() { # check DESCRIPTION COMMAND...
  checks=$((checks + 1))
  local what="$1"; shift
  if ! "$@" >"$TMP/check.out" 2>&1; then
    echo "FAIL: $what"; sed 's/^/  | /' "$TMP/check.out" | head -8
    failures=$((failures + 1))
  fi
}

# expect_err FILE-CONTENT MESSAGE: the command fails with exit 2 and exactly this stderr.
expect_err() {
  printf '%s' "$1" >"$TMP/bad.json"
  expect_rc 2 "$PARROTS" timeline-summary "$TMP/bad.json"
  checks=$((checks + 1))
  local got
  got="$(cat "$TMP/err")"
  if [ "$got" != "parrots timeline-summary: $TMP/bad.json$2" ]; then
    echo "FAIL: for $(printf '%q' "$1")"; echo "  expected: parrots timeline-summary: \$TMP/bad.json$2"
    echo "  got:      ${got//$TMP/\$TMP}"
    failures=$((failures + 1))
  fi
}

# ---- help ----------------------------------------------------------------------
expect_rc 0 "$PARROTS" --help
expect_in "$TMP/out" "  timeline-summary "
expect_in "$TMP/out" " summarise a training timeline: compute, allreduce, overlap"
expect_rc 0 "$PARROTS" timeline-summary --help
expect_in "$TMP/out" "usage: parrots timeline-summary TRACE.json"
for opt in "--json " "--rank R " "--plot FILE " "--help "; do expect_in "$TMP/out" "  $opt"; done
expect_in "$TMP/out" "overlap         (comm_s - exposed_comm_s) / comm_s"
expect_rc 2 "$PARROTS" timeline-summary
expect_in "$TMP/err" "parrots timeline-summary: missing argument (usage: parrots timeline-summary TRACE.json)"

# ---- the table -----------------------------------------------------------------
expect_rc 0 "$PARROTS" timeline-summary "$FIX"
expect_in "$TMP/out" "$FIX: 2 ranks, 16 complete events, 7 dropped while recording (the buffer was full)"
expect_in "$TMP/out" "rank     steps    step_ms   compute_s      comm_s   exposed_s  overlap"
expect_in "$TMP/out" "0            2     10.000    0.019000    0.006000    0.001000    83.3%"
expect_in "$TMP/out" "1            1     12.000    0.009000    0.006000    0.003000    50.0%"
expect_in "$TMP/out" "total        3     10.667    0.028000    0.012000    0.004000    66.7%"

expect_rc 0 "$PARROTS" timeline-summary "$FIX" --rank 1
expect_in "$TMP/out" "1 rank, 5 complete events"
expect_in "$TMP/out" "1            1     12.000    0.009000    0.006000    0.003000    50.0%"
check "--rank 1: no total line, no rank 0" bash -c "! grep -qE '^(total|0 ) ' '$TMP/out'"
expect_rc 2 "$PARROTS" timeline-summary "$FIX" --rank 5
expect_in "$TMP/err" "parrots timeline-summary: $FIX: no complete events of rank 5"

# ---- JSON ----------------------------------------------------------------------
expect_rc 0 "$PARROTS" timeline-summary "$FIX" --json
cat >"$TMP/check.py" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
def near(a, b): assert abs(a - b) < 1e-9, (a, b)
assert d["ranks"] == 2 and d["steps"] == 3 and d["dropped"] == 7 and d["events"] == 16, d
near(d["compute_s"], 0.028); near(d["comm_s"], 0.012); near(d["exposed_comm_s"], 0.004)
near(d["other_comm_s"], 0.0005); near(d["step_s"], 0.032 / 3); near(d["overlap_fraction"], 0.666667)
r0, r1 = d["per_rank"]
assert r0["rank"] == 0 and r1["rank"] == 1
near(r0["compute_s"], 0.019); near(r0["comm_s"], 0.006); near(r0["exposed_comm_s"], 0.001)
near(r0["overlap_fraction"], 0.833333); assert r0["steps"] == 2; near(r0["step_s"], 0.010)
near(r1["compute_s"], 0.009); near(r1["exposed_comm_s"], 0.003); near(r1["overlap_fraction"], 0.5)
near(r1["span_s"], 0.012)
EOF
check "--json fields and numbers" python3 "$TMP/check.py" "$TMP/out"

# a bare array of events (Chrome's other form), no allreduce: overlap is null
printf '[{"name": "a", "cat": "compute", "ph": "X", "ts": 0, "dur": 1500, "pid": 3}]\n' >"$TMP/array.json"
expect_rc 0 "$PARROTS" timeline-summary "$TMP/array.json" --json
check "array form" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["overlap_fraction"] is None and d["dropped"] is None and d["per_rank"][0]["rank"] == 3 and abs(d["compute_s"] - 0.0015) < 1e-12, d' "$TMP/out"
expect_rc 0 "$PARROTS" timeline-summary "$TMP/array.json"
expect_in "$TMP/out" "3            0      0.000    0.001500    0.000000    0.000000        -"

# ---- the picture ---------------------------------------------------------------
expect_rc 0 "$PARROTS" timeline-summary "$FIX" --plot "$TMP/tl.svg"
for s in '<svg xmlns="http://www.w3.org/2000/svg"' 'timeline: overlap fraction 0.667' '>rank 0 compute</text>' \
  '>rank 0 comm</text>' '>rank 1 compute</text>' '>rank 1 comm</text>' '<g id="rank0-compute"' '<g id="rank0-wait"' \
  '<g id="rank0-allreduce"' '<g id="rank0-other"' '<g id="rank1-wait"' '>time (ms)</text>' \
  '>waiting for an allreduce</text>' '</svg>'; do
  expect_in "$TMP/tl.svg" "$s"
done
check "the SVG is well-formed XML" python3 -c 'import sys, xml.dom.minidom as m; m.parse(sys.argv[1])' "$TMP/tl.svg"
# rank 1's allreduce (bucket 0, 2 to 8 ms of 20) is wide enough for its label
check "bucket label" python3 -c '
import sys, xml.etree.ElementTree as E
ns = "{http://www.w3.org/2000/svg}"
g = [g for g in E.parse(sys.argv[1]).getroot().iter(ns + "g") if g.get("id") == "rank1-allreduce"][0]
r = g.find(ns + "rect"); t = g.find(ns + "text")
assert abs(float(r.get("x")) - (150 + 920 * 2 / 20)) < 0.01 and abs(float(r.get("width")) - 920 * 6 / 20) < 0.01
assert t.text == "0", t.text' "$TMP/tl.svg"
expect_rc 0 "$PARROTS" timeline-summary "$FIX" --rank 0 --plot "$TMP/r0.svg"
check "--rank 0 draws one rank" bash -c "grep -q 'rank 0 comm' '$TMP/r0.svg' && ! grep -q 'rank 1' '$TMP/r0.svg'"
# PNG: the same figure on the raster canvas, 1100 x (140 + 64 per rank) pixels
expect_rc 0 "$PARROTS" timeline-summary "$FIX" --plot "$TMP/tl.png"
cat >"$TMP/png.py" <<'EOF'
import struct, sys, zlib
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n", b[:8]
w, h, depth, color = struct.unpack(">IIBB", b[16:26])
assert b[12:16] == b"IHDR" and (w, h, depth, color) == (int(sys.argv[2]), int(sys.argv[3]), 8, 2), (w, h, depth, color)
pos, idat = 8, b""
while pos < len(b):
    n, = struct.unpack(">I", b[pos:pos + 4]); t = b[pos + 4:pos + 8]
    assert zlib.crc32(b[pos + 4:pos + 8 + n]) == struct.unpack(">I", b[pos + 8 + n:pos + 12 + n])[0], t
    if t == b"IDAT": idat += b[pos + 8:pos + 8 + n]
    pos += 12 + n
raw = zlib.decompress(idat)
assert len(raw) == h * (1 + 3 * w), len(raw)
px = set()
for y in range(h):
    row = raw[y * (1 + 3 * w) + 1:(y + 1) * (1 + 3 * w)]
    px.update(row[i:i + 3] for i in range(0, len(row), 3))
# every span kind's colour and the lane background are drawn (the wait of rank 1 too)
for rgb in sys.argv[4:]:
    assert bytes.fromhex(rgb) in px, rgb
EOF
check "the PNG: signature, 1100 x 268, chunks, span colours" \
  python3 "$TMP/png.py" "$TMP/tl.png" 1100 268 4c78a8 e45756 54a24b b279a2 f4f4f4
expect_rc 0 "$PARROTS" timeline-summary "$FIX" --rank 1 --plot "$TMP/r1.png"
check "--rank 1 PNG: one rank, 1100 x 204" python3 "$TMP/png.py" "$TMP/r1.png" 1100 204 4c78a8 e45756 54a24b
expect_rc 2 "$PARROTS" timeline-summary "$FIX" --plot "$TMP/tl.pdf"
expect_in "$TMP/err" "parrots timeline-summary: --plot $TMP/tl.pdf: the file name must end in .svg or .png"
expect_rc 1 "$PARROTS" timeline-summary "$FIX" --plot "$TMP/no/such/dir/tl.svg"
expect_in "$TMP/err" "parrots timeline-summary: $TMP/no/such/dir/tl.svg: cannot create the plot: No such file or directory"

# ---- broken files: exact messages ---------------------------------------------------
expect_rc 1 "$PARROTS" timeline-summary "$TMP/missing.json"
expect_in "$TMP/err" "parrots timeline-summary: $TMP/missing.json: cannot open: No such file or directory"
expect_err "$(head -c 700 "$FIX")" ":9:1: not valid JSON: the file ends early (truncated?)"
expect_err '{"traceEvents": [{"ph": "X", "ts": 1 "dur": 2}]}' \
  ":1:43: not valid JSON: did not find expected ',' or '}' (in an object)"
expect_err '42' ":1:1: expected a Chrome trace (a JSON object with \"traceEvents\", or an array of events), found 42"
expect_err '"text"' \
  ":1:1: expected a Chrome trace (a JSON object with \"traceEvents\", or an array of events), found a string \"text\""
expect_err '' ": the file is empty (expected a Chrome trace: a JSON object)"
expect_err $'{"displayTimeUnit": "ms",\n "otherData": {"dropped": 0}}' \
  ":1:1: the object has no \"traceEvents\" array (is this a Chrome trace?)"
expect_err '{"traceEvents": {"a": 1}}' ":1:17: expected \"traceEvents\" to be an array, found an object"
expect_err '{"traceEvents": [1]}' ":1:18: expected an event object, found 1"
expect_err $'{"traceEvents": [\n  {"name": "a", "cat": "compute", "ph": "X", "ts": 0, "dur": -5, "pid": 0}\n]}' \
  ":2:62: event: \"dur\": expected a duration >= 0, found -5"
expect_err $'{"traceEvents": [\n  {"name": "a", "ph": "X", "ts": "12", "dur": 5}\n]}' \
  ":2:34: event: \"ts\": expected a number, found a string \"12\""
expect_err $'{"traceEvents": [\n  {"name": "a", "ph": "X", "ts": 12}\n]}' \
  ":2:3: complete event (\"ph\": \"X\") without \"dur\""
expect_err '{"traceEvents": [{"ph": "X", "ts": 0, "dur": 1, "pid": 1.5}]}' \
  ":1:56: event: \"pid\": expected an integer, found 1.5"
expect_err '{"traceEvents": []} x' ":1:21: not valid JSON: unexpected text after the trace"
# other phases are not checked: an instant event needs no "dur", a metadata event no "ts"
printf '{"traceEvents": [{"ph": "i", "ts": 5}, {"ph": "M", "name": "x"}]}' >"$TMP/other.json"
expect_rc 0 "$PARROTS" timeline-summary "$TMP/other.json"
expect_in "$TMP/out" ": 0 ranks, 0 complete events"
finish
