#!/usr/bin/env bash
# The production line (`clade line run`) against real daemons on loopback ports chosen at run time:
# 500 chips in each key mode, all verifying; the line's client certificate checked by every member;
# the member in use killed mid-run (failover, nothing lost, nothing duplicated); the line itself
# killed mid-run and rerun (resume); an exec programmer that fails one chip in ten (exactly those
# reported, the others programmed, the issued-but-unprogrammed certificates explained).
source "$(dirname "$0")/lib.sh"
# sql DB QUERY — one query on a line database, waiting for the writer's lock if need be.
sql() { sqlite3 -cmd ".timeout 5000" "$1" "$2"; }

# done_count DB — devices done so far (0 before the line made its database).
done_count() {
  [ -f "$1" ] || { echo 0; return; }
  sql "$1" "select count(*) from devices where status='done'" 2>/dev/null || echo 0
}

# alive PID — the process runs (one that exited but is not yet waited for does not count).
alive() {
  local st
  st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
  [ "$st" != Z ]
}

# wait_done DB N PID — polls until N devices are done while the line PID still runs.
wait_done() {
  for _ in $(seq 1 1200); do
    [ "$(done_count "$1")" -ge "$2" ] && return 0
    alive "$3" || fail "the line ended before $2 devices were done in $1"
    sleep 0.05
  done
  fail "$2 devices not done in $1 after 60 s"
}

# line_bg NAME ARGS... — `clade line run ARGS` in the background; sets LINE. Its stdout is
# $T/NAME.out, its progress $T/NAME.err.
line_bg() {
  local name=$1
  shift
  "$CLADE" line run "$@" --progress plain >"$T/$name.out" 2>"$T/$name.err" &
  LINE=$!
  pids+=("$LINE")
}

# wait_line PID NAME CODE — the line must exit CODE.
wait_line() {
  local rc=0
  wait "$1" || rc=$?
  [ "$rc" -eq "$3" ] || { cat "$T/$2.out" "$T/$2.err" >&2; fail "line $2 exited $rc, not $3"; }
  checks=$((checks + 1))
}

# audits — exports the audit log of every member into $T/audit-*.exp: live ones over the network
# (operator client), stopped ones from their state directory.
audits() {
  AUDITS=()
  local m
  for m in 1 2 3; do
    if alive "${DPID[$m]}"; then
      expect_ok "$CLADE" hsm call export-audit --connect "${DADDR[$m]}" --client "$T/op" \
        --out "$T/audit-$m.exp"
    else
      expect_ok "$CLADE" audit export --state "$T/h$m" --out "$T/audit-$m.exp"
    fi
    expect_ok "$CLADE" audit verify "$T/audit-$m.exp" --group-export "$T/gx"
    AUDITS+=("$T/audit-$m.exp")
  done
}

# reconciled DB JOB — `line reconcile` with every member's audit must pass.
reconciled() {
  audits
  expect_ok "$CLADE" line reconcile --db "$1" --job "$2" --group-export "$T/gx" "${AUDITS[@]}"
}

# verified TRAY JOB N — every one of the N chips of TRAY verifies with the job's package.
verified() {
  expect_ok "$CLADE" device verify --tray "$1" --oem-root "$T/oem/root.crt" --job "$2"
  expect_out "$3 chips: $3 ok, 0 failed"
}

# --- A supplier, an OEM, three HSMs in group Acme (1, 1.1, 1.2), one HSM in group Other. --------
expect_ok "$CLADE" supplier init --dir "$T/s" --name "Acme HSM Works"
for n in 1 2 3 4; do
  expect_ok "$CLADE" hsm init --state "$T/h$n" --supplier "$T/s" --serial "SN-000$n"
