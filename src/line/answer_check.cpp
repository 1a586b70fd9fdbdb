#include "line/answer_check.h"

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "crypto/digest.h"
#include "hsm/group.h"
#include "hsm/group_statement.h"
#include "hsm/pki.h"

namespace clade::line {
namespace {

absl::Status Refuse(const std::string& why) { return absl::PermissionDeniedError(why); }

// StrCat, not "'" + std::string: GCC 12 reports a false -Wrestrict on that operator+ (GCC bug
// 105329).
std::string Quoted(const crypto::Certificate& c) { return absl::StrCat("'", c.Subject(), "'"); }

std::string Hex(std::span<const uint8_t> b) { return b.empty() ? "none" : crypto::Hex(b); }

}  // namespace

absl::StatusOr<LineGroup> LineGroupOfClient(std::string_view client_chain_pem,
                                            std::string_view supplier_root_pem) {
  ASSIGN_OR_RETURN(auto chain, crypto::Certificate::ChainFromPem(client_chain_pem));
  if (chain.size() != 4) {
    return absl::InvalidArgumentError(
        "the client chain must be the client certificate, group CA, founder identity and supplier "
        "issuing CA; it has " +
        std::to_string(chain.size()) + " certificates");
  }
  ASSIGN_OR_RETURN(auto root, crypto::Certificate::FromPem(supplier_root_pem));
  std::string group_id = hsm::GroupIdOf(chain[1].SubjectKey());
  return LineGroup{std::move(group_id), {chain[1], chain[2], chain[3]}, std::move(root)};
}

absl::StatusOr<hsm::VerifiedMember> CheckServerIsMember(const LineGroup& group,
                                                        const crypto::Certificate& server_cert,
                                                        std::span<const uint8_t> member_cert_der,
                                                        const Clock& clock) {
  if (member_cert_der.empty()) return Refuse("it shows no member certificate for the group");
  auto cert = crypto::Certificate::FromDer(member_cert_der);
  if (!cert.ok()) {
    return Refuse("its member certificate does not parse: " + std::string(cert.status().message()));
  }
  auto member = hsm::VerifyMemberCert(*cert, group.group_ca_chain, group.supplier_root, clock);
  if (!member.ok()) return Refuse(std::string(member.status().message()));
  // The TLS handshake proved the server holds the key of `server_cert`; the member certificate
  // binds that key to a member id of the group.
  if (!member->cert.SubjectKey().Equals(server_cert.SubjectKey())) {
    return Refuse("its member certificate " + Quoted(member->cert) +
                  " certifies another key than its TLS certificate " + Quoted(server_cert));
  }
  auto serial = hsm::HsmSerialOf(server_cert);
  if (!serial.ok() || *serial != member->hsm_serial) {
    return Refuse("its member certificate names HSM " + member->hsm_serial +
                  ", its TLS certificate " + (serial.ok() ? *serial : "no HSM serial"));
  }
  return member;
}

absl::Status CheckMemberNotRevoked(const LineGroup& group, const hsm::VerifiedMember& member,
                                   std::span<const uint8_t> statement, const Clock& clock) {
  if (statement.empty()) return absl::OkStatus();
  auto held = hsm::VerifyStatement(statement, group.group_ca_chain, group.supplier_root, clock);
  if (!held.ok()) return absl::OkStatus();
  // By member id and by serial: a member is revoked under either name (docs/protocol.md).
  const hsm::RevokedMember* r = held->IsMemberRevoked(member.member_id);
  if (r == nullptr) r = held->MemberRevokedBySerial(member.hsm_serial);
  if (r == nullptr) return absl::OkStatus();
  return absl::PermissionDeniedError("member " + member.member_id + " (HSM " + member.hsm_serial +
                                     ") is revoked in group " + group.group_id + " since " +
                                     FormatTime(r->revoked_at) + " (statement " +
                                     std::to_string(held->sequence) + ")");
}

absl::Status CheckAnswer(const hsm::VerifiedJobPackage& job, const hsm::VerifiedMember& member,
                         const AskedDevice& asked, const DeviceAnswer& answer, const Clock& clock) {
  const int64_t now = clock.Now();
  // 1. The device certificate, under the package's chain.
  auto cert = crypto::Certificate::FromDer(answer.device_cert_der);
  if (!cert.ok()) {
    return Refuse("the device certificate does not parse: " + std::string(cert.status().message()));
  }
  const crypto::Certificate& ca = job.device_ca_chain[0];
  crypto::VerifyOptions opts(now);
  auto path = crypto::VerifyChain(*cert, {ca}, job.device_ca_chain[1], opts);
  if (!path.ok() || path->size() != 3 || !((*path)[1] == ca)) {
    return Refuse("the device certificate " + Quoted(*cert) +
                  " is not issued by the job's device-issuing CA " + Quoted(ca) + ": " +
                  (path.ok() ? "another path" : std::string(path.status().message())));
  }
  if (cert->SerialHex() != answer.cert_serial) {
    return Refuse("the answer names certificate serial " + std::string(answer.cert_serial) +
                  ", the certificate has " + cert->SerialHex());
  }
  bool hsm_mode = job.profile.key_mode == hsm::DeviceKeyMode::kHsm;
  if (!hsm_mode) {
    if (!asked.chip_key) return Refuse("the line holds no key of chip " + asked.uid);
    if (!cert->SubjectKey().Equals(*asked.chip_key)) {
      return Refuse("the device certificate certifies another key than chip " + asked.uid + "'s");
    }
  }
  // 2. The record: the member's, about exactly this device and what the line programs.
  // The member's certificate was verified under the group once (CheckServerIsMember); each
  // record needs only its signature by that certificate.
  auto rec = hsm::VerifyMemberRecord(answer.record, member);
  if (!rec.ok()) {
    return Refuse("the record does not verify: " + std::string(rec.status().message()));
  }
  auto names = [](const std::string& what, const std::string& got, const std::string& want) {
    return got == want ? absl::OkStatus()
                       : Refuse("the record names " + what + " " + got + ", not " + want);
  };
  RETURN_IF_ERROR(names("job", rec->job_id, job.job_id));
  RETURN_IF_ERROR(names("uid", rec->device_uid, asked.uid));
  RETURN_IF_ERROR(names("certificate serial", rec->cert_serial, cert->SerialHex()));
  RETURN_IF_ERROR(names("key mode", rec->key_mode, hsm_mode ? "hsm" : "device"));
  if (rec->cert_sha256 != crypto::Sha256(answer.device_cert_der)) {
    return Refuse("the record names another certificate digest than the answer's certificate");
  }
  if (rec->firmware_sha256 != job.firmware_sha256) {
    return Refuse("the record names firmware SHA-256 " + Hex(rec->firmware_sha256) +
                  ", the line programs " + Hex(job.firmware_sha256));
  }
  if (rec->config_sha256 != job.config_sha256) {
    return Refuse("the record names config SHA-256 " + Hex(rec->config_sha256) +
                  ", the line programs " + Hex(job.config_sha256));
  }
  return absl::OkStatus();
}

}  // namespace clade::line
