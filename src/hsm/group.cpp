#include "hsm/group.h"

#include <algorithm>

#include "base/clock.h"
#include "base/files.h"
#include "crypto/digest.h"
#include "crypto/pem_files.h"
#include "crypto/random.h"
#include "hsm/audit.h"
#include "hsm/internal/group_records.h"

namespace clade::hsm {
namespace {

using internal::ToBytes;

GroupSummary Summarize(const v1::GroupMembership& m) {
  GroupSummary s;
  s.group_id = m.group().group_id();
  s.name = m.group().group_name();
  s.member_id = m.member_id();
  s.role = m.role();
  s.children_enrolled = m.child_counter();
  auto enc = internal::CertFromBytes(m.group().encryption_cert(), "group encryption certificate");
  if (enc.ok()) s.encryption_key_fingerprint = enc->SubjectKey().Fingerprint();
  if (!m.group().oem_root().empty()) {
    auto oem = internal::CertFromBytes(m.group().oem_root(), "OEM root");
    if (oem.ok()) s.oem_root_fingerprint = oem->Fingerprint();
  }
  s.allow_serials.assign(m.group().allow_serials().begin(), m.group().allow_serials().end());
  s.deny_serials.assign(m.group().deny_serials().begin(), m.group().deny_serials().end());
  return s;
}

absl::Status CheckOemRoot(const crypto::Certificate& oem_root, int64_t now) {
  if (!oem_root.IsCa()) {
    return absl::InvalidArgumentError("OEM root '" + oem_root.Subject() + "' is not a CA");
  }
  auto self = crypto::VerifyChain(oem_root, {}, oem_root, crypto::VerifyOptions(now));
  if (!self.ok()) {
    return Annotate(self.status(), "OEM root '" + oem_root.Subject() + "' is not a valid root");
  }
  return absl::OkStatus();
}

// Read-modify-write of one group's record, with its audit entry, in one transaction.
absl::Status UpdateMembership(Hsm& hsm, const std::string& group_id, const char* operation,
                              const std::string& subject,
                              const std::function<absl::Status(v1::GroupMembership&)>& change) {
  ASSIGN_OR_RETURN(auto identity_key, hsm.IdentityKey());
  return hsm.state().Update([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto m, internal::LoadMembership(tx, group_id));
    if (!m) {
      return absl::NotFoundError("this HSM is not a member of group '" + group_id + "'");
    }
    RETURN_IF_ERROR(change(*m));
    RETURN_IF_ERROR(internal::SaveMembership(tx, *m));
    return internal::AppendAudit(tx, identity_key,
                                 AuditEvent{group_id, m->member_id(), operation, subject},
                                 hsm.clock().Now());
  });
}

}  // namespace

std::string GroupIdOf(const crypto::PublicKey& group_ca_key) {
  auto digest = crypto::Sha256(group_ca_key.ToDer());
  return crypto::Hex(std::span<const uint8_t>(digest.data(), 16));
}

