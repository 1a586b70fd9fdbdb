// Fast issuing of many certificates that differ only in serial, subject, validity and key — the
// per-device hot loop (docs/design.md, "The hot path"). OpenSSL 3.0's object path (X509_set_pubkey,
// X509_sign, a DER round trip) costs several times the signature itself; here what is fixed per job
// — issuer name, extensions, algorithm identifiers — is encoded once, each TBSCertificate is that
// template plus the device's own fields, and it is signed with a reused digest-sign context. The
// output is DER that OpenSSL's own parser accepts unchanged (tests/crypto/cert_template_test.cpp
// checks it against the object path, `openssl verify` and python-cryptography).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "crypto/key.h"
#include "crypto/signature.h"
#include "crypto/x509.h"

namespace clade::crypto {

class CertTemplate {
 public:
  // `fixed` supplies everything but subject, serial and validity: key usage, extended key usage,
  // policies, raw extensions, basic constraints. The issuer key must match `issuer`.
  static absl::StatusOr<CertTemplate> Create(const CertProfile& fixed, const Certificate& issuer,
                                             const PrivateKey& issuer_key);

  struct Issued {
    std::vector<uint8_t> der;
    std::string serial_hex;  // lower-case hex, as Certificate::SerialHex
  };
  // One certificate: a fresh 16-byte positive serial, the subject (short names or OIDs, UTF-8),
  // validity (kNoExpiry → 99991231235959Z), the subject key and its key identifier.
  absl::StatusOr<Issued> Issue(const std::vector<std::pair<std::string, std::string>>& subject,
                               int64_t not_before, int64_t not_after, const PublicKey& key) const;

 private:
  CertTemplate(Signer signer, std::vector<uint8_t> sig_alg, std::vector<uint8_t> issuer_name,
               std::vector<std::vector<uint8_t>> extensions, int ski_slot)
      : signer_(std::move(signer)),
        sig_alg_(std::move(sig_alg)),
        issuer_name_(std::move(issuer_name)),
        extensions_(std::move(extensions)),
        ski_slot_(ski_slot) {}

  Signer signer_;
  std::vector<uint8_t> sig_alg_;                  // AlgorithmIdentifier DER
  std::vector<uint8_t> issuer_name_;              // Name DER
  std::vector<std::vector<uint8_t>> extensions_;  // Extension DER, in order; SKI slot empty
  int ski_slot_;                                  // index of the per-certificate SKI
};

}  // namespace clade::crypto
