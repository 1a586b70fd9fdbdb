#!/usr/bin/env bash
# OEM jobs end to end through the `clade` command: an OEM packages jobs for a group of three HSMs,
# one member provisions 100 devices in each key mode, another carries on when the founder is gone,
# an OEM wraps its CA key with plain openssl; device certificates, key envelopes and the audit log
# are checked with openssl and python cryptography; refused packages and requests exit 1.
source "$(dirname "$0")/lib.sh"
DOCS="$(cd "$(dirname "$0")/../.." && pwd)/docs/profiles"
PY=/usr/bin/python3
M="$T/msg"
mkdir -p "$M"

# enroll SPONSOR CANDIDATE GROUP — announce → request → admit → join, through files.
enroll() {
  local f="$M/$2-$3"
  expect_ok "$CLADE" group announce --state "$T/$1" --group "$3" --out "$f.ann"
  expect_ok "$CLADE" group request --state "$T/$2" --announcement "$f.ann" --out "$f.req"
  expect_ok "$CLADE" group admit --state "$T/$1" --request "$f.req" --out "$f.resp"
  expect_ok "$CLADE" group join --state "$T/$2" --response "$f.resp"
}

# verify_certs CERT... — every device certificate chains to the OEM root, in one openssl call.
verify_certs() {
  openssl verify -CAfile "$T/oem/root.crt" -untrusted "$T/oem/issuing.crt" "$@" >"$T/verify.out" 2>&1 ||
    { cat "$T/verify.out" >&2; fail "openssl verify refused a device certificate"; }
  [ "$(grep -c ': OK$' "$T/verify.out")" -eq "$#" ] || fail "openssl verify did not say OK $# times"
  checks=$((checks + 1))
}

# decrypt_keys DIR... — opens each DIR/device-key.cms with the transport key into DIR/device.key.
decrypt_keys() {
  local d
  for d in "$@"; do
    openssl cms -decrypt -binary -inform DER -in "$d/device-key.cms" -recip "$T/t.crt" \
      -inkey "$T/t.key" -out "$d/device.key" || fail "openssl cms -decrypt refused $d/device-key.cms"
  done
  checks=$((checks + 1))
}

# audit_count STATE OPERATION — the count `clade audit verify` prints for member 1.2 (or $3).
audit_count() {
  expect_ok "$CLADE" audit export --state "$T/$1" --out "$T/$1.audit"
  expect_ok "$CLADE" audit verify "$T/$1.audit" --group-export "$T/gx"
  expect_out "chain intact"
  awk -v id="$3" -v op="$2" '$1 == id && $2 == op { print $3 }' "$T/out"
}

