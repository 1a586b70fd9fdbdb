// Elliptic-curve keys. PublicKey is a cheap, copyable value (a shared, immutable EVP_PKEY);
// PrivateKey is move-only and exports its PKCS#8 only as SecretBytes. Both are made by static
// factories that check what they are given: wrong curve, wrong type or garbage is an error.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "crypto/secret.h"
#include "crypto/ssl_ptr.h"

namespace clade::crypto {

enum class Curve { kP256, kP384 };
std::string CurveName(Curve c);  // "P-256", "P-384"

// Upper bound for any key encoding we parse.
inline constexpr size_t kMaxKeyEncoding = 16 * 1024;

class PublicKey {
 public:
  // SubjectPublicKeyInfo, DER or PEM ("-----BEGIN PUBLIC KEY-----"). Only P-256/P-384 EC keys.
  static absl::StatusOr<PublicKey> FromDer(std::span<const uint8_t> spki);
  static absl::StatusOr<PublicKey> FromPem(std::string_view pem);
  // Takes a reference on `pkey` (which must be an EC public or private key).
  static absl::StatusOr<PublicKey> FromEvp(EVP_PKEY* pkey);

  std::vector<uint8_t> ToDer() const;  // SubjectPublicKeyInfo
  std::string ToPem() const;
  // SHA-256 of the SubjectPublicKeyInfo DER, hex: what Clade prints as a key fingerprint.
  std::string Fingerprint() const;
  Curve curve() const { return impl_->curve; }
  bool Equals(const PublicKey& other) const;

  // For src/crypto internals only.
  EVP_PKEY* evp() const { return impl_->pkey.get(); }

 private:
  struct Impl {
    SslPtr<EVP_PKEY> pkey;  // public part only
    std::vector<uint8_t> der;
    Curve curve;
  };
  explicit PublicKey(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

class PrivateKey {
 public:
  static absl::StatusOr<PrivateKey> Generate(Curve curve);
  // PKCS#8 PrivateKeyInfo DER (unencrypted).
  static absl::StatusOr<PrivateKey> FromPkcs8Der(const SecretBytes& der);
  // "-----BEGIN PRIVATE KEY-----" (PKCS#8) or "-----BEGIN EC PRIVATE KEY-----" PEM.
  static absl::StatusOr<PrivateKey> FromPem(const SecretBytes& pem);

  PrivateKey(PrivateKey&&) noexcept = default;
  PrivateKey& operator=(PrivateKey&&) noexcept = default;
  PrivateKey(const PrivateKey&) = delete;
  PrivateKey& operator=(const PrivateKey&) = delete;

  SecretBytes ToPkcs8Der() const;
  SecretBytes ToPkcs8Pem() const;
  const PublicKey& Public() const { return public_; }
  Curve curve() const { return public_.curve(); }

  // For src/crypto internals only.
  EVP_PKEY* evp() const { return pkey_.get(); }

 private:
  PrivateKey(SslPtr<EVP_PKEY> pkey, PublicKey pub)
      : pkey_(std::move(pkey)), public_(std::move(pub)) {}
  SslPtr<EVP_PKEY> pkey_;
  PublicKey public_;
};

}  // namespace clade::crypto
