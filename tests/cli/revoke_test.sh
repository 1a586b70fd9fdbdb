#!/usr/bin/env bash
# Revocation, group-wide, with real daemons on loopback ports chosen at run time: member 1.1 is
# revoked on the founder; the statement reaches member 1.2 through an operator's ordinary calls
# (and by push-statement and by file); then 1.1's line and operator clients and 1.1 itself are
# refused online by the other members, and what 1.1 did after its revocation — a provisioning
# record, its audit, a line run through it — fails `record verify`, `audit verify` and
# `line reconcile` given the statement.
source "$(dirname "$0")/lib.sh"
# enroll SPONSOR CANDIDATE — the message-file flow.
enroll() {
  expect_ok "$CLADE" group announce --state "$T/$1" --group Acme --out "$T/ann.msg"
  expect_ok "$CLADE" group request --state "$T/$2" --announcement "$T/ann.msg" --out "$T/req.msg"
  expect_ok "$CLADE" group admit --state "$T/$1" --request "$T/req.msg" --out "$T/resp.msg"
  expect_ok "$CLADE" group join --state "$T/$2" --response "$T/resp.msg"
}

# --- A group of three: 1 (h1), 1.1 (h2), 1.2 (h3); a job on 1.1. --------------------------------
expect_ok "$CLADE" supplier init --dir "$T/s" --name "Acme HSM Works"
for n in 1 2 3 4; do
  expect_ok "$CLADE" hsm init --state "$T/h$n" --supplier "$T/s" --serial "SN-000$n"
done
expect_ok "$CLADE" oem init --dir "$T/oem" --name "Acme Devices"
expect_ok "$CLADE" group create --state "$T/h1" --name Acme --oem-root "$T/oem/root.crt"
enroll h1 h2
expect_out "member id: 1.1"
enroll h1 h3
expect_out "member id: 1.2"
expect_ok "$CLADE" group export --state "$T/h1" --group Acme --out "$T/gx"
cat >"$T/device.json" <<'JSON'
{"product": "Sensor", "subject": {"CN": "{product} {uid}", "O": "Acme"}, "validity": {"days": 365}, "key_usage": ["digitalSignature"], "key_mode": "device"}
JSON
expect_ok "$CLADE" oem package --dir "$T/oem" --group-export "$T/gx" --job J-1 \
  --profile "$T/device.json" --supplier-root "$T/s/root.crt" --out "$T/j1.pkg"
expect_ok "$CLADE" job import --state "$T/h2" --package "$T/j1.pkg"

# Clients: 1.1's line and operator, 1's operator. Each names its issuing member; 30 days.
expect_ok "$CLADE" group issue-client --state "$T/h2" --group Acme --role line --out "$T/line2"
expect_ok "$CLADE" group issue-client --state "$T/h2" --group Acme --role operator --out "$T/op2"
expect_ok "$CLADE" group issue-client --state "$T/h1" --group Acme --role operator --out "$T/op1"
not_after=$(openssl x509 -in "$T/op1/client-chain.pem" -noout -enddate | cut -d= -f2)
days=$(( ($(date -d "$not_after" +%s) - $(date +%s)) / 86400 ))
[ "$days" -ge 29 ] && [ "$days" -le 30 ] || fail "client certificate valid $days days, not 30"
expect_ok "$CLADE" group issue-client --state "$T/h1" --group Acme --role line --days 2 \
  --out "$T/short"
not_after=$(openssl x509 -in "$T/short/client-chain.pem" -noout -enddate | cut -d= -f2)
days=$(( ($(date -d "$not_after" +%s) - $(date +%s)) / 86400 ))
[ "$days" -eq 1 ] || [ "$days" -eq 2 ] || fail "--days 2 gave $days days"
checks=$((checks + 2))

start_daemon h1 d1
A1=$ADDR
P1=$PID
start_daemon h3 d3
A3=$ADDR
P3=$PID
# Before the revocation 1.1's clients work everywhere.
expect_ok "$CLADE" hsm call status --connect "$A1" --client "$T/line2"
expect_ok "$CLADE" hsm call status --connect "$A3" --client "$T/op2"
expect_ok "$CLADE" hsm call status --connect "$A3" --state "$T/h2"