# flip_in FILE NEEDLE_FILE OUT — OUT is FILE with one bit flipped inside the bytes of NEEDLE_FILE.
flip_in() {
  $PY - "$1" "$2" "$3" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
needle = open(sys.argv[2], "rb").read()
at = data.find(needle)
assert at >= 0, "needle not found"
data[at + len(needle) // 2] ^= 0x01
open(sys.argv[3], "wb").write(bytes(data))
PY
}

# --- The OEM, the supplier, three HSMs, a group of three trusting the OEM root. ---------------
expect_ok "$CLADE" oem init --dir "$T/oem" --name "Acme Devices"
expect_out "fingerprint"
[ "$(stat -c %a "$T/oem/root.key")" = 600 ] || fail "oem root.key is not 0600"
[ "$(stat -c %a "$T/oem/issuing.key")" = 600 ] || fail "oem issuing.key is not 0600"
expect_fail 1 "refusing to overwrite" "$CLADE" oem init --dir "$T/oem" --name "Acme Devices"
expect_ok openssl verify -CAfile "$T/oem/root.crt" "$T/oem/issuing.crt"

expect_ok "$CLADE" supplier init --dir "$T/s" --name "Acme HSM Works"
for n in 1 2 3 4; do
  expect_ok "$CLADE" hsm init --state "$T/h$n" --supplier "$T/s" --serial "SN-000$n"
done
expect_ok "$CLADE" group create --state "$T/h1" --name Acme --oem-root "$T/oem/root.crt"
expect_out "member id: 1"
enroll h1 h2 Acme
expect_out "member id: 1.1"
enroll h1 h3 Acme
expect_out "member id: 1.2"
expect_ok "$CLADE" group export --state "$T/h1" --group Acme --out "$T/gx"
# What the OEM checks before wrapping anything for the group.
expect_ok openssl verify -CAfile "$T/gx/supplier-root.crt" -untrusted "$T/gx/group-ca-chain.pem" \
  "$T/gx/group-enc.crt"

# --- Profiles, firmware, configuration; packages. -----------------------------------------------
cat >"$T/device.json" <<'EOF'
{"product": "Sensor", "subject": {"CN": "{product} {uid}", "O": "Acme"}, "validity": {"not_after": "99991231235959Z"}, "key_usage": ["digitalSignature"], "extended_key_usage": ["clientAuth"], "key_mode": "device"}
EOF
cat >"$T/hsm.json" <<'EOF'
{"product": "Gateway", "subject": {"CN": "{product} {uid}", "O": "Acme", "OU": "{job}"},
 "validity": {"days": 365}, "key_usage": ["digitalSignature", "keyAgreement"],
 "extended_key_usage": ["clientAuth", "1.3.6.1.4.1.32473.77.9"],
 "extensions": [{"oid": "1.3.6.1.4.1.32473.77.2", "critical": false, "utf8": "line 7"}],
 "key_mode": "hsm"}
EOF
head -c 65536 /dev/urandom >"$T/firmware.bin"
head -c 512 /dev/urandom >"$T/config.bin"

expect_ok "$CLADE" oem package --dir "$T/oem" --group-export "$T/gx" --job J-DEV \
  --profile "$T/device.json" --firmware "$T/firmware.bin" --config "$T/config.bin" \
  --supplier-root "$T/s/root.crt" --out "$T/dev.pkg"
expect_out "wrapped by Clade"
expect_ok "$CLADE" oem package --dir "$T/oem" --group-export "$T/gx" --job J-HSM \
  --profile "$T/hsm.json" --supplier-root "$T/s/root.crt" --out "$T/hsm.pkg"
# The examples of docs/profiles.md, as written.
expect_ok "$CLADE" oem package --dir "$T/oem" --group-export "$T/gx" --job J-IOT \
  --profile "$DOCS/iot-device.json" --supplier-root "$T/s/root.crt" --out "$T/iot.pkg"
expect_ok "$CLADE" oem package --dir "$T/oem" --group-export "$T/gx" --job J-MATTER \
  --profile "$DOCS/matter-dac.json" --supplier-root "$T/s/root.crt" --out "$T/matter.pkg"
# The supplier root must be pinned: the export's own copy is not trusted by itself.
expect_fail 2 "--supplier-root is required" "$CLADE" oem package --dir "$T/oem" \
  --group-export "$T/gx" --job J-X --profile "$T/device.json" --out "$T/x.pkg"
[ ! -e "$T/x.pkg" ] || fail "a package was written without a pinned supplier root"
# A pinned supplier root that is not the export's is refused.
expect_fail 1 "not the supplier root you pinned" "$CLADE" oem package --dir "$T/oem" \
  --group-export "$T/gx" --job J-X --profile "$T/device.json" --supplier-root "$T/oem/root.crt" \
  --out "$T/x.pkg"

# --- Import on 1.2 only. -------------------------------------------------------------------------
for p in dev hsm iot matter; do
  expect_ok "$CLADE" job import --state "$T/h3" --package "$T/$p.pkg"
done
expect_out "device key mode: device"
expect_ok "$CLADE" job import --state "$T/h3" --package "$T/dev.pkg"  # again: a no-op
expect_ok "$CLADE" job list --state "$T/h3" --json
$PY - "$T/out" <<'PY' || fail "job list --json is not as expected"
import json, sys
jobs = {j["job_id"]: j for j in json.load(open(sys.argv[1]))}
assert sorted(jobs) == ["J-DEV", "J-HSM", "J-IOT", "J-MATTER"], jobs
assert jobs["J-DEV"]["key_mode"] == "device" and jobs["J-HSM"]["key_mode"] == "hsm", jobs
assert jobs["J-DEV"]["firmware"] and jobs["J-DEV"]["config"] and not jobs["J-HSM"]["firmware"]
assert jobs["J-DEV"]["devices_provisioned"] == 0
PY
expect_ok "$CLADE" job list --state "$T/h2"
expect_out "no jobs"
expect_fail 1 "not imported on this HSM" "$CLADE" provision --state "$T/h2" --job J-DEV \
  --device-uid X-1 --generate-key --out "$T/x"

# --- Device keys and a transport key, made by openssl. ------------------------------------------
K="$T/keys"
mkdir -p "$K"
for i in $(seq -w 1 100); do
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$K/$i.key" 2>/dev/null
  if [ "$((10#$i))" -le 50 ]; then
    openssl pkey -in "$K/$i.key" -pubout -out "$K/$i.pub"
  else
    openssl req -new -key "$K/$i.key" -subj "/CN=chip $i" -out "$K/$i.csr"
  fi
done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/t.key" \
  -subj "/CN=device transport key" -days 30 -addext keyUsage=keyAgreement -out "$T/t.crt" 2>/dev/null

# --- 100 devices in each key mode on 1.2. -------------------------------------------------------
D="$T/dev"
for i in $(seq -w 1 100); do
  if [ "$((10#$i))" -le 50 ]; then src=(--public-key "$K/$i.pub"); else src=(--csr "$K/$i.csr"); fi
  expect_ok "$CLADE" provision --state "$T/h3" --job J-DEV --device-uid "DEV-$i" "${src[@]}" \
    --out "$D/d$i"
  expect_ok "$CLADE" provision --state "$T/h3" --job J-HSM --device-uid "GW-$i" --generate-key \
    --transport-key "$T/t.crt" --out "$D/h$i"
done
expect_out "provisioned by member 1.2"
verify_certs "$D"/d*/device.crt "$D"/h*/device.crt
decrypt_keys "$D"/h*
for i in $(seq -w 1 100); do
  cmp -s "$T/firmware.bin" "$D/d$i/firmware.bin" || fail "d$i/firmware.bin differs"
  cmp -s "$T/config.bin" "$D/d$i/config.bin" || fail "d$i/config.bin differs"
  [ ! -e "$D/h$i/firmware.bin" ] || fail "h$i got firmware from a job without any"
  [ ! -e "$D/h$i/device-key.pem" ] || fail "h$i got a plain key"
done
checks=$((checks + 1))
$PY - "$D" "$K" <<'PY' || fail "device certificates are not as the profiles say"
import datetime, sys
from cryptography import x509
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID, ExtensionOID
from cryptography.hazmat.primitives import serialization

D, K = sys.argv[1], sys.argv[2]
def load(p):
    return x509.load_pem_x509_certificate(open(p, "rb").read())
def spki(k):
    return k.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
issuing = None
for i in range(1, 101):
    n = "%03d" % i
    # Device key mode: the profile exactly as written.
    c = load(f"{D}/d{n}/device.crt")
    assert c.subject.rfc4514_string() == f"O=Acme,CN=Sensor DEV-{n}", c.subject.rfc4514_string()
    assert c.not_valid_after == datetime.datetime(9999, 12, 31, 23, 59, 59), c.not_valid_after
    ku = c.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_agreement
    assert not ku.value.key_cert_sign
    eku = c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH], list(eku)
    assert c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    key = serialization.load_pem_private_key(open(f"{K}/{n}.key", "rb").read(), None)
    assert spki(c.public_key()) == spki(key.public_key()), f"d{n}: not the chip's key"
    chain = open(f"{D}/d{n}/chain.pem", "rb").read()
    assert chain.count(b"BEGIN CERTIFICATE") == 2
    # HSM key mode: extra extension, EKU by OID, days validity, the wrapped key matches.
    h = load(f"{D}/h{n}/device.crt")
    assert h.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"Gateway GW-{n}"
    assert h.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "J-HSM"
    ext = h.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.32473.77.2"))
    assert not ext.critical and ext.value.value == b"\x0c\x06line 7", ext
    ku = h.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_agreement
    eku = [o.dotted_string for o in h.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value]
    assert eku == ["1.3.6.1.5.5.7.3.2", "1.3.6.1.4.1.32473.77.9"], eku
    days = (h.not_valid_after - h.not_valid_before).days
    assert 364 <= days <= 366, days
    dk = serialization.load_der_private_key(open(f"{D}/h{n}/device.key", "rb").read(), None)
    assert spki(dk.public_key()) == spki(h.public_key()), f"h{n}: the wrapped key is not the cert's"
    assert c.issuer == h.issuer
