#!/bin/sh
# A programmer for `clade line run --programmer exec:…` (docs/operations.md, "The programmer
# contract"): run once per chip, in the chip's data directory, a provisioning bundle (device.crt,
# chain.pem, record.msg and, as the job has them, device-key.cms, firmware.bin, config.bin). Exit
# 0 means the chip is programmed; anything else fails the chip with the last line printed. This
# one programs a virtual chip of a tray; a real one would hand the files to the vendor's tool.
#   usage: program-chip.sh TRAY        (needs `clade` on PATH)
set -eu
tray=${1:?usage: program-chip.sh TRAY}
for f in device.crt chain.pem record.msg; do
  [ -f "$CLADE_DATA_DIR/$f" ] || { echo "no $f for chip $CLADE_UID" >&2; exit 9; }
done
echo "programming $CLADE_UID (job $CLADE_JOB, certificate $CLADE_CERT_SERIAL from member $CLADE_MEMBER)"
exec clade device program --tray "$tray" --uid "$CLADE_UID" --from "$CLADE_DATA_DIR"
