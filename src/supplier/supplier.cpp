#include "supplier/supplier.h"

#include <algorithm>

#include "base/clock.h"
#include "base/files.h"
#include "crypto/pem_files.h"

namespace clade::supplier {
namespace {

constexpr int64_t kYear = 365 * 86400;

}  // namespace

absl::StatusOr<Supplier> Supplier::Init(const std::string& dir, const std::string& name) {
  if (name.empty() || name.size() > 64) {
    return absl::InvalidArgumentError("supplier name must be 1 to 64 characters");
  }
  for (const char* f : {"/root.crt", "/issuing.crt", "/root.key", "/issuing.key"}) {
    if (PathExists(dir + f)) {
      return absl::AlreadyExistsError(dir + f +
                                      " already exists; refusing to overwrite a supplier");
    }
  }
  RETURN_IF_ERROR(MakeDirs(dir, 0700));
  int64_t now = NowUnix();
  ASSIGN_OR_RETURN(auto root_key, crypto::PrivateKey::Generate(crypto::Curve::kP384));
  ASSIGN_OR_RETURN(auto issuing_key, crypto::PrivateKey::Generate(crypto::Curve::kP384));

  crypto::CertProfile root_profile;
  root_profile.subject = {{"CN", name + " Root CA"}, {"O", name}};
  root_profile.not_after = now + kRootYears * kYear;
  root_profile.is_ca = true;
  root_profile.key_usage = {"keyCertSign", "cRLSign"};
  root_profile.policies = {hsm::KindOid(hsm::CertKind::kSupplierRoot)};
  ASSIGN_OR_RETURN(auto root,
                   crypto::IssueCertificate(root_profile, root_key.Public(), nullptr, root_key));

  // Below the issuing CA stand at most two more CAs: an HSM identity and a group CA
  // (docs/design.md, "PKI").
  crypto::CertProfile issuing_profile;
  issuing_profile.subject = {{"CN", name + " HSM Issuing CA"}, {"O", name}};
  issuing_profile.not_after = now + kIssuingYears * kYear;
  issuing_profile.is_ca = true;
  issuing_profile.path_len = 2;
  issuing_profile.key_usage = {"keyCertSign", "cRLSign"};
  issuing_profile.policies = {hsm::KindOid(hsm::CertKind::kSupplierIssuing)};
  ASSIGN_OR_RETURN(auto issuing, crypto::IssueCertificate(issuing_profile, issuing_key.Public(),
                                                          &root, root_key));

  RETURN_IF_ERROR(crypto::WritePrivateKeyFile(dir + "/root.key", root_key));
  RETURN_IF_ERROR(crypto::WritePrivateKeyFile(dir + "/issuing.key", issuing_key));
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/root.crt", root.Pem(), 0644, true));
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/issuing.crt", issuing.Pem(), 0644, true));
  return Supplier(name, std::move(root), std::move(issuing), std::move(issuing_key));
}

absl::StatusOr<Supplier> Supplier::Load(const std::string& dir) {
  ASSIGN_OR_RETURN(auto root, crypto::ReadCertificateFile(dir + "/root.crt"));
  ASSIGN_OR_RETURN(auto issuing, crypto::ReadCertificateFile(dir + "/issuing.crt"));
  ASSIGN_OR_RETURN(auto issuing_key, crypto::ReadPrivateKeyFile(dir + "/issuing.key"));
  RETURN_IF_ERROR(hsm::RequireKind(root, hsm::CertKind::kSupplierRoot));
  RETURN_IF_ERROR(hsm::RequireKind(issuing, hsm::CertKind::kSupplierIssuing));
  if (!issuing_key.Public().Equals(issuing.SubjectKey())) {
    return absl::InvalidArgumentError(dir + "/issuing.key does not match " + dir + "/issuing.crt");
  }
  auto path = crypto::VerifyChain(issuing, {}, root);
  if (!path.ok()) return Annotate(path.status(), dir + "/issuing.crt");
  std::string name = root.SubjectAttribute("O").value_or("supplier");
  return Supplier(std::move(name), std::move(root), std::move(issuing), std::move(issuing_key));
}

absl::StatusOr<hsm::IdentityCertificates> Supplier::CertifyHsm(
    const hsm::IdentityRequest& request) const {
  RETURN_IF_ERROR(hsm::CheckSerialSyntax(request.serial));
  int64_t not_after = std::min(NowUnix() + kHsmYears * kYear, issuing_.NotAfter());

  crypto::CertProfile id;
  id.subject = {
      {"CN", "Clade HSM " + request.serial}, {"O", name_}, {"serialNumber", request.serial}};
  id.not_after = not_after;
  id.is_ca = true;
  id.path_len = 1;  // it signs the group CA of a group it founds, which signs members
  id.key_usage = {"digitalSignature", "keyCertSign", "cRLSign"};
  id.policies = {hsm::KindOid(hsm::CertKind::kHsmIdentity)};
  ASSIGN_OR_RETURN(auto identity,
                   crypto::IssueCertificate(id, request.identity_key, &issuing_, issuing_key_));

  crypto::CertProfile wrap;
  wrap.subject = {{"CN", "Clade HSM " + request.serial + " wrap"},
                  {"O", name_},
                  {"serialNumber", request.serial}};
  wrap.not_after = not_after;
  wrap.key_usage = {"keyAgreement"};
  wrap.policies = {hsm::KindOid(hsm::CertKind::kHsmWrap)};
  ASSIGN_OR_RETURN(auto wrap_cert,
                   crypto::IssueCertificate(wrap, request.wrap_key, &issuing_, issuing_key_));
  return hsm::IdentityCertificates{std::move(identity), std::move(wrap_cert), issuing_, root_};
}

}  // namespace clade::supplier
