#!/usr/bin/env bash
# Sizes that fit the wire, and a line database lock that is never followed: a job carrying 5 MiB
# of firmware (past gRPC's 4 MiB default) is imported online (`clade hsm call import-job`),
# fetched by `clade line run` (GetJob) and programmed onto a few virtual chips, which verify; a
# line.db.lock planted as a symbolic link to a victim file stops the run, naming it, with the
# victim and the chips untouched.
source "$(dirname "$0")/lib.sh"
# programmed TRAY — how many chips of TRAY carry a device certificate.
programmed() { find "$1" -path '*/flash/device.crt' | wc -l; }

# --- A supplier, an OEM, one HSM founding group Acme, serving. ----------------------------------
expect_ok "$CLADE" supplier init --dir "$T/s" --name "Acme HSM Works"
expect_ok "$CLADE" hsm init --state "$T/h1" --supplier "$T/s" --serial SN-0001
expect_ok "$CLADE" oem init --dir "$T/oem" --name "Acme Devices"
expect_ok "$CLADE" group create --state "$T/h1" --name Acme --oem-root "$T/oem/root.crt"
expect_ok "$CLADE" group issue-client --state "$T/h1" --group Acme --role line --out "$T/line"
expect_ok "$CLADE" group issue-client --state "$T/h1" --group Acme --role operator --out "$T/op"
expect_ok "$CLADE" group export --state "$T/h1" --group Acme --out "$T/gx"
start_daemon h1 d1
A1=$ADDR

# --- A job with 5 MiB of firmware, imported online. ---------------------------------------------
cat >"$T/device.json" <<'JSON'
{"product": "Sensor", "subject": {"CN": "{product} {uid}", "O": "Acme"}, "validity": {"days": 365}, "key_usage": ["digitalSignature"], "key_mode": "device"}
JSON
head -c $((5 * 1024 * 1024)) /dev/urandom >"$T/firmware.bin"
expect_ok "$CLADE" oem package --dir "$T/oem" --group-export "$T/gx" --job J-BIG \
  --profile "$T/device.json" --firmware "$T/firmware.bin" --supplier-root "$T/s/root.crt" \
  --out "$T/big.pkg"
[ "$(stat -c %s "$T/big.pkg")" -gt $((4 * 1024 * 1024)) ] || fail "the package is not past 4 MiB"
expect_ok "$CLADE" hsm call import-job --connect "$A1" --client "$T/op" --package "$T/big.pkg"
expect_out "job id: J-BIG"

# --- A symlinked line.db.lock: refused, its victim untouched, no chip programmed. ---------------
expect_ok "$CLADE" device make-tray --dir "$T/tray" --count 3
printf 'the victim file\n' >"$T/victim"
ln -s "$T/victim" "$T/tray/line.db.lock"
expect_fail 1 "lock file $T/tray/line.db.lock is a symbolic link; refusing to follow it" \
  "$CLADE" line run --job J-BIG --hsm "$A1" --client "$T/line" --tray "$T/tray" \
  --progress none --give-up 3
[ "$(cat "$T/victim")" = "the victim file" ] || fail "the lock's victim was written"
[ "$(programmed "$T/tray")" -eq 0 ] || fail "a refused line programmed chips"
[ ! -e "$T/tray/line.db" ] || fail "a refused line made its database"
rm "$T/tray/line.db.lock"

# --- The line fetches the job (GetJob) and programs it; the chips verify. -----------------------
expect_ok "$CLADE" line run --job J-BIG --hsm "$A1" --client "$T/line" --tray "$T/tray" \
  --progress none
cmp -s "$T/tray/jobs/J-BIG.package" "$T/big.pkg" || fail "the line kept another package"
grep -q "event=job.get job=J-BIG " "$T/d1.log" || fail "the line did not fetch the job"
[ "$(programmed "$T/tray")" -eq 3 ] || fail "not 3 chips programmed"
while read -r fw; do
  cmp -s "$fw" "$T/firmware.bin" || fail "$fw is not the job's firmware"
  checks=$((checks + 1))
done < <(find "$T/tray" -path '*/flash/firmware.bin')
expect_ok "$CLADE" device verify --tray "$T/tray" --oem-root "$T/oem/root.crt" --job J-BIG
expect_out "3 chips: 3 ok, 0 failed"

done_checks
