// The HSM supplier (docs/design.md, "Actors", "PKI"): an offline root CA (P-384) and an HSM issuing
// CA (P-384) that certifies each HSM it makes. Files in the supplier directory D:
//   D/root.crt  D/issuing.crt   (PEM certificates)
//   D/root.key  D/issuing.key   (PKCS#8 PEM, mode 0600)
#pragma once

#include <memory>
#include <string>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/key.h"
#include "crypto/x509.h"
#include "hsm/hsm.h"

namespace clade::supplier {

// Validity of what the supplier issues (years). Documented in docs/pki.md.
inline constexpr int kRootYears = 30;
inline constexpr int kIssuingYears = 25;
inline constexpr int kHsmYears = 20;

class Supplier {
 public:
  // Creates D (0700 if missing) with a new root and issuing CA. Refuses if D/root.crt or any key
  // file already exists. `name` goes into the O attribute of every certificate.
  static absl::StatusOr<Supplier> Init(const std::string& dir, const std::string& name,
                                       const Clock& clock = SystemClock());
  // Loads D; the issuing key must be private (0600) and match D/issuing.crt.
  static absl::StatusOr<Supplier> Load(const std::string& dir);

  const crypto::Certificate& root() const { return root_; }
  const crypto::Certificate& issuing() const { return issuing_; }

  // Certifies a new HSM: identity cert (CA, pathlen 1, kind HSM identity) and wrap cert
  // (keyAgreement, kind HSM wrap), both naming the serial.
  absl::StatusOr<hsm::IdentityCertificates> CertifyHsm(const hsm::IdentityRequest& request,
                                                       const Clock& clock = SystemClock()) const;

  Supplier(Supplier&&) noexcept = default;
  Supplier& operator=(Supplier&&) noexcept = default;

 private:
  Supplier(std::string name, crypto::Certificate root, crypto::Certificate issuing,
           crypto::PrivateKey issuing_key)
      : name_(std::move(name)),
        root_(std::move(root)),
        issuing_(std::move(issuing)),
        issuing_key_(std::move(issuing_key)) {}
  std::string name_;
  crypto::Certificate root_;
  crypto::Certificate issuing_;
  crypto::PrivateKey issuing_key_;
};

}  // namespace clade::supplier
