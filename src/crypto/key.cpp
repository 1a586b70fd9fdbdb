#include "crypto/key.h"

#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "crypto/digest.h"
#include "crypto/error.h"

namespace clade::crypto {
namespace {

const char* GroupName(Curve c) { return c == Curve::kP256 ? "P-256" : "P-384"; }

absl::StatusOr<Curve> CurveOf(EVP_PKEY* pkey) {
  if (pkey == nullptr || !EVP_PKEY_is_a(pkey, "EC")) {
    return absl::InvalidArgumentError("key is not an elliptic-curve key");
  }
  char name[64] = {0};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &len) !=
      1) {
    return OpenSslError("cannot read the key's curve", absl::StatusCode::kInvalidArgument);
  }
  std::string_view n(name, len);
  if (n == "prime256v1" || n == "P-256") return Curve::kP256;
  if (n == "secp384r1" || n == "P-384") return Curve::kP384;
  return absl::InvalidArgumentError("unsupported curve " + std::string(n) +
                                    " (need P-256 or P-384)");
}

// A public-only EVP_PKEY with the same point: the raw-point path is far cheaper in OpenSSL 3 than
// a DER round trip (docs/design.md, "The hot path").
absl::StatusOr<SslPtr<EVP_PKEY>> PublicOnly(EVP_PKEY* pkey, Curve curve) {
  uint8_t point[133];
  size_t point_len = 0;
  if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point,
                                      &point_len) != 1) {
    return OpenSslError("cannot read the public point");
  }
  SslPtr<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, GroupName(curve), 0) !=
          1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point, point_len) != 1) {
    return OpenSslError("cannot build key parameters");
  }
  SslPtr<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(bld.get()));
  SslPtr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* out = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &out, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return OpenSslError("cannot import the public point");
  }
  return SslPtr<EVP_PKEY>(out);
}

absl::StatusOr<std::vector<uint8_t>> SpkiDer(EVP_PKEY* pkey) {
  unsigned char* buf = nullptr;
  int len = i2d_PUBKEY(pkey, &buf);
  if (len <= 0) return OpenSslError("cannot encode the public key");
  std::vector<uint8_t> der(buf, buf + len);
  OPENSSL_free(buf);
  return der;
}

}  // namespace

std::string CurveName(Curve c) { return GroupName(c); }

absl::StatusOr<PublicKey> PublicKey::FromEvp(EVP_PKEY* pkey) {
  ASSIGN_OR_RETURN(Curve curve, CurveOf(pkey));
  ASSIGN_OR_RETURN(SslPtr<EVP_PKEY> pub, PublicOnly(pkey, curve));
  ASSIGN_OR_RETURN(std::vector<uint8_t> der, SpkiDer(pub.get()));
  auto impl = std::make_shared<Impl>(Impl{std::move(pub), std::move(der), curve});
  return PublicKey(std::move(impl));
}

absl::StatusOr<PublicKey> PublicKey::FromDer(std::span<const uint8_t> spki) {
  if (spki.size() > kMaxKeyEncoding) {
    return absl::InvalidArgumentError("public key encoding is larger than the limit");
  }
  const unsigned char* p = spki.data();
  SslPtr<EVP_PKEY> pkey(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
  if (!pkey) return OpenSslError("malformed public key", absl::StatusCode::kInvalidArgument);
  if (p != spki.data() + spki.size()) {
    return absl::InvalidArgumentError("malformed public key: trailing bytes");
  }
  ASSIGN_OR_RETURN(Curve curve, CurveOf(pkey.get()));
  auto impl = std::make_shared<Impl>(
      Impl{std::move(pkey), std::vector<uint8_t>(spki.begin(), spki.end()), curve});
  return PublicKey(std::move(impl));
}

absl::StatusOr<PublicKey> PublicKey::FromPem(std::string_view pem) {
  if (pem.size() > kMaxKeyEncoding) {
    return absl::InvalidArgumentError("public key PEM is larger than the limit");
  }
  SslPtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  SslPtr<EVP_PKEY> pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!pkey) {
    return OpenSslError("not a PEM public key", absl::StatusCode::kInvalidArgument);
  }
  return FromEvp(pkey.get());
}

std::vector<uint8_t> PublicKey::ToDer() const { return impl_->der; }

std::string PublicKey::ToPem() const {
  SslPtr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), impl_->pkey.get());
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string PublicKey::Fingerprint() const { return Hex(Sha256(impl_->der)); }

bool PublicKey::Equals(const PublicKey& other) const { return impl_->der == other.impl_->der; }

absl::StatusOr<PrivateKey> PrivateKey::Generate(Curve curve) {
  SslPtr<EVP_PKEY> pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", GroupName(curve)));
  if (!pkey) return OpenSslError("key generation failed");
  ASSIGN_OR_RETURN(PublicKey pub, PublicKey::FromEvp(pkey.get()));
  return PrivateKey(std::move(pkey), std::move(pub));
}

absl::StatusOr<PrivateKey> PrivateKey::FromPkcs8Der(const SecretBytes& der) {
  if (der.size() > kMaxKeyEncoding) {
    return absl::InvalidArgumentError("private key encoding is larger than the limit");
  }
  auto bytes = der.RevealSecret();
  const unsigned char* p = bytes.data();
  SslPtr<PKCS8_PRIV_KEY_INFO> info(
      d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, static_cast<long>(bytes.size())));
  if (!info)
    return OpenSslError("malformed PKCS#8 private key", absl::StatusCode::kInvalidArgument);
  SslPtr<EVP_PKEY> pkey(EVP_PKCS82PKEY(info.get()));
  if (!pkey)
    return OpenSslError("malformed PKCS#8 private key", absl::StatusCode::kInvalidArgument);
  ASSIGN_OR_RETURN(PublicKey pub, PublicKey::FromEvp(pkey.get()));
  return PrivateKey(std::move(pkey), std::move(pub));
}

absl::StatusOr<PrivateKey> PrivateKey::FromPem(const SecretBytes& pem) {
  if (pem.size() > kMaxKeyEncoding) {
    return absl::InvalidArgumentError("private key PEM is larger than the limit");
  }
  auto bytes = pem.RevealSecret();
  SslPtr<BIO> bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
  // A null passphrase callback with an encrypted key fails instead of prompting on a terminal.
  SslPtr<EVP_PKEY> pkey(PEM_read_bio_PrivateKey(
      bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
  if (!pkey) {
    return OpenSslError("not an unencrypted PEM private key", absl::StatusCode::kInvalidArgument);
  }
  ASSIGN_OR_RETURN(PublicKey pub, PublicKey::FromEvp(pkey.get()));
  return PrivateKey(std::move(pkey), std::move(pub));
}

namespace {
SecretBytes DrainSecretBio(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return SecretBytes(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(len));
}
}  // namespace

SecretBytes PrivateKey::ToPkcs8Der() const {
  // A secure-memory BIO is wiped when freed.
  SslPtr<BIO> bio(BIO_new(BIO_s_secmem()));
  if (i2d_PKCS8PrivateKey_bio(bio.get(), pkey_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    std::abort();  // encoding a key we hold cannot fail unless memory is exhausted
  }
  return DrainSecretBio(bio.get());
}

SecretBytes PrivateKey::ToPkcs8Pem() const {
  SslPtr<BIO> bio(BIO_new(BIO_s_secmem()));
  if (PEM_write_bio_PKCS8PrivateKey(bio.get(), pkey_.get(), nullptr, nullptr, 0, nullptr,
                                    nullptr) != 1) {
    std::abort();
  }
  return DrainSecretBio(bio.get());
}

}  // namespace clade::crypto
