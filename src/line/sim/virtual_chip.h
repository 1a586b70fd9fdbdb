// Virtual chips for the factory line. A chip is a directory DIR/<uid>/ holding
//   chip.json       {uid, manufactured_at, locked, programmed_at}
//   device.key      the on-chip key pair made at manufacture (PKCS#8 PEM, mode 0600)
//   device.pub      its public key (SPKI PEM): what the chip exports for `device` key mode
//   transport.key   the transport key (PKCS#8 PEM, 0600) and transport.crt, a self-signed P-256
//   transport.crt   certificate (keyAgreement) the member wraps a device key to in `hsm` key mode
//   flash/          written by the programmer: device.crt, chain.pem, firmware.bin, config.bin
// Programming checks that the certificate is for the key on the chip (in `hsm` mode the chip
// first opens the key envelope with its transport key and keeps that key as its device.key), then
// sets the lock bit; a locked chip refuses a second programming. A tray is a directory of chips.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/key.h"
#include "crypto/secret.h"
#include "crypto/x509.h"
#include "hsm/job.h"
#include "line/bundle.h"

namespace clade::line {

// The digests a programmed chip must carry: those of a job package (empty = the job has none).
using JobDigests = hsm::JobImageDigests;
// Opens a job package message file, checks it is signed by `oem_root`, and returns its digests
// (hsm::ReadJobImageDigests).
absl::StatusOr<JobDigests> JobDigestsFromPackage(std::span<const uint8_t> package,
                                                 const crypto::Certificate& oem_root);

struct ChipVerifyOptions {
  const crypto::Certificate* oem_root = nullptr;  // required: the anchor, never chain.pem's root
  std::optional<JobDigests> job;                  // if set, firmware and config must match
  int64_t at_time;                                // unix seconds, from the caller's clock
  explicit ChipVerifyOptions(int64_t at) : at_time(at) {}
};

class VirtualChip {
 public:
  // Makes DIR (refusing an existing one) with a new device key pair and transport key.
  static absl::StatusOr<VirtualChip> Manufacture(const std::string& dir, const std::string& uid,
                                                 const Clock& clock = SystemClock());
  static absl::StatusOr<VirtualChip> Open(const std::string& dir);

  const std::string& uid() const { return uid_; }
  const std::string& dir() const { return dir_; }
  bool locked() const { return locked_; }
  int64_t manufactured_at() const { return manufactured_at_; }
  int64_t programmed_at() const { return programmed_at_; }

  absl::StatusOr<crypto::PublicKey> DevicePublicKey() const;  // device.pub
  absl::StatusOr<crypto::Certificate> TransportCertificate() const;

  // Writes the flash and sets the lock bit. Refuses a locked chip ("chip U is locked; it was
  // programmed at T") and a certificate for another key ("certificate does not match the key on
  // chip U"); a refusal changes nothing on the chip.
  absl::Status Program(const ProgramInput& input, const Clock& clock = SystemClock());
  absl::Status Program(const hsm::ProvisioningData& data, const Clock& clock = SystemClock()) {
    return Program(ProgramInput::From(data), clock);
  }

  // Every check of a programmed chip; returns the failures (empty = good): lock bit set,
  // device.crt chains to the OEM root through chain.pem's CAs, the key on the chip matches the
  // certificate, firmware and config digests equal the job's.
  std::vector<std::string> Verify(const ChipVerifyOptions& options) const;

 private:
  VirtualChip(std::string dir, std::string uid, int64_t manufactured_at, bool locked,
              int64_t programmed_at)
      : dir_(std::move(dir)),
        uid_(std::move(uid)),
        manufactured_at_(manufactured_at),
        locked_(locked),
        programmed_at_(programmed_at) {}
  absl::Status WriteState() const;

  std::string dir_;
  std::string uid_;
  int64_t manufactured_at_ = 0;
  bool locked_ = false;
  int64_t programmed_at_ = 0;
};

struct ChipResult {
  std::string uid;
  std::vector<std::string> failures;
};

class Tray {
 public:
  // Makes DIR with `count` chips named <prefix>000001, <prefix>000002, … Refuses a DIR that
  // already holds chips.
  static absl::StatusOr<Tray> Make(const std::string& dir, size_t count,
                                   const std::string& prefix = "CHIP-",
                                   const Clock& clock = SystemClock());
  // Opens DIR: every sub-directory with a chip.json, in uid order.
  static absl::StatusOr<Tray> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const std::vector<std::string>& uids() const { return uids_; }
  absl::StatusOr<VirtualChip> Chip(const std::string& uid) const;

  // Verifies every chip, in uid order.
  std::vector<ChipResult> Verify(const ChipVerifyOptions& options) const;

 private:
  Tray(std::string dir, std::vector<std::string> uids)
      : dir_(std::move(dir)), uids_(std::move(uids)) {}
  std::string dir_;
  std::vector<std::string> uids_;
};

}  // namespace clade::line
