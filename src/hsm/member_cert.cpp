#include "hsm/member_cert.h"

#include "base/clock.h"
#include "clade/v1/job.pb.h"
#include "hsm/internal/group_records.h"
#include "wire/envelope.h"
#include "wire/strict.h"

namespace clade::hsm {

absl::StatusOr<VerifiedMember> VerifyMemberCert(
    const crypto::Certificate& member_cert, const std::vector<crypto::Certificate>& group_ca_chain,
    const crypto::Certificate& supplier_root, const Clock& clock) {
  const int64_t now = clock.Now();
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

absl::StatusOr<VerifiedRecord> VerifyMemberRecord(std::span<const uint8_t> record,
                                                  const VerifiedMember& member) {
  ASSIGN_OR_RETURN(wire::Envelope env, wire::OpenMessage(record, kProvisioningRecordType));
  const crypto::Certificate& signer = env.signer_chain.front();
  if (!(signer == member.cert)) {
    return absl::PermissionDeniedError("provisioning record is signed by '" + signer.Subject() +
                                       "', not by member " + member.member_id + " ('" +
                                       member.cert.Subject() + "')");
  }
  ASSIGN_OR_RETURN(auto rec, wire::ParsePayload<v1::ProvisioningRecord>(env));
  if (rec.member_id() != member.member_id || rec.group_id() != member.group_id) {
    return absl::PermissionDeniedError("provisioning record claims member " + rec.member_id() +
                                       " of group " + rec.group_id() + ", the signer is " +
                                       member.member_id + " of group " + member.group_id);
  }
  auto bytes = [](const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); };
  return VerifiedRecord{rec.group_id(),
                        rec.member_id(),
                        rec.job_id(),
                        rec.device_uid(),
                        rec.cert_serial(),
                        rec.key_mode(),
                        bytes(rec.cert_sha256()),
                        bytes(rec.firmware_sha256()),
                        bytes(rec.config_sha256())};
}

}  // namespace clade::hsm
