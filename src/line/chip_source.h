// Where the line's chips come from: each chip's uid, in the order the line takes them, and what
// a member needs to provision it — the chip's public key (SPKI PEM, `device` key mode) or its
// transport certificate (PEM, `hsm` key mode). A real line reads them from a chip reader or from a
// manifest a tester wrote; the tray of virtual chips (sim/tray_station.h) is one more source.
//
// The chip manifest (docs/operations.md, "The programmer contract"): UTF-8 text, one JSON object
// per line, each line ending in a newline, blank lines allowed:
//   {"uid": "CHIP-000001", "public_key": "-----BEGIN PUBLIC KEY-----\n…", "serial": "…"}
// Fields: uid (required; letters, digits, '.', '_', '-', 1..128, not starting with '.'), and at
// least one of public_key (SPKI PEM) and transport_cert (X.509 PEM); serial (optional) is the
// lower-case hex serial of the certificate the chip already carries, for resuming. Any other
// field, a field given twice, a uid given twice, a PEM that does not parse, a line over 16 KiB
// or a manifest over 64 MiB is refused with an error naming the line and the field.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace clade::line {

inline constexpr size_t kMaxChipManifest = size_t{64} * 1024 * 1024;
inline constexpr size_t kMaxChipManifestLine = size_t{16} * 1024;

class ChipSource {
 public:
  virtual ~ChipSource() = default;

  // The chips, in the order the line takes them (a tray: uid order; a manifest: its order).
  virtual const std::vector<std::string>& Uids() const = 0;

  // What the member needs for chip `uid`: the chip's public key (SPKI PEM) when `hsm_mode` is
  // false, its transport certificate (PEM) when true. The error names the uid.
  virtual absl::StatusOr<std::string> RequestPem(const std::string& uid, bool hsm_mode) const = 0;

  // For resuming after the line itself stopped: the serial (lower-case hex) of the certificate
  // the chip already carries; nullopt when it carries none, or when the source cannot tell.
  virtual absl::StatusOr<std::optional<std::string>> ProgrammedSerial(
      const std::string& uid) const = 0;

  // "tray DIR", "manifest FILE", "chip reader COMMAND": for messages ("no chips in tray DIR").
  virtual std::string Where() const = 0;
};

// The rule for a chip uid (it becomes a path component of work directories): letters, digits,
// '.', '_', '-', 1..128 characters, not starting with '.'.
absl::Status CheckChipUid(const std::string& uid);

// Puts "chip UID: " before an error that does not name the uid already.
absl::Status NameChip(const std::string& uid, const absl::Status& s);

// Parses a chip manifest (above); `name` is how errors call it ("manifest chips.jsonl").
absl::StatusOr<std::unique_ptr<ChipSource>> ParseChipManifest(std::string_view text,
                                                              const std::string& name);

// Reads and parses the manifest file at `path` (a symbolic link is refused, never followed).
absl::StatusOr<std::unique_ptr<ChipSource>> ReadChipManifest(const std::string& path);

// Runs a chip reader, `/bin/sh -c COMMAND`, once (line/outside_command.h: its minimal environment
// and process group), in a fresh directory WORK/chips.XXXXXX, and parses what it prints on
// stdout as a chip manifest. Its stderr goes to reader.log there. Exit 0 and a good manifest =
// the chips; anything else is kAborted "chip reader failed: exit status N: <last line of
// reader.log>", or kDeadlineExceeded "chip reader timed out after Ns", with the directory kept
// for a person to look at; after success it is removed.
absl::StatusOr<std::unique_ptr<ChipSource>> RunChipReader(const std::string& command,
                                                          const std::string& work_dir,
                                                          int timeout_seconds = 120);

}  // namespace clade::line
