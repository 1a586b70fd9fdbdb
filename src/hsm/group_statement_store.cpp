// Group statements kept by a member: issuing the next one, accepting a newer one, and the checks
// every authorization asks of the held statements.
#include <algorithm>
#include <functional>

#include "base/clock.h"
#include "clade/v1/statement.pb.h"
#include "crypto/der.h"
#include "crypto/signature.h"
#include "hsm/audit.h"
#include "hsm/client_cert.h"
#include "hsm/group_statement.h"
#include "hsm/internal/group_records.h"
#include "hsm/internal/statements.h"
#include "hsm/member_id.h"
#include "wire/envelope.h"
#include "wire/strict.h"

namespace clade::hsm {
namespace {

absl::Status Refuse(const std::string& what) { return absl::PermissionDeniedError(what); }
std::string Seq(uint64_t s) { return "statement " + std::to_string(s); }

std::string Bytes(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

// Hex as openssl prints it, or as SerialHex gives it: lower case, no leading zeros.
std::string NormalSerial(std::string hex) {
  std::transform(hex.begin(), hex.end(), hex.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  size_t nz = hex.find_first_not_of('0');
  return nz == std::string::npos ? (hex.empty() ? hex : "0") : hex.substr(nz);
}

absl::StatusOr<std::vector<crypto::Certificate>> GroupChain(const v1::GroupPublic& g) {
  return internal::ChainFromBytes(g.group_ca_chain(), "group CA chain");
}

v1::GroupStatement ToProto(const VerifiedStatement& s) {
  v1::GroupStatement p;
  p.set_group_id(s.group_id);
  p.set_sequence(s.sequence);
  p.set_issuer_member_id(s.issuer_member_id);
  p.set_issued_at(s.issued_at);
  auto members = s.members;
  std::sort(members.begin(), members.end(),
            [](const auto& a, const auto& b) { return a.member_id < b.member_id; });
  for (const auto& m : members) {
    auto* r = p.add_revoked_members();
    r->set_member_id(m.member_id);
    r->set_hsm_serial(m.hsm_serial);
    r->set_revoked_at(m.revoked_at);
  }
  auto clients = s.clients;
  std::sort(clients.begin(), clients.end(),
            [](const auto& a, const auto& b) { return a.cert_serial < b.cert_serial; });
  for (const auto& c : clients) {
    auto* r = p.add_revoked_clients();
    r->set_cert_serial(c.cert_serial);
    r->set_revoked_at(c.revoked_at);
  }
  auto denied = s.denied_serials;
  std::sort(denied.begin(), denied.end());
  for (const auto& d : denied) p.add_denied_serials(d);
  return p;
}

// Adds the change to a copy of the held statement; false = the held one already says so.
using Change = std::function<absl::StatusOr<bool>(VerifiedStatement&, const v1::GroupMembership&)>;

absl::StatusOr<IssuedStatement> Issue(Hsm& hsm, const std::string& group_id,
                                      const std::string& subject, int64_t now,
                                      const Change& change) {
  ASSIGN_OR_RETURN(auto identity_key, hsm.IdentityKey());
  IssuedStatement out;
  RETURN_IF_ERROR(hsm.state().Update([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto m, internal::LoadMembership(tx, group_id));
    if (!m) return absl::NotFoundError("this HSM is not a member of group '" + group_id + "'");
    ASSIGN_OR_RETURN(auto held, internal::LoadStatement(tx, m->group(), hsm.supplier_root(), now));
    VerifiedStatement next = held.value_or(VerifiedStatement{});
    if (held) {
      if (const RevokedMember* r = held->IsMemberRevoked(m->member_id())) {
        return Refuse("member " + m->member_id() + " is revoked in group " + group_id + " since " +
                      FormatTime(r->revoked_at) + " (" + Seq(held->sequence) +
                      "); a revoked member issues no statements");
      }
    }
    ASSIGN_OR_RETURN(bool changed, change(next, *m));
    if (!changed) {
      out = IssuedStatement{held ? held->message : std::vector<uint8_t>{},
                            held ? held->sequence : 0, false};
      return absl::OkStatus();
    }
    next.group_id = group_id;
    next.sequence = held ? held->sequence + 1 : 1;
    next.issuer_member_id = m->member_id();
    next.issued_at = now;
    std::string payload = ToProto(next).SerializeAsString();
    ASSIGN_OR_RETURN(auto keys, internal::LoadGroupKeys(tx, group_id));
    ASSIGN_OR_RETURN(auto signing, internal::CertFromBytes(m->group().signing_cert(),
                                                           "group signing certificate"));
    ASSIGN_OR_RETURN(auto chain, GroupChain(m->group()));
    chain.insert(chain.begin(), signing);
    ASSIGN_OR_RETURN(out.message, wire::SealMessage(kStatementType, crypto::AsBytes(payload),
                                                    keys.signing, chain));
    if (out.message.size() > kMaxStatementSize) {
      return absl::ResourceExhaustedError(
          "the group statement would be " + std::to_string(out.message.size()) +
          " bytes, more than the limit of " + std::to_string(kMaxStatementSize));
    }
    out.sequence = next.sequence;
    out.changed = true;
    RETURN_IF_ERROR(tx.Put(internal::kStatementNs, group_id, out.message));
    return internal::AppendAudit(tx, identity_key,
                                 AuditEvent{group_id, m->member_id(), audit_op::kStatementIssue,
                                            Seq(next.sequence) + ": " + subject},
                                 now);
  }));
  return out;
}

}  // namespace

absl::StatusOr<IssuedStatement> RevokeMember(Hsm& hsm, const std::string& group_id,
                                             const std::string& member_id,
                                             const std::string& hsm_serial) {
  const int64_t at = hsm.clock().Now();
  ASSIGN_OR_RETURN(MemberId id, MemberId::Parse(member_id));
  if (!hsm_serial.empty()) RETURN_IF_ERROR(CheckSerialSyntax(hsm_serial));
  return Issue(hsm, group_id, "revoke member " + id.ToString(), at,
               [&](VerifiedStatement& s, const v1::GroupMembership& m) -> absl::StatusOr<bool> {
                 if (s.IsMemberRevoked(id.ToString())) return false;
                 // The serial this member knows: its own, or a child's it enrolled.
                 std::string known;
                 if (m.member_id() == id.ToString()) known = hsm.identity().serial;
                 for (const auto& c : m.children()) {
                   if (c.member_id() == id.ToString()) known = c.hsm_serial();
                 }
                 if (!known.empty() && !hsm_serial.empty() && known != hsm_serial) {
                   return absl::InvalidArgumentError("member " + id.ToString() + " is HSM " +
                                                     known + ", not " + hsm_serial);
                 }
                 std::string serial = known.empty() ? hsm_serial : known;
                 if (serial.empty()) {
                   return absl::InvalidArgumentError(
                       "the HSM serial of member " + id.ToString() +
                       " is not known here (this member did not enroll it); give it");
                 }
                 s.members.push_back({id.ToString(), serial, at});
                 return true;
               });
}

absl::StatusOr<IssuedStatement> RevokeClient(Hsm& hsm, const std::string& group_id,
                                             const std::string& cert_serial) {
  const int64_t at = hsm.clock().Now();
  std::string serial = NormalSerial(cert_serial);
  if (serial.empty() || serial.size() > 64 ||
      serial.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return absl::InvalidArgumentError("client certificate serial '" + cert_serial +
                                      "' is not hex (as `openssl x509 -serial` prints it)");
  }
  return Issue(hsm, group_id, "revoke client " + serial, at,
               [&](VerifiedStatement& s, const v1::GroupMembership&) -> absl::StatusOr<bool> {
                 if (s.IsClientRevoked(serial)) return false;
                 s.clients.push_back({serial, at});
                 return true;
               });
}

absl::StatusOr<IssuedStatement> DenySerial(Hsm& hsm, const std::string& group_id,
                                           const std::string& hsm_serial) {
  const int64_t now = hsm.clock().Now();
  RETURN_IF_ERROR(CheckSerialSyntax(hsm_serial));
  return Issue(hsm, group_id, "deny " + hsm_serial, now,
               [&](VerifiedStatement& s, const v1::GroupMembership&) -> absl::StatusOr<bool> {
                 if (s.IsSerialDenied(hsm_serial)) return false;
                 s.denied_serials.push_back(hsm_serial);
                 return true;
               });
}

absl::StatusOr<AcceptedStatement> AcceptStatement(Hsm& hsm, std::span<const uint8_t> message) {
  const int64_t now = hsm.clock().Now();
  // The group it names, to find the CA it must be checked against; nothing is trusted yet.
  ASSIGN_OR_RETURN(wire::Envelope env,
                   wire::OpenMessage(message, kStatementType, kMaxStatementSize));
  ASSIGN_OR_RETURN(v1::GroupStatement claimed,
                   wire::ParsePayload<v1::GroupStatement>(env, kMaxStatementSize));
  ASSIGN_OR_RETURN(auto identity_key, hsm.IdentityKey());
  AcceptedStatement out;
  RETURN_IF_ERROR(hsm.state().Update([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto m, internal::LoadMembership(tx, claimed.group_id()));
    if (!m) {
      return absl::NotFoundError("statement is for group " + claimed.group_id() +
                                 ", which this HSM is not a member of");
    }
    ASSIGN_OR_RETURN(auto chain, GroupChain(m->group()));
    ASSIGN_OR_RETURN(VerifiedStatement next,
                     VerifyStatement(message, chain, hsm.supplier_root(), FixedClock(now)));
    ASSIGN_OR_RETURN(auto held, internal::LoadStatement(tx, m->group(), hsm.supplier_root(), now));
    if (held) {
      ASSIGN_OR_RETURN(StatementOrder order, CompareToHeld(*held, next));
      if (order == StatementOrder::kSame) {
        out = AcceptedStatement{Adoption::kUnchanged, std::move(*held)};
        return absl::OkStatus();
      }
    }
    RETURN_IF_ERROR(tx.Put(internal::kStatementNs, next.group_id, next.message));
    RETURN_IF_ERROR(
        internal::AppendAudit(tx, identity_key,
                              AuditEvent{next.group_id, m->member_id(), audit_op::kStatementAdopt,
                                         Seq(next.sequence) + " by " + next.issuer_member_id},
                              now));
    out = AcceptedStatement{Adoption::kAdopted, std::move(next)};
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::optional<VerifiedStatement>> HeldStatement(Hsm& hsm,
                                                               const std::string& group_id) {
  return internal::HeldStatementAt(hsm, group_id, hsm.clock().Now());
}

absl::StatusOr<std::optional<VerifiedStatement>> internal::HeldStatementAt(
    Hsm& hsm, const std::string& group_id, int64_t now) {
  std::optional<VerifiedStatement> out;
  RETURN_IF_ERROR(hsm.state().Read([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto m, internal::LoadMembership(tx, group_id));
    if (!m) return absl::NotFoundError("this HSM is not a member of group '" + group_id + "'");
    ASSIGN_OR_RETURN(out, internal::LoadStatement(tx, m->group(), hsm.supplier_root(), now));
    return absl::OkStatus();
  }));
  return out;
}

absl::Status CheckPeerHsm(Hsm& hsm, const std::string& serial) {
  const int64_t now = hsm.clock().Now();
  return hsm.state().Read([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto all, internal::LoadAllMemberships(tx));
    for (const auto& m : all) {
      ASSIGN_OR_RETURN(auto s, internal::LoadStatement(tx, m.group(), hsm.supplier_root(), now));
      if (!s) continue;
      if (const RevokedMember* r = s->MemberRevokedBySerial(serial)) {
        return Refuse("peer HSM " + serial + " is member " + r->member_id + ", revoked in group " +
                      s->group_id + " since " + FormatTime(r->revoked_at) + " (" +
                      Seq(s->sequence) + ")");
      }
      if (s->IsSerialDenied(serial)) {
        return Refuse("peer HSM " + serial + " is denied in group " + s->group_id + " (" +
                      Seq(s->sequence) + ")");
      }
    }
    return absl::OkStatus();
  });
}

absl::Status CheckSelfNotRevoked(Hsm& hsm, const std::string& group_id, const std::string& what) {
  return internal::CheckSelfNotRevokedAt(hsm, group_id, what, hsm.clock().Now());
}

absl::Status internal::CheckSelfNotRevokedAt(Hsm& hsm, const std::string& group_id,
                                             const std::string& what, int64_t now) {
  return hsm.state().Read([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto m, internal::LoadMembership(tx, group_id));
    if (!m) return absl::NotFoundError("this HSM is not a member of group '" + group_id + "'");
    ASSIGN_OR_RETURN(auto s, internal::LoadStatement(tx, m->group(), hsm.supplier_root(), now));
    if (!s) return absl::OkStatus();
    if (const RevokedMember* r = s->IsMemberRevoked(m->member_id())) {
      return Refuse("member " + m->member_id() + " is revoked in group " + group_id + " since " +
                    FormatTime(r->revoked_at) + " (" + Seq(s->sequence) + "); a revoked member " +
                    what);
    }
    return absl::OkStatus();
  });
}

absl::Status CheckClientNotRevoked(Hsm& hsm, const std::string& group_id,
                                   const crypto::Certificate& leaf) {
  return internal::CheckClientNotRevokedAt(hsm, group_id, leaf, hsm.clock().Now());
}

absl::Status internal::CheckClientNotRevokedAt(Hsm& hsm, const std::string& group_id,
                                               const crypto::Certificate& leaf, int64_t now) {
  RETURN_IF_ERROR(
      internal::CheckSelfNotRevokedAt(hsm, group_id, "serves no clients of the group", now));
  const std::string who = "client certificate '" + leaf.Subject() + "'";
  auto ext = leaf.Extension(ClientIssuerExtensionOid());
  if (!ext) return Refuse(who + " names no issuing member");
  ASSIGN_OR_RETURN(std::string issuer, crypto::ParseDerUtf8String(*ext));
  ASSIGN_OR_RETURN(auto s, internal::HeldStatementAt(hsm, group_id, now));
  if (!s) return absl::OkStatus();
  const std::string serial = NormalSerial(leaf.SerialHex());
  if (const RevokedClient* c = s->IsClientRevoked(serial)) {
    return Refuse(who + " (serial " + serial + ") is revoked in group " + group_id + " since " +
                  FormatTime(c->revoked_at) + " (" + Seq(s->sequence) + ")");
  }
  if (const RevokedMember* r = s->IsMemberRevoked(issuer)) {
    return Refuse(who + " was issued by member " + issuer + ", revoked in group " + group_id +
                  " since " + FormatTime(r->revoked_at) + " (" + Seq(s->sequence) + ")");
  }
  return absl::OkStatus();
}

namespace internal {

absl::StatusOr<std::optional<VerifiedStatement>> LoadStatement(const store::Transaction& tx,
                                                               const v1::GroupPublic& group,
                                                               const crypto::Certificate& root,
                                                               int64_t now) {
  ASSIGN_OR_RETURN(auto bytes, tx.Get(kStatementNs, group.group_id()));
  if (!bytes) return std::optional<VerifiedStatement>();
  ASSIGN_OR_RETURN(auto chain, GroupChain(group));
  auto s = VerifyStatement(*bytes, chain, root, FixedClock(now));
  if (!s.ok()) {
    return absl::DataLossError("the HSM state holds a group statement for group " +
                               group.group_id() +
                               " that does not verify: " + std::string(s.status().message()));
  }
  return std::optional<VerifiedStatement>(*std::move(s));
}

absl::StatusOr<std::string> StatementBytes(const store::Transaction& tx,
                                           const std::string& group_id) {
  ASSIGN_OR_RETURN(auto bytes, tx.Get(kStatementNs, group_id));
  return bytes ? Bytes(*bytes) : std::string();
}

absl::Status CheckCandidate(const std::optional<VerifiedStatement>& s, const std::string& serial) {
  if (!s) return absl::OkStatus();
  if (s->IsSerialDenied(serial)) {
    return Refuse("candidate " + serial + " is denied by group " + Seq(s->sequence));
  }
  if (const RevokedMember* r = s->MemberRevokedBySerial(serial)) {
    return Refuse("candidate " + serial + " is revoked member " + r->member_id + " (group " +
                  Seq(s->sequence) + ")");
  }
  return absl::OkStatus();
}

absl::Status AdoptAtJoin(store::Transaction& tx, const v1::GroupPublic& group,
                         const std::string& bytes, const crypto::Certificate& root, int64_t now) {
  if (bytes.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(auto chain, GroupChain(group));
  auto s = VerifyStatement(crypto::AsBytes(bytes), chain, root, FixedClock(now));
  if (!s.ok()) {
    return Refuse("the group statement in the response is refused: " +
                  std::string(s.status().message()));
  }
  return tx.Put(kStatementNs, group.group_id(), s->message);
}

}  // namespace internal
}  // namespace clade::hsm
