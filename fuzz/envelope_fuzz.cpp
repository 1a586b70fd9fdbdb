// Untrusted input: any message file or RPC payload.
#include <cstdint>
#include <span>

#include "wire/envelope.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)clade::wire::OpenAnyMessage(std::span<const uint8_t>(data, size));
  return 0;
}
