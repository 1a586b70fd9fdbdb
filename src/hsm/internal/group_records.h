// Internal to src/hsm: how groups are kept in the state store, and the certificate checks that
// group.cpp and enrollment.cpp share.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "clade/v1/group.pb.h"
#include "clade/v1/hsm_state.pb.h"
#include "crypto/key.h"
#include "crypto/x509.h"
#include "hsm/member_id.h"
#include "hsm/pki.h"
#include "store/state_store.h"
#include "wire/strict.h"

namespace clade::hsm::internal {

// Store layout: records "group"/<group id> hold a GroupMembership; secrets "group"/<group id> hold
// a sealed GroupSecrets; "announcement"/<digest hex> an IssuedAnnouncement; "pending"/<digest hex>
// a PendingRequest.
inline constexpr char kGroupNs[] = "group";
inline constexpr char kAnnouncementNs[] = "announcement";
inline constexpr char kPendingNs[] = "pending";

// A row read back from the state, decoded strictly (wire::ParseStrict, docs/protocol.md): a row
// that does not parse, or that carries a field this version does not know, is damaged and never
// half read. No row is larger than the largest message sealed. Refusal (DataLoss): "the HSM
// state holds a damaged <what>: clade.v1.X has unknown field N".
template <typename M>
absl::StatusOr<M> ParseStoredRow(std::span<const uint8_t> bytes, const std::string& what) {
  M m;
  absl::Status parsed =
      wire::ParseStrict(bytes, m, M::descriptor()->full_name(), 64 * wire::kMaxMessageSize);
  if (!parsed.ok()) {
    return absl::DataLossError("the HSM state holds a damaged " + what + ": " +
                               std::string(parsed.message()));
  }
  return m;
}

// 1 to 64 characters, no control characters (names are printed on operators' terminals).
absl::Status CheckGroupName(const std::string& name);

// Member id extension in member certificates: <arc>.2.1, a UTF8String.
std::string MemberIdExtensionOid();

absl::StatusOr<std::optional<v1::GroupMembership>> LoadMembership(const store::Transaction& tx,
                                                                  const std::string& group_id);
absl::Status SaveMembership(store::Transaction& tx, const v1::GroupMembership& m);
absl::StatusOr<std::vector<v1::GroupMembership>> LoadAllMemberships(const store::Transaction& tx);

// The group's private keys, unsealed for one operation.
struct GroupKeys {
  crypto::PrivateKey group_ca;
  crypto::PrivateKey encryption;
  crypto::PrivateKey signing;
  crypto::SecretBytes symmetric;
};
absl::StatusOr<GroupKeys> LoadGroupKeys(const store::Transaction& tx, const std::string& group_id);
absl::Status SaveGroupKeys(store::Transaction& tx, const std::string& group_id,
                           const GroupKeys& keys);
// Serialized GroupSecrets, as wrapped for a new member.
crypto::SecretBytes SerializeSecrets(const GroupKeys& keys);
absl::StatusOr<GroupKeys> ParseSecrets(const crypto::SecretBytes& serialized);

absl::StatusOr<crypto::Certificate> CertFromBytes(const std::string& der, const std::string& what);
absl::StatusOr<std::vector<crypto::Certificate>> ChainFromBytes(
    const google::protobuf::RepeatedPtrField<std::string>& ders, const std::string& what);
std::string ToBytes(const crypto::Certificate& c);

// The verified public face of a group.
struct VerifiedGroupCa {
  crypto::Certificate group_ca;
  crypto::Certificate founder;
  crypto::Certificate issuing;
  std::string group_id;
};
// Checks a group CA chain [group CA, founder identity, supplier issuing]: the founder is a
// genuine HSM, the group CA is of kind group CA, issued by the founder, valid under `root`.
// Refusal: "group CA is not genuine: <reason>".
absl::StatusOr<VerifiedGroupCa> VerifyGroupCaChain(const std::vector<crypto::Certificate>& chain,
                                                   const crypto::Certificate& root, int64_t now);
// Checks a certificate of `kind` issued by the verified group CA; returns the reason on failure
// (callers prefix it).
absl::Status VerifyIssuedByGroup(const crypto::Certificate& cert, CertKind kind,
                                 const VerifiedGroupCa& group, const crypto::Certificate& root,
                                 int64_t now);
// The member id named in a member certificate.
absl::StatusOr<MemberId> MemberIdOf(const crypto::Certificate& member_cert);

absl::StatusOr<crypto::Certificate> IssueMemberCert(const VerifiedGroupCa& group,
                                                    const crypto::PrivateKey& group_ca_key,
                                                    const crypto::PublicKey& identity_key,
                                                    const MemberId& id,
                                                    const std::string& hsm_serial,
                                                    const std::string& group_name, int64_t now);

}  // namespace clade::hsm::internal