done
expect_ok "$CLADE" oem init --dir "$T/oem" --name "Acme Devices"
expect_ok "$CLADE" group create --state "$T/h1" --name Acme --oem-root "$T/oem/root.crt"
expect_ok "$CLADE" group create --state "$T/h4" --name Other
# The founder's operator invites SN-0002 and SN-0003; each then enrolls online.
expect_ok "$CLADE" group announce --state "$T/h1" --group Acme --for SN-0002 --out "$T/h2.ann"
expect_ok "$CLADE" group announce --state "$T/h1" --group Acme --for SN-0003 --out "$T/h3.ann"
declare -A DPID DADDR
start_daemon h1 d1
DPID[1]=$PID DADDR[1]=$ADDR
expect_ok "$CLADE" group enroll --state "$T/h2" --sponsor "${DADDR[1]}" --announcement "$T/h2.ann"
expect_out "member id: 1.1"
expect_ok "$CLADE" group enroll --state "$T/h3" --sponsor "${DADDR[1]}" --announcement "$T/h3.ann"
expect_out "member id: 1.2"
start_daemon h2 d2
DPID[2]=$PID DADDR[2]=$ADDR
start_daemon h3 d3
DPID[3]=$PID DADDR[3]=$ADDR
start_daemon h4 d4
DPID[4]=$PID DADDR[4]=$ADDR
# The line's list: 1.2 first, then 1.1, then 1.
LIST="${DADDR[3]},${DADDR[2]},${DADDR[1]}"

expect_ok "$CLADE" group issue-client --state "$T/h1" --group Acme --role line --out "$T/line"
expect_ok "$CLADE" group issue-client --state "$T/h1" --group Acme --role operator --out "$T/op"
expect_ok "$CLADE" group issue-client --state "$T/h4" --group Other --role line --out "$T/other"
expect_ok "$CLADE" group export --state "$T/h1" --group Acme --out "$T/gx"

# Jobs in both key modes, imported on member 1.1 only: the line imports them where missing.
cat >"$T/device.json" <<'JSON'
{"product": "Sensor", "subject": {"CN": "{product} {uid}", "O": "Acme"}, "validity": {"days": 365}, "key_usage": ["digitalSignature"], "key_mode": "device"}
JSON
cat >"$T/hsm.json" <<'JSON'
{"product": "Gateway", "subject": {"CN": "{product} {uid}", "O": "Acme"}, "validity": {"days": 365}, "key_usage": ["digitalSignature"], "key_mode": "hsm"}
JSON
head -c 16384 /dev/urandom >"$T/firmware.bin"
head -c 128 /dev/urandom >"$T/config.bin"
# One job per scenario below, so that each job's certificates are all in one line database (the
# unit `line reconcile` checks).
for jm in J-device:device J-hsm:hsm J-auth:device J-kill:hsm J-resume:device J-exec:hsm; do
  expect_ok "$CLADE" oem package --dir "$T/oem" --group-export "$T/gx" --job "${jm%:*}" \
    --profile "$T/${jm#*:}.json" --firmware "$T/firmware.bin" --config "$T/config.bin" \
    --supplier-root "$T/s/root.crt" --out "$T/${jm%:*}.pkg"
  expect_ok "$CLADE" hsm call import-job --connect "${DADDR[2]}" --client "$T/op" \
    --package "$T/${jm%:*}.pkg"
done

# --- 500 chips in each key mode; all verify. ---------------------------------------------------
for mode in device hsm; do
  expect_ok "$CLADE" device make-tray --dir "$T/tray-$mode" --count 500
  expect_ok "$CLADE" line run --job "J-$mode" --hsm "$LIST" --client "$T/line" \
    --tray "$T/tray-$mode" --progress none
  expect_out "in use"
  # Every member the line used holds the job: 1.1 had it, the line imported it on the others.
  sed -n 's/^member [0-9.]* (SN-000\([0-9]\)) at .* in use$/\1/p' "$T/out" | sort -u >"$T/used"
  while read -r n; do
    [ "$n" = 2 ] || grep -q "event=job.import job=J-$mode " "$T/d$n.log" ||
      fail "the line used SN-000$n without importing J-$mode there"
  done <"$T/used"
  [ -f "$T/tray-$mode/jobs/J-$mode.package" ] || fail "the job package was not saved in the tray"
  [ "$(done_count "$T/tray-$mode/line.db")" -eq 500 ] || fail "not 500 done in the database"
  verified "$T/tray-$mode" "J-$mode" 500
  reconciled "$T/tray-$mode/line.db" "J-$mode"
done

