// Internal to src/hsm: the held group statement inside a caller's transaction, for the hooks in
// enrollment (Admit checks the candidate, the response carries the statement, Join adopts it).
#pragma once

#include <optional>
#include <string>

#include "base/status.h"
#include "clade/v1/group.pb.h"
#include "hsm/group_statement.h"
#include "store/state_store.h"

namespace clade::hsm::internal {

// Store layout: records "group-statement"/<group id> hold the newest statement's message bytes.
inline constexpr char kStatementNs[] = "group-statement";

// The held statement of `group`, re-verified against its group CA chain; nullopt if none.
absl::StatusOr<std::optional<VerifiedStatement>> LoadStatement(const store::Transaction& tx,
                                                               const v1::GroupPublic& group,
                                                               const crypto::Certificate& root,
                                                               int64_t now);
// The held statement's bytes ("" if none), as sent on in an enrollment response.
absl::StatusOr<std::string> StatementBytes(const store::Transaction& tx,
                                           const std::string& group_id);
// Admit: PermissionDenied "candidate SN is denied by group statement N" or "candidate SN is
// revoked member ID (group statement N)".
absl::Status CheckCandidate(const std::optional<VerifiedStatement>& statement,
                            const std::string& serial);
// Join: verifies `bytes` (if any) against the group being joined and keeps it.
// PermissionDenied "the group statement in the response is refused: …".
absl::Status AdoptAtJoin(store::Transaction& tx, const v1::GroupPublic& group,
                         const std::string& bytes, const crypto::Certificate& root, int64_t now);

// HeldStatement, CheckSelfNotRevoked and CheckClientNotRevoked at a given instant, for an
// operation that read the HSM's clock once and makes all its checks at that time.
absl::StatusOr<std::optional<VerifiedStatement>> HeldStatementAt(Hsm& hsm,
                                                                 const std::string& group_id,
                                                                 int64_t now);
absl::Status CheckSelfNotRevokedAt(Hsm& hsm, const std::string& group_id, const std::string& what,
                                   int64_t now);
absl::Status CheckClientNotRevokedAt(Hsm& hsm, const std::string& group_id,
                                     const crypto::Certificate& leaf, int64_t now);

}  // namespace clade::hsm::internal
