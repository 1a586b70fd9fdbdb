#include "crypto/kdf.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>

#include <string>

#include "crypto/error.h"
#include "crypto/ssl_ptr.h"

namespace clade::crypto {

absl::StatusOr<SecretBytes> HkdfSha256(const SecretBytes& ikm, std::span<const uint8_t> salt,
                                       std::string_view info, size_t length) {
  SslPtr<EVP_KDF> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  SslPtr<EVP_KDF_CTX> ctx(kdf ? EVP_KDF_CTX_new(kdf.get()) : nullptr);
  if (!ctx) return OpenSslError("HKDF unavailable");
  char digest[] = "SHA256";
  auto ikm_bytes = ikm.RevealSecret();
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm_bytes.data()),
                                        ikm_bytes.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()),
                                        salt.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()),
                                        info.size()),
      OSSL_PARAM_construct_end()};
  SecretBytes out(length);
  if (EVP_KDF_derive(ctx.get(), out.RevealSecretMutable().data(), length, params) != 1) {
    return OpenSslError("HKDF failed");
  }
  return out;
}

absl::StatusOr<SecretBytes> Scrypt(const SecretBytes& passphrase, std::span<const uint8_t> salt,
                                   const ScryptParams& p, size_t length) {
  SslPtr<EVP_KDF> kdf(EVP_KDF_fetch(nullptr, "SCRYPT", nullptr));
  SslPtr<EVP_KDF_CTX> ctx(kdf ? EVP_KDF_CTX_new(kdf.get()) : nullptr);
  if (!ctx) return OpenSslError("scrypt unavailable");
  auto pass = passphrase.RevealSecret();
  uint64_t n = p.n;
  uint32_t r = p.r;
  uint32_t par = p.p;
  // Room for N*r*128 bytes plus scrypt's own overhead.
  uint64_t maxmem = 128ULL * r * (n + par + 2) + (1u << 20);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, const_cast<uint8_t*>(pass.data()),
                                        pass.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()),
                                        salt.size()),
      OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
      OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
      OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &par),
      OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
      OSSL_PARAM_construct_end()};
  SecretBytes out(length);
  if (EVP_KDF_derive(ctx.get(), out.RevealSecretMutable().data(), length, params) != 1) {
    return OpenSslError("scrypt failed");
  }
  return out;
}

absl::StatusOr<HmacSha256> HmacSha256::Create(const SecretBytes& key) {
  if (key.size() < kSize) {
    return absl::InvalidArgumentError("an HMAC-SHA-256 key must be at least 32 bytes, not " +
                                      std::to_string(key.size()));
  }
  auto bytes = key.RevealSecret();
  SslPtr<EVP_PKEY> pkey(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_HMAC, nullptr, bytes.data(), bytes.size()));
  SslPtr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  // The context takes its own reference to the key, so `pkey` may go.
  if (!pkey || !ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey.get()) != 1) {
    return OpenSslError("cannot set up HMAC-SHA-256");
  }
  return HmacSha256(std::move(ctx));
}

absl::StatusOr<HmacSha256::Tag> HmacSha256::Mac(std::span<const uint8_t> message) const {
  SslPtr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_MD_CTX_copy_ex(ctx.get(), ctx_.get()) != 1) {
    return OpenSslError("cannot copy the HMAC context");
  }
  Tag tag{};
  size_t len = tag.size();
  if (EVP_DigestSignUpdate(ctx.get(), message.data(), message.size()) != 1 ||
      EVP_DigestSignFinal(ctx.get(), tag.data(), &len) != 1 || len != tag.size()) {
    return OpenSslError("HMAC-SHA-256 failed");
  }
  return tag;
}

}  // namespace clade::crypto
