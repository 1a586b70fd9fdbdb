// Key derivation: HKDF-SHA-256 (RFC 5869) for keys from keys, scrypt (RFC 7914) for keys from
// passphrases and unlock codes.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "base/status.h"
#include "crypto/secret.h"

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

}  // namespace clade::crypto