PY
checks=$((checks + 1))

# The records are signed message files; the audit log of 1.2 counts 200 provisionings.
[ "$(ls "$D"/*/record.msg | wc -l)" -eq 200 ] || fail "not 200 provisioning records"
got=$(audit_count h3 provision 1.2)
[ "$got" = 200 ] || fail "audit of 1.2 counts '$got' provision entries, expected 200"
got=$(audit_count h3 job.import 1.2)
[ "$got" = 4 ] || fail "audit of 1.2 counts '$got' job imports, expected 4"
expect_ok "$CLADE" job list --state "$T/h3" --json
$PY -c 'import json,sys; j={x["job_id"]:x for x in json.load(open(sys.argv[1]))}; assert j["J-DEV"]["devices_provisioned"]==100 and j["J-HSM"]["devices_provisioned"]==100, j' \
  "$T/out" || fail "job list does not count 100 devices per job"
# One flipped bit in the middle of the audit export is refused.
cp "$T/h3.audit" "$T/bad.audit"
$PY - "$T/bad.audit" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[len(b) // 2] ^= 0x01
open(sys.argv[1], "wb").write(bytes(b))
PY
expect_fail 1 "clade: error:" "$CLADE" audit verify "$T/bad.audit" --group-export "$T/gx"

# The documented example profiles make what they say.
expect_ok "$CLADE" provision --state "$T/h3" --job J-IOT --device-uid T2-0001 --generate-key \
  --transport-key "$T/t.crt" --out "$D/iot"
expect_ok "$CLADE" provision --state "$T/h3" --job J-MATTER --device-uid 0001 --csr "$K/051.csr" \
  --out "$D/matter"
verify_certs "$D/iot/device.crt" "$D/matter/device.crt"
$PY - "$D" <<'PY' || fail "the example profiles do not make the documented certificates"
import datetime, sys
from cryptography import x509
D = sys.argv[1]
m = x509.load_pem_x509_certificate(open(f"{D}/matter/device.crt", "rb").read())
attr = lambda c, oid: c.subject.get_attributes_for_oid(x509.ObjectIdentifier(oid))[0].value
assert attr(m, "1.3.6.1.4.1.37244.2.1") == "FFF1" and attr(m, "1.3.6.1.4.1.37244.2.2") == "8000"
assert attr(m, "2.5.4.3") == "Acme Smart Plug DAC 0001"
assert m.not_valid_after == datetime.datetime(9999, 12, 31, 23, 59, 59)
ku = m.extensions.get_extension_for_class(x509.KeyUsage)
assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
i = x509.load_pem_x509_certificate(open(f"{D}/iot/device.crt", "rb").read())
assert attr(i, "2.5.4.3") == "Thermostat T2 T2-0001" and attr(i, "2.5.4.5") == "T2-0001"
assert attr(i, "2.5.4.11") == "job J-IOT"
ext = i.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.32473.77.1"))
assert ext.value.value[2:] == b"hardware revision C"
assert 3649 <= (i.not_valid_after - i.not_valid_before).days <= 3651
PY
checks=$((checks + 1))

# --- Refusals while provisioning. ---------------------------------------------------------------
expect_fail 1 "already provisioned" "$CLADE" provision --state "$T/h3" --job J-DEV \
  --device-uid DEV-001 --public-key "$K/002.pub" --out "$T/x"
expect_ok "$CLADE" provision --state "$T/h3" --job J-DEV --device-uid DEV-001 \
  --public-key "$K/002.pub" --reissue --out "$D/reissued"
verify_certs "$D/reissued/device.crt"
got=$(audit_count h3 provision.reissue 1.2)
[ "$got" = 1 ] || fail "audit of 1.2 counts '$got' reissues, expected 1"
expect_fail 1 "never provisioned" "$CLADE" provision --state "$T/h3" --job J-DEV \
  --device-uid DEV-999 --public-key "$K/002.pub" --reissue --out "$T/x"
expect_fail 1 "requires --transport-key" "$CLADE" provision --state "$T/h3" --job J-HSM \
  --device-uid GW-999 --generate-key --out "$T/x"
expect_fail 1 "give --generate-key" "$CLADE" provision --state "$T/h3" --job J-HSM \
  --device-uid GW-999 --public-key "$K/002.pub" --out "$T/x"
expect_fail 1 "expects the device's own key" "$CLADE" provision --state "$T/h3" --job J-DEV \
  --device-uid DEV-999 --generate-key --transport-key "$T/t.crt" --out "$T/x"
expect_fail 1 "may hold only" "$CLADE" provision --state "$T/h3" --job J-DEV \
  --device-uid "DEV 999" --public-key "$K/002.pub" --out "$T/x"
# A CSR whose signature is corrupted (last byte of the DER, inside the ECDSA s value).
openssl req -in "$K/060.csr" -outform DER -out "$T/bad.der"
$PY - "$T/bad.der" "$T/bad.csr" <<'PY'
import base64, sys, textwrap
b = bytearray(open(sys.argv[1], "rb").read()); b[-1] ^= 0x5a; b[-2] ^= 0x01
body = "\n".join(textwrap.wrap(base64.b64encode(bytes(b)).decode(), 64))
open(sys.argv[2], "w").write(f"-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n")
PY
expect_fail 1 "CSR self-signature does not verify" "$CLADE" provision --state "$T/h3" --job J-DEV \
  --device-uid DEV-998 --csr "$T/bad.csr" --out "$T/x"
expect_fail 2 "" "$CLADE" provision --state "$T/h3" --job J-DEV --device-uid DEV-997 --out "$T/x"

# --- The founder is gone: 1.1 imports the same package and provisions. --------------------------
rm -rf "$T/h1"
expect_ok "$CLADE" job import --state "$T/h2" --package "$T/dev.pkg"
expect_ok "$CLADE" job import --state "$T/h2" --package "$T/hsm.pkg"
for i in 1 2 3; do
  expect_ok "$CLADE" provision --state "$T/h2" --job J-DEV --device-uid "DEV-$i" \
    --public-key "$K/00$i.pub" --out "$D/b$i"
  expect_out "provisioned by member 1.1"
  expect_ok "$CLADE" provision --state "$T/h2" --job J-HSM --device-uid "GW-$i" --generate-key \
    --transport-key "$T/t.crt" --out "$D/c$i"
  cmp -s "$T/firmware.bin" "$D/b$i/firmware.bin" || fail "b$i/firmware.bin differs"
done
verify_certs "$D"/b?/device.crt "$D"/c?/device.crt
decrypt_keys "$D"/c?

# --- An OEM that wraps its CA key with plain openssl: Clade never sees it. ----------------------
openssl cms -encrypt -binary -aes256 -recip "$T/gx/group-enc.crt" -in "$T/oem/issuing.key" \
  -outform DER -out "$T/ca-cbc.cms"
openssl cms -encrypt -binary -aes-256-gcm -recip "$T/gx/group-enc.crt" -in "$T/oem/issuing.key" \
  -outform DER -out "$T/ca-gcm.cms"
for w in cbc gcm; do
  expect_ok "$CLADE" oem package --dir "$T/oem" --group-export "$T/gx" --job "J-OSSL-$w" \
    --profile "$T/device.json" --firmware "$T/firmware.bin" --wrapped-ca-key "$T/ca-$w.cms" \
    --supplier-root "$T/s/root.crt" --out "$T/ossl-$w.pkg"
  expect_out "your envelope"
  for h in h2 h3; do
    expect_ok "$CLADE" job import --state "$T/$h" --package "$T/ossl-$w.pkg"
    expect_ok "$CLADE" provision --state "$T/$h" --job "J-OSSL-$w" --device-uid "OS-1" \
      --csr "$K/070.csr" --out "$D/ossl-$w-$h"
    cmp -s "$T/firmware.bin" "$D/ossl-$w-$h/firmware.bin" || fail "ossl-$w-$h/firmware.bin differs"
  done
done
verify_certs "$D"/ossl-*/device.crt

# --- Refused packages. --------------------------------------------------------------------------
# Signed by another OEM, for the same group.
expect_ok "$CLADE" oem init --dir "$T/oem2" --name "Mallory Devices"
expect_ok "$CLADE" oem package --dir "$T/oem2" --group-export "$T/gx" --job J-DEV2 \
  --profile "$T/device.json" --supplier-root "$T/s/root.crt" --out "$T/other-oem.pkg"
expect_fail 1 "not signed by the OEM root" "$CLADE" job import --state "$T/h3" \
  --package "$T/other-oem.pkg"
# For another group (founded by a fourth HSM, trusting the same OEM).
expect_ok "$CLADE" group create --state "$T/h4" --name Other --oem-root "$T/oem/root.crt"
expect_ok "$CLADE" group export --state "$T/h4" --group Other --out "$T/gy"
expect_ok "$CLADE" oem package --dir "$T/oem" --group-export "$T/gy" --job J-OTHER \
  --profile "$T/device.json" --supplier-root "$T/s/root.crt" --out "$T/other-group.pkg"
expect_ok "$CLADE" job import --state "$T/h4" --package "$T/other-group.pkg"
expect_fail 1 "this HSM is not a member of it" "$CLADE" job import --state "$T/h3" \
  --package "$T/other-group.pkg"
# A provisioning record verifies against its group, and not against another.
recs=("$D"/*/record.msg)
rec=${recs[0]}
expect_ok "$CLADE" record verify "$rec" --group-export "$T/gx"
expect_out "record verified: signed by member 1."
expect_fail 1 "is not signed by a member of group" "$CLADE" record verify "$rec" --group-export "$T/gy"
expect_ok "$CLADE" msg show "$rec"
expect_out '"type": "clade.v1.ProvisioningRecord"'
# One bit flipped inside the firmware of a package.
flip_in "$T/dev.pkg" "$T/firmware.bin" "$T/tampered.pkg"
expect_fail 1 "message signature does not verify" "$CLADE" job import --state "$T/h2" \
  --package "$T/tampered.pkg"
# The CA key wrapped for a key that is not the group's.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/o.key" \
  -subj "/CN=not the group" -days 30 -out "$T/o.crt" 2>/dev/null
openssl cms -encrypt -binary -aes256 -recip "$T/o.crt" -in "$T/oem/issuing.key" -outform DER \
  -out "$T/ca-other.cms"
expect_ok "$CLADE" oem package --dir "$T/oem" --group-export "$T/gx" --job J-WRONG-WRAP \
  --profile "$T/device.json" --wrapped-ca-key "$T/ca-other.cms" --supplier-root "$T/s/root.crt" \
  --out "$T/wrong-wrap.pkg"
expect_fail 1 "is not wrapped for this group's encryption key" "$CLADE" job import \
  --state "$T/h3" --package "$T/wrong-wrap.pkg"
# The same job id with other content.
expect_ok "$CLADE" oem package --dir "$T/oem" --group-export "$T/gx" --job J-DEV \
  --profile "$T/hsm.json" --supplier-root "$T/s/root.crt" --out "$T/dev-again.pkg"
expect_fail 1 "already imported with other content" "$CLADE" job import --state "$T/h3" \
  --package "$T/dev-again.pkg"
# Refused imports left nothing behind.
expect_ok "$CLADE" job list --state "$T/h3" --json
$PY -c 'import json,sys; assert len(json.load(open(sys.argv[1]))) == 6' "$T/out" ||
  fail "a refused import changed the job list"
# A bad profile never becomes a package.
echo '{"subject": {"CN": "x"}, "validity": {"days": 1}, "key_mode": "device", "validty": 1}' \
  >"$T/typo.json"
expect_fail 1 "unknown key 'validty'" "$CLADE" oem package --dir "$T/oem" --group-export "$T/gx" \
  --job J-TYPO --profile "$T/typo.json" --supplier-root "$T/s/root.crt" --out "$T/typo.pkg"

done_checks
