#include "hsm/member_cert.h"

#include "base/clock.h"
#include "hsm/internal/group_records.h"

namespace clade::hsm {

absl::StatusOr<VerifiedMember> VerifyMemberCert(
    const crypto::Certificate& member_cert, const std::vector<crypto::Certificate>& group_ca_chain,
    const crypto::Certificate& supplier_root, int64_t now) {
  if (now == 0) now = NowUnix();
  ASSIGN_OR_RETURN(internal::VerifiedGroupCa group,
                   internal::VerifyGroupCaChain(group_ca_chain, supplier_root, now));
  absl::Status issued =
      internal::VerifyIssuedByGroup(member_cert, CertKind::kMember, group, supplier_root, now);
  if (!issued.ok()) return absl::PermissionDeniedError(issued.message());
  auto id = internal::MemberIdOf(member_cert);
  if (!id.ok()) return absl::PermissionDeniedError(id.status().message());
  auto serial = HsmSerialOf(member_cert);
  if (!serial.ok()) return absl::PermissionDeniedError(serial.status().message());
  return VerifiedMember{group.group_id, id->ToString(), *std::move(serial), member_cert};
}

}  // namespace clade::hsm
