// ECDSA signatures (SHA-256 on P-256, SHA-384 on P-384; DER-encoded (r,s)) and the DSSE-style
// pre-authentication encoding that binds every Clade signature to its message type.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "crypto/key.h"

namespace clade::crypto {

inline std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

absl::StatusOr<std::vector<uint8_t>> Sign(const PrivateKey& key, std::span<const uint8_t> data);
// OK only if `signature` is a valid signature of `data` by `key`; else
// PermissionDenied "signature does not verify".
absl::Status Verify(const PublicKey& key, std::span<const uint8_t> data,
                    std::span<const uint8_t> signature);

// A signer for the hot path: the digest-sign context is initialised once and copied per
// signature, which avoids OpenSSL 3's per-call provider fetch (docs/design.md, "The hot path").
class Signer {
 public:
  static absl::StatusOr<Signer> Create(const PrivateKey& key);
  absl::StatusOr<std::vector<uint8_t>> Sign(std::span<const uint8_t> data) const;

 private:
  explicit Signer(SslPtr<EVP_MD_CTX> ctx) : ctx_(std::move(ctx)) {}
  SslPtr<EVP_MD_CTX> ctx_;
};

// DSSE v1 pre-authentication encoding:
//   "DSSEv1" SP len(type) SP type SP len(payload) SP payload   (lengths in ASCII decimal)
std::vector<uint8_t> PreAuthEncoding(std::string_view type, std::span<const uint8_t> payload);
absl::StatusOr<std::vector<uint8_t>> SignDsse(const PrivateKey& key, std::string_view type,
                                              std::span<const uint8_t> payload);
absl::Status VerifyDsse(const PublicKey& key, std::string_view type,
                        std::span<const uint8_t> payload, std::span<const uint8_t> signature);

}  // namespace clade::crypto
