// One owning pointer type for every OpenSSL object we hold: SslPtr<T>. Move-only by construction
// (std::unique_ptr), so a handle is freed exactly once.
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

namespace clade::crypto {

template <typename T>
struct SslDeleter;

#define CLADE_SSL_DELETER(T, F)           \
  template <>                             \
  struct SslDeleter<T> {                  \
    void operator()(T* p) const { F(p); } \
  }

CLADE_SSL_DELETER(EVP_PKEY, EVP_PKEY_free);
CLADE_SSL_DELETER(EVP_PKEY_CTX, EVP_PKEY_CTX_free);
CLADE_SSL_DELETER(EVP_MD_CTX, EVP_MD_CTX_free);
CLADE_SSL_DELETER(EVP_CIPHER_CTX, EVP_CIPHER_CTX_free);
CLADE_SSL_DELETER(EVP_KDF, EVP_KDF_free);
CLADE_SSL_DELETER(EVP_KDF_CTX, EVP_KDF_CTX_free);
CLADE_SSL_DELETER(BIO, BIO_free_all);
CLADE_SSL_DELETER(BIGNUM, BN_free);
CLADE_SSL_DELETER(X509, X509_free);
CLADE_SSL_DELETER(X509_NAME, X509_NAME_free);
CLADE_SSL_DELETER(X509_EXTENSION, X509_EXTENSION_free);
CLADE_SSL_DELETER(X509_STORE, X509_STORE_free);
CLADE_SSL_DELETER(X509_STORE_CTX, X509_STORE_CTX_free);
CLADE_SSL_DELETER(X509_REQ, X509_REQ_free);
CLADE_SSL_DELETER(PKCS8_PRIV_KEY_INFO, PKCS8_PRIV_KEY_INFO_free);
// ASN1_INTEGER, ASN1_OCTET_STRING and ASN1_TIME are all ASN1_STRING.
CLADE_SSL_DELETER(ASN1_STRING, ASN1_STRING_free);
CLADE_SSL_DELETER(ASN1_OBJECT, ASN1_OBJECT_free);
CLADE_SSL_DELETER(CMS_ContentInfo, CMS_ContentInfo_free);
CLADE_SSL_DELETER(OSSL_PARAM_BLD, OSSL_PARAM_BLD_free);
CLADE_SSL_DELETER(OSSL_PARAM, OSSL_PARAM_free);
CLADE_SSL_DELETER(BASIC_CONSTRAINTS, BASIC_CONSTRAINTS_free);
CLADE_SSL_DELETER(EXTENDED_KEY_USAGE, EXTENDED_KEY_USAGE_free);
CLADE_SSL_DELETER(CERTIFICATEPOLICIES, CERTIFICATEPOLICIES_free);
CLADE_SSL_DELETER(AUTHORITY_KEYID, AUTHORITY_KEYID_free);

#undef CLADE_SSL_DELETER

// STACK_OF(X509) owns its certificates.
struct X509StackDeleter {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackDeleter>;

template <typename T>
using SslPtr = std::unique_ptr<T, SslDeleter<T>>;

}  // namespace clade::crypto
