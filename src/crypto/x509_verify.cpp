#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "base/clock.h"
#include "crypto/digest.h"
#include "crypto/error.h"
#include "crypto/random.h"
#include "crypto/x509.h"
#include "crypto/x509_internal.h"

namespace clade::crypto {

namespace {

constexpr size_t kMaxCsr = 64 * 1024;

// The named reason for a failed X509_verify_cert.
std::string VerifyFailure(X509_STORE_CTX* ctx, const Certificate& leaf, const Certificate& anchor) {
  int err = X509_STORE_CTX_get_error(ctx);
  X509* cert = X509_STORE_CTX_get_current_cert(ctx);
  if (cert == nullptr) cert = leaf.x509();
  std::string what = "certificate '" + x509_internal::NameToString(X509_get_subject_name(cert)) +
                     "' (depth " + std::to_string(X509_STORE_CTX_get_error_depth(ctx)) + ") ";
  switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return what + "has expired (not after " +
             FormatTime(x509_internal::TimeToUnix(X509_get0_notAfter(cert))) + ")";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return what + "is not yet valid (not before " +
             FormatTime(x509_internal::TimeToUnix(X509_get0_notBefore(cert))) + ")";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      return what + "is not issued by the trust anchor '" + anchor.Subject() + "'";
    case X509_V_ERR_INVALID_CA:
      // OpenSSL also says "invalid CA" for a CA whose keyUsage lacks keyCertSign.
      if ((X509_get_extension_flags(cert) & EXFLAG_CA) != 0 &&
          (X509_get_extension_flags(cert) & EXFLAG_KUSAGE) != 0 &&
          (X509_get_key_usage(cert) & KU_KEY_CERT_SIGN) == 0) {
        return what + "key usage does not allow certificate signing";
      }
      return what + "is not a CA";
    case X509_V_ERR_PATH_LENGTH_EXCEEDED:
      return what + "exceeds the path length constraint";
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return what + "signature does not verify";
    case X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
    case X509_V_ERR_PATHLEN_WITHOUT_KU_KEY_CERT_SIGN:
      return what + "key usage does not allow certificate signing";
    default:
      return what + X509_verify_cert_error_string(err);
  }
}

// The Certificate among the inputs that is `x`, or a fresh parse of it.
absl::StatusOr<Certificate> FindInput(X509* x, const Certificate& leaf,
                                      const std::vector<Certificate>& intermediates,
                                      const Certificate& anchor) {
  if (x == leaf.x509()) return leaf;
  if (x == anchor.x509()) return anchor;
  for (const Certificate& c : intermediates) {
    if (x == c.x509()) return c;
  }
  return Certificate::FromDer(x509_internal::DerOf(x));
}

}  // namespace

// --- Verifying -----------------------------------------------------------------------------------

