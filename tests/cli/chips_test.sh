#!/usr/bin/env bash
# The programmer contract end to end (docs/operations.md): `clade line run` with no --tray, its
# chips from the example chip reader (docs/examples/read-chips.sh, reading a tray of virtual chips
# as a real reader would read the chips in its sockets) or from a manifest file, programmed by the
# example programmer (docs/examples/program-chip.sh), against a real daemon; every chip verifies.
# Then the refusals: a bad manifest, a missing --db, the virtual programmer without a tray, a
# provisioning bundle with a planted link — each named, nothing changed.
source "$(dirname "$0")/lib.sh"
EX="${CLADE_SOURCE_DIR:?}/docs/examples"
# The commands get a minimal environment whose PATH is the line's: put `clade` on it.
PATH="$(dirname "$CLADE"):$PATH"
export PATH

expect_ok "$CLADE" supplier init --dir "$T/s" --name "Acme HSM Works"
expect_ok "$CLADE" hsm init --state "$T/h1" --supplier "$T/s" --serial SN-0001
expect_ok "$CLADE" oem init --dir "$T/oem" --name "Acme Devices"
expect_ok "$CLADE" group create --state "$T/h1" --name Acme --oem-root "$T/oem/root.crt"
expect_ok "$CLADE" group export --state "$T/h1" --group Acme --out "$T/gx"
expect_ok "$CLADE" group issue-client --state "$T/h1" --group Acme --role line --out "$T/line"
start_daemon h1 d1
for mode in device hsm; do
  cat >"$T/$mode.json" <<JSON
{"product": "Sensor", "subject": {"CN": "{product} {uid}"}, "validity": {"days": 365}, "key_mode": "$mode"}
JSON
  expect_ok "$CLADE" oem package --dir "$T/oem" --group-export "$T/gx" --job "J-$mode" \
    --profile "$T/$mode.json" --supplier-root "$T/s/root.crt" --out "$T/J-$mode.pkg"
  expect_ok "$CLADE" job import --state "$T/h1" --package "$T/J-$mode.pkg"
done
# The "chips in the sockets": virtual chips the example scripts stand in front of.
expect_ok "$CLADE" device make-tray --dir "$T/sockets" --count 12 --prefix S-
expect_ok "$CLADE" device make-tray --dir "$T/sockets2" --count 5 --prefix M-

# --- A chip reader and an exec programmer: the line has no tray. -------------------------------
mkdir -p "$T/run"
expect_ok "$CLADE" line run --job J-hsm --hsm "$ADDR" --client "$T/line" --db "$T/run/line.db" \
  --chips "exec:$EX/read-chips.sh $T/sockets" --programmer "exec:$EX/program-chip.sh $T/sockets" \
  --progress none
expect_out "line: job J-hsm, 12 chips of chip reader '$EX/read-chips.sh $T/sockets', 12 to provision; programmer exec"
expect_out "done by this run   12"
expect_ok "$CLADE" device verify --tray "$T/sockets" --oem-root "$T/oem/root.crt" --job-package "$T/J-hsm.pkg"
expect_out "12 chips: 12 ok, 0 failed"
# `device verify --job` finds the package where the run kept it: beside --db, as there is no tray.
expect_ok "$CLADE" device verify --tray "$T/sockets" --oem-root "$T/oem/root.crt" --job J-hsm \
  --db "$T/run/line.db"
expect_out "12 chips: 12 ok, 0 failed"
expect_fail 1 "no job package for job J-hsm in $T/sockets/jobs/ (the line run saves it there)" \
  "$CLADE" device verify --tray "$T/sockets" --oem-root "$T/oem/root.crt" --job J-hsm
expect_fail 2 "--db requires --job" \
  "$CLADE" device verify --tray "$T/sockets" --oem-root "$T/oem/root.crt" --db "$T/run/line.db"
# What the line keeps lives beside its database, not in any tray.
[ -f "$T/run/jobs/J-hsm.package" ] || fail "the job package is not kept beside the database"
[ ! -e "$T/sockets/line.db" ] && [ ! -e "$T/sockets/jobs" ] || fail "the line wrote into the tray"
[ -z "$(ls -A "$T/run/exec-work")" ] || fail "work directories left after success: $(ls "$T/run/exec-work")"
# A rerun resumes from the database: nothing is programmed twice.
expect_ok "$CLADE" line run --job J-hsm --hsm "$ADDR" --client "$T/line" --db "$T/run/line.db" \
  --chips "exec:$EX/read-chips.sh $T/sockets" --programmer "exec:$EX/program-chip.sh $T/sockets" \
  --progress none
expect_out "12 of 12 chips were done by an earlier run"

