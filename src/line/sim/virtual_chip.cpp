#include "line/sim/virtual_chip.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <system_error>
#include <thread>

#include "base/clock.h"
#include "base/files.h"
#include "crypto/cms.h"
#include "crypto/digest.h"
#include "line/chip_source.h"

namespace clade::line {
namespace {

constexpr size_t kMaxChipJson = 64 * 1024;
constexpr size_t kMaxFlashImage = hsm::kMaxJobPackage;
absl::StatusOr<crypto::PrivateKey> ReadKey(const std::string& path) {
  ASSIGN_OR_RETURN(Bytes pem, ReadFileBytes(path, crypto::kMaxKeyEncoding));
  return crypto::PrivateKey::FromPem(crypto::SecretBytes::Adopt(pem));
}

absl::StatusOr<crypto::PrivateKey> KeyFromSecret(const crypto::SecretBytes& bytes) {
  if (bytes.RevealSecretAsString().starts_with("-----BEGIN")) {
    return crypto::PrivateKey::FromPem(bytes);
  }
  return crypto::PrivateKey::FromPkcs8Der(bytes);
}

absl::Status WriteKey(const std::string& path, const crypto::SecretBytes& pem) {
  auto b = pem.RevealSecret();
  return WriteFileAtomic(path, b.data(), b.size(), 0600);
}

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

}  // namespace

absl::StatusOr<JobDigests> JobDigestsFromPackage(std::span<const uint8_t> package,
                                                 const crypto::Certificate& oem_root) {
  return hsm::ReadJobImageDigests(package, oem_root);
}

absl::StatusOr<VirtualChip> VirtualChip::Manufacture(const std::string& dir, const std::string& uid,
                                                     const Clock& clock) {
  RETURN_IF_ERROR(CheckChipUid(uid));
  const int64_t now = clock.Now();
  if (PathExists(dir)) {
    return absl::AlreadyExistsError("refusing to overwrite chip directory " + dir);
  }
  RETURN_IF_ERROR(MakeDirs(dir, 0700));
  ASSIGN_OR_RETURN(crypto::PrivateKey device, crypto::PrivateKey::Generate(crypto::Curve::kP256));
  ASSIGN_OR_RETURN(crypto::PrivateKey transport,
                   crypto::PrivateKey::Generate(crypto::Curve::kP256));
  crypto::CertProfile p;
  p.subject = {{"CN", "Clade virtual chip " + uid + " transport"}};
  p.not_before = now - 60;
  p.not_after = crypto::kNoExpiry;
  p.key_usage = {"keyAgreement"};
  ASSIGN_OR_RETURN(crypto::Certificate tcert,
                   crypto::IssueCertificate(p, transport.Public(), nullptr, transport));
  RETURN_IF_ERROR(WriteKey(dir + "/device.key", device.ToPkcs8Pem()));
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/device.pub", device.Public().ToPem()));
  RETURN_IF_ERROR(WriteKey(dir + "/transport.key", transport.ToPkcs8Pem()));
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/transport.crt", tcert.Pem()));
  VirtualChip chip(dir, uid, now, false, 0);
  RETURN_IF_ERROR(chip.WriteState());
  return chip;
}

absl::StatusOr<VirtualChip> VirtualChip::Open(const std::string& dir) {
  ASSIGN_OR_RETURN(std::string text, ReadFileString(dir + "/chip.json", kMaxChipJson));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("uid") || !j["uid"].is_string() ||
      !j.contains("manufactured_at") || !j["manufactured_at"].is_number_integer() ||
      !j.contains("locked") || !j["locked"].is_boolean()) {
    return absl::DataLossError(dir + "/chip.json is not a chip description");
  }
  int64_t programmed_at = 0;
  if (j.contains("programmed_at") && j["programmed_at"].is_number_integer()) {
    programmed_at = j["programmed_at"].get<int64_t>();
  }
  std::string uid = j["uid"].get<std::string>();
  RETURN_IF_ERROR(CheckChipUid(uid));
  return VirtualChip(dir, uid, j["manufactured_at"].get<int64_t>(), j["locked"].get<bool>(),
                     programmed_at);
}

absl::Status VirtualChip::WriteState() const {
  nlohmann::json j = {{"uid", uid_}, {"manufactured_at", manufactured_at_}, {"locked", locked_}};
  if (programmed_at_ != 0) j["programmed_at"] = programmed_at_;
  return WriteFileAtomic(dir_ + "/chip.json", j.dump(2) + "\n");
}

absl::StatusOr<crypto::PublicKey> VirtualChip::DevicePublicKey() const {
  ASSIGN_OR_RETURN(std::string pem, ReadFileString(dir_ + "/device.pub", crypto::kMaxKeyEncoding));
  return crypto::PublicKey::FromPem(pem);
}

absl::StatusOr<crypto::Certificate> VirtualChip::TransportCertificate() const {
  ASSIGN_OR_RETURN(std::string pem, ReadFileString(dir_ + "/transport.crt", crypto::kMaxChainPem));
  return crypto::Certificate::FromPem(pem);
}

