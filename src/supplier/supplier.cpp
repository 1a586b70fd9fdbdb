#include "supplier/supplier.h"

#include <algorithm>

#include "base/clock.h"
#include "base/files.h"
#include "crypto/offline_ca.h"
#include "crypto/pem_files.h"

namespace clade::supplier {
namespace {

constexpr int64_t kYear = 365 * 86400;

}  // namespace

absl::StatusOr<Supplier> Supplier::Init(const std::string& dir, const std::string& name,
                                        const Clock& clock) {
  // Below the issuing CA stand at most two more CAs: an HSM identity and a group CA
  // (docs/design.md, "PKI").
  crypto::OfflineCaSpec spec{
      .owner = name,
      .noun = "supplier",
      .role = "a supplier",
      .curve = crypto::Curve::kP384,
      .root = {.common_name = "Root CA",
               .lifetime_seconds = kRootYears * kYear,
               .key_usage = {"keyCertSign", "cRLSign"},
               .policies = {hsm::KindOid(hsm::CertKind::kSupplierRoot)},
               .path_len = -1},
      .issuing = {.common_name = "HSM Issuing CA",
                  .lifetime_seconds = kIssuingYears * kYear,
                  .key_usage = {"keyCertSign", "cRLSign"},
                  .policies = {hsm::KindOid(hsm::CertKind::kSupplierIssuing)},
                  .path_len = 2}};
  ASSIGN_OR_RETURN(auto ca, crypto::CreateOfflineCa(dir, spec, clock.Now()));
  ASSIGN_OR_RETURN(auto issuing_key, crypto::LoadIssuingKey(dir, ca));
  return Supplier(name, std::move(ca.root), std::move(ca.issuing), std::move(issuing_key));
}

absl::StatusOr<Supplier> Supplier::Load(const std::string& dir) {
  ASSIGN_OR_RETURN(auto ca, crypto::LoadOfflineCa(dir));
  RETURN_IF_ERROR(hsm::RequireKind(ca.root, hsm::CertKind::kSupplierRoot));
  RETURN_IF_ERROR(hsm::RequireKind(ca.issuing, hsm::CertKind::kSupplierIssuing));
  ASSIGN_OR_RETURN(auto issuing_key, crypto::LoadIssuingKey(dir, ca));
  std::string name = ca.root.SubjectAttribute("O").value_or("supplier");
  return Supplier(std::move(name), std::move(ca.root), std::move(ca.issuing),
                  std::move(issuing_key));
}

absl::StatusOr<hsm::IdentityCertificates> Supplier::CertifyHsm(const hsm::IdentityRequest& request,
                                                               const Clock& clock) const {
  RETURN_IF_ERROR(hsm::CheckSerialSyntax(request.serial));
  int64_t not_after = std::min(clock.Now() + kHsmYears * kYear, issuing_.NotAfter());

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