# --- A manifest file, as a tester would write it. -----------------------------------------------
"$EX/read-chips.sh" "$T/sockets2" >"$T/chips.jsonl" || fail "read-chips.sh failed"
expect_ok "$CLADE" line run --job J-device --hsm "$ADDR" --client "$T/line" --db "$T/run2.db" \
  --chips "manifest:$T/chips.jsonl" --programmer "exec:$EX/program-chip.sh $T/sockets2" \
  --progress none
expect_out "5 chips of manifest $T/chips.jsonl, 5 to provision"
expect_ok "$CLADE" device verify --tray "$T/sockets2" --oem-root "$T/oem/root.crt" --job-package "$T/J-device.pkg"
expect_out "5 chips: 5 ok, 0 failed"
expect_ok "$CLADE" device verify --tray "$T/sockets2" --oem-root "$T/oem/root.crt" --job J-device \
  --db "$T/run2.db"
expect_out "5 chips: 5 ok, 0 failed"

# --- Refusals: each named, and the line makes no database. --------------------------------------
head -n 2 "$T/chips.jsonl" >"$T/dup.jsonl"
head -n 1 "$T/chips.jsonl" >>"$T/dup.jsonl"
expect_fail 1 "clade: error: manifest $T/dup.jsonl line 3: chip M-000001 is already on line 1" \
  "$CLADE" line run --job J-device --hsm "$ADDR" --client "$T/line" --db "$T/bad.db" \
  --chips "manifest:$T/dup.jsonl" --programmer "exec:true" --progress none
head -c 100 "$T/chips.jsonl" >"$T/cut.jsonl"
expect_fail 1 "clade: error: manifest $T/cut.jsonl line 1: truncated (the last line has no newline)" \
  "$CLADE" line run --job J-device --hsm "$ADDR" --client "$T/line" --db "$T/bad.db" \
  --chips "manifest:$T/cut.jsonl" --programmer "exec:true" --progress none
[ ! -e "$T/bad.db" ] || fail "a refused manifest left a line database"
expect_fail 1 "clade: error: without --tray, --db FILE is required (the line database)" \
  "$CLADE" line run --job J-device --hsm "$ADDR" --client "$T/line" \
  --chips "manifest:$T/chips.jsonl" --programmer "exec:true" --progress none
expect_fail 1 "clade: error: --programmer virtual programs the virtual chips of a tray (--tray DIR); with --chips, give --programmer exec:COMMAND" \
  "$CLADE" line run --job J-device --hsm "$ADDR" --client "$T/line" --db "$T/bad.db" \
  --chips "manifest:$T/chips.jsonl" --progress none
expect_fail 1 "clade: error: chip reader failed: exit status 1: no chips in $T/nowhere" \
  "$CLADE" line run --job J-device --hsm "$ADDR" --client "$T/line" --db "$T/bad.db" \
  --chips "exec:$EX/read-chips.sh $T/nowhere" --programmer "exec:true" --progress none
[ ! -e "$T/bad.db" ] || fail "a refused run left a line database"
expect_fail 2 "excludes" "$CLADE" line run --job J-device --hsm "$ADDR" --client "$T/line" \
  --tray "$T/sockets2" --chips "manifest:$T/chips.jsonl"

# --- A provisioning bundle read strictly by `device program --from`. -----------------------------
expect_ok "$CLADE" device make-tray --dir "$T/one" --count 1 --prefix B-
expect_ok "$CLADE" provision --state "$T/h1" --job J-device --device-uid B-000001 \
  --public-key "$T/one/B-000001/device.pub" --out "$T/bundle"
mv "$T/bundle/device.crt" "$T/elsewhere.crt"
ln -s "$T/elsewhere.crt" "$T/bundle/device.crt"
expect_fail 1 "clade: error: $T/bundle/device.crt is a symbolic link; refusing to follow it" \
  "$CLADE" device program --tray "$T/one" --uid B-000001 --from "$T/bundle"
rm "$T/bundle/device.crt"
mv "$T/elsewhere.crt" "$T/bundle/device.crt"
echo note >"$T/bundle/notes.txt"
expect_fail 1 "clade: error: $T/bundle/notes.txt is not a file of a provisioning bundle" \
  "$CLADE" device program --tray "$T/one" --uid B-000001 --from "$T/bundle"
grep -q '"locked": false' "$T/one/B-000001/chip.json" || fail "a refused bundle locked the chip"
rm "$T/bundle/notes.txt"
expect_ok "$CLADE" device program --tray "$T/one" --uid B-000001 --from "$T/bundle"
expect_out "chip B-000001 programmed and locked"
done_checks
