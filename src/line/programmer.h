// Programmers: how the line writes to a chip what a member issued for it. Where the chips and
// their request material come from is a ChipSource (chip_source.h); a programmer only programs.
// The virtual programmer writes a tray's virtual chips (sim/tray_station.h); the exec programmer
// runs an outside command per device, which is how a real programmer is attached.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "line/bundle.h"

namespace clade::line {

// What the line knows about one device besides ProgramInput, for the programmer's use.
struct ProgramContext {
  std::string job_id;
  std::string member_id;        // the member that issued the certificate
  std::string cert_serial;      // lower-case hex
  std::vector<uint8_t> record;  // the signed ProvisioningRecord message
};

class Programmer {
 public:
  virtual ~Programmer() = default;

  // Programs one chip. Safe to call from several threads at once for distinct uids. The error
  // names the uid and the cause.
  virtual absl::Status Program(const std::string& uid, const ProgramInput& input,
                               const ProgramContext& context) = 0;

  // "virtual" or "exec", for logs and the summary.
  virtual std::string Name() const = 0;
};

// Runs `/bin/sh -c COMMAND` per device (line/outside_command.h: minimal environment, own process
// group, killed with it after `timeout_seconds`) in a fresh directory WORK/<uid>.<n>/ (never one
// that exists: a directory kept from a failure is not reused) holding the device's provisioning
// bundle (line/bundle.h: device.crt, chain.pem, record.msg and, when present, device-key.cms,
// device-key.pem, firmware.bin, config.bin), so the command can run e.g. `clade device program
// --tray "$CLADE_TRAY" --uid "$CLADE_UID" --from "$CLADE_DATA_DIR"`. Variables: CLADE_UID,
// CLADE_JOB, CLADE_MEMBER, CLADE_CERT_SERIAL, CLADE_DATA_DIR (that directory, absolute) and, when
// `tray_dir` is given, CLADE_TRAY (absolute); working directory: that directory; stdout and
// stderr both go to programmer.log there. Exit status 0 = programmed; anything else is kAborted
// "programmer failed for chip U: exit status N: <last non-empty line of the log>" (or "killed by
// signal S (SIGxxx)"); a command running too long is kDeadlineExceeded "programmer command timed
// out after Ns for chip U". The directory is removed after success and kept after a failure (for
// the operator to look at); device-key.pem (a plain key, 0600) is removed after the command in
// every case. WORK is made (0700) if missing. A uid that is no chip uid (CheckChipUid) is refused
// before anything is written. Program is safe from many threads at once.
absl::StatusOr<std::unique_ptr<Programmer>> MakeExecProgrammer(const std::string& command,
                                                               const std::string& work_dir,
                                                               int timeout_seconds = 120,
                                                               const std::string& tray_dir = "");

}  // namespace clade::line
