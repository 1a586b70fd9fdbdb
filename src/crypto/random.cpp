#include "crypto/random.h"

#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>

namespace clade::crypto {
namespace {

void Fill(uint8_t* p, size_t n) {
  if (n == 0) return;
  if (RAND_bytes(p, static_cast<int>(n)) != 1) {
    // No randomness means no safe key, nonce or serial: stop rather than go on predictably.
    std::fputs("clade: fatal: the random generator failed\n", stderr);
    std::abort();
  }
}

}  // namespace

std::vector<uint8_t> RandomBytes(size_t n) {
  std::vector<uint8_t> out(n);
  Fill(out.data(), n);
  return out;
}

SecretBytes RandomSecret(size_t n) {
  SecretBytes s(n);
  Fill(s.RevealSecretMutable().data(), n);
  return s;
}

}  // namespace clade::crypto