absl::Status VirtualChip::Program(const ProgramInput& in, const Clock& clock) {
  const int64_t now = clock.Now();
  if (locked_) {
    return absl::FailedPreconditionError("chip " + uid_ + " is locked; it was programmed at " +
                                         FormatTime(programmed_at_));
  }
  ASSIGN_OR_RETURN(crypto::Certificate cert, crypto::Certificate::FromDer(in.device_cert_der));
  if (in.chain.empty()) {
    return absl::InvalidArgumentError("no certificate chain for chip " + uid_);
  }
  // The key the chip will hold: made by the member (hsm mode) or made on the chip.
  std::optional<crypto::PrivateKey> new_key;
  if (!in.key_envelope.empty()) {
    ASSIGN_OR_RETURN(crypto::PrivateKey tkey, ReadKey(dir_ + "/transport.key"));
    ASSIGN_OR_RETURN(crypto::Certificate tcert, TransportCertificate());
    auto opened = crypto::CmsDecrypt(in.key_envelope, tkey, tcert);
    if (!opened.ok()) {
      return absl::PermissionDeniedError("chip " + uid_ +
                                         " cannot open the device key envelope with its "
                                         "transport key: " +
                                         Msg(opened.status()));
    }
    ASSIGN_OR_RETURN(new_key, KeyFromSecret(*opened));
  } else if (!in.plain_key.empty()) {
    ASSIGN_OR_RETURN(new_key, KeyFromSecret(in.plain_key));
  }
  std::optional<crypto::PrivateKey> own_key;
  if (!new_key) {
    ASSIGN_OR_RETURN(own_key, ReadKey(dir_ + "/device.key"));
  }
  const crypto::PublicKey& on_chip = new_key ? new_key->Public() : own_key->Public();
  if (!cert.SubjectKey().Equals(on_chip)) {
    return absl::PermissionDeniedError("certificate does not match the key on chip " + uid_);
  }
  const std::string flash = dir_ + "/flash";
  RETURN_IF_ERROR(MakeDirs(flash, 0700));
  RETURN_IF_ERROR(WriteFileAtomic(flash + "/device.crt", cert.Pem()));
  RETURN_IF_ERROR(WriteFileAtomic(flash + "/chain.pem", crypto::Certificate::ChainToPem(in.chain)));
  // An image the job does not have is absent from flash, not a stale one from before.
  for (const auto& [name, image] :
       {std::pair<const char*, const Bytes*>{"firmware.bin", &in.firmware},
        std::pair<const char*, const Bytes*>{"config.bin", &in.config}}) {
    std::string path = flash + "/" + name;
    if (!image->empty()) {
      RETURN_IF_ERROR(WriteFileAtomic(path, *image));
    } else if (PathExists(path)) {
      std::error_code ec;
      std::filesystem::remove(path, ec);
      if (ec) return absl::InternalError("cannot remove " + path + ": " + ec.message());
    }
  }
  if (new_key) {
    RETURN_IF_ERROR(WriteKey(dir_ + "/device.key", new_key->ToPkcs8Pem()));
    RETURN_IF_ERROR(WriteFileAtomic(dir_ + "/device.pub", new_key->Public().ToPem()));
  }
  locked_ = true;
  programmed_at_ = now;
  absl::Status s = WriteState();
  if (!s.ok()) {
    locked_ = false;
    programmed_at_ = 0;
  }
  return s;
}