# --- Revoke 1.1 on the founder (its daemon stopped while the CLI holds the state). --------------
stop_daemon "$P1" d1
expect_ok "$CLADE" group revoke --help
expect_out "Revocation is group-wide"
expect_fail 1 "this HSM is not a member of group" \
  "$CLADE" group revoke --state "$T/h4" --group Acme --member 1.1
expect_ok "$CLADE" group revoke --state "$T/h1" --group Acme --member 1.1 --out "$T/st1.msg"
expect_out "statement 1 by member 1"
expect_out "revoked member 1.1 (HSM SN-0002)"
revoked_after=$(date +%s)
expect_ok "$CLADE" msg show "$T/st1.msg"
expect_out '"type": "clade.v1.GroupStatement"'
expect_out '"hsm_serial": "SN-0002"'
start_daemon h1 d1
A1=$ADDR
P1=$PID

# --- The statement travels with ordinary calls: 1 → op1 (trailing metadata) → 1.2. -------------
[ ! -f "$T/op1/statement.msg" ] || fail "op1 had a statement before any call"
expect_ok "$CLADE" hsm call status --connect "$A1" --client "$T/op1"
[ -f "$T/op1/statement.msg" ] || fail "the operator's client did not keep the member's statement"
cmp -s "$T/op1/statement.msg" "$T/st1.msg" || fail "the kept statement is not the one issued"
expect_ok "$CLADE" hsm call status --connect "$A3" --client "$T/op1"
grep -q "event=statement.adopted .*sequence=1" "$T/d3.log" ||
  fail "member 1.2 did not adopt the statement the operator's call carried"
checks=$((checks + 2))
# Pushing it again explicitly is a no-op.
expect_ok "$CLADE" hsm call push-statement --connect "$A3" --client "$T/op1" \
  --statement "$T/st1.msg"
expect_out "already held; the member holds statement 1"

# --- 1.1's clients and 1.1 itself are refused online by both other members. -------------------
for addr in "$A1" "$A3"; do
  expect_fail 1 "was issued by member 1.1, revoked in group" \
    "$CLADE" hsm call status --connect "$addr" --client "$T/line2"
  expect_fail 1 "was issued by member 1.1, revoked in group" \
    "$CLADE" hsm call export-audit --connect "$addr" --client "$T/op2" --out "$T/x.audit"
  expect_fail 1 "peer HSM SN-0002 is member 1.1, revoked in group" \
    "$CLADE" hsm call status --connect "$addr" --state "$T/h2"
done
grep -q "event=refused .*was issued by member 1.1, revoked" "$T/d3.log" ||
  fail "member 1.2 did not log the refusal"
# The founder's own clients still work.
expect_ok "$CLADE" hsm call status --connect "$A3" --client "$T/op1"

# --- A client certificate revoked by serial, on 1.2 this time; 1.2 pushes it to 1 itself. ------
serial=$(openssl x509 -in "$T/short/client-chain.pem" -noout -serial | cut -d= -f2)
expect_ok "$CLADE" hsm call status --connect "$A3" --client "$T/short"
stop_daemon "$P3" d3
expect_ok "$CLADE" group revoke --state "$T/h3" --group Acme --client "$serial" --out "$T/st2.msg"
expect_out "statement 2 by member 1.2"
expect_out "revoked member 1.1"
expect_ok "$CLADE" hsm call push-statement --connect "$A1" --state "$T/h3" --group Acme
expect_out "adopted; the member holds statement 2"
start_daemon h3 d3
A3=$ADDR
P3=$PID
for addr in "$A1" "$A3"; do
  expect_fail 1 "is revoked in group" "$CLADE" hsm call status --connect "$addr" --client "$T/short"
done
# The operator's client picks up statement 2 from either member.
expect_ok "$CLADE" hsm call status --connect "$A1" --client "$T/op1"
cmp -s "$T/op1/statement.msg" "$T/st2.msg" || fail "the operator's client did not keep statement 2"
checks=$((checks + 1))
# An older statement pushed is refused by name.
expect_fail 1 "statement 1 is older than the held statement 2" \
  "$CLADE" hsm call push-statement --connect "$A1" --client "$T/op1" --statement "$T/st1.msg"

