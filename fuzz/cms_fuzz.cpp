// Untrusted input: CMS envelopes from OEMs and peers, opened with a fixed recipient key.
#include <cstdint>
#include <optional>
#include <span>

#include "crypto/cms.h"

namespace {
struct Recipient {
  clade::crypto::PrivateKey key;
  clade::crypto::Certificate cert;
};
Recipient& Fixed() {
  static Recipient* r = [] {
    auto key = clade::crypto::PrivateKey::Generate(clade::crypto::Curve::kP256).value();
    clade::crypto::CertProfile p;
    p.subject = {{"CN", "fuzz recipient"}};
    p.not_after = 4102444800;
    p.key_usage = {"keyAgreement"};
    auto cert = clade::crypto::IssueCertificate(p, key.Public(), nullptr, key).value();
    return new Recipient{std::move(key), std::move(cert)};
  }();
  return *r;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)clade::crypto::CmsDecrypt(std::span<const uint8_t>(data, size), Fixed().key, Fixed().cert);
  return 0;
}
