#include "hsm/pki.h"

#include <array>

#include "absl/strings/str_cat.h"

namespace clade::hsm {
namespace {

constexpr std::array<CertKind, 9> kAllKinds = {
    CertKind::kSupplierRoot, CertKind::kSupplierIssuing, CertKind::kHsmIdentity,
    CertKind::kHsmWrap,      CertKind::kGroupCa,         CertKind::kGroupEncryption,
    CertKind::kGroupSigning, CertKind::kMember,          CertKind::kClient};

// StrCat, not "'" + std::string: GCC 12 reports a false -Wrestrict on that operator+ (GCC bug
// 105329).
std::string Quoted(const crypto::Certificate& c) { return absl::StrCat("'", c.Subject(), "'"); }

// "an HSM identity certificate", "a group CA certificate".
std::string Described(CertKind kind) {
  std::string_view name = KindName(kind);
  return std::string(name.substr(0, 3) == "HSM" ? "an " : "a ") + std::string(name) +
         " certificate";
}

}  // namespace

std::string KindOid(CertKind kind) {
  return std::string(kCladeArc) + ".1." + std::to_string(static_cast<int>(kind));
}

std::string_view KindName(CertKind kind) {
  switch (kind) {
    case CertKind::kSupplierRoot:
      return "supplier root";
    case CertKind::kSupplierIssuing:
      return "supplier issuing CA";
    case CertKind::kHsmIdentity:
      return "HSM identity";
    case CertKind::kHsmWrap:
      return "HSM wrap";
    case CertKind::kGroupCa:
      return "group CA";
    case CertKind::kGroupEncryption:
      return "group encryption";
    case CertKind::kGroupSigning:
      return "group signing";
    case CertKind::kMember:
      return "member";
    case CertKind::kClient:
      return "client";
  }
  return "unknown";
}

absl::StatusOr<CertKind> KindOf(const crypto::Certificate& cert) {
  std::optional<CertKind> found;
  for (CertKind k : kAllKinds) {
    if (!cert.HasPolicy(KindOid(k))) continue;
    if (found) {
      return absl::InvalidArgumentError("certificate " + Quoted(cert) +
                                        " carries more than one Clade kind");
    }
    found = k;
  }
  if (!found) {
    return absl::InvalidArgumentError("certificate " + Quoted(cert) + " carries no Clade kind");
  }
  return *found;
}

absl::Status RequireKind(const crypto::Certificate& cert, CertKind kind) {
  auto got = KindOf(cert);
  if (!got.ok()) {
    return absl::PermissionDeniedError(std::string(got.status().message()) + ", expected " +
                                       Described(kind));
  }
  if (*got != kind) {
    return absl::PermissionDeniedError("certificate " + Quoted(cert) + " is " + Described(*got) +
                                       ", expected " + Described(kind));
  }
  return absl::OkStatus();
}

absl::Status CheckSerialSyntax(std::string_view serial) {
  if (serial.empty() || serial.size() > 64) {
    return absl::InvalidArgumentError("HSM serial must be 1 to 64 characters");
  }
  for (char c : serial) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError("HSM serial '" + std::string(serial) +
                                        "' may hold only letters, digits, '.', '_' and '-'");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> HsmSerialOf(const crypto::Certificate& cert) {
  auto serial = cert.SubjectAttribute("serialNumber");
  if (!serial) {
    return absl::PermissionDeniedError("certificate " + Quoted(cert) + " names no HSM serial");
  }
  RETURN_IF_ERROR(CheckSerialSyntax(*serial));
  return *serial;
}

absl::StatusOr<GenuineHsm> VerifyGenuineHsm(const crypto::Certificate& identity,
                                            const crypto::Certificate& issuing,
                                            const crypto::Certificate& supplier_root,
                                            int64_t at_time) {
  RETURN_IF_ERROR(RequireKind(supplier_root, CertKind::kSupplierRoot));
  RETURN_IF_ERROR(RequireKind(issuing, CertKind::kSupplierIssuing));
  RETURN_IF_ERROR(RequireKind(identity, CertKind::kHsmIdentity));
  crypto::VerifyOptions opts(at_time);
  auto path = crypto::VerifyChain(identity, {issuing}, supplier_root, opts);
  if (!path.ok()) {
    return absl::PermissionDeniedError(
        "HSM identity " + Quoted(identity) +
        " is not issued by the supplier root: " + std::string(path.status().message()));
  }
  // Position: exactly identity ← issuing ← root, nothing else in between.
  if (path->size() != 3 || !((*path)[1] == issuing)) {
    return absl::PermissionDeniedError("HSM identity " + Quoted(identity) +
                                       " is not directly under the supplier issuing CA");
  }
  ASSIGN_OR_RETURN(std::string serial, HsmSerialOf(identity));
  return GenuineHsm{serial, identity, issuing};
}

absl::Status VerifyHsmWrapCert(const crypto::Certificate& wrap, const GenuineHsm& hsm,
                               const crypto::Certificate& supplier_root, int64_t at_time) {
  RETURN_IF_ERROR(RequireKind(wrap, CertKind::kHsmWrap));
  crypto::VerifyOptions opts(at_time);
  opts.leaf_key_usage = {"keyAgreement"};
  auto path = crypto::VerifyChain(wrap, {hsm.issuing}, supplier_root, opts);
  if (!path.ok()) {
    return absl::PermissionDeniedError(
        "HSM wrap certificate " + Quoted(wrap) +
        " is not issued by the supplier root: " + std::string(path.status().message()));
  }
  ASSIGN_OR_RETURN(std::string serial, HsmSerialOf(wrap));
  if (serial != hsm.serial) {
    return absl::PermissionDeniedError("HSM wrap certificate is for HSM " + serial +
                                       ", not for HSM " + hsm.serial);
  }
  return absl::OkStatus();
}

}  // namespace clade::hsm
