# Shared by tests/cli/*_test.sh: a temp dir that is removed on exit, and assertions that print
# what was expected and what happened.
set -euo pipefail
: "${CLADE:?CLADE must point at the clade binary}"
T=$(mktemp -d "${TMPDIR:-/tmp}/clade-cli-XXXXXX")
trap 'rm -rf "$T"' EXIT
checks=0

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_ok CMD... — runs CMD, which must exit 0; its stdout is left in $T/out.
expect_ok() {
  if ! "$@" >"$T/out" 2>"$T/err"; then
    cat "$T/out" "$T/err" >&2
    fail "expected success: $*"
  fi
  checks=$((checks + 1))
}

# expect_fail CODE SUBSTRING CMD... — CMD must exit CODE and print SUBSTRING on stderr.
expect_fail() {
  local code=$1 want=$2
  shift 2
  local rc=0
  "$@" >"$T/out" 2>"$T/err" || rc=$?
  [ "$rc" -eq "$code" ] || { cat "$T/err" >&2; fail "expected exit $code, got $rc: $*"; }
  grep -qF -- "$want" "$T/err" || { cat "$T/err" >&2; fail "expected stderr to say '$want': $*"; }
  checks=$((checks + 1))
}

# expect_out SUBSTRING — the last command's stdout must contain SUBSTRING.
expect_out() {
  grep -qF -- "$1" "$T/out" || { cat "$T/out" >&2; fail "expected output to contain '$1'"; }
  checks=$((checks + 1))
}

done_checks() { echo "$checks passed, 0 failed"; }
