# Helpers for the command-line tests: each test script sources this file.
# Usage in a test: source "$(dirname "$0")/lib.sh" "$@"
PARROTS="$1"
ROOT="$2"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
failures=0
checks=0

# expect_rc WANT CMD...: runs CMD, keeps stdout in $TMP/out and stderr in $TMP/err.
expect_rc() {
  local want="$1"; shift
  local rc=0
  "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  checks=$((checks + 1))
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL: '$*' exited $rc, expected $want"; sed 's/^/  stderr: /' "$TMP/err" | head -5
    failures=$((failures + 1))
  fi
}

# expect_in FILE TEXT: the fixed string TEXT occurs in FILE.
expect_in() {
  checks=$((checks + 1))
  if ! grep -qF -- "$2" "$1"; then
    echo "FAIL: expected '$2' in $(basename "$1"):"; sed 's/^/  | /' "$1" | head -8
    failures=$((failures + 1))
  fi
}

finish() {
  echo "$((checks - failures)) passed, $failures failed"
  [ "$failures" -eq 0 ]
}
