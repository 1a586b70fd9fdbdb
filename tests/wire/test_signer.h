// A self-signed P-256 signer, enough for an envelope to seal and open (the wire tests check the
// envelope, not who may sign it).
#pragma once

#include <utility>

#include "crypto/key.h"
#include "crypto/x509.h"

namespace clade::wire::testing {

struct Signer {
  crypto::PrivateKey key;
  crypto::Certificate cert;
};

inline Signer MakeSigner() {
  auto key = crypto::PrivateKey::Generate(crypto::Curve::kP256).value();
  crypto::CertProfile p;
  p.subject = {{"CN", "signer"}};
  p.not_after = 4102444800;  // 2100-01-01
  auto cert = crypto::IssueCertificate(p, key.Public(), nullptr, key).value();
  return Signer{std::move(key), std::move(cert)};
}

}  // namespace clade::wire::testing
