// SHA-256 and hex, the fingerprints and digests Clade prints and compares.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace clade::crypto {

std::vector<uint8_t> Sha256(std::span<const uint8_t> data);
inline std::vector<uint8_t> Sha256(std::string_view s) {
  return Sha256({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}
std::string Hex(std::span<const uint8_t> data);
absl::StatusOr<std::vector<uint8_t>> FromHex(std::string_view hex);
// Constant-time comparison of two byte strings of the same length (false if lengths differ).
bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b);

}  // namespace clade::crypto
