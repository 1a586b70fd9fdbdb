#include "line/sim/tray_station.h"

#include "base/files.h"
#include "crypto/x509.h"
#include "line/sim/virtual_chip.h"

namespace clade::line {
namespace {

class TrayChips : public ChipSource {
 public:
  explicit TrayChips(Tray tray) : tray_(std::move(tray)) {}

  const std::vector<std::string>& Uids() const override { return tray_.uids(); }

  absl::StatusOr<std::string> RequestPem(const std::string& uid, bool hsm_mode) const override {
    auto chip = tray_.Chip(uid);
    if (!chip.ok()) return NameChip(uid, chip.status());
    if (hsm_mode) {
      auto cert = chip->TransportCertificate();
      if (!cert.ok()) return NameChip(uid, cert.status());
      return cert->Pem();
    }
    auto key = chip->DevicePublicKey();
    if (!key.ok()) return NameChip(uid, key.status());
    return key->ToPem();
  }

  absl::StatusOr<std::optional<std::string>> ProgrammedSerial(
      const std::string& uid) const override {
    auto chip = tray_.Chip(uid);
    if (!chip.ok()) return NameChip(uid, chip.status());
    if (!chip->locked()) return std::optional<std::string>();
    auto pem = ReadFileString(chip->dir() + "/flash/device.crt", crypto::kMaxChainPem);
    if (!pem.ok()) return NameChip(uid, pem.status());
    auto cert = crypto::Certificate::FromPem(*pem);
    if (!cert.ok()) {
      return NameChip(uid, absl::DataLossError("flash/device.crt of locked chip " + uid + ": " +
                                               std::string(cert.status().message())));
    }
    return std::optional<std::string>(cert->SerialHex());
  }

  std::string Where() const override { return "tray " + tray_.dir(); }

 private:
  const Tray tray_;
};

class VirtualProgrammer : public Programmer {
 public:
  explicit VirtualProgrammer(Tray tray) : tray_(std::move(tray)) {}

  absl::Status Program(const std::string& uid, const ProgramInput& input,
                       const ProgramContext& /*context*/) override {
    auto chip = tray_.Chip(uid);
    if (!chip.ok()) return NameChip(uid, chip.status());
    return NameChip(uid, chip->Program(input));
  }

  std::string Name() const override { return "virtual"; }

 private:
  const Tray tray_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ChipSource>> MakeTrayChipSource(const std::string& tray_dir) {
  ASSIGN_OR_RETURN(Tray tray, Tray::Open(tray_dir));
  return std::unique_ptr<ChipSource>(new TrayChips(std::move(tray)));
}

absl::StatusOr<std::unique_ptr<Programmer>> MakeVirtualProgrammer(const std::string& tray_dir) {
  ASSIGN_OR_RETURN(Tray tray, Tray::Open(tray_dir));
  return std::unique_ptr<Programmer>(new VirtualProgrammer(std::move(tray)));
}

}  // namespace clade::line
