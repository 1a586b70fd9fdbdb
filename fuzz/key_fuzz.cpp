// Untrusted input: public keys from devices, private keys from OEM files.
#include <cstdint>
#include <span>
#include <string_view>

#include "crypto/key.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)clade::crypto::PublicKey::FromDer(std::span<const uint8_t>(data, size));
  (void)clade::crypto::PublicKey::FromPem(
      std::string_view(reinterpret_cast<const char*>(data), size));
  (void)clade::crypto::PrivateKey::FromPkcs8Der(clade::crypto::SecretBytes(data, size));
  return 0;
}
