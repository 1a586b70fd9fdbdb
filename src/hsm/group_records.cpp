#include "hsm/internal/group_records.h"

#include <openssl/crypto.h>

#include "crypto/der.h"
#include "crypto/digest.h"
#include "hsm/group.h"

namespace clade::hsm::internal {
namespace {

std::vector<uint8_t> Serialize(const google::protobuf::MessageLite& m) {
  std::string s = m.SerializeAsString();
  return std::vector<uint8_t>(s.begin(), s.end());
}

// Overwrites secret bytes held in a protobuf string before it is freed.
void Wipe(std::string* s) {
  if (!s->empty()) OPENSSL_cleanse(s->data(), s->size());
}

void WipeSecrets(v1::GroupSecrets& s) {
  Wipe(s.mutable_group_ca_key());
  Wipe(s.mutable_encryption_key());
  Wipe(s.mutable_signing_key());
  Wipe(s.mutable_symmetric_key());
}

absl::StatusOr<crypto::PrivateKey> KeyFrom(const std::string& der, const std::string& what) {
  crypto::SecretBytes bytes(reinterpret_cast<const uint8_t*>(der.data()), der.size());
  auto key = crypto::PrivateKey::FromPkcs8Der(bytes);
  if (!key.ok()) return Annotate(key.status(), what);
  return key;
}

void SetSecret(std::string* field, const crypto::SecretBytes& value) {
  auto bytes = value.RevealSecret();
  field->assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace

absl::Status CheckGroupName(const std::string& name) {
  if (name.empty() || name.size() > kMaxGroupName) {
    return absl::InvalidArgumentError("group name must be 1 to 64 characters");
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("group name may not hold control characters");
    }
  }
  return absl::OkStatus();
}

std::string MemberIdExtensionOid() { return std::string(kCladeArc) + ".2.1"; }

absl::StatusOr<std::optional<v1::GroupMembership>> LoadMembership(const store::Transaction& tx,
                                                                  const std::string& group_id) {
  ASSIGN_OR_RETURN(auto bytes, tx.Get(kGroupNs, group_id));
  if (!bytes) return std::optional<v1::GroupMembership>();
  ASSIGN_OR_RETURN(auto m, ParseStoredRow<v1::GroupMembership>(*bytes, "group record"));
  return std::optional<v1::GroupMembership>(std::move(m));
}

absl::Status SaveMembership(store::Transaction& tx, const v1::GroupMembership& m) {
  return tx.Put(kGroupNs, m.group().group_id(), Serialize(m));
}

absl::StatusOr<std::vector<v1::GroupMembership>> LoadAllMemberships(const store::Transaction& tx) {
  ASSIGN_OR_RETURN(auto rows, tx.List(kGroupNs));
  std::vector<v1::GroupMembership> out;
  for (const auto& [key, bytes] : rows) {
    ASSIGN_OR_RETURN(auto m, ParseStoredRow<v1::GroupMembership>(bytes, "group record"));
    out.push_back(std::move(m));
  }
  return out;
}

crypto::SecretBytes SerializeSecrets(const GroupKeys& keys) {
  v1::GroupSecrets s;
  SetSecret(s.mutable_group_ca_key(), keys.group_ca.ToPkcs8Der());
  SetSecret(s.mutable_encryption_key(), keys.encryption.ToPkcs8Der());
  SetSecret(s.mutable_signing_key(), keys.signing.ToPkcs8Der());
  SetSecret(s.mutable_symmetric_key(), keys.symmetric);
  std::string bytes = s.SerializeAsString();
  crypto::SecretBytes out(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  Wipe(&bytes);
  WipeSecrets(s);
  return out;
}

absl::StatusOr<GroupKeys> ParseSecrets(const crypto::SecretBytes& serialized) {
  v1::GroupSecrets s;
  auto bytes = serialized.RevealSecret();
  absl::Status parsed = wire::ParseStrict(bytes, s, "clade.v1.GroupSecrets");
  if (!parsed.ok()) {
    WipeSecrets(s);
    return absl::InvalidArgumentError("group secrets are malformed: " +
                                      std::string(parsed.message()));
  }
  absl::StatusOr<GroupKeys> out = [&]() -> absl::StatusOr<GroupKeys> {
    ASSIGN_OR_RETURN(auto ca, KeyFrom(s.group_ca_key(), "group CA key"));
    ASSIGN_OR_RETURN(auto enc, KeyFrom(s.encryption_key(), "group encryption key"));
    ASSIGN_OR_RETURN(auto sign, KeyFrom(s.signing_key(), "group signing key"));
    if (s.symmetric_key().size() != 32) {
      return absl::InvalidArgumentError("group symmetric key is not 32 bytes");
    }
    crypto::SecretBytes sym(reinterpret_cast<const uint8_t*>(s.symmetric_key().data()), 32);
    return GroupKeys{std::move(ca), std::move(enc), std::move(sign), std::move(sym)};
  }();
  WipeSecrets(s);
  return out;
}

absl::StatusOr<GroupKeys> LoadGroupKeys(const store::Transaction& tx, const std::string& group_id) {
  ASSIGN_OR_RETURN(crypto::SecretBytes sealed, tx.GetSecret(kGroupNs, group_id));
  auto keys = ParseSecrets(sealed);
  if (!keys.ok()) return absl::DataLossError("the HSM state holds damaged group secrets");
  return keys;
}

absl::Status SaveGroupKeys(store::Transaction& tx, const std::string& group_id,
                           const GroupKeys& keys) {
  return tx.PutSecret(kGroupNs, group_id, SerializeSecrets(keys));
}

absl::StatusOr<crypto::Certificate> CertFromBytes(const std::string& der, const std::string& what) {
  if (der.empty()) return absl::InvalidArgumentError(what + " is missing");
  auto cert =
      crypto::Certificate::FromDer({reinterpret_cast<const uint8_t*>(der.data()), der.size()});
  if (!cert.ok()) return Annotate(cert.status(), what);
  return cert;
}

absl::StatusOr<std::vector<crypto::Certificate>> ChainFromBytes(
    const google::protobuf::RepeatedPtrField<std::string>& ders, const std::string& what) {
  if (ders.empty()) return absl::InvalidArgumentError(what + " is missing");
  if (static_cast<size_t>(ders.size()) > crypto::kMaxChainLength) {
    return absl::InvalidArgumentError(what + " is too long");
  }
  std::vector<crypto::Certificate> out;
  for (int i = 0; i < ders.size(); ++i) {
    ASSIGN_OR_RETURN(auto c, CertFromBytes(ders[i], what + " certificate " + std::to_string(i)));
    out.push_back(std::move(c));
  }
  return out;
}

std::string ToBytes(const crypto::Certificate& c) {
  return std::string(c.Der().begin(), c.Der().end());
}

absl::StatusOr<VerifiedGroupCa> VerifyGroupCaChain(const std::vector<crypto::Certificate>& chain,
                                                   const crypto::Certificate& root, int64_t now) {
  auto refuse = [](const absl::Status& s) {
    return absl::PermissionDeniedError("group CA is not genuine: " + std::string(s.message()));
  };
  if (chain.size() != 3) {
    return refuse(absl::InvalidArgumentError(
        "the chain must be group CA, founder identity, supplier issuing CA"));
  }
  auto founder = VerifyGenuineHsm(chain[1], chain[2], root, now);
  if (!founder.ok()) return refuse(founder.status());
  absl::Status kind = RequireKind(chain[0], CertKind::kGroupCa);
  if (!kind.ok()) return refuse(kind);
  crypto::VerifyOptions opts(now);
  auto path = crypto::VerifyChain(chain[0], {chain[1], chain[2]}, root, opts);
  if (!path.ok()) return refuse(path.status());
  if (path->size() != 4 || !((*path)[1] == chain[1])) {
    return refuse(absl::PermissionDeniedError("the group CA is not issued by the founder"));
  }
  return VerifiedGroupCa{chain[0], chain[1], chain[2], GroupIdOf(chain[0].SubjectKey())};
}

absl::Status VerifyIssuedByGroup(const crypto::Certificate& cert, CertKind kind,
                                 const VerifiedGroupCa& group, const crypto::Certificate& root,
                                 int64_t now) {
  RETURN_IF_ERROR(RequireKind(cert, kind));
  crypto::VerifyOptions opts(now);
  ASSIGN_OR_RETURN(
      auto path,
      crypto::VerifyChain(cert, {group.group_ca, group.founder, group.issuing}, root, opts));
  if (path.size() != 5 || !(path[1] == group.group_ca)) {
    return absl::PermissionDeniedError("certificate '" + cert.Subject() +
                                       "' is not issued directly by the group CA");
  }
  return absl::OkStatus();
}

absl::StatusOr<MemberId> MemberIdOf(const crypto::Certificate& member_cert) {
  auto ext = member_cert.Extension(MemberIdExtensionOid());
  if (!ext) {
    return absl::InvalidArgumentError("member certificate '" + member_cert.Subject() +
                                      "' names no member id");
  }
  auto text = crypto::ParseDerUtf8String(*ext);
  if (!text.ok()) return absl::InvalidArgumentError("malformed member id extension");
  return MemberId::Parse(*text);
}

absl::StatusOr<crypto::Certificate> IssueMemberCert(const VerifiedGroupCa& group,
                                                    const crypto::PrivateKey& group_ca_key,
                                                    const crypto::PublicKey& identity_key,
                                                    const MemberId& id,
                                                    const std::string& hsm_serial,
                                                    const std::string& group_name, int64_t now) {
  crypto::CertProfile p;
  p.subject = {{"CN", "Clade member " + id.ToString()},
               {"O", group_name},
               {"OU", group.group_id},
               {"serialNumber", hsm_serial}};
  p.not_before = now - 60;
  p.not_after = group.group_ca.NotAfter();
  p.key_usage = {"digitalSignature"};
  p.policies = {KindOid(CertKind::kMember)};
  p.extra_extensions.push_back(
      {MemberIdExtensionOid(), false, crypto::DerUtf8String(id.ToString())});
  return crypto::IssueCertificate(p, identity_key, &group.group_ca, group_ca_key);
}

}  // namespace clade::hsm::internal
