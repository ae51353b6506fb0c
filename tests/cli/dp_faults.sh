# Faults in data-parallel training (`mpirun -np N parrots train`): a rank that
# stops responding or dies, and ranks that disagree at set-up, end the whole job
# promptly with a message that names the rank; no process is left behind.
# Ranks misbehave through the test hook PARROTS_TEST_FAULT=RANK:STEP:ACTION
# (frontends/cli/cmd_train.c). Every job runs under `timeout`, so a hang fails
# the test instead of hanging it.
source "$(dirname "$0")/lib.bash" "$@"

if ! command -v mpirun >/dev/null 2>&1; then
  echo "SKIP: mpirun not found: the data-parallel fault tests need Open MPI's mpirun"
  exit 0
fi

# The network lives in $TMP, so every process of this test has $TMP on its
# command line: that is how the leftover check finds them (and only them).
NET="$TMP/net.yaml"
cp "$ROOT/examples/fashion-cnn.yaml" "$NET"
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
TRAIN=("$PARROTS" train "$NET" --epochs 1 --no-augment --quiet)
trap 'pkill -KILL -f "$TMP" 2>/dev/null; rm -rf "$TMP"' EXIT

# job NAME LIMIT_S MPIRUN_ARGS...: runs mpirun (stopped after 180 s), output in
# $TMP/NAME.out; the job must fail, and end within LIMIT_S seconds. (mpirun's
# own status may be 137 when a rank was killed, so a hang is told by timeout's
# 124 or the time.)
job() {
  local name="$1" limit="$2"; shift 2
  local t0 rc=0
  t0=$(date +%s.%N)
  timeout -k 5 180 "${MPIRUN[@]}" "$@" >"$TMP/$name.out" 2>&1 || rc=$?
  local dt
  dt=$(echo "$(date +%s.%N) - $t0" | bc)
  printf '%s: exit %d after %.1f s\n' "$name" "$rc" "$dt"
  last_rc=$rc
  checks=$((checks + 1))
  if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then
    echo "FAIL: $name: mpirun exited $rc (0: the fault went unnoticed; 124: the job hung)"
    sed 's/^/  | /' "$TMP/$name.out" | head -20
    failures=$((failures + 1))
  elif [ "$(echo "$dt > $limit" | bc)" -eq 1 ]; then
    echo "FAIL: $name: the job took $dt s, more than $limit s"
    failures=$((failures + 1))
  fi
}

# expect_line NAME REGEX: a whole line of the job's output matches the
# extended regular expression.
expect_line() {
  checks=$((checks + 1))
  if ! grep -qxE -- "$2" "$TMP/$1.out"; then
    echo "FAIL: $1: no line matches '$2':"; sed 's/^/  | /' "$TMP/$1.out" | head -20
    failures=$((failures + 1))
  fi
}

# no_leftovers NAME: no process of this test outlives its job (a few seconds
# allowed for the kills to land).
no_leftovers() {
  checks=$((checks + 1))
  for _ in $(seq 50); do
    pgrep -f "$TMP" >/dev/null || return 0
    sleep 0.1
  done
  echo "FAIL: $1: processes left behind:"; pgrep -af "$TMP" | sed 's/^/  | /'
  pkill -KILL -f "$TMP"
  failures=$((failures + 1))
}

num='[0-9]+'
# the timeout message's tail, after "allreduce #N (gradient bucket B) of N f32 elements"
bucket="allreduce #$num \\(gradient bucket $num\\) of $num f32 elements"

