// Secure randomness from OpenSSL's DRBG. A failing DRBG is a broken invariant: the process aborts
// rather than hand out predictable bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "crypto/secret.h"

namespace clade::crypto {

std::vector<uint8_t> RandomBytes(size_t n);
SecretBytes RandomSecret(size_t n);

}  // namespace clade::crypto
