// The few DER encodings Clade writes by hand (X.690): definite lengths and UTF8String values for
// certificate extensions. Everything larger is OpenSSL's, or CertTemplate's.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace clade::crypto {

// UTF8String (tag 12) with a definite length; for values up to 65535 bytes.
std::vector<uint8_t> DerUtf8String(std::string_view value);
// The value of a DER UTF8String that fills `der` exactly; refuses anything else.
absl::StatusOr<std::string> ParseDerUtf8String(const std::vector<uint8_t>& der);

}  // namespace clade::crypto