absl::StatusOr<GroupSummary> CreateGroup(Hsm& hsm, const std::string& name,
                                         const std::optional<crypto::Certificate>& oem_root) {
  const int64_t now = hsm.clock().Now();
  RETURN_IF_ERROR(internal::CheckGroupName(name));
  if (oem_root) RETURN_IF_ERROR(CheckOemRoot(*oem_root, now));
  ASSIGN_OR_RETURN(auto identity_key, hsm.IdentityKey());
  ASSIGN_OR_RETURN(auto ca_key, crypto::PrivateKey::Generate(crypto::Curve::kP256));
  ASSIGN_OR_RETURN(auto enc_key, crypto::PrivateKey::Generate(crypto::Curve::kP256));
  ASSIGN_OR_RETURN(auto sign_key, crypto::PrivateKey::Generate(crypto::Curve::kP256));
  std::string group_id = GroupIdOf(ca_key.Public());
  const crypto::Certificate& founder = hsm.identity().identity;

  // Group CA: issued by the founder's identity key (docs/pki.md), ending with it.
  crypto::CertProfile ca;
  ca.subject = {{"CN", "Clade group " + name}, {"O", name}, {"serialNumber", group_id}};
  ca.not_before = now - 60;
  ca.not_after = founder.NotAfter();
  ca.is_ca = true;
  ca.path_len = 0;
  ca.key_usage = {"keyCertSign", "cRLSign"};
  ca.policies = {KindOid(CertKind::kGroupCa)};
  ASSIGN_OR_RETURN(auto ca_cert,
                   crypto::IssueCertificate(ca, ca_key.Public(), &founder, identity_key));
  internal::VerifiedGroupCa group{ca_cert, founder, hsm.identity().issuing, group_id};

  auto leaf = [&](const std::string& cn, const std::string& usage, CertKind kind) {
    crypto::CertProfile p;
    p.subject = {{"CN", cn}, {"O", name}, {"serialNumber", group_id}};
    p.not_before = now - 60;
    p.not_after = ca_cert.NotAfter();
    p.key_usage = {usage};
    p.policies = {KindOid(kind)};
    return p;
  };
  ASSIGN_OR_RETURN(auto enc_cert,
                   crypto::IssueCertificate(leaf("Clade group " + name + " encryption",
                                                 "keyAgreement", CertKind::kGroupEncryption),
                                            enc_key.Public(), &ca_cert, ca_key));
  ASSIGN_OR_RETURN(auto sign_cert,
                   crypto::IssueCertificate(leaf("Clade group " + name + " signing",
                                                 "digitalSignature", CertKind::kGroupSigning),
                                            sign_key.Public(), &ca_cert, ca_key));
  MemberId founder_id = MemberId::Founder();
  ASSIGN_OR_RETURN(auto member_cert,
                   internal::IssueMemberCert(group, ca_key, founder.SubjectKey(), founder_id,
                                             hsm.identity().serial, name, now));

  v1::GroupMembership m;
  v1::GroupPublic* pub = m.mutable_group();
  pub->set_group_id(group_id);
  pub->set_group_name(name);
  pub->add_group_ca_chain(ToBytes(ca_cert));
  pub->add_group_ca_chain(ToBytes(founder));
  pub->add_group_ca_chain(ToBytes(hsm.identity().issuing));
  pub->set_encryption_cert(ToBytes(enc_cert));
  pub->set_signing_cert(ToBytes(sign_cert));
  if (oem_root) pub->set_oem_root(ToBytes(*oem_root));
  m.set_member_id(founder_id.ToString());
  m.set_member_cert(ToBytes(member_cert));
  m.set_role("founder");
  m.set_child_counter(0);
  m.set_joined_at(now);

  internal::GroupKeys keys{std::move(ca_key), std::move(enc_key), std::move(sign_key),
                           crypto::RandomSecret(32)};
  RETURN_IF_ERROR(hsm.state().Update([&](store::Transaction& tx) -> absl::Status {
    RETURN_IF_ERROR(internal::SaveMembership(tx, m));
    RETURN_IF_ERROR(internal::SaveGroupKeys(tx, group_id, keys));
    return internal::AppendAudit(
        tx, identity_key, AuditEvent{group_id, founder_id.ToString(), audit_op::kGroupCreate, name},
        now);
  }));
  return Summarize(m);
}

