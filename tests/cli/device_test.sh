#!/usr/bin/env bash
# Virtual chips end to end through the `clade` command: a tray of 20 chips, each provisioned by a
# group member with `clade provision` (chips 1-10 in device key mode with the chip's own public
# key, 11-20 in hsm key mode wrapped to the chip's transport certificate), programmed with
# `clade device program` and verified with `clade device verify` (with --job-package, and with
# --job reading TRAY/jobs/<job>.package as the line run saves it: a missing package, one saved
# under another job's name and one signed by another OEM are refused); then a tampered chip, a
# locked chip programmed again, a certificate for another chip and another OEM's root are refused.
source "$(dirname "$0")/lib.sh"
M="$T/msg"
mkdir -p "$M"

# --- Supplier, HSM, a group trusting the OEM root; two packages with the same images. -----------
expect_ok "$CLADE" oem init --dir "$T/oem" --name "Acme Devices"
expect_ok "$CLADE" oem init --dir "$T/other-oem" --name "Acme Devices"
expect_ok "$CLADE" supplier init --dir "$T/s" --name "Acme HSM Works"
expect_ok "$CLADE" hsm init --state "$T/h1" --supplier "$T/s" --serial SN-0001
expect_ok "$CLADE" group create --state "$T/h1" --name Acme --oem-root "$T/oem/root.crt"
expect_ok "$CLADE" group export --state "$T/h1" --group Acme --out "$T/gx"
cat >"$T/device.json" <<'JSON'
{"product": "Sensor", "subject": {"CN": "{product} {uid}", "O": "Acme"}, "validity": {"days": 30}, "key_usage": ["digitalSignature"], "key_mode": "device"}
JSON
cat >"$T/hsm.json" <<'JSON'
{"product": "Gateway", "subject": {"CN": "{product} {uid}", "O": "Acme"}, "validity": {"days": 30}, "key_usage": ["digitalSignature"], "key_mode": "hsm"}
JSON
head -c 32768 /dev/urandom >"$T/firmware.bin"
head -c 256 /dev/urandom >"$T/config.bin"
for mode in device hsm; do
  expect_ok "$CLADE" oem package --dir "$T/oem" --group-export "$T/gx" --job "J-$mode" \
    --profile "$T/$mode.json" --firmware "$T/firmware.bin" --config "$T/config.bin" \
    --supplier-root "$T/s/root.crt" --out "$T/$mode.pkg"
  expect_ok "$CLADE" job import --state "$T/h1" --package "$T/$mode.pkg"
done

# --- A tray of 20 chips. --------------------------------------------------------------------------
expect_ok "$CLADE" device make-tray --dir "$T/tray" --count 20
expect_out "20 chips"
[ "$(ls "$T/tray" | wc -l)" -eq 20 ] || fail "make-tray did not make 20 chip directories"
C1="$T/tray/CHIP-000001"
[ "$(stat -c %a "$C1/device.key")" = 600 ] || fail "device.key is not 0600"
[ "$(stat -c %a "$C1/transport.key")" = 600 ] || fail "transport.key is not 0600"
expect_ok openssl x509 -in "$C1/transport.crt" -noout -ext keyUsage
expect_out "Key Agreement"
expect_fail 1 "holds 20 chips" "$CLADE" device make-tray --dir "$T/tray" --count 2
# Nothing is programmed yet: verify fails for every chip.
expect_fail 1 "20 of 20 chips failed" "$CLADE" device verify --tray "$T/tray" --oem-root "$T/oem/root.crt"
expect_out "is not locked"

# --- Provision and program every chip. ------------------------------------------------------------
for i in $(seq -w 1 20); do
  uid="CHIP-0000$i"
  chip="$T/tray/$uid"
  if [ "$((10#$i))" -le 10 ]; then
    expect_ok "$CLADE" provision --state "$T/h1" --job J-device --device-uid "$uid" \
      --public-key "$chip/device.pub" --out "$T/prov/$uid"
  else
    expect_ok "$CLADE" provision --state "$T/h1" --job J-hsm --device-uid "$uid" \
      --generate-key --transport-key "$chip/transport.crt" --out "$T/prov/$uid"
    [ -f "$T/prov/$uid/device-key.cms" ] || fail "no device-key.cms for $uid"
  fi
  expect_ok "$CLADE" device program --tray "$T/tray" --uid "$uid" --from "$T/prov/$uid"
  expect_out "programmed and locked"
done
# The hsm-mode chip holds the key its certificate names (checked with openssl, not Clade).
C15="$T/tray/CHIP-000015"
[ "$(openssl pkey -in "$C15/device.key" -pubout)" = "$(openssl x509 -in "$C15/flash/device.crt" -noout -pubkey)" ] ||
  fail "chip 15's key does not match its certificate"
