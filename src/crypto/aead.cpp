#include "crypto/aead.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "absl/strings/str_cat.h"
#include "crypto/error.h"
#include "crypto/random.h"
#include "crypto/ssl_ptr.h"

namespace clade::crypto {

absl::StatusOr<std::vector<uint8_t>> SealAesGcm(const SecretBytes& key,
                                                std::span<const uint8_t> associated_data,
                                                std::span<const uint8_t> plaintext) {
  if (key.size() != kAeadKeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("AES-256-GCM key must be 32 bytes, not ", key.size()));
  }
  std::vector<uint8_t> out = RandomBytes(kAeadNonceSize);
  out.resize(kAeadNonceSize + plaintext.size() + kAeadTagSize);
  SslPtr<EVP_CIPHER_CTX> ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx ||
      EVP_EncryptInit_ex2(ctx.get(), EVP_aes_256_gcm(), key.RevealSecret().data(), out.data(),
                          nullptr) != 1 ||
      (!associated_data.empty() &&
       EVP_EncryptUpdate(ctx.get(), nullptr, &len, associated_data.data(),
                         static_cast<int>(associated_data.size())) != 1) ||
      EVP_EncryptUpdate(ctx.get(), out.data() + kAeadNonceSize, &len, plaintext.data(),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + kAeadNonceSize + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, kAeadTagSize,
                          out.data() + kAeadNonceSize + plaintext.size()) != 1) {
    return OpenSslError("AES-256-GCM sealing failed");
  }
  return out;
}

absl::StatusOr<SecretBytes> OpenAesGcm(const SecretBytes& key,
                                       std::span<const uint8_t> associated_data,
                                       std::span<const uint8_t> sealed) {
  if (key.size() != kAeadKeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("AES-256-GCM key must be 32 bytes, not ", key.size()));
  }
  if (sealed.size() < kAeadNonceSize + kAeadTagSize) {
    return absl::InvalidArgumentError("sealed value is truncated");
  }
  size_t ct_len = sealed.size() - kAeadNonceSize - kAeadTagSize;
  SecretBytes plain(ct_len);
  SslPtr<EVP_CIPHER_CTX> ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  uint8_t tag[kAeadTagSize];
  std::copy(sealed.end() - kAeadTagSize, sealed.end(), tag);
  if (!ctx ||
      EVP_DecryptInit_ex2(ctx.get(), EVP_aes_256_gcm(), key.RevealSecret().data(), sealed.data(),
                          nullptr) != 1 ||
      (!associated_data.empty() &&
       EVP_DecryptUpdate(ctx.get(), nullptr, &len, associated_data.data(),
                         static_cast<int>(associated_data.size())) != 1) ||
      EVP_DecryptUpdate(ctx.get(), plain.RevealSecretMutable().data(), &len,
                        sealed.data() + kAeadNonceSize, static_cast<int>(ct_len)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, kAeadTagSize, tag) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), plain.RevealSecretMutable().data() + len, &len) != 1) {
    ClearOpenSslErrors();
    return absl::PermissionDeniedError(
        "sealed value does not open (wrong key, wrong associated data, or altered)");
  }
  return plain;
}

}  // namespace clade::crypto
