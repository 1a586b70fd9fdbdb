#!/usr/bin/env bash
# The HSM daemon (`clade hsm serve`): real daemons on loopback ports chosen at run time. mTLS is
# required and every call checks the caller's role; online enrollment; a job imported and devices
# provisioned over one stream; SIGTERM stops a daemon cleanly (exit 0).
source "$(dirname "$0")/lib.sh"
# --- A supplier, an OEM, HSMs; group Acme on h1, group Other on h4. ------------------------------
expect_ok "$CLADE" supplier init --dir "$T/s" --name "Acme HSM Works"
for n in 1 2 3 4; do
  expect_ok "$CLADE" hsm init --state "$T/h$n" --supplier "$T/s" --serial "SN-000$n"
done
expect_ok "$CLADE" supplier init --dir "$T/s2" --name "Other HSM Works"
expect_ok "$CLADE" hsm init --state "$T/x1" --supplier "$T/s2" --serial "SN-X1"
expect_ok "$CLADE" oem init --dir "$T/oem" --name "Acme Devices"
expect_ok "$CLADE" group create --state "$T/h1" --name Acme --oem-root "$T/oem/root.crt"
expect_ok "$CLADE" group create --state "$T/h4" --name Other

# Client certificates: line and operator of Acme, operator of Other.
expect_ok "$CLADE" group issue-client --state "$T/h1" --group Acme --role line --out "$T/line"
expect_out "client certificate for role line"
[ "$(stat -c %a "$T/line/client.key")" = 600 ] || fail "client.key is not 0600"
expect_ok "$CLADE" group issue-client --state "$T/h1" --group Acme --role operator --out "$T/op"
expect_ok "$CLADE" group issue-client --state "$T/h4" --group Other --role operator --out "$T/other"
expect_fail 2 "role" "$CLADE" group issue-client --state "$T/h1" --group Acme --role admin \
  --out "$T/bad"
# The client chain verifies with plain openssl up to the group CA's issuer chain.
expect_ok openssl x509 -in "$T/line/client-chain.pem" -noout -ext extendedKeyUsage

start_daemon h1 d1
A1=$ADDR
P1=$PID
grep -q "event=start" "$T/d1.log" || fail "no start line in the log"
grep -q "member=1 " "$T/d1.log" || fail "log lines do not name the member id"
# TLS 1.3 is negotiated, and the server's identity chain verifies to the supplier root.
openssl x509 -in "$T/line/client-chain.pem" -out "$T/line-leaf.pem"
timeout 10 openssl s_client -connect "$A1" -cert "$T/line-leaf.pem" -key "$T/line/client.key" \
  -CAfile "$T/s/root.crt" -alpn h2 </dev/null >"$T/sclient.out" 2>&1 || true
grep -aq "New, TLSv1.3" "$T/sclient.out" || { cat "$T/sclient.out" >&2; fail "not TLS 1.3"; }
grep -aq "Verify return code: 0 (ok)" "$T/sclient.out" || fail "server chain does not verify"
checks=$((checks + 2))
# TLS 1.3 is the minimum: a client offering only TLS 1.2 gets no session.
timeout 10 openssl s_client -connect "$A1" -tls1_2 -cert "$T/line-leaf.pem" \
  -key "$T/line/client.key" -CAfile "$T/s/root.crt" -alpn h2 </dev/null >"$T/sclient12.out" 2>&1 || true
grep -aq "New, (NONE)" "$T/sclient12.out" || { cat "$T/sclient12.out" >&2; fail "TLS 1.2 accepted"; }
if grep -aq "New, TLSv1.2" "$T/sclient12.out"; then fail "a TLS 1.2 session was made"; fi
checks=$((checks + 1))

# --- mTLS and roles. ---------------------------------------------------------------------------
expect_ok "$CLADE" hsm call status --connect "$A1" --client "$T/line"
expect_out "serial: SN-0001"
expect_out "state: serving"
expect_ok "$CLADE" hsm call status --connect "$A1" --client "$T/op"
# No client certificate: refused in the handshake.
expect_fail 1 "Status on" "$CLADE" hsm call status --connect "$A1" --root "$T/s/root.crt"
grep -q "event=grpc.error .*peer did not return a certificate" "$T/d1.log" ||
  fail "the refused handshake is not logged"
# A client certificate from another group: refused.
expect_fail 1 "not issued by the CA of any group of this HSM" \
  "$CLADE" hsm call status --connect "$A1" --client "$T/other"
# The wrong role: a line client may not export the audit log nor announce.
expect_fail 1 "role 'line' may not call ExportAudit" \
  "$CLADE" hsm call export-audit --connect "$A1" --client "$T/line" --out "$T/a.audit"
expect_fail 1 "role 'line' may not call Announce" \
  "$CLADE" hsm call announce --connect "$A1" --client "$T/line" --group Acme --out "$T/a.ann"
# An HSM of another supplier: not genuine here (and it does not trust our server either).
expect_fail 1 "Status on" "$CLADE" hsm call status --connect "$A1" --state "$T/x1"
# A peer HSM may ask for status, not for the audit log.
expect_ok "$CLADE" hsm call status --connect "$A1" --state "$T/h2"
expect_fail 1 "role 'hsm' may not call ExportAudit" \
  "$CLADE" hsm call export-audit --connect "$A1" --state "$T/h2" --out "$T/a.audit"