# ---- a rank stops responding: the others time out and name it -----------------
# Rank 2 stops (SIGSTOP) before global step 3: ranks 0 and 1 time out after 5 s in
# the step's first gradient allreduce, probe each other for 5 s more, name rank
# 2, and the first to report takes the job down with MPI_Abort, the stopped rank
# included.
job stop 90 -np 3 -x PARROTS_TEST_FAULT=2:3:stop "${TRAIN[@]}" --data synthetic:512 --batch 8 --comm-timeout 5
# The first rank to conclude names rank 2 and aborts the job. The abort resumes
# the stopped rank (Open MPI sends SIGCONT before it terminates a stopped
# process), so a surviving rank still inside its probe's grace period may then
# hear rank 2 answer: that rank is killed by the abort before it prints, or
# reports that every rank responded. So: at least one rank names rank 2, and no
# rank names any other rank.
checks=$((checks + 1))
named=0
for r in 0 1; do
  other=$((1 - r))
  grep -qxE -- "parrots train: rank $r: program 'fashion-cnn': instruction $num \\(ALLREDUCE_WAIT bucket $num\\): rank $r: $bucket did not complete within 5 s: rank 2 did not respond \\(rank $other did\\); it died, hangs, or skipped this collective" "$TMP/stop.out" && named=$((named + 1))
done
if [ "$named" -eq 0 ] || grep -qE "rank [01] did not respond|ranks [0-9, and]+ did not respond" "$TMP/stop.out"; then
  echo "FAIL: stop: no surviving rank named rank 2 (or one named another rank):"; sed 's/^/  | /' "$TMP/stop.out" | head -20
  failures=$((failures + 1))
fi
echo "stop: $named of 2 surviving ranks printed the line naming rank 2"
# the job ends with the code the reporting rank passed to MPI_Abort (1, a
# runtime failure): without the abort the stopped rank would hold it until the
# timeout (124). (Open MPI's own "MPI_ABORT was invoked" banner is not checked:
# when two ranks abort at once, mpirun sometimes loses it.)
checks=$((checks + 1))
if [ "$last_rc" -ne 1 ]; then
  echo "FAIL: stop: mpirun exited $last_rc, not 1 (the code of the reporting rank's MPI_Abort)"
  failures=$((failures + 1))
fi
no_leftovers stop

# ---- a rank dies: mpirun sees it and ends the job --------------------------------
job kill 90 -np 3 -x PARROTS_TEST_FAULT=1:3:kill "${TRAIN[@]}" --data synthetic:512 --batch 8 --comm-timeout 5
expect_line kill "mpirun noticed that process rank 1 with PID $num on node .* exited on signal 9 \\(Killed\\)\\."
no_leftovers kill

# ---- ranks disagree at set-up: all stop together with one message ------------------
# (MPMD: `mpirun -np 1 A : -np 1 B` runs A as rank 0 and B as rank 1.)
job data 60 -np 1 "${TRAIN[@]}" --data synthetic:512 --batch 8 : -np 1 "${TRAIN[@]}" --data bad --batch 8
expect_line data "parrots train: rank 0: stopping: rank 1 failed during set-up \\(its message above\\)"
expect_line data "parrots train: rank 1: unknown dataset 'bad' \\(known: fashion-mnist, synthetic:N\\)"
no_leftovers data

# Different training set sizes.
size_msg="rank 1 has 256 training samples, rank 0 has 512: every rank must read the same training set"
job size 60 -np 1 "${TRAIN[@]}" --data synthetic:512 --batch 8 --train-limit 512 \
  : -np 1 "${TRAIN[@]}" --data synthetic:512 --batch 8 --train-limit 256
expect_line size "parrots train: rank 0: $size_msg"
expect_line size "parrots train: rank 1: $size_msg"
no_leftovers size

hash='[0-9a-f]{16}'
prog_msg="rank 1 has a different compiled program \\(network, solver, batch or bucket layout\\) \\(hash $hash\\) than rank 0 \\(hash $hash\\)"
job program 60 -np 1 "${TRAIN[@]}" --data synthetic:512 --batch 8 : -np 1 "${TRAIN[@]}" --data synthetic:512 --batch 4
expect_line program "parrots train: rank 0: $prog_msg"
expect_line program "parrots train: rank 1: $prog_msg"
no_leftovers program

# the same through the bucket layout alone
job buckets 60 -np 1 "${TRAIN[@]}" --data synthetic:512 --batch 8 : -np 1 "${TRAIN[@]}" --data synthetic:512 --batch 8 \
  --bucket-size 64KiB
expect_line buckets "parrots train: rank 0: $prog_msg"
no_leftovers buckets

finish