# --- The members check the line's client certificate. ------------------------------------------
expect_ok "$CLADE" device make-tray --dir "$T/tray-auth" --count 5 --prefix A-
# Another group's line client: every member refuses it (and logs it); the line stops (exit 1)
# with each member's reason in its error; no chip is touched.
expect_fail 1 "not issued by the CA of any group of this HSM" "$CLADE" line run --job J-auth \
  --hsm "$LIST" --client "$T/other" --tray "$T/tray-auth" --progress none --give-up 3
grep -q "event=refused rpc=GetJob .*not issued by the CA" "$T/d3.log" ||
  fail "member 1.2 did not log the refusal"
# A client directory without its certificate: refused before any call.
mkdir -p "$T/nocert"
cp "$T/line/client.key" "$T/line/supplier-root.crt" "$T/nocert/"
expect_fail 1 "client-chain.pem" "$CLADE" line run --job J-auth --hsm "$LIST" \
  --client "$T/nocert" --tray "$T/tray-auth" --progress none --give-up 3
# A member of group Other only refuses this group's line client.
expect_fail 1 "not issued by the CA of any group of this HSM" "$CLADE" line run --job J-auth \
  --hsm "${DADDR[4]}" --client "$T/line" --tray "$T/tray-auth" --progress none --give-up 3
[ "$(done_count "$T/tray-auth/line.db")" -eq 0 ] || fail "a refused line provisioned chips"
# The operator role may call Provision too (docs/operations.md): a line run with it works.
expect_ok "$CLADE" line run --job J-auth --hsm "$LIST" --client "$T/op" --tray "$T/tray-auth" \
  --progress none
verified "$T/tray-auth" J-auth 5

# --- The member in use is killed mid-run: failover, nothing lost or duplicated. ----------------
expect_ok "$CLADE" device make-tray --dir "$T/tray-kill" --count 500 --prefix K-
line_bg kill --job J-kill --hsm "$LIST" --client "$T/line" --tray "$T/tray-kill"
wait_done "$T/tray-kill/line.db" 150 "$LINE"
# The member in use is the last one the line said it uses.
used=$(sed -n 's/^member \([0-9.]*\) (SN-000\([0-9]\)) at .* in use$/\2/p' "$T/kill.out" | tail -1)
[ -n "$used" ] || fail "the line did not say which member it uses"
kill -KILL "${DPID[$used]}"
wait "${DPID[$used]}" 2>/dev/null || true
wait_line "$LINE" kill 0
grep -qE "member [0-9.]+ \(SN-000$used\) at ${DADDR[$used]} stopped answering" "$T/kill.out" ||
  { cat "$T/kill.out" >&2; fail "the line does not report the failover"; }
grep -qE "devices? in flight (is|are) sent again" "$T/kill.out" || fail "no devices sent again"
grep -qE "^  failovers +1( |$)" "$T/kill.out" || { cat "$T/kill.out" >&2; fail "no failover counted"; }
verified "$T/tray-kill" J-kill 500
reconciled "$T/tray-kill/line.db" J-kill
# The dead member's state is whole: it serves again at its old address.
start_daemon "h$used" "d${used}b" "${DADDR[$used]}"
DPID[$used]=$PID
expect_ok "$CLADE" hsm call status --connect "${DADDR[$used]}" --client "$T/line"
expect_out "serial: SN-000$used"

# --- The line itself is killed mid-run, then rerun with the same database: it resumes. ---------
expect_ok "$CLADE" device make-tray --dir "$T/tray-resume" --count 200 --prefix R-
# (Two in parallel, so that the line is still running when it is killed.)
line_bg resume1 --job J-resume --hsm "$LIST" --client "$T/line" --tray "$T/tray-resume" \
  --parallel 2
wait_done "$T/tray-resume/line.db" 60 "$LINE"
kill -KILL "$LINE"
wait "$LINE" 2>/dev/null || true
before=$(done_count "$T/tray-resume/line.db")
[ "$before" -lt 200 ] || fail "the line finished before it was killed"
expect_ok "$CLADE" line run --job J-resume --hsm "$LIST" --client "$T/line" \
  --tray "$T/tray-resume" --progress none