# --- Statements refused: older, forged-by-edit, another group's. --------------------------------
expect_ok "$CLADE" group create --state "$T/h4" --name Other
expect_ok "$CLADE" group policy --state "$T/h4" --group Other --deny SN-0009 --out "$T/other.msg"
expect_out "group statement 1"
cp -r "$T/h2" "$T/h2copy"
expect_fail 1 "which this HSM is not a member of" \
  "$CLADE" group accept-statement --state "$T/h2copy" --statement "$T/other.msg"
head -c 200 "$T/st1.msg" >"$T/cut.msg"
expect_fail 1 "malformed message" \
  "$CLADE" group accept-statement --state "$T/h2copy" --statement "$T/cut.msg"
expect_ok "$CLADE" group accept-statement --state "$T/h2copy" --statement "$T/st1.msg"
expect_out "adopted"
expect_ok "$CLADE" group accept-statement --state "$T/h2copy" --statement "$T/st1.msg"
expect_out "already held; nothing changed"
# The revoked member itself signs no statements once it holds its revocation.
expect_fail 1 "a revoked member issues no statements" \
  "$CLADE" group revoke --state "$T/h2copy" --group Acme --member 1.2
rm -rf "$T/h2copy"

# --- What 1.1 does after its revocation (it never received it) fails the verifiers. ------------
wait_for 30 "the clock to pass the revocation" clock_past "$revoked_after"
# A line run through 1.1 (its own line client, its own daemon, which knows nothing of it).
start_daemon h2 d2
A2=$ADDR
P2=$PID
expect_ok "$CLADE" device make-tray --dir "$T/tray" --count 5 --prefix L-
expect_ok "$CLADE" line run --job J-1 --hsm "$A2" --client "$T/line2" --tray "$T/tray" \
  --progress none
expect_ok "$CLADE" hsm call export-audit --connect "$A2" --client "$T/op2" --out "$T/h2.audit"
# Once the statement reaches 1.1 itself (any operator's call carries it), it serves nobody.
expect_fail 1 "a revoked member serves no clients of the group" \
  "$CLADE" hsm call status --connect "$A2" --client "$T/op1"
grep -q "event=statement.adopted .*sequence=2" "$T/d2.log" || fail "1.1 did not adopt statement 2"
checks=$((checks + 1))
expect_fail 1 "a revoked member serves no clients of the group" \
  "$CLADE" hsm call status --connect "$A2" --client "$T/line2"
stop_daemon "$P2" d2
expect_ok "$CLADE" audit verify "$T/h2.audit" --group-export "$T/gx"
expect_fail 1 "by member 1.1 at" \
  "$CLADE" audit verify "$T/h2.audit" --group-export "$T/gx" --statement "$T/st1.msg"
expect_ok "$CLADE" line reconcile --db "$T/tray/line.db" --job J-1 --group-export "$T/gx" \
  "$T/h2.audit"
expect_fail 1 "is after its revocation at" \
  "$CLADE" line reconcile --db "$T/tray/line.db" --job J-1 --group-export "$T/gx" \
  --statement "$T/st1.msg" "$T/h2.audit"
# A record 1.1 made after its revocation, offline.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/chip.key" 2>/dev/null
openssl pkey -in "$T/chip.key" -pubout -out "$T/chip.pub"
expect_ok "$CLADE" provision --state "$T/h2" --job J-1 --device-uid LATE-1 \
  --public-key "$T/chip.pub" --out "$T/late"
expect_ok "$CLADE" record verify "$T/late/record.msg" --group-export "$T/gx"
expect_fail 1 "provisioning record by member 1.1 at" \
  "$CLADE" record verify "$T/late/record.msg" --group-export "$T/gx" --statement "$T/st1.msg"
expect_fail 1 "is after its revocation at" \
  "$CLADE" record verify "$T/late/record.msg" --group-export "$T/gx" --statement "$T/st1.msg"
# The founder's audit still verifies with the statement: its own entries are not 1.1's.
stop_daemon "$P1" d1
expect_ok "$CLADE" audit export --state "$T/h1" --out "$T/h1.audit"
expect_ok "$CLADE" audit verify "$T/h1.audit" --group-export "$T/gx" --statement "$T/st2.msg"
done_checks
