// Programmers: how the line reads what a chip offers (its public key, or its transport certificate)
// and writes to a chip what a member issued for it. The virtual programmer works on a tray of
// virtual chips (virtual_chip.h); the exec programmer runs an outside command per device, which is
// how a real programmer is attached. Both take the chips' uids and request material from the tray.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "line/virtual_chip.h"

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

  // The chips, in uid order.
  virtual const std::vector<std::string>& Uids() const = 0;

  // What the member needs for chip `uid`: the chip's public key (SPKI PEM) when `hsm_mode` is
  // false, its transport certificate (PEM) when true.
  virtual absl::StatusOr<std::string> RequestPem(const std::string& uid, bool hsm_mode) const = 0;

  // For resuming after the line itself stopped: the serial (lower-case hex) of the certificate a
  // chip already carries when it is programmed and locked; nullopt when it is not programmed, or
  // when this programmer cannot tell (exec).
  virtual absl::StatusOr<std::optional<std::string>> ProgrammedSerial(
      const std::string& uid) const = 0;

  // Programs one chip. Safe to call from several threads at once for distinct uids. The error
  // names the uid and the cause.
  virtual absl::Status Program(const std::string& uid, const ProgramInput& input,
                               const ProgramContext& context) = 0;

  // "virtual" or "exec", for logs and the summary.
  virtual std::string Name() const = 0;
};

// The tray's own chips: programming is VirtualChip::Program.
absl::StatusOr<std::unique_ptr<Programmer>> MakeVirtualProgrammer(const std::string& tray_dir);

// Runs `/bin/sh -c COMMAND` per device in a fresh directory WORK/<uid>.<n>/ (never one that
// exists: a directory kept from a failure is not reused) holding the files `clade provision --out`
// writes (device.crt, chain.pem, and when present device-key.cms, device-key.pem, firmware.bin,
// config.bin) plus record.msg, so the command can run `clade device program --tray "$CLADE_TRAY"
// --uid "$CLADE_UID" --from "$CLADE_DATA_DIR"`. Environment: a minimal one, not the parent's (which
// may hold CLADE_KEK_PASSPHRASE): PATH (the parent's, else /usr/local/bin:/usr/bin:/bin), HOME,
// LANG, LC_ALL and TMPDIR when the parent has them, and CLADE_UID, CLADE_JOB, CLADE_MEMBER,
// CLADE_CERT_SERIAL, CLADE_DATA_DIR (that directory, absolute) and CLADE_TRAY (the tray,
// absolute); working directory: that directory; stdin /dev/null; stdout and
// stderr both go to programmer.log there; own process group. Exit status 0 = programmed; anything
// else is kAborted "programmer failed for chip U: exit status N: <last non-empty line of the
// log>" (or "killed by signal S (SIGxxx)"). A command running longer than `timeout_seconds` is
// killed with its whole process group: kDeadlineExceeded "programmer command timed out after Ns
// for chip U". The directory is removed after success and kept after a failure (for the operator
// to look at); device-key.pem (a plain key, 0600) is removed after the command in every case.
// WORK is made (0700) if missing. Request material and uids come from the tray; ProgrammedSerial
// is always nullopt. Program is safe from many threads at once (posix_spawn, no shared state but
// an atomic counter).
absl::StatusOr<std::unique_ptr<Programmer>> MakeExecProgrammer(const std::string& tray_dir,
                                                               const std::string& command,
                                                               const std::string& work_dir,
                                                               int timeout_seconds = 120);

}  // namespace clade::line