grep -qE "done by this run +[0-9]+ \(and [1-9][0-9]* done by an earlier run\)" "$T/out" ||
  { cat "$T/out" >&2; fail "the summary does not count the chips done by the first run"; }
verified "$T/tray-resume" J-resume 200
reconciled "$T/tray-resume/line.db" J-resume
# A third run does nothing: everything is already done.
expect_ok "$CLADE" line run --job J-resume --hsm "$LIST" --client "$T/line" \
  --tray "$T/tray-resume" --progress none
grep -qF "200 of 200 chips were done by an earlier run" "$T/out" ||
  { cat "$T/out" >&2; fail "the third run does not say all 200 were done"; }

# --- An exec programmer that fails every chip whose uid ends in 0. -----------------------------
expect_ok "$CLADE" device make-tray --dir "$T/tray-exec" --count 100 --prefix E-
cat >"$T/program.sh" <<'SH'
#!/bin/sh
# Programs a virtual chip from the files the line hands over; refuses every uid ending in 0.
set -e
for v in CLADE_UID CLADE_JOB CLADE_MEMBER CLADE_CERT_SERIAL CLADE_DATA_DIR CLADE_TRAY; do
  eval "[ -n \"\${$v:-}\" ]" || { echo "$v is not set" >&2; exit 9; }
done
for f in device.crt chain.pem firmware.bin config.bin record.msg; do
  [ -f "$CLADE_DATA_DIR/$f" ] || { echo "no $f" >&2; exit 9; }
done
case "$CLADE_UID" in
  *0) echo "socket jammed on $CLADE_UID" >&2; exit 3 ;;
esac
[ "$(pwd -P)" = "$(cd "$CLADE_DATA_DIR" && pwd -P)" ] || { echo "not run in CLADE_DATA_DIR" >&2; exit 9; }
exec "$CLADE" device program --tray "$CLADE_TRAY" --uid "$CLADE_UID" --from "$CLADE_DATA_DIR"
SH
chmod +x "$T/program.sh"
# The command gets a minimal environment (not the line's CLADE=…): it passes the binary itself.
expect_fail 1 "" "$CLADE" line run --job J-exec --hsm "$LIST" --client "$T/line" \
  --tray "$T/tray-exec" --programmer "exec:CLADE='$CLADE' $T/program.sh" --progress none
want=$(seq -f 'E-%06g' 10 10 100)
got=$(grep -oE 'E-[0-9]{6}' "$T/out" | sort -u)
[ "$got" = "$want" ] || { cat "$T/out" >&2; fail "the failure list is not exactly the uids ending in 0"; }
grep -q "socket jammed" "$T/out" || fail "the failure reason does not carry the programmer's words"
expect_ok "$CLADE" line status --db "$T/tray-exec/line.db" --job J-exec
expect_out "100 devices: 90 done, 10 failed, 0 pending"
got=$(grep -oE '^ +E-[0-9]{6}: programmer failed' "$T/out" | grep -oE 'E-[0-9]{6}' | sort -u)
[ "$got" = "$want" ] || { cat "$T/out" >&2; fail "line status: the failed are not the uids ending in 0"; }
got=$(sql "$T/tray-exec/line.db" "select uid from devices where status='failed' order by uid")
[ "$got" = "$want" ] || fail "the database's failed devices are not exactly the uids ending in 0"
[ "$(done_count "$T/tray-exec/line.db")" -eq 90 ] || fail "not 90 done"
# The exec programmer keeps a failed chip's files for a person to look at.
ls -d "$T"/tray-exec/exec-work/E-000010.* >/dev/null 2>&1 || fail "no work directory kept for E-000010"
expect_fail 1 "10 of 100 chips failed" "$CLADE" device verify --tray "$T/tray-exec" \
  --oem-root "$T/oem/root.crt" --job J-exec
expect_out "100 chips: 90 ok, 10 failed"
got=$(grep '^FAIL' "$T/out" | grep -oE 'E-[0-9]{6}' | sort -u)
[ "$got" = "$want" ] || { cat "$T/out" >&2; fail "device verify does not fail exactly the uids ending in 0"; }
reconciled "$T/tray-exec/line.db" J-exec
done_checks
