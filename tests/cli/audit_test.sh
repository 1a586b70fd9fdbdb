#!/usr/bin/env bash
# The audit log through the `clade` command: export it on each HSM, check each export offline
# against a group export, and refuse a damaged export and one checked against another group.
source "$(dirname "$0")/lib.sh"
M="$T/msg"
mkdir -p "$M"

# flip FILE OUT — OUT is FILE with one bit of its middle byte flipped.
flip() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[len(b) // 2] ^= 0x01
open(sys.argv[2], "wb").write(bytes(b))
PY
}

# expect_row ID OPERATION COUNT — the last `audit verify` printed this row of its table.
expect_row() {
  grep -qE -- "^$1 +$2 +$3\$" "$T/out" || { cat "$T/out" >&2; fail "expected a row '$1 $2 $3'"; }
  checks=$((checks + 1))
}

# Help and usage.
expect_ok "$CLADE" audit --help
for verb in export verify; do expect_out "$verb"; done
expect_ok "$CLADE" audit verify --help
expect_out "--group-export"
expect_out "checkpoint"
expect_fail 2 "usage error" "$CLADE" audit
expect_fail 2 "usage error" "$CLADE" audit verify
expect_fail 2 "usage error" "$CLADE" audit export --state "$T/h1"

# A supplier, three HSMs; group "line" founded on h1 with h2 enrolled, group "other" on h3.
expect_ok "$CLADE" supplier init --dir "$T/s" --name "Acme HSM Works"
for i in 1 2 3; do
  expect_ok "$CLADE" hsm init --state "$T/h$i" --supplier "$T/s" --serial "SN-$i"
done
expect_ok "$CLADE" group create --state "$T/h1" --name line
expect_ok "$CLADE" group create --state "$T/h3" --name other
expect_ok "$CLADE" group announce --state "$T/h1" --group line --out "$M/ann"
expect_ok "$CLADE" group request --state "$T/h2" --announcement "$M/ann" --out "$M/req"
expect_ok "$CLADE" group admit --state "$T/h1" --request "$M/req" --out "$M/resp"
expect_ok "$CLADE" group join --state "$T/h2" --response "$M/resp"
expect_ok "$CLADE" group export --state "$T/h2" --group line --out "$T/line"
expect_ok "$CLADE" group export --state "$T/h3" --group other --out "$T/other"

# Export on each HSM; check against the group's export.
for i in 1 2 3; do
  expect_ok "$CLADE" audit export --state "$T/h$i" --out "$T/h$i.audit"
  expect_out "audit export: $T/h$i.audit"
  expect_out "HSM: SN-$i"
  expect_out "entries: "
  expect_out "checkpoints: "
done
expect_ok "$CLADE" audit verify "$T/h1.audit" --group-export "$T/line"
expect_out "audit of HSM SN-1: "
expect_out "chain intact"
expect_out "member id 1"
expect_row 1 group.create 1
expect_row 1 group.announce 1
expect_row 1 group.admit 1
expect_ok "$CLADE" audit verify "$T/h2.audit" --group-export "$T/line"
expect_out "audit of HSM SN-2: "
expect_out "member id 1.1"
expect_row - group.request 1
expect_row 1.1 group.join 1
expect_ok "$CLADE" audit verify "$T/h3.audit" --group-export "$T/other"
expect_out "audit of HSM SN-3: "

# The counts printed match the export's entries and checkpoints.
expect_ok "$CLADE" audit export --state "$T/h1" --out "$T/h1b.audit"
entries=$(sed -n 's/^entries: //p' "$T/out")
cps=$(sed -n 's/^checkpoints: //p' "$T/out")
expect_ok "$CLADE" audit verify "$T/h1b.audit" --group-export "$T/line"
expect_out "audit of HSM SN-1: $entries entries, $cps checkpoints, chain intact"
expect_out "member id       operation               count"

# A copy with one bit flipped is refused; the original still verifies.
flip "$T/h1.audit" "$T/h1-flipped.audit"
expect_fail 1 "clade: error: $T/h1-flipped.audit: " \
  "$CLADE" audit verify "$T/h1-flipped.audit" --group-export "$T/line"
expect_ok "$CLADE" audit verify "$T/h1.audit" --group-export "$T/line"

# An export checked against another group, and another group's HSM checked against this one.
expect_fail 1 "not from a member of group" \
  "$CLADE" audit verify "$T/h1.audit" --group-export "$T/other"
expect_fail 1 "not from a member of group" \
  "$CLADE" audit verify "$T/h3.audit" --group-export "$T/line"

# Something that is not an audit export.
expect_fail 1 "expected a clade.v1.AuditExport" \
  "$CLADE" audit verify "$M/ann" --group-export "$T/line"
expect_fail 1 "group-ca-chain.pem" \
  "$CLADE" audit verify "$T/h1.audit" --group-export "$T/nowhere"

done_checks