grep -q "event=refused" "$T/d1.log" || fail "refusals are not logged"
# The operator may export the audit log; it verifies offline.
expect_ok "$CLADE" hsm call export-audit --connect "$A1" --client "$T/op" --out "$T/h1.audit"
expect_ok "$CLADE" group export --state "$T/h1" --group Acme --out "$T/gx"
expect_ok "$CLADE" audit verify "$T/h1.audit" --group-export "$T/gx"
expect_out "chain intact"
# The client key is a secret: never overwritten, refused when others can read it.
expect_fail 1 "refusing to overwrite" "$CLADE" group issue-client --state "$T/h1" --group Acme \
  --role line --out "$T/line"
chmod 644 "$T/line/client.key"
expect_fail 1 "must not be readable" "$CLADE" hsm call status --connect "$A1" --client "$T/line"
chmod 600 "$T/line/client.key"

# --- Online enrollment, invited by the operator. ----------------------------------------------------
expect_ok "$CLADE" group announce --hsm "$A1" --client "$T/op" --group Acme --for SN-0002 \
  --out "$T/h2.ann"
expect_out "admits: SN-0002"
expect_ok "$CLADE" group enroll --state "$T/h2" --sponsor "$A1" --announcement "$T/h2.ann"
expect_out "member id: 1.1"
expect_ok "$CLADE" hsm call announce --connect "$A1" --client "$T/op" --group Acme --for SN-0003 \
  --out "$T/h3.ann"
expect_ok "$CLADE" group enroll --state "$T/h3" --sponsor "$A1" --announcement "$T/h3.ann"
expect_out "member id: 1.2"
# Enrolling again is refused by the same checks as the file flow.
expect_ok "$CLADE" group announce --hsm "$A1" --client "$T/op" --group Acme --for SN-0003 \
  --out "$T/h3b.ann"
expect_fail 1 "already a member of group" \
  "$CLADE" group enroll --state "$T/h3" --sponsor "$A1" --announcement "$T/h3b.ann"
# Another supplier's HSM cannot enroll: the sponsor does not chain to its root (the announcement
# is refused before any call).
expect_ok "$CLADE" group announce --hsm "$A1" --client "$T/op" --group Acme --for SN-X1 \
  --out "$T/x1.ann"
expect_fail 1 "sponsor is not a genuine HSM" "$CLADE" group enroll --state "$T/x1" \
  --sponsor "$A1" --announcement "$T/x1.ann"
grep -q "event=admit .*new_member=1.2" "$T/d1.log" || fail "admission of 1.2 not logged"
# The new member serves too, and the line client of the group is accepted there.
# d3 is stopped below with 300 devices in flight: their finishing must not race its --grace.
GRACE=600 start_daemon h3 d3
A3=$ADDR
P3=$PID
expect_ok "$CLADE" hsm call status --connect "$A3" --client "$T/line"
expect_out "serial: SN-0003"

# --- A job imported and devices provisioned over one stream on 1.2. ------------------------------
cat >"$T/device.json" <<'JSON'
{"product": "Sensor", "subject": {"CN": "{product} {uid}", "O": "Acme"}, "validity": {"days": 365}, "key_usage": ["digitalSignature"], "key_mode": "device"}
JSON
expect_ok "$CLADE" oem package --dir "$T/oem" --group-export "$T/gx" --job J-DEV \
  --profile "$T/device.json" --supplier-root "$T/s/root.crt" --out "$T/dev.pkg"
expect_ok "$CLADE" hsm call import-job --connect "$A3" --client "$T/line" --package "$T/dev.pkg"
expect_out "job id: J-DEV"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/chip.key" 2>/dev/null
openssl pkey -in "$T/chip.key" -pubout -out "$T/chip.pub"
expect_ok "$CLADE" hsm call provision --connect "$A3" --client "$T/line" --job J-DEV \
  --public-key "$T/chip.pub" --uid D-1 --uid D-2 --uid D-3 --uid D-4 --uid D-5
[ "$(grep -c '^device D-.: serial ' "$T/out")" -eq 5 ] || { cat "$T/out" >&2; fail "not 5 devices"; }
# A uid already provisioned is refused, per device, on the same stream.
expect_fail 1 "1 device(s) refused" "$CLADE" hsm call provision --connect "$A3" \
  --client "$T/line" --job J-DEV --public-key "$T/chip.pub" --uid D-1 --uid D-6
[ "$(grep -c "event=provision .*job=J-DEV" "$T/d3.log")" -eq 6 ] || fail "provisioning not logged"

# --- Graceful stop: SIGTERM while a stream of devices is in flight; every device finishes. ------
uids=()
for i in $(seq 1 300); do uids+=(--uid "G-$i"); done
"$CLADE" hsm call provision --connect "$A3" --client "$T/line" --job J-DEV \
  --public-key "$T/chip.pub" "${uids[@]}" >"$T/g.out" 2>"$T/g.err" &
CP=$!
wait_for 60 "daemon d3 to log the stream's first device" grep -q "uid=G-" "$T/d3.log"
stop_daemon "$P3" d3
wait "$CP" || { cat "$T/g.err" >&2; fail "provisioning in flight during the stop failed"; }
[ "$(grep -c '^device G-[0-9]*: serial ' "$T/g.out")" -eq 300 ] || fail "not 300 devices"
stop_at=$(grep -n "event=stopping" "$T/d3.log" | cut -d: -f1)
last_at=$(grep -n "event=provision .*uid=G-300 " "$T/d3.log" | cut -d: -f1)
[ "$last_at" -gt "$stop_at" ] || fail "the stream was not in flight when the stop began"
checks=$((checks + 2))
stop_daemon "$P1" d1
expect_fail 1 "Status on" "$CLADE" hsm call status --connect "$A1" --client "$T/op"
done_checks
