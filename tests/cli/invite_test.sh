#!/usr/bin/env bash
# Enrollment by invitation and groups kept apart, against real daemons on loopback ports chosen at
# run time. Only the group's operator makes an announcement (offline on the sponsor, or online with
# an operator client), and `--for` names the one HSM it admits: an HSM nobody invited is refused,
# online and offline, and a refused step changes no state. On an HSM in two groups, an operator of
# one exports an audit without the other's entries, Status names the caller's group only, and each
# group's job "J2" imports and provisions beside the other's.
source "$(dirname "$0")/lib.sh"
# rows STATE — every row of the HSM's state database, to show that a refusal changed nothing.
rows() { sqlite3 -cmd ".timeout 5000" "$T/$1/state.db" .dump; }
# unchanged STATE BEFORE — the state still dumps as BEFORE.
unchanged() {
  [ "$(rows "$1")" = "$2" ] || fail "a refused step changed the state of $1"
  checks=$((checks + 1))
}

# --- A supplier; group Acme founded on h1 (OEM A), group Bolt on h5 (OEM B), h1 joins Bolt. -----
expect_ok "$CLADE" supplier init --dir "$T/s" --name "Acme HSM Works"
for n in 1 2 3 4 5; do
  expect_ok "$CLADE" hsm init --state "$T/h$n" --supplier "$T/s" --serial "SN-000$n"
done
expect_ok "$CLADE" oem init --dir "$T/oem-a" --name "Acme Devices"
expect_ok "$CLADE" oem init --dir "$T/oem-b" --name "Bolt Devices"
expect_ok "$CLADE" group create --state "$T/h1" --name Acme --oem-root "$T/oem-a/root.crt"
GA=$(sed -n 's/^group id: //p' "$T/out")
expect_ok "$CLADE" group create --state "$T/h5" --name Bolt --oem-root "$T/oem-b/root.crt"
GB=$(sed -n 's/^group id: //p' "$T/out")
expect_ok "$CLADE" group announce --state "$T/h5" --group Bolt --for SN-0001 --out "$T/b1.ann"
expect_ok "$CLADE" group request --state "$T/h1" --announcement "$T/b1.ann" --out "$T/b1.req"
expect_ok "$CLADE" group admit --state "$T/h5" --request "$T/b1.req" --out "$T/b1.resp"
expect_ok "$CLADE" group join --state "$T/h1" --response "$T/b1.resp"
expect_out "member id: 1.1"
expect_ok "$CLADE" group issue-client --state "$T/h1" --group Acme --role operator --out "$T/op-a"
expect_ok "$CLADE" group issue-client --state "$T/h1" --group Acme --role line --out "$T/line-a"
expect_ok "$CLADE" group issue-client --state "$T/h1" --group Bolt --role operator --out "$T/op-b"
expect_ok "$CLADE" group issue-client --state "$T/h1" --group Bolt --role line --out "$T/line-b"
# An open announcement, made offline before the daemon starts (it admits through files only).
expect_ok "$CLADE" group announce --state "$T/h1" --group Acme --out "$T/open.ann"
expect_out "admits: any genuine HSM"
start_daemon h1 d1
A1=$ADDR
P1=$PID

# --- Nobody invited SN-0003: every way in is refused. --------------------------------------------
before=$(rows h1)
# A peer HSM asks the sponsor for an announcement: only the operator invites.
expect_fail 1 "role 'hsm' may not call Announce (allowed: operator)" \
  "$CLADE" hsm call announce --connect "$A1" --state "$T/h3" --group Acme --out "$T/x.ann"
# The open announcement, used online: the sponsor admits online only an HSM named by --for.
want="the announcement names no HSM; online, an HSM is admitted only on an announcement"
want="$want made for its serial (clade group announce --for SN-0003)"
expect_fail 1 "$want" "$CLADE" group enroll --state "$T/h3" --sponsor "$A1" --announcement "$T/open.ann"
unchanged h1 "$before"
grep -q "event=admit.refused .*caller=hsm:SN-0003" "$T/d1.log" || fail "the refusal is not logged"
checks=$((checks + 1))

