#include "crypto/signature.h"

#include <string>

#include "crypto/error.h"

namespace clade::crypto {
namespace {

const EVP_MD* DigestFor(Curve c) { return c == Curve::kP256 ? EVP_sha256() : EVP_sha384(); }

}  // namespace

absl::StatusOr<std::vector<uint8_t>> Sign(const PrivateKey& key, std::span<const uint8_t> data) {
  SslPtr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, DigestFor(key.curve()), nullptr, key.evp()) != 1) {
    return OpenSslError("cannot start signing");
  }
  size_t len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &len, data.data(), data.size()) != 1) {
    return OpenSslError("signing failed");
  }
  std::vector<uint8_t> sig(len);
  if (EVP_DigestSign(ctx.get(), sig.data(), &len, data.data(), data.size()) != 1) {
    return OpenSslError("signing failed");
  }
  sig.resize(len);
  return sig;
}

absl::Status Verify(const PublicKey& key, std::span<const uint8_t> data,
                    std::span<const uint8_t> signature) {
  SslPtr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  if (!ctx ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, DigestFor(key.curve()), nullptr, key.evp()) != 1) {
    return OpenSslError("cannot start verifying");
  }
  int rc =
      EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), data.data(), data.size());
  ClearOpenSslErrors();
  if (rc != 1) return absl::PermissionDeniedError("signature does not verify");
  return absl::OkStatus();
}

absl::StatusOr<Signer> Signer::Create(const PrivateKey& key) {
  SslPtr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, DigestFor(key.curve()), nullptr, key.evp()) != 1) {
    return OpenSslError("cannot start signing");
  }
  return Signer(std::move(ctx));
}

absl::StatusOr<std::vector<uint8_t>> Signer::Sign(std::span<const uint8_t> data) const {
  SslPtr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_MD_CTX_copy_ex(ctx.get(), ctx_.get()) != 1) {
    return OpenSslError("cannot copy the signing context");
  }
  if (EVP_DigestSignUpdate(ctx.get(), data.data(), data.size()) != 1) {
    return OpenSslError("signing failed");
  }
  size_t len = 0;
  if (EVP_DigestSignFinal(ctx.get(), nullptr, &len) != 1) return OpenSslError("signing failed");
  std::vector<uint8_t> sig(len);
  if (EVP_DigestSignFinal(ctx.get(), sig.data(), &len) != 1) return OpenSslError("signing failed");
  sig.resize(len);
  return sig;
}

std::vector<uint8_t> PreAuthEncoding(std::string_view type, std::span<const uint8_t> payload) {
  std::string head = "DSSEv1 " + std::to_string(type.size()) + " " + std::string(type) + " " +
                     std::to_string(payload.size()) + " ";
  std::vector<uint8_t> out(head.begin(), head.end());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

absl::StatusOr<std::vector<uint8_t>> SignDsse(const PrivateKey& key, std::string_view type,
                                              std::span<const uint8_t> payload) {
  return Sign(key, PreAuthEncoding(type, payload));
}

absl::Status VerifyDsse(const PublicKey& key, std::string_view type,
                        std::span<const uint8_t> payload, std::span<const uint8_t> signature) {
  return Verify(key, PreAuthEncoding(type, payload), signature);
}

}  // namespace clade::crypto
