#include "crypto/kdf.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>

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

}  // namespace clade::crypto
