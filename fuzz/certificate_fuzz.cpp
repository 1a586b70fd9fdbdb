// Untrusted input: certificates and chains from peers, OEMs and files.
#include <cstdint>
#include <span>
#include <string_view>

#include "crypto/x509.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto cert = clade::crypto::Certificate::FromDer(std::span<const uint8_t>(data, size));
  if (cert.ok()) {
    (void)cert->Subject();
    (void)cert->IsCa();
    (void)cert->PathLen();
    (void)cert->SubjectAttribute("serialNumber");
    (void)cert->HasPolicy("2.25.1");
  }
  (void)clade::crypto::Certificate::ChainFromPem(
      std::string_view(reinterpret_cast<const char*>(data), size));
  (void)clade::crypto::VerifiedCsrKey(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