std::vector<std::string> VirtualChip::Verify(const ChipVerifyOptions& o) const {
  std::vector<std::string> failures;
  if (!locked_) failures.push_back("chip " + uid_ + " is not locked (never programmed)");
  const std::string flash = dir_ + "/flash";
  if (!PathExists(flash + "/device.crt")) {
    failures.push_back("chip " + uid_ + " has no certificate in flash");
    return failures;
  }
  auto cert_pem = ReadFileString(flash + "/device.crt", crypto::kMaxChainPem);
  auto cert = cert_pem.ok() ? crypto::Certificate::FromPem(*cert_pem)
                            : absl::StatusOr<crypto::Certificate>(cert_pem.status());
  if (!cert.ok()) {
    failures.push_back("chip " + uid_ + ": flash/device.crt: " + Msg(cert.status()));
    return failures;
  }
  // Chain: chain.pem gives the intermediates only; the anchor is the OEM root we were given.
  if (o.oem_root == nullptr) {
    failures.push_back("chip " + uid_ + ": no OEM root to verify against");
  } else {
    std::vector<crypto::Certificate> intermediates;
    auto chain_pem = ReadFileString(flash + "/chain.pem", crypto::kMaxChainPem);
    if (chain_pem.ok()) {
      auto chain = crypto::Certificate::ChainFromPem(*chain_pem);
      if (chain.ok()) {
        for (auto& c : *chain) {
          if (c.Subject() != c.Issuer()) intermediates.push_back(std::move(c));
        }
      }
    }
    crypto::VerifyOptions vo(o.at_time);
    auto path = crypto::VerifyChain(*cert, intermediates, *o.oem_root, vo);
    if (!path.ok()) {
      failures.push_back("chip " + uid_ + ": certificate does not chain to the OEM root '" +
                         o.oem_root->Subject() + "': " + Msg(path.status()));
    }
  }
  auto key = ReadKey(dir_ + "/device.key");
  if (!key.ok()) {
    failures.push_back("chip " + uid_ + ": no usable key on the chip: " + Msg(key.status()));
  } else if (!key->Public().Equals(cert->SubjectKey())) {
    failures.push_back("chip " + uid_ + ": the key on the chip does not match its certificate");
  }
  if (o.job) {
    for (const auto& [name, want] :
         {std::pair<std::string, const Bytes*>{"firmware", &o.job->firmware_sha256},
          std::pair<std::string, const Bytes*>{"config", &o.job->config_sha256}}) {
      std::string path = flash + "/" + name + ".bin";
      bool present = PathExists(path);
      if (want->empty()) {
        if (present) {
          failures.push_back("chip " + uid_ + ": " + name + ".bin in flash, but job " +
                             o.job->job_id + " has no " + name);
        }
        continue;
      }
      if (!present) {
        failures.push_back("chip " + uid_ + ": no " + name + ".bin in flash");
        continue;
      }
      auto data = ReadFileBytes(path, kMaxFlashImage);
      if (!data.ok()) {
        failures.push_back("chip " + uid_ + ": " + Msg(data.status()));
        continue;
      }
      Bytes got = crypto::Sha256(*data);
      if (got != *want) {
        failures.push_back("chip " + uid_ + ": " + name + " digest " + crypto::Hex(got) +
                           " does not match job " + o.job->job_id + " (" + crypto::Hex(*want) +
                           ")");
      }
    }
  }
  return failures;
}

absl::StatusOr<Tray> Tray::Make(const std::string& dir, size_t count, const std::string& prefix,
                                const Clock& clock) {
  if (count == 0 || count > 1000000) {
    return absl::InvalidArgumentError("a tray holds 1 to 1000000 chips, not " +
                                      std::to_string(count));
  }
  if (PathExists(dir)) {
    ASSIGN_OR_RETURN(Tray existing, Open(dir));
    if (!existing.uids().empty()) {
      return absl::AlreadyExistsError("refusing to make a tray in " + dir + ": it holds " +
                                      std::to_string(existing.uids().size()) + " chips");
    }
  }
  RETURN_IF_ERROR(MakeDirs(dir));
  std::vector<std::string> uids(count);
  for (size_t i = 0; i < count; ++i) {
    char num[24];
    std::snprintf(num, sizeof num, "%06zu", i + 1);
    uids[i] = prefix + num;
  }
  // Manufacture is dominated by fsync, not key generation: a few workers overlap the waits.
  std::atomic<size_t> next{0};
  std::mutex mu;
  absl::Status first_error;
  auto work = [&] {
    for (size_t i = next++; i < count; i = next++) {
      absl::Status s = VirtualChip::Manufacture(dir + "/" + uids[i], uids[i], clock).status();
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok()) first_error = s;
        next = count;
        return;
      }
    }
  };
  size_t n_workers = std::min<size_t>(count, 8);
  std::vector<std::thread> workers;
  for (size_t w = 1; w < n_workers; ++w) workers.emplace_back(work);
  work();
  for (auto& t : workers) t.join();
  RETURN_IF_ERROR(first_error);
  return Tray(dir, std::move(uids));
}

absl::StatusOr<Tray> Tray::Open(const std::string& dir) {
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) return absl::NotFoundError("cannot open tray " + dir + ": " + ec.message());
  std::vector<std::string> uids;
  for (const auto& entry : it) {
    if (!entry.is_directory(ec)) continue;
    std::string name = entry.path().filename().string();
    if (PathExists(dir + "/" + name + "/chip.json")) uids.push_back(name);
  }
  std::sort(uids.begin(), uids.end());
  return Tray(dir, std::move(uids));
}

absl::StatusOr<VirtualChip> Tray::Chip(const std::string& uid) const {
  RETURN_IF_ERROR(CheckChipUid(uid));
  if (!PathExists(dir_ + "/" + uid + "/chip.json")) {
    return absl::NotFoundError("no chip " + uid + " in tray " + dir_);
  }
  ASSIGN_OR_RETURN(VirtualChip chip, VirtualChip::Open(dir_ + "/" + uid));
  if (chip.uid() != uid) {
    return absl::DataLossError("chip directory " + uid + " holds chip " + chip.uid());
  }
  return chip;
}

std::vector<ChipResult> Tray::Verify(const ChipVerifyOptions& options) const {
  std::vector<ChipResult> out;
  out.reserve(uids_.size());
  for (const std::string& uid : uids_) {
    ChipResult r{uid, {}};
    auto chip = Chip(uid);
    if (!chip.ok()) {
      r.failures.push_back("chip " + uid + ": " + Msg(chip.status()));
    } else {
      r.failures = chip->Verify(options);
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace clade::line
