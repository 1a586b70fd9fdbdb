// Group statements: the message, its checks, and how one statement may follow another. Issuing,
// keeping and asking the held statement: group_statement_store.cpp.
#include "hsm/group_statement.h"

#include <algorithm>
#include <set>

#include "base/clock.h"
#include "clade/v1/statement.pb.h"
#include "hsm/enrollment.h"
#include "hsm/internal/group_records.h"
#include "hsm/member_id.h"
#include "wire/envelope.h"
#include "wire/strict.h"

namespace clade::hsm {
namespace {

absl::Status Refuse(const std::string& what) { return absl::PermissionDeniedError(what); }
absl::Status Malformed(const std::string& what) {
  return absl::InvalidArgumentError("malformed message: clade.v1.GroupStatement " + what);
}

std::string Seq(uint64_t s) { return "statement " + std::to_string(s); }

// The statement's fields, checked for form: every id parses, every serial is one, every time is
// set, nothing listed twice.
absl::StatusOr<VerifiedStatement> FromProto(const v1::GroupStatement& s) {
  if (s.group_id().empty()) return Malformed("names no group");
  if (s.sequence() == 0) return Malformed("has sequence 0 (the first is 1)");
  if (s.issued_at() <= 0) return Malformed("has no issue time");
  if (!MemberId::Parse(s.issuer_member_id()).ok()) {
    return Malformed("names issuer '" + s.issuer_member_id() + "', not a member id");
  }
  VerifiedStatement out;
  out.group_id = s.group_id();
  out.sequence = s.sequence();
  out.issuer_member_id = s.issuer_member_id();
  out.issued_at = s.issued_at();
  std::set<std::string> seen;
  for (const auto& m : s.revoked_members()) {
    if (!MemberId::Parse(m.member_id()).ok()) {
      return Malformed("revokes '" + m.member_id() + "', not a member id");
    }
    if (!CheckSerialSyntax(m.hsm_serial()).ok() || m.revoked_at() <= 0) {
      return Malformed("revokes member " + m.member_id() + " without a valid serial and time");
    }
    if (!seen.insert("m:" + m.member_id()).second) {
      return Malformed("revokes member " + m.member_id() + " twice");
    }
    out.members.push_back({m.member_id(), m.hsm_serial(), m.revoked_at()});
  }
  for (const auto& c : s.revoked_clients()) {
    if (c.cert_serial().empty() || c.cert_serial().size() > 64 ||
        c.cert_serial().find_first_not_of("0123456789abcdef") != std::string::npos ||
        c.revoked_at() <= 0) {
      return Malformed("revokes client '" + c.cert_serial() + "' without a hex serial and time");
    }
    if (!seen.insert("c:" + c.cert_serial()).second) {
      return Malformed("revokes client " + c.cert_serial() + " twice");
    }
    out.clients.push_back({c.cert_serial(), c.revoked_at()});
  }
  for (const auto& d : s.denied_serials()) {
    if (!CheckSerialSyntax(d).ok()) return Malformed("denies '" + d + "', not an HSM serial");
    if (!seen.insert("d:" + d).second) return Malformed("denies " + d + " twice");
    out.denied_serials.push_back(d);
  }
  return out;
}

}  // namespace

const RevokedMember* VerifiedStatement::IsMemberRevoked(const std::string& member_id) const {
  for (const auto& m : members) {
    if (m.member_id == member_id) return &m;
  }
  return nullptr;
}

const RevokedMember* VerifiedStatement::MemberRevokedBySerial(const std::string& serial) const {
  for (const auto& m : members) {
    if (m.hsm_serial == serial) return &m;
  }
  return nullptr;
}

const RevokedClient* VerifiedStatement::IsClientRevoked(const std::string& cert_serial) const {
  for (const auto& c : clients) {
    if (c.cert_serial == cert_serial) return &c;
  }
  return nullptr;
}

bool VerifiedStatement::IsSerialDenied(const std::string& serial) const {
  return std::find(denied_serials.begin(), denied_serials.end(), serial) != denied_serials.end();
}

absl::StatusOr<VerifiedStatement> VerifyStatement(
    std::span<const uint8_t> message, const std::vector<crypto::Certificate>& group_ca_chain,
    const crypto::Certificate& supplier_root, const Clock& clock) {
  const int64_t now = clock.Now();
  ASSIGN_OR_RETURN(wire::Envelope env,
                   wire::OpenMessage(message, kStatementType, kMaxStatementSize));
  ASSIGN_OR_RETURN(v1::GroupStatement s,
                   wire::ParsePayload<v1::GroupStatement>(env, kMaxStatementSize));
  ASSIGN_OR_RETURN(VerifiedStatement out, FromProto(s));
  ASSIGN_OR_RETURN(internal::VerifiedGroupCa group,
                   internal::VerifyGroupCaChain(group_ca_chain, supplier_root, now));
  if (out.group_id != group.group_id) {
    return Refuse("statement is for group " + out.group_id + ", not group " + group.group_id);
  }
  // Signer chain: group signing certificate, then the group's own CA chain.
  if (env.signer_chain.size() != 4) {
    return Refuse("statement is not signed by the group signing key of group " + group.group_id +
                  ": the signer chain must be group signing certificate, group CA, founder "
                  "identity, supplier issuing CA");
  }
  if (env.signer_chain[1].Der() != group.group_ca.Der()) {
    return Refuse("statement is not signed by group " + group.group_id +
                  ": its signer chain holds another group CA ('" + env.signer_chain[1].Subject() +
                  "')");
  }
  absl::Status signer = internal::VerifyIssuedByGroup(env.signer_chain[0], CertKind::kGroupSigning,
                                                      group, supplier_root, now);
  if (!signer.ok()) {
    return Refuse("statement is not signed by the group signing key of group " + group.group_id +
                  ": " + std::string(signer.message()));
  }
  if (out.issued_at > now + kClockSkew) {
    return Refuse(Seq(out.sequence) + " was issued in the future (" + FormatTime(out.issued_at) +
                  ")");
  }
  out.message.assign(message.begin(), message.end());
  return out;
}

absl::StatusOr<StatementOrder> CompareToHeld(const VerifiedStatement& held,
                                             const VerifiedStatement& next) {
  if (next.group_id != held.group_id) {
    return Refuse("statement is for group " + next.group_id + ", the held one for group " +
                  held.group_id);
  }
  if (next.sequence < held.sequence) {
    return Refuse(Seq(next.sequence) + " is older than the held " + Seq(held.sequence));
  }
  if (next.sequence == held.sequence) {
    if (next.message == held.message) return StatementOrder::kSame;
    return Refuse(Seq(next.sequence) + " differs from the held " + Seq(held.sequence) +
                  " (a fork: two statements with one sequence number)");
  }
  // Revocations are permanent: a later statement that forgets one is refused, so a member that
  // was revoked cannot sign itself back in with the group key it still holds.
  for (const auto& m : held.members) {
    const RevokedMember* n = next.IsMemberRevoked(m.member_id);
    if (n == nullptr || n->hsm_serial != m.hsm_serial || n->revoked_at != m.revoked_at) {
      return Refuse(Seq(next.sequence) + " drops the revocation of member " + m.member_id +
                    " that " + Seq(held.sequence) + " holds");
    }
  }
  for (const auto& c : held.clients) {
    const RevokedClient* n = next.IsClientRevoked(c.cert_serial);
    if (n == nullptr || n->revoked_at != c.revoked_at) {
      return Refuse(Seq(next.sequence) + " drops the revocation of client " + c.cert_serial +
                    " that " + Seq(held.sequence) + " holds");
    }
  }
  for (const auto& d : held.denied_serials) {
    if (!next.IsSerialDenied(d)) {
      return Refuse(Seq(next.sequence) + " drops the denial of " + d + " that " +
                    Seq(held.sequence) + " holds");
    }
  }
  if (const RevokedMember* r = held.IsMemberRevoked(next.issuer_member_id)) {
    return Refuse(Seq(next.sequence) + " is issued by member " + next.issuer_member_id +
                  ", revoked by " + Seq(held.sequence) + " since " + FormatTime(r->revoked_at));
  }
  return StatementOrder::kNewer;
}

absl::Status CheckActBeforeRevocation(const VerifiedStatement& statement,
                                      const std::string& member_id, int64_t time,
                                      const std::string& what) {
  const RevokedMember* r = statement.IsMemberRevoked(member_id);
  if (r == nullptr || time < r->revoked_at) return absl::OkStatus();
  return Refuse(what + " by member " + member_id + " at " + FormatTime(time) +
                " is after its revocation at " + FormatTime(r->revoked_at) + " (group " +
                statement.group_id + ", " + Seq(statement.sequence) + ")");
}

}  // namespace clade::hsm
