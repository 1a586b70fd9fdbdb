// AES-256-GCM sealing with associated data. Sealed format: 12-byte random nonce || ciphertext ||
// 16-byte tag. Opening fails (without saying which) if the key, the associated data, or any byte
// is wrong — that is how a sealed value moved to another row is refused.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"
#include "crypto/secret.h"

namespace clade::crypto {

inline constexpr size_t kAeadKeySize = 32;
inline constexpr size_t kAeadNonceSize = 12;
inline constexpr size_t kAeadTagSize = 16;

absl::StatusOr<std::vector<uint8_t>> SealAesGcm(const SecretBytes& key,
                                                std::span<const uint8_t> associated_data,
                                                std::span<const uint8_t> plaintext);
// PermissionDenied "sealed value does not open (wrong key, wrong associated data, or altered)".
absl::StatusOr<SecretBytes> OpenAesGcm(const SecretBytes& key,
                                       std::span<const uint8_t> associated_data,
                                       std::span<const uint8_t> sealed);

}  // namespace clade::crypto
