#!/usr/bin/env bash
# The line checks what it receives (docs/operations.md, "What the line checks"), against real
# daemons on loopback ports chosen at run time: a forged job package (another OEM root, other
# firmware) kept in the tray is refused with no chip programmed, and so is one swapped in after a
# good run; an OEM root given wrongly on the command line lets no member's answer through (each
# refused answer recorded, and explained by `line reconcile`); a client directory without an OEM
# root is refused naming both ways to give one; a genuine HSM outside the group at a listed
# address is refused and the line moves on to a real member.
source "$(dirname "$0")/lib.sh"
sql() { sqlite3 -cmd ".timeout 5000" "$1" "$2"; }

# untouched TRAY — no chip of TRAY is locked or holds anything in flash, and its line database
# (if any) records no device done.
untouched() {
  local chip
  for chip in "$1"/*/chip.json; do
    grep -q '"locked": false' "$chip" || fail "$(dirname "$chip") was locked"
    [ ! -e "$(dirname "$chip")/flash" ] || fail "$(dirname "$chip") was programmed"
  done
  if [ -f "$1/line.db" ]; then
    [ "$(sql "$1/line.db" "select count(*) from devices where status='done'")" -eq 0 ] ||
      fail "the line database of $1 records a device done"
  fi
  checks=$((checks + 1))
}

# --- Group Acme (SN-0001 founds it with the OEM's root, SN-0002 joins), SN-0003 in group Other. --
expect_ok "$CLADE" supplier init --dir "$T/s" --name "Acme HSM Works"
for n in 1 2 3; do
  expect_ok "$CLADE" hsm init --state "$T/h$n" --supplier "$T/s" --serial "SN-000$n"
done
expect_ok "$CLADE" oem init --dir "$T/oem" --name "Acme Devices"
expect_ok "$CLADE" oem init --dir "$T/forger" --name "Made-up Devices"
expect_ok "$CLADE" group create --state "$T/h1" --name Acme --oem-root "$T/oem/root.crt"
GID=$(sed -n 's/^group id: //p' "$T/out")
expect_ok "$CLADE" group create --state "$T/h3" --name Other
# The founder's operator invites SN-0002, which then enrolls online.
expect_ok "$CLADE" group announce --state "$T/h1" --group Acme --for SN-0002 --out "$T/h2.ann"
start_daemon h1 d1
D1=$ADDR
expect_ok "$CLADE" group enroll --state "$T/h2" --sponsor "$D1" --announcement "$T/h2.ann"
expect_out "member id: 1.1"
start_daemon h2 d2
D2=$ADDR
start_daemon h3 d3
D3=$ADDR

expect_ok "$CLADE" group issue-client --state "$T/h1" --group Acme --role line --out "$T/line"
expect_out "oem-root.crt"
expect_ok "$CLADE" group issue-client --state "$T/h1" --group Acme --role operator --out "$T/op"
cmp -s "$T/line/oem-root.crt" "$T/oem/root.crt" || fail "oem-root.crt is not the group's OEM root"
expect_ok "$CLADE" group export --state "$T/h1" --group Acme --out "$T/gx"

cat >"$T/device.json" <<'JSON'
{"product": "Sensor", "subject": {"CN": "{product} {uid}"}, "validity": {"days": 30}, "key_usage": ["digitalSignature"], "key_mode": "device"}
JSON
head -c 4096 /dev/urandom >"$T/firmware.bin"
head -c 4096 /dev/urandom >"$T/evil.bin"
expect_ok "$CLADE" oem package --dir "$T/oem" --group-export "$T/gx" --job J-1 \
  --profile "$T/device.json" --firmware "$T/firmware.bin" --supplier-root "$T/s/root.crt" \
  --out "$T/J-1.pkg"
for d in "$D1" "$D2"; do
  expect_ok "$CLADE" hsm call import-job --connect "$d" --client "$T/line" --package "$T/J-1.pkg"
done
# The forgery: the same job id for the same group, signed by a made-up OEM, other firmware.
expect_ok "$CLADE" oem package --dir "$T/forger" --group-export "$T/gx" --job J-1 \
  --profile "$T/device.json" --firmware "$T/evil.bin" --supplier-root "$T/s/root.crt" \
  --out "$T/forged.pkg"

# --- A forged package kept in the tray: refused, no chip programmed. ----------------------------
expect_ok "$CLADE" device make-tray --dir "$T/tray" --count 3
mkdir -p "$T/tray/jobs"
cp "$T/forged.pkg" "$T/tray/jobs/J-1.package"
expect_fail 1 "$T/tray/jobs/J-1.package: package is not signed by the OEM root group $GID trusts" \
  "$CLADE" line run --job J-1 --hsm "$D2,$D1" --client "$T/line" --tray "$T/tray" --progress none
untouched "$T/tray"
# The wrong OEM root given on the command line lets the forgery pass its own checks, but no
# member's answer: their certificates are not of the forger's device-issuing CA. Each member is
# refused in turn, its device failed and recorded so; nothing is programmed.
expect_fail 1 "" "$CLADE" line run --job J-1 --hsm "$D2,$D1" --client "$T/line" \
  --oem-root "$T/forger/root.crt" --tray "$T/tray" --progress none
grep -q "is refused: the device certificate .* is not issued by the job's device-issuing CA" \
  "$T/out" || { cat "$T/out" >&2; fail "the answers were not refused for their certificates"; }
grep -q "member 1.1 (SN-0002) at $D2 is not used any more (the answer of member 1.1" "$T/out" ||
  { cat "$T/out" >&2; fail "the line did not stop using member 1.1 after its refused answer"; }
grep -q "member 1 (SN-0001) at $D1 in use" "$T/out" || fail "the line did not move on to member 1"
untouched "$T/tray"
[ "$(sql "$T/tray/line.db" "select count(*) from attempts where outcome='refused' and \
  error like '%is not issued by the job''s device-issuing CA%'")" -eq 2 ] ||
  fail "the line database does not record one refused answer per member"
# A client directory without oem-root.crt, and no --oem-root: refused, naming both ways.
mkdir -p "$T/noroot"
cp -p "$T/line/client.key" "$T/line/client-chain.pem" "$T/line/supplier-root.crt" "$T/noroot/"
rm "$T/tray/jobs/J-1.package"
expect_fail 1 "give --oem-root PEM, or a client directory holding oem-root.crt" "$CLADE" line run \
  --job J-1 --hsm "$D2" --client "$T/noroot" --tray "$T/tray" --progress none
untouched "$T/tray"
# With the forgery gone, the genuine package is fetched and checked; the chips get its firmware.
expect_ok "$CLADE" line run --job J-1 --hsm "$D2,$D1" --client "$T/line" --tray "$T/tray" \
  --progress none
cmp -s "$T/tray/jobs/J-1.package" "$T/J-1.pkg" || fail "the kept package is not the genuine one"
for chip in "$T"/tray/*/chip.json; do
  cmp -s "$(dirname "$chip")/flash/firmware.bin" "$T/firmware.bin" ||
    fail "$(dirname "$chip") does not hold the firmware"
done
expect_ok "$CLADE" device verify --tray "$T/tray" --oem-root "$T/oem/root.crt" --job J-1
expect_out "3 chips: 3 ok, 0 failed"
# Every certificate the members issued is explained: on a chip, or by an attempt the line refused
# or lost.
for n in 1 2; do
  d=D$n
  expect_ok "$CLADE" hsm call export-audit --connect "${!d}" --client "$T/op" --out "$T/a$n.exp"
done
expect_ok "$CLADE" line reconcile --db "$T/tray/line.db" --job J-1 --group-export "$T/gx" \
  "$T/a1.exp" "$T/a2.exp"
expect_out "0 problems"
grep -q "never delivered: the answer of member 1.1 (SN-0002) for CHIP-000001 is refused" "$T/out" ||
  { cat "$T/out" >&2; fail "reconcile does not explain the refused answer's certificate"; }
# The kept copy is checked again on every run: swapped for the forgery after the run, it is
# refused on the next.
cp "$T/forged.pkg" "$T/tray/jobs/J-1.package"
expect_fail 1 "$T/tray/jobs/J-1.package: package is not signed by the OEM root group $GID trusts" \
  "$CLADE" line run --job J-1 --hsm "$D2,$D1" --client "$T/line" --tray "$T/tray" --progress none

# --- A genuine HSM outside the group at a listed address: refused; the line moves on. -----------
expect_ok "$CLADE" device make-tray --dir "$T/tray2" --count 3 --prefix B-
expect_ok "$CLADE" line run --job J-1 --hsm "$D3,$D2" --client "$T/line" --tray "$T/tray2" \
  --progress none
expect_out "member at $D3 is not used: member at $D3 is not a member of group $GID: "
expect_out "member 1.1 (SN-0002) at $D2 in use"
[ "$(sql "$T/tray2/line.db" "select count(*) from attempts where member_serial='SN-0003'")" -eq 0 ] ||
  fail "a device was sent to the HSM outside the group"
[ "$(sql "$T/tray2/line.db" "select count(*) from devices where status='done'")" -eq 3 ] ||
  fail "not 3 done through the real member"
expect_ok "$CLADE" device verify --tray "$T/tray2" --oem-root "$T/oem/root.crt" --job J-1
expect_out "3 chips: 3 ok, 0 failed"
done_checks