expect_ok openssl verify -CAfile "$T/oem/root.crt" -untrusted "$T/oem/issuing.crt" "$C15/flash/device.crt"

expect_ok "$CLADE" device verify --tray "$T/tray" --oem-root "$T/oem/root.crt" --job-package "$T/device.pkg"
expect_out "20 chips: 20 ok, 0 failed"
expect_ok "$CLADE" device verify --tray "$T/tray" --oem-root "$T/oem/root.crt"
expect_out "20 chips: 20 ok, 0 failed"

# --- --job: the package the line run keeps in TRAY/jobs/<job>.package. ----------------------------
expect_fail 1 "no job package for job J-device in $T/tray/jobs/ (the line run saves it there); use --job-package FILE" \
  "$CLADE" device verify --tray "$T/tray" --oem-root "$T/oem/root.crt" --job J-device
mkdir -p "$T/tray/jobs"
cp "$T/device.pkg" "$T/tray/jobs/J-device.package"
expect_ok "$CLADE" device verify --tray "$T/tray" --oem-root "$T/oem/root.crt" --job J-device
expect_out "20 chips: 20 ok, 0 failed"
# A package saved under another job's name is refused.
cp "$T/device.pkg" "$T/tray/jobs/J-hsm.package"
expect_fail 1 "is the package of job J-device, not J-hsm" "$CLADE" device verify --tray "$T/tray" \
  --oem-root "$T/oem/root.crt" --job J-hsm
# A package signed by another OEM is refused.
expect_ok "$CLADE" oem package --dir "$T/other-oem" --group-export "$T/gx" --job J-other \
  --profile "$T/device.json" --firmware "$T/firmware.bin" --config "$T/config.bin" \
  --supplier-root "$T/s/root.crt" --out "$T/tray/jobs/J-other.package"
expect_fail 1 "not signed by the OEM root" "$CLADE" device verify --tray "$T/tray" \
  --oem-root "$T/oem/root.crt" --job J-other
# --job and --job-package together are a usage error.
expect_fail 2 "excludes" "$CLADE" device verify --tray "$T/tray" --oem-root "$T/oem/root.crt" \
  --job J-device --job-package "$T/device.pkg"
# The chips still verify: TRAY/jobs is not a chip.
expect_ok "$CLADE" device verify --tray "$T/tray" --oem-root "$T/oem/root.crt"
expect_out "20 chips: 20 ok, 0 failed"

# --- Refusals. -------------------------------------------------------------------------------------
# Another OEM's root: nothing chains; its package is refused.
expect_fail 1 "20 of 20 chips failed" "$CLADE" device verify --tray "$T/tray" --oem-root "$T/other-oem/root.crt"
expect_out "does not chain to the OEM root"
expect_fail 1 "not signed by the OEM root" "$CLADE" device verify --tray "$T/tray" \
  --oem-root "$T/other-oem/root.crt" --job-package "$T/device.pkg"
# A locked chip is not programmed again.
expect_fail 1 "chip CHIP-000003 is locked; it was programmed at" "$CLADE" device program \
  --tray "$T/tray" --uid CHIP-000003 --from "$T/prov/CHIP-000003"
# A certificate for another chip's key is refused, and that chip stays unlocked.
expect_ok "$CLADE" device make-tray --dir "$T/tray2" --count 1 --prefix LOT2-
expect_fail 1 "certificate does not match the key on chip LOT2-000001" "$CLADE" device program \
  --tray "$T/tray2" --uid LOT2-000001 --from "$T/prov/CHIP-000004"
expect_fail 1 "cannot open the device key envelope" "$CLADE" device program \
  --tray "$T/tray2" --uid LOT2-000001 --from "$T/prov/CHIP-000014"
grep -q '"locked": false' "$T/tray2/LOT2-000001/chip.json" || fail "a refused chip was locked"
expect_fail 1 "no chip CHIP-000099" "$CLADE" device program --tray "$T/tray" --uid CHIP-000099 \
  --from "$T/prov/CHIP-000001"
# Tampered firmware on one chip: verify names it and only it.
printf 'x' >>"$T/tray/CHIP-000007/flash/firmware.bin"
expect_fail 1 "1 of 20 chips failed verification: CHIP-000007" "$CLADE" device verify \
  --tray "$T/tray" --oem-root "$T/oem/root.crt" --job-package "$T/device.pkg"
expect_out "FAIL chip CHIP-000007: firmware digest"
expect_out "20 chips: 19 ok, 1 failed"
# Usage errors exit 2.
expect_fail 2 "usage error" "$CLADE" device make-tray --dir "$T/x" --count 0
expect_fail 2 "usage error" "$CLADE" device verify --tray "$T/tray"
done_checks
