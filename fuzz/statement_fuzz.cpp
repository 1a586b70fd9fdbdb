// Untrusted input: a group statement (revocation) from a message file, a PushStatement call or the
// `clade-statement-bin` metadata of any online call. The form checks run before any certificate
// is looked at, so an empty group CA chain still takes every input through the whole decoder.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "crypto/key.h"
#include "crypto/x509.h"
#include "hsm/group_statement.h"

namespace {

// A stand-in trust anchor, made once: the input is refused at the chain check at the latest.
const clade::crypto::Certificate& Root() {
  static const clade::crypto::Certificate* root = [] {
    auto key = clade::crypto::PrivateKey::Generate(clade::crypto::Curve::kP256);
    if (!key.ok()) std::abort();
    clade::crypto::CertProfile p;
    p.subject = {{"CN", "fuzz root"}};
    p.not_after = 4102444800;  // 2100-01-01
    p.is_ca = true;
    p.key_usage = {"keyCertSign"};
    auto cert = clade::crypto::IssueCertificate(p, key->Public(), nullptr, *key);
    if (!cert.ok()) std::abort();
    return new clade::crypto::Certificate(*std::move(cert));
  }();
  return *root;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const clade::FixedClock kClock(1800000000);
  (void)clade::hsm::VerifyStatement(std::span<const uint8_t>(data, size), {}, Root(), kClock);
  return 0;
}