absl::StatusOr<std::vector<GroupSummary>> ListGroups(Hsm& hsm) {
  std::vector<GroupSummary> out;
  RETURN_IF_ERROR(hsm.state().Read([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto all, internal::LoadAllMemberships(tx));
    for (const auto& m : all) out.push_back(Summarize(m));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::string> ResolveGroup(Hsm& hsm, const std::string& text) {
  ASSIGN_OR_RETURN(auto groups, ListGroups(hsm));
  std::vector<std::string> matches;
  for (const auto& g : groups) {
    if (g.group_id == text) return g.group_id;
    if ((text.size() >= 4 && g.group_id.starts_with(text)) || g.name == text) {
      matches.push_back(g.group_id);
    }
  }
  if (matches.size() == 1) return matches[0];
  if (matches.empty()) {
    return absl::NotFoundError("this HSM is not a member of group '" + text + "'");
  }
  return absl::InvalidArgumentError("'" + text + "' names more than one group; give the full id");
}

absl::StatusOr<GroupExport> ExportGroup(Hsm& hsm, const std::string& group_id) {
  std::optional<v1::GroupMembership> m;
  RETURN_IF_ERROR(hsm.state().Read([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(m, internal::LoadMembership(tx, group_id));
    return absl::OkStatus();
  }));
  if (!m) return absl::NotFoundError("this HSM is not a member of group '" + group_id + "'");
  ASSIGN_OR_RETURN(auto chain,
                   internal::ChainFromBytes(m->group().group_ca_chain(), "group CA chain"));
  ASSIGN_OR_RETURN(auto enc, internal::CertFromBytes(m->group().encryption_cert(),
                                                     "group encryption certificate"));
  ASSIGN_OR_RETURN(auto sign,
                   internal::CertFromBytes(m->group().signing_cert(), "group signing certificate"));
  ASSIGN_OR_RETURN(auto member, internal::CertFromBytes(m->member_cert(), "member certificate"));
  return GroupExport{std::move(chain), std::move(enc), std::move(sign), hsm.supplier_root(),
                     std::move(member)};
}

absl::Status WriteGroupExport(const GroupExport& g, const std::string& dir) {
  RETURN_IF_ERROR(MakeDirs(dir));
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/group-ca-chain.pem",
                                  crypto::Certificate::ChainToPem(g.group_ca_chain)));
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/group-enc.crt", g.encryption.Pem()));
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/group-sign.crt", g.signing.Pem()));
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/supplier-root.crt", g.supplier_root.Pem()));
  return WriteFileAtomic(dir + "/member.crt", g.member.Pem());
}

absl::StatusOr<GroupExportDir> GroupExportDir::Open(const std::string& dir) {
  ASSIGN_OR_RETURN(auto chain, crypto::ReadChainFile(dir + "/group-ca-chain.pem"));
  ASSIGN_OR_RETURN(auto root, crypto::ReadCertificateFile(dir + "/supplier-root.crt"));
  return GroupExportDir(dir, std::move(chain), std::move(root));
}

absl::StatusOr<crypto::Certificate> GroupExportDir::ReadEncryptionCert() const {
  return crypto::ReadCertificateFile(dir_ + "/group-enc.crt");
}

absl::Status GroupExportDir::RequirePinnedRoot(const crypto::Certificate& pinned) const {
  if (supplier_root_ == pinned) return absl::OkStatus();
  return absl::PermissionDeniedError("the group export's supplier root (" + dir_ +
                                     "/supplier-root.crt, SHA-256 " + supplier_root_.Fingerprint() +
                                     ") is not the supplier root you pinned (SHA-256 " +
                                     pinned.Fingerprint() + ", --supplier-root)");
}

absl::StatusOr<std::string> GroupExportDir::VerifyGroupUnder(
    const crypto::Certificate& pinned) const {
  RETURN_IF_ERROR(RequirePinnedRoot(pinned));
  ASSIGN_OR_RETURN(auto enc, ReadEncryptionCert());
  auto group_id = VerifyGroupEncryptionCert(group_ca_chain_, enc, pinned);
  if (!group_id.ok())
    return Annotate(group_id.status(), "the group in " + dir_ + " is not genuine");
  return group_id;
}

absl::StatusOr<std::string> VerifyGroupEncryptionCert(
    const std::vector<crypto::Certificate>& group_ca_chain, const crypto::Certificate& encryption,
    const crypto::Certificate& supplier_root, const Clock& clock) {
  const int64_t now = clock.Now();
  ASSIGN_OR_RETURN(auto group, internal::VerifyGroupCaChain(group_ca_chain, supplier_root, now));
  absl::Status ok = internal::VerifyIssuedByGroup(encryption, CertKind::kGroupEncryption, group,
                                                  supplier_root, now);
  if (!ok.ok()) {
    return absl::PermissionDeniedError("group encryption certificate is not genuine: " +
                                       std::string(ok.message()));
  }
  return group.group_id;
}

absl::Status AddToPolicy(Hsm& hsm, const std::string& group_id, PolicyList list,
                         const std::string& serial) {
  RETURN_IF_ERROR(CheckSerialSyntax(serial));
  std::string subject = (list == PolicyList::kAllow ? "allow " : "deny ") + serial;
  return UpdateMembership(
      hsm, group_id, audit_op::kPolicy, subject, [&](v1::GroupMembership& m) -> absl::Status {
        auto* target = list == PolicyList::kAllow ? m.mutable_group()->mutable_allow_serials()
                                                  : m.mutable_group()->mutable_deny_serials();
        if (std::find(target->begin(), target->end(), serial) == target->end()) {
          target->Add(std::string(serial));
        }
        return absl::OkStatus();
      });
}

absl::Status TrustOem(Hsm& hsm, const std::string& group_id, const crypto::Certificate& oem_root) {
  RETURN_IF_ERROR(CheckOemRoot(oem_root, hsm.clock().Now()));
  return UpdateMembership(hsm, group_id, audit_op::kTrustOem, oem_root.Fingerprint(),
                          [&](v1::GroupMembership& m) -> absl::Status {
                            m.mutable_group()->set_oem_root(ToBytes(oem_root));
                            return absl::OkStatus();
                          });
}

}  // namespace clade::hsm
