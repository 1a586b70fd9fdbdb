# Shared by tests/cli/*_test.sh: a temp dir that is removed on exit (KEEP=1 keeps it), assertions
# that print what was expected and what happened, waits on conditions, and daemons on loopback.
# -E: the ERR trap below also fires inside functions and command substitutions.
set -Eeuo pipefail
: "${CLADE:?CLADE must point at the clade binary}"
T=$(mktemp -d "${TMPDIR:-/tmp}/clade-cli-XXXXXX")
checks=0

fail() { echo "FAIL: $*" >&2; exit 1; }

# A command that fails outside an assertion ends the test through `set -e`; this says which
# command, with its exit code, file and line, and the chain of helpers it ran in. (Without it the
# test would end without a word.)
on_error() {
  local rc=$1 cmd=$2 where i
  where="$(basename "${BASH_SOURCE[1]}"):$3"
  for ((i = 1; i < ${#FUNCNAME[@]} - 1; i++)); do
    where+=" in ${FUNCNAME[i]}, called from $(basename "${BASH_SOURCE[i + 1]}"):${BASH_LINENO[i]}"
  done
  echo "FAIL: '$cmd' exited $rc at $where" >&2
}
trap 'on_error $? "$BASH_COMMAND" $LINENO' ERR

# wait_for SECONDS WHAT CMD... — runs CMD until it succeeds; fails saying WHAT did not happen once
# SECONDS have passed (a deadline for a loaded machine, not an expected time).
wait_for() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "waited $limit s for $what"
    sleep 0.05
  done
}

# clock_past EPOCH — the wall clock (whole seconds) is past EPOCH.
clock_past() { [ "$(date +%s)" -gt "$1" ]; }

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

# --- Daemons: `clade hsm serve` on loopback, on ports chosen at run time, killed on exit. --------
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  { wait; } 2>/dev/null || true  # no "Killed" notices after the closing line
  [ -n "${KEEP:-}" ] && { echo "kept $T"; return; }
  rm -rf "$T"
}
trap cleanup EXIT

# start_daemon STATE NAME [LISTEN] — serves $T/STATE on LISTEN (default 127.0.0.1:0), stdout in
# $T/NAME.out, log in $T/NAME.log; waits until it reports its address (a condition, with a
# deadline for a loaded machine) or exits. Sets ADDR (HOST:PORT) and PID.
start_daemon() {
  # GRACE: the daemon's --grace. A short one keeps a test's stop quick; a test that stops a daemon
  # with work in flight gives a long one, so that "the work finished" does not depend on the speed
  # of a loaded machine.
  local state=$1 name=$2 listen=${3:-127.0.0.1:0} grace=${GRACE:-5}
  # The output file exists before the daemon's redirect makes it, so the first look at it cannot
  # fail (under `set -e` a failing read would end the test without a word).
  : >"$T/$name.out"
  "$CLADE" hsm serve --state "$T/$state" --listen "$listen" --grace "$grace" >"$T/$name.out" \
    2>"$T/$name.log" &
  PID=$!
  pids+=("$PID")
  ADDR=
  local deadline=$((SECONDS + 60))
  until ADDR=$(sed -n 's/^listening on //p' "$T/$name.out") && [ -n "$ADDR" ]; do
    kill -0 "$PID" 2>/dev/null || { cat "$T/$name.log" >&2; fail "daemon $name exited"; }
    [ "$SECONDS" -lt "$deadline" ] || fail "daemon $name did not report its address in 60 s"
    sleep 0.1
  done
  checks=$((checks + 1))
}

# stop_daemon PID NAME — SIGTERM; the daemon must exit 0 and log that it stopped.
stop_daemon() {
  kill -TERM "$1"
  local rc=0
  wait "$1" || rc=$?
  [ "$rc" -eq 0 ] || { cat "$T/$2.log" >&2; fail "daemon $2 exited $rc after SIGTERM"; }
  grep -q "event=stopped" "$T/$2.log" || fail "daemon $2 did not log its stop"
  checks=$((checks + 1))
}