absl::StatusOr<std::vector<Certificate>> VerifyChain(const Certificate& leaf,
                                                     const std::vector<Certificate>& intermediates,
                                                     const Certificate& anchor,
                                                     const VerifyOptions& options) {
  if (intermediates.size() + 2 > kMaxChainLength) {
    return absl::InvalidArgumentError("too many intermediate certificates");
  }
  uint32_t want_usage = 0;
  for (const std::string& name : options.leaf_key_usage) {
    const x509_internal::KeyUsageName* ku = x509_internal::FindKeyUsage(name);
    if (ku == nullptr) return absl::InvalidArgumentError("unknown key usage '" + name + "'");
    want_usage |= ku->flag;
  }
  if (X509_self_signed(anchor.x509(), 0) != 1) {
    ClearOpenSslErrors();
    return absl::InvalidArgumentError("trust anchor '" + anchor.Subject() +
                                      "' is not a self-signed certificate");
  }
  SslPtr<X509_STORE> store(X509_STORE_new());
  X509StackPtr untrusted(sk_X509_new_null());
  SslPtr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !ctx || X509_STORE_add_cert(store.get(), anchor.x509()) != 1) {
    return OpenSslError("cannot set up chain verification");
  }
  for (const Certificate& c : intermediates) {
    if (X509_add_cert(untrusted.get(), c.x509(), X509_ADD_FLAG_UP_REF) != 1) {
      return OpenSslError("cannot set up chain verification");
    }
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf.x509(), untrusted.get()) != 1) {
    return OpenSslError("cannot set up chain verification");
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
  X509_VERIFY_PARAM_set_depth(param, static_cast<int>(kMaxChainLength));
  X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(options.at_time));

  int rc = X509_verify_cert(ctx.get());
  if (rc != 1) {
    if (X509_STORE_CTX_get_error(ctx.get()) == X509_V_OK) {
      return OpenSslError("chain verification failed");
    }
    ClearOpenSslErrors();
    return absl::PermissionDeniedError(VerifyFailure(ctx.get(), leaf, anchor));
  }
  X509StackPtr path(X509_STORE_CTX_get1_chain(ctx.get()));
  if (!path) return OpenSslError("cannot read the verified chain");
  std::vector<Certificate> out;
  for (int i = 0; i < sk_X509_num(path.get()); ++i) {
    ASSIGN_OR_RETURN(Certificate c,
                     FindInput(sk_X509_value(path.get(), i), leaf, intermediates, anchor));
    out.push_back(std::move(c));
  }
  if (want_usage != 0) {
    X509* x = out.front().x509();
    bool has = (X509_get_extension_flags(x) & EXFLAG_KUSAGE) != 0;
    for (const std::string& name : options.leaf_key_usage) {
      if (!has || (X509_get_key_usage(x) & x509_internal::FindKeyUsage(name)->flag) == 0) {
        return absl::PermissionDeniedError("certificate '" + out.front().Subject() +
                                           "' key usage does not allow " + name);
      }
    }
  }
  return out;
}

// --- PKCS#10 -------------------------------------------------------------------------------------

absl::StatusOr<PublicKey> VerifiedCsrKey(std::string_view pem_or_der) {
  if (pem_or_der.size() > kMaxCsr) {
    return absl::InvalidArgumentError("CSR is larger than the " + std::to_string(kMaxCsr) +
                                      "-byte limit");
  }
  std::vector<uint8_t> der;
  if (pem_or_der.find("-----BEGIN") != std::string_view::npos) {
    SslPtr<BIO> bio(BIO_new_mem_buf(pem_or_der.data(), static_cast<int>(pem_or_der.size())));
    if (!bio) return OpenSslError("cannot read PEM");
    x509_internal::PemBlock block;
    ASSIGN_OR_RETURN(bool found, x509_internal::NextPemBlock(bio.get(), block));
    if (!found) return absl::InvalidArgumentError("no PEM block in CSR");
    if (std::strcmp(block.name, "CERTIFICATE REQUEST") != 0 &&
        std::strcmp(block.name, "NEW CERTIFICATE REQUEST") != 0) {
      return absl::InvalidArgumentError("unexpected PEM block '" + std::string(block.name) +
                                        "' (expected CERTIFICATE REQUEST)");
    }
    der.assign(block.data, block.data + block.len);
  } else {
    der.assign(pem_or_der.begin(), pem_or_der.end());
  }
  const unsigned char* p = der.data();
  SslPtr<X509_REQ> req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
  if (!req) return OpenSslError("malformed CSR", absl::StatusCode::kInvalidArgument);
  if (p != der.data() + der.size()) {
    return absl::InvalidArgumentError("malformed CSR: trailing bytes after the DER");
  }
  EVP_PKEY* pkey = X509_REQ_get0_pubkey(req.get());
  if (pkey == nullptr) {
    return OpenSslError("malformed CSR: unreadable key", absl::StatusCode::kInvalidArgument);
  }
  if (X509_REQ_verify(req.get(), pkey) != 1) {
    ClearOpenSslErrors();
    return absl::PermissionDeniedError("CSR self-signature does not verify");
  }
  absl::StatusOr<PublicKey> key = PublicKey::FromEvp(pkey);
  if (!key.ok()) return Annotate(key.status(), "unsupported CSR key");
  return key;
}

}  // namespace clade::crypto