# --- The operator invites SN-0002; SN-0003 cannot use that invitation, offline or online. ------
expect_ok "$CLADE" group announce --hsm "$A1" --client "$T/op-a" --group Acme --for SN-0002 \
  --out "$T/sn2.ann"
expect_out "admits: SN-0002"
before=$(rows h1)
cand_before=$(rows h3)
expect_fail 1 "the announcement admits only SN-0002, not SN-0003" \
  "$CLADE" group request --state "$T/h3" --announcement "$T/sn2.ann" --out "$T/x.req"
unchanged h3 "$cand_before"
expect_fail 1 "the announcement admits only SN-0002, not SN-0003" \
  "$CLADE" group enroll --state "$T/h3" --sponsor "$A1" --announcement "$T/sn2.ann"
unchanged h3 "$cand_before"
unchanged h1 "$before"
# A line client may not invite, nor an operator of Bolt for Acme.
expect_fail 1 "role 'line' may not call Announce" "$CLADE" group announce --hsm "$A1" \
  --client "$T/line-a" --group Acme --for SN-0003 --out "$T/x.ann"
expect_fail 1 "is a client of group $GB, not of group $GA" "$CLADE" group announce --hsm "$A1" \
  --client "$T/op-b" --group Acme --for SN-0003 --out "$T/x.ann"
# The invited HSM enrolls online; the announcement is then spent.
expect_ok "$CLADE" group enroll --state "$T/h2" --sponsor "$A1" --announcement "$T/sn2.ann"
expect_out "member id: 1.1"
grep -q "event=announce group=$GA for=SN-0002 caller=\"operator:" "$T/d1.log" ||
  fail "the invitation is not logged with its operator"
checks=$((checks + 1))
# The open announcement still admits SN-0003 the offline way: the operator carries the files.
stop_daemon "$P1" d1
expect_ok "$CLADE" group request --state "$T/h3" --announcement "$T/open.ann" --out "$T/h3.req"
expect_ok "$CLADE" group admit --state "$T/h1" --request "$T/h3.req" --out "$T/h3.resp"
expect_out "member id: 1.2"
expect_ok "$CLADE" group join --state "$T/h3" --response "$T/h3.resp"

# --- Groups kept apart on h1 (Acme 1, Bolt 1.1). -------------------------------------------------
expect_ok "$CLADE" group export --state "$T/h1" --group Acme --out "$T/gx-a"
expect_ok "$CLADE" group export --state "$T/h1" --group Bolt --out "$T/gx-b"
cat >"$T/device.json" <<'JSON'
{"product": "Sensor", "subject": {"CN": "{product} {uid}"}, "validity": {"days": 30}, "key_usage": ["digitalSignature"], "key_mode": "device"}
JSON
expect_ok "$CLADE" oem package --dir "$T/oem-a" --group-export "$T/gx-a" --job J2 \
  --profile "$T/device.json" --supplier-root "$T/s/root.crt" --out "$T/a-j2.pkg"
expect_ok "$CLADE" oem package --dir "$T/oem-b" --group-export "$T/gx-b" --job J2 \
  --profile "$T/device.json" --supplier-root "$T/s/root.crt" --out "$T/b-j2.pkg"
start_daemon h1 d1b
A1=$ADDR
P1=$PID

# Status names the caller's group only; a peer HSM learns none.
expect_ok "$CLADE" hsm call status --connect "$A1" --client "$T/op-b"
expect_out "group: $GB 1.1"
[ "$(grep -c '^group: ' "$T/out")" -eq 1 ] || { cat "$T/out" >&2; fail "Status shows Bolt more"; }
expect_ok "$CLADE" hsm call status --connect "$A1" --client "$T/line-a"
expect_out "group: $GA 1"
[ "$(grep -c '^group: ' "$T/out")" -eq 1 ] || { cat "$T/out" >&2; fail "Status shows Acme more"; }
expect_ok "$CLADE" hsm call status --connect "$A1" --state "$T/h4"
expect_out "serial: SN-0001"
if grep -q '^group: ' "$T/out"; then fail "Status names groups to a peer HSM"; fi
checks=$((checks + 1))

