#include "hsm/client_cert.h"

#include "base/clock.h"
#include "crypto/der.h"
#include "hsm/group.h"
#include "hsm/group_statement.h"
#include "hsm/internal/group_records.h"
#include "hsm/internal/statements.h"

namespace clade::hsm {

std::string ClientRoleExtensionOid() { return std::string(kCladeArc) + ".2.2"; }
std::string ClientIssuerExtensionOid() { return std::string(kCladeArc) + ".2.3"; }

std::string_view RoleName(ClientRole role) {
  switch (role) {
    case ClientRole::kLine:
      return "line";
    case ClientRole::kOperator:
      return "operator";
  }
  return "unknown";
}

absl::StatusOr<ClientRole> ParseRole(std::string_view name) {
  for (ClientRole r : kClientRoles) {
    if (RoleName(r) == name) return r;
  }
  return absl::InvalidArgumentError("role '" + std::string(name) +
                                    "' is not one of: line, operator");
}

namespace {

absl::StatusOr<GroupSummary> FindOwnSummary(Hsm& hsm, const std::string& group_id) {
  ASSIGN_OR_RETURN(auto groups, ListGroups(hsm));
  for (auto& g : groups) {
    if (g.group_id == group_id) return g;
  }
  return absl::NotFoundError("this HSM is not a member of group '" + group_id + "'");
}
}  // namespace

absl::StatusOr<IssuedClient> IssueClientCert(Hsm& hsm, const std::string& group_id, ClientRole role,
                                             int64_t valid_for) {
  const int64_t now = hsm.clock().Now();
  if (valid_for <= 0) return absl::InvalidArgumentError("validity must be positive");
  ASSIGN_OR_RETURN(GroupExport g, ExportGroup(hsm, group_id));
  ASSIGN_OR_RETURN(internal::VerifiedGroupCa group,
                   internal::VerifyGroupCaChain(g.group_ca_chain, g.supplier_root, now));
  std::optional<crypto::PrivateKey> ca_key;
  RETURN_IF_ERROR(hsm.state().Read([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto keys, internal::LoadGroupKeys(tx, group_id));
    ca_key.emplace(std::move(keys.group_ca));
    return absl::OkStatus();
  }));
  ASSIGN_OR_RETURN(GroupSummary self, FindOwnSummary(hsm, group_id));
  RETURN_IF_ERROR(
      internal::CheckSelfNotRevokedAt(hsm, group_id, "issues no client certificates", now));
  ASSIGN_OR_RETURN(auto key, crypto::PrivateKey::Generate(crypto::Curve::kP256));
  crypto::CertProfile p;
  const std::string name(RoleName(role));
  p.subject = {{"CN", "Clade " + name + " client"}, {"O", group_id}, {"OU", name}};
  p.not_before = now - 60;
  p.not_after = std::min<int64_t>(group.group_ca.NotAfter(), now + valid_for);
  p.key_usage = {"digitalSignature"};
  p.extended_key_usage = {"clientAuth"};
  p.policies = {KindOid(CertKind::kClient)};
  p.extra_extensions.push_back({ClientRoleExtensionOid(), false, crypto::DerUtf8String(name)});
  p.extra_extensions.push_back(
      {ClientIssuerExtensionOid(), false, crypto::DerUtf8String(self.member_id)});
  ASSIGN_OR_RETURN(auto cert, crypto::IssueCertificate(p, key.Public(), &group.group_ca, *ca_key));
  IssuedClient out{std::move(key), {cert}, g.supplier_root};
  for (const auto& c : g.group_ca_chain) out.chain.push_back(c);
  return out;
}

absl::StatusOr<VerifiedClient> VerifyClientCert(Hsm& hsm, const crypto::Certificate& leaf) {
  const int64_t now = hsm.clock().Now();
  RETURN_IF_ERROR(RequireKind(leaf, CertKind::kClient));
  auto ext = leaf.Extension(ClientRoleExtensionOid());
  if (!ext) {
    return absl::PermissionDeniedError("client certificate '" + leaf.Subject() + "' names no role");
  }
  ASSIGN_OR_RETURN(std::string role_name, crypto::ParseDerUtf8String(*ext));
  auto role = ParseRole(role_name);
  if (!role.ok()) {
    return absl::PermissionDeniedError("client certificate '" + leaf.Subject() +
                                       "' names an unknown role '" + role_name + "'");
  }
  ASSIGN_OR_RETURN(auto groups, ListGroups(hsm));
  std::string last_reason;
  for (const auto& s : groups) {
    ASSIGN_OR_RETURN(GroupExport g, ExportGroup(hsm, s.group_id));
    if (leaf.Issuer() != g.group_ca_chain[0].Subject()) continue;
    auto group = internal::VerifyGroupCaChain(g.group_ca_chain, g.supplier_root, now);
    if (!group.ok()) continue;
    auto st = internal::VerifyIssuedByGroup(leaf, CertKind::kClient, *group, g.supplier_root, now);
    if (st.ok()) {
      RETURN_IF_ERROR(internal::CheckClientNotRevokedAt(hsm, s.group_id, leaf, now));
      return VerifiedClient{s.group_id, *role, leaf.Subject()};
    }
    last_reason = ": " + std::string(st.message());
  }
  return absl::PermissionDeniedError("client certificate '" + leaf.Subject() +
                                     "' is not issued by the CA of any group of this HSM" +
                                     last_reason);
}

}  // namespace clade::hsm
