// The OEM (docs/oem-guide.md): a root CA and a device-issuing CA (both P-256) in a directory O —
//   O/root.crt  O/issuing.crt  (PEM)    O/root.key  O/issuing.key  (PKCS#8 PEM, mode 0600)
// — and job packages for a group. The OEM's own HSM is out of scope: the keys are files here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/key.h"
#include "crypto/x509.h"

namespace clade::oem {

struct PackageOptions {
  std::string job_id;
  std::string group_export_dir;  // as written by `clade group export`
  // Required: the HSM supplier's root the OEM trusts, obtained apart from the group export (whose
  // supplier-root.crt is only a copy, believed when it equals this one). Package refuses without.
  std::optional<crypto::Certificate> pinned_supplier_root;
  std::string profile_json;
  std::vector<uint8_t> firmware;
  std::vector<uint8_t> config;
  int64_t expires_at = 0;  // 0 = none
  // An envelope the OEM made itself (`openssl cms -encrypt -recip group-enc.crt`), DER or PEM;
  // when set, Clade never sees the device-issuing CA key.
  std::optional<std::vector<uint8_t>> wrapped_ca_key;
};

struct PackageSummary {
  std::vector<uint8_t> package;  // the signed message
  std::string group_id;
  std::string supplier_root_fingerprint;
};

class Oem {
 public:
  // Creates O with a new root CA and device-issuing CA. Refuses if any of the files exists.
  static absl::StatusOr<Oem> Init(const std::string& dir, const std::string& name,
                                  const Clock& clock = SystemClock());
  // Loads O. The issuing key is optional (absent when the OEM wraps it with openssl itself).
  static absl::StatusOr<Oem> Load(const std::string& dir);

  const crypto::Certificate& root() const { return root_; }
  const crypto::Certificate& issuing() const { return issuing_; }

  // Verifies the group export up to the pinned supplier root, checks the profile, wraps the
  // device-issuing CA key for the group encryption certificate (unless an envelope is given) and
  // signs the package with the OEM root key. Refusals (PermissionDenied, nothing written): "no
  // supplier root pinned …", "the group export's supplier root (SHA-256 F) is not the supplier
  // root you pinned (SHA-256 P) …", "the group in DIR is not genuine: …" (its chain does not
  // verify to the pinned root).
  absl::StatusOr<PackageSummary> Package(const PackageOptions& options,
                                         const Clock& clock = SystemClock()) const;

  Oem(Oem&&) noexcept = default;
  Oem& operator=(Oem&&) noexcept = default;

 private:
  Oem(std::string dir, crypto::Certificate root, crypto::Certificate issuing)
      : dir_(std::move(dir)), root_(std::move(root)), issuing_(std::move(issuing)) {}
  std::string dir_;
  crypto::Certificate root_;
  crypto::Certificate issuing_;
};

}  // namespace clade::oem
