#!/bin/sh
# A chip reader for `clade line run --chips exec:…` (docs/operations.md, "The programmer
# contract"): prints one JSON record per chip on stdout, a chip manifest. This one reads a tray of
# virtual chips, standing in for the reader of a real line, which would ask each chip in its
# sockets for its uid and public key (or transport certificate).
#   usage: read-chips.sh TRAY
set -eu
tray=${1:?usage: read-chips.sh TRAY}
# A PEM file as a JSON string: PEM holds only base64, '=', '-', spaces and newlines.
pem_json() { awk 'BEGIN { printf "\"" } { printf "%s\\n", $0 } END { printf "\"" }' "$1"; }
found=0
for chip in "$tray"/*/; do
  [ -f "$chip/chip.json" ] || continue
  uid=$(basename "$chip")
  printf '{"uid": "%s", "public_key": %s, "transport_cert": %s}\n' "$uid" \
    "$(pem_json "$chip/device.pub")" "$(pem_json "$chip/transport.crt")"
  found=$((found + 1))
done
[ "$found" -gt 0 ] || { echo "no chips in $tray" >&2; exit 1; }