# Each group's J2: Bolt's first, then Acme's, both import and provision the same uid.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/chip.key" 2>/dev/null
openssl pkey -in "$T/chip.key" -pubout -out "$T/chip.pub"
expect_ok "$CLADE" hsm call import-job --connect "$A1" --client "$T/line-b" --package "$T/b-j2.pkg"
expect_out "group id: $GB"
expect_ok "$CLADE" hsm call import-job --connect "$A1" --client "$T/line-a" --package "$T/a-j2.pkg"
expect_out "group id: $GA"
# A line of one group cannot import the other group's package.
expect_fail 1 "is a client of group $GA, not of group $GB" \
  "$CLADE" hsm call import-job --connect "$A1" --client "$T/line-a" --package "$T/b-j2.pkg"
expect_ok "$CLADE" hsm call provision --connect "$A1" --client "$T/line-a" --job J2 \
  --public-key "$T/chip.pub" --uid D-1
expect_out "device D-1: serial "
expect_ok "$CLADE" hsm call provision --connect "$A1" --client "$T/line-b" --job J2 \
  --public-key "$T/chip.pub" --uid D-1
expect_out "device D-1: serial "
expect_fail 1 "1 device(s) refused" "$CLADE" hsm call provision --connect "$A1" \
  --client "$T/line-b" --job J2 --public-key "$T/chip.pub" --uid D-1
expect_out "was already provisioned for job J2"

# An operator of Bolt exports the audit: Bolt's entries only, Acme's as digests; it verifies
# against Bolt and not against Acme.
expect_ok "$CLADE" hsm call export-audit --connect "$A1" --client "$T/op-b" --out "$T/bolt.audit"
if grep -aqF "$GA" "$T/bolt.audit"; then fail "Bolt's audit export names group Acme"; fi
grep -aqF "$GB" "$T/bolt.audit" || fail "Bolt's audit export does not name Bolt"
checks=$((checks + 2))
expect_ok "$CLADE" audit verify "$T/bolt.audit" --group-export "$T/gx-b"
expect_out "chain intact"
expect_out "entries of other groups shown as digests only"
expect_fail 1 "the audit export is not from a member of group $GA" \
  "$CLADE" audit verify "$T/bolt.audit" --group-export "$T/gx-a"
expect_ok "$CLADE" hsm call export-audit --connect "$A1" --client "$T/op-a" --out "$T/acme.audit"
if grep -aqF "$GB" "$T/acme.audit"; then fail "Acme's audit export names group Bolt"; fi
checks=$((checks + 1))
expect_ok "$CLADE" audit verify "$T/acme.audit" --group-export "$T/gx-a"
expect_out "chain intact"
stop_daemon "$P1" d1b

# Offline, on the HSM: the whole log, or one group's; a job id of two groups needs --group.
expect_ok "$CLADE" audit export --state "$T/h1" --group Bolt --out "$T/bolt-offline.audit"
expect_out "filtered to group: $GB"
expect_ok "$CLADE" audit verify "$T/bolt-offline.audit" --group-export "$T/gx-b"
expect_ok "$CLADE" audit export --state "$T/h1" --out "$T/whole.audit"
expect_ok "$CLADE" audit verify "$T/whole.audit" --group-export "$T/gx-b"
expect_ok "$CLADE" job list --state "$T/h1"
[ "$(grep -c '^job J2$' "$T/out")" -eq 2 ] || { cat "$T/out" >&2; fail "not two jobs J2"; }
expect_ok "$CLADE" job list --state "$T/h1" --group Bolt
[ "$(grep -c '^job J2$' "$T/out")" -eq 1 ] || { cat "$T/out" >&2; fail "Bolt has not one J2"; }
expect_out "group: $GB"
expect_fail 1 "job J2 is imported for several groups" "$CLADE" provision --state "$T/h1" \
  --job J2 --device-uid D-2 --public-key "$T/chip.pub" --out "$T/d2"
expect_ok "$CLADE" provision --state "$T/h1" --group Acme --job J2 --device-uid D-2 \
  --public-key "$T/chip.pub" --out "$T/d2"
expect_out "provisioned by member 1"
done_checks
