// Group statements: revocation, group-wide (docs/protocol.md, "Group statements";
// docs/decisions/0006-group-statements.md). A statement is signed with the group signing key and
// is cumulative — revoked members (with the time of revocation), revoked client certificate
// serials, denied HSM serials — so the newest one alone is the truth. A member keeps the newest
// per group and accepts only a newer sequence that keeps every revocation of the one it holds;
// an older, forked or forged statement is refused with a named reason and changes no state.
// Every authorization of this HSM asks the held statement (IsMemberRevoked, IsClientRevoked,
// IsSerialDenied); offline verifiers check records and audit entries against one. Statements are
// issued, and checked, at the HSM's clock (Hsm::clock()).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/x509.h"
#include "hsm/hsm.h"

namespace clade::hsm {

inline constexpr char kStatementType[] = "clade.v1.GroupStatement";
// Small enough to ride in gRPC metadata (base64) on every call; about a thousand revocations.
inline constexpr size_t kMaxStatementSize = size_t{32} * 1024;
// The gRPC metadata limit both ends set: a statement, base64-encoded, and the other headers.
inline constexpr int kMaxStatementMetadata = 64 * 1024;

namespace audit_op {
inline constexpr char kStatementIssue[] = "group.statement";
inline constexpr char kStatementAdopt[] = "group.statement-adopt";
}  // namespace audit_op

struct RevokedMember {
  std::string member_id;
  std::string hsm_serial;
  int64_t revoked_at = 0;
};
struct RevokedClient {
  std::string cert_serial;  // lower-case hex
  int64_t revoked_at = 0;
};

// A statement whose signature chains to the group signing key of the group CA it was checked
// against. Only VerifyStatement makes one.
struct VerifiedStatement {
  std::string group_id;
  uint64_t sequence = 0;
  std::string issuer_member_id;
  int64_t issued_at = 0;
  std::vector<RevokedMember> members;
  std::vector<RevokedClient> clients;
  std::vector<std::string> denied_serials;
  std::vector<uint8_t> message;  // the SignedMessage bytes, as signed

  // The revocation of exactly this member id, or null.
  const RevokedMember* IsMemberRevoked(const std::string& member_id) const;
  // The revoked member whose HSM has this serial, or null.
  const RevokedMember* MemberRevokedBySerial(const std::string& hsm_serial) const;
  const RevokedClient* IsClientRevoked(const std::string& cert_serial) const;
  bool IsSerialDenied(const std::string& hsm_serial) const;
};

// Checks a statement message against a group (`group_ca_chain` = group CA, founder identity,
// supplier issuing; `supplier_root` the trust anchor), at `clock`'s time. Refusals:
// InvalidArgument "malformed message: …" (truncated, unknown fields, missing fields);
// PermissionDenied "statement is for group X, not group Y", "statement is not signed by group Y:
// its signer chain holds another group CA", "statement is not signed by the group signing key of
// group Y: …", "statement was issued in the future (…)".
absl::StatusOr<VerifiedStatement> VerifyStatement(
    std::span<const uint8_t> message, const std::vector<crypto::Certificate>& group_ca_chain,
    const crypto::Certificate& supplier_root, const Clock& clock = SystemClock());

enum class StatementOrder { kNewer, kSame };
// Whether `next` may replace `held`: kNewer (higher sequence, keeps every revocation of `held`,
// not issued by a member `held` revokes), kSame (byte-identical). PermissionDenied otherwise:
// "statement 3 is older than the held statement 5", "statement 5 differs from the held statement
// 5 (a fork)", "statement 6 drops the revocation of member 1.2 that statement 5 holds",
// "statement 6 is issued by member 1.2, revoked by statement 5".
absl::StatusOr<StatementOrder> CompareToHeld(const VerifiedStatement& held,
                                             const VerifiedStatement& next);

struct IssuedStatement {
  std::vector<uint8_t> message;
  uint64_t sequence = 0;
  bool changed = false;  // false: the held statement already said so; nothing new was signed
};
// Each signs the group's next statement (held + the change) with the group signing key, keeps it
// as the newest, and records it in the audit log, in one transaction. A member the held statement
// revokes issues none (PermissionDenied).
// `hsm_serial` may be empty when this member knows it (itself, or a member it enrolled);
// otherwise InvalidArgument names the missing serial.
absl::StatusOr<IssuedStatement> RevokeMember(Hsm& hsm, const std::string& group_id,
                                             const std::string& member_id,
                                             const std::string& hsm_serial);
// `cert_serial`: hex, as `openssl x509 -serial` prints it (case and leading zeros ignored).
absl::StatusOr<IssuedStatement> RevokeClient(Hsm& hsm, const std::string& group_id,
                                             const std::string& cert_serial);
absl::StatusOr<IssuedStatement> DenySerial(Hsm& hsm, const std::string& group_id,
                                           const std::string& hsm_serial);

enum class Adoption { kAdopted, kUnchanged };
struct AcceptedStatement {
  Adoption outcome = Adoption::kUnchanged;
  VerifiedStatement statement;  // the one now held
};
// Verifies a statement for a group this HSM is in and keeps it if CompareToHeld says kNewer
// (kUnchanged for kSame). NotFound if this HSM is not in the statement's group; the refusals of
// VerifyStatement and CompareToHeld otherwise, with no state changed.
absl::StatusOr<AcceptedStatement> AcceptStatement(Hsm& hsm, std::span<const uint8_t> message);

// The newest statement this HSM holds for the group, re-verified; nullopt if none.
absl::StatusOr<std::optional<VerifiedStatement>> HeldStatement(Hsm& hsm,
                                                               const std::string& group_id);

// Authorization checks against the held statements (PermissionDenied naming the statement):
// a peer HSM whose serial a statement of any group of this HSM revokes or denies;
absl::Status CheckPeerHsm(Hsm& hsm, const std::string& hsm_serial);
// a client certificate of `group_id` that is revoked, or issued by a revoked member (or naming no
// issuing member: it could not be told apart), or any client when this member itself is revoked.
absl::Status CheckClientNotRevoked(Hsm& hsm, const std::string& group_id,
                                   const crypto::Certificate& leaf);

// This member, if the held statement revokes it: "member 1.2 is revoked in group G since T
// (statement N); a revoked member <what>".
absl::Status CheckSelfNotRevoked(Hsm& hsm, const std::string& group_id, const std::string& what);

// For offline verifiers: refuses an act (`what`, e.g. "audit entry 17 (provision)") by
// `member_id` at `time` if the statement revokes that member at or before `time`.
absl::Status CheckActBeforeRevocation(const VerifiedStatement& statement,
                                      const std::string& member_id, int64_t time,
                                      const std::string& what);

}  // namespace clade::hsm
