// CMS (RFC 5652) envelopes for one recipient certificate with an EC key (ECDH key agreement,
// RFC 5753): what an OEM makes with `openssl cms -encrypt -recip`, and what Clade makes for it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"
#include "crypto/key.h"
#include "crypto/secret.h"
#include "crypto/x509.h"

namespace clade::crypto {

inline constexpr size_t kMaxCmsSize = 64 * 1024 * 1024;

enum class CmsContentCipher {
  kAes256Gcm,  // AuthEnvelopedData (RFC 5083), AES-256-GCM — Clade's default
  kAes256Cbc,  // EnvelopedData, AES-256-CBC — for tools without AuthEnvelopedData
};

// Encrypts for `recipient` (its public key must be EC; key agreement uses ECDH with the X9.63
// KDF over SHA-256 and AES-256 key wrap). Returns DER.
absl::StatusOr<std::vector<uint8_t>> CmsEncrypt(
    std::span<const uint8_t> plaintext, const Certificate& recipient,
    CmsContentCipher cipher = CmsContentCipher::kAes256Gcm);

// Decrypts EnvelopedData or AuthEnvelopedData (DER, or PEM "-----BEGIN CMS-----") addressed to
// `recipient` with `key`. Named refusals: "not a CMS message", "CMS message is not for this
// recipient", "CMS content does not decrypt", input over kMaxCmsSize.
absl::StatusOr<SecretBytes> CmsDecrypt(std::span<const uint8_t> message, const PrivateKey& key,
                                       const Certificate& recipient);

}  // namespace clade::crypto
