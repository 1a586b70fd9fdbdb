// Key derivation: HKDF-SHA-256 (RFC 5869) for keys from keys, scrypt (RFC 7914) for keys from
// passphrases and unlock codes; and HMAC-SHA-256 (RFC 2104), HKDF's own PRF, for keys that
// authenticate many messages.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "base/status.h"
#include "crypto/secret.h"
#include "crypto/ssl_ptr.h"

namespace clade::crypto {

absl::StatusOr<SecretBytes> HkdfSha256(const SecretBytes& ikm, std::span<const uint8_t> salt,
                                       std::string_view info, size_t length);

struct ScryptParams {
  uint64_t n = 1 << 15;  // CPU/memory cost
  uint32_t r = 8;
  uint32_t p = 1;
};
absl::StatusOr<SecretBytes> Scrypt(const SecretBytes& passphrase, std::span<const uint8_t> salt,
                                   const ScryptParams& params, size_t length);

// HMAC-SHA-256 under one key, set up once and copied per message, which avoids OpenSSL 3's
// per-call fetch (the state store MACs every row it writes or reads). Move-only: it owns the
// OpenSSL context that holds the key.
class HmacSha256 {
 public:
  static constexpr size_t kSize = 32;
  using Tag = std::array<uint8_t, kSize>;

  // The key must be at least 32 bytes (RFC 2104 §3: shorter keys weaken the MAC).
  static absl::StatusOr<HmacSha256> Create(const SecretBytes& key);
  absl::StatusOr<Tag> Mac(std::span<const uint8_t> message) const;

 private:
  explicit HmacSha256(SslPtr<EVP_MD_CTX> ctx) : ctx_(std::move(ctx)) {}
  SslPtr<EVP_MD_CTX> ctx_;
};

}  // namespace clade::crypto
