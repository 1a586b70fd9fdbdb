#include <string>

#include "base/clock.h"
#include "clade/v1/job.pb.h"
#include "crypto/cms.h"
#include "crypto/digest.h"
#include "hsm/internal/group_records.h"
#include "hsm/internal/jobs.h"
#include "hsm/job.h"
#include "wire/envelope.h"
#include "wire/strict.h"

namespace clade::hsm {
namespace internal {

std::string JobKey(const std::string& group_id, const std::string& job_id) {
  return group_id + "/" + job_id;
}

absl::StatusOr<uint64_t> DeviceCount(const store::Transaction& tx, const std::string& group_id,
                                     const std::string& job_id) {
  ASSIGN_OR_RETURN(auto text, tx.GetString(kJobCountNs, JobKey(group_id, job_id)));
  if (!text) return uint64_t{0};
  return static_cast<uint64_t>(std::stoull(*text));
}

}  // namespace internal

namespace {

std::string Bytes(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

// The CMS recipient for a bare transport public key: OpenSSL's CMS wants a certificate, so the key
// is put in a throwaway certificate; the device opens the envelope with its private key alone.
absl::StatusOr<crypto::Certificate> CarrierCert(const crypto::PublicKey& key, int64_t now) {
  ASSIGN_OR_RETURN(auto throwaway, crypto::PrivateKey::Generate(crypto::Curve::kP256));
  crypto::CertProfile self;
  self.subject = {{"CN", "transport key carrier"}};
  self.not_before = now - 60;
  self.not_after = now + 3600;
  ASSIGN_OR_RETURN(auto issuer,
                   crypto::IssueCertificate(self, throwaway.Public(), nullptr, throwaway));
  crypto::CertProfile leaf = self;
  leaf.subject = {{"CN", "device transport key"}};
  leaf.key_usage = {"keyAgreement"};
  return crypto::IssueCertificate(leaf, key, &issuer, throwaway);
}

}  // namespace

struct Provisioner::State {
  Hsm* hsm;
  std::string job_id;
  std::string group_id;
  std::string member_id;
  v1::JobPackage package;
  DeviceProfile profile;
  std::vector<crypto::Certificate> device_ca_chain;
  crypto::PrivateKey ca_key;
  crypto::CertTemplate cert_template;  // the device certificate, fixed parts encoded once
  crypto::PrivateKey identity_key;
  std::vector<crypto::Certificate> record_chain;  // member cert, group CA, founder, issuing
  std::string firmware_sha256;
  std::string config_sha256;
};

Provisioner::Provisioner(std::unique_ptr<State> state) : s_(std::move(state)) {}
Provisioner::~Provisioner() = default;
const DeviceProfile& Provisioner::profile() const { return s_->profile; }
const std::string& Provisioner::member_id() const { return s_->member_id; }
const std::string& Provisioner::group_id() const { return s_->group_id; }

absl::StatusOr<std::unique_ptr<Provisioner>> Provisioner::Create(Hsm& hsm,
                                                                 const std::string& group_id,
                                                                 const std::string& job_id) {
  const int64_t now = hsm.clock().Now();
  std::optional<internal::OpenedJob> job;
  std::optional<v1::GroupMembership> m;
  std::optional<internal::GroupKeys> keys;
  RETURN_IF_ERROR(hsm.state().Read([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto bytes, tx.Get(internal::kJobNs, internal::JobKey(group_id, job_id)));
    if (!bytes) {
      return absl::NotFoundError("job " + job_id + " is not imported on this HSM for group " +
                                 group_id + " (clade job import)");
    }
    ASSIGN_OR_RETURN(job, internal::OpenJob(*bytes));
    if (job->package.group_id() != group_id || job->package.job_id() != job_id) {
      return absl::DataLossError("the HSM state holds job row " +
                                 internal::JobKey(group_id, job_id) + " with job " +
                                 job->package.job_id() + " of group " + job->package.group_id());
    }
    ASSIGN_OR_RETURN(m, internal::LoadMembership(tx, job->package.group_id()));
    if (!m) {
      return absl::FailedPreconditionError("this HSM is no longer a member of group " +
                                           job->package.group_id());
    }
    ASSIGN_OR_RETURN(keys, internal::LoadGroupKeys(tx, job->package.group_id()));
    return absl::OkStatus();
  }));
  // Checked again at use: the package may have expired, or the group's OEM root changed.
  ASSIGN_OR_RETURN(internal::CheckedJob checked,
                   internal::CheckJob(*job, *m, keys->encryption, now));
  ASSIGN_OR_RETURN(auto identity_key, hsm.IdentityKey());
  ASSIGN_OR_RETURN(auto member_cert,
                   internal::CertFromBytes(m->member_cert(), "member certificate"));
  ASSIGN_OR_RETURN(auto group_chain,
                   internal::ChainFromBytes(m->group().group_ca_chain(), "group CA chain"));
  std::vector<crypto::Certificate> record_chain = {member_cert};
  record_chain.insert(record_chain.end(), group_chain.begin(), group_chain.end());

  ASSIGN_OR_RETURN(crypto::CertProfile fixed,
                   DeviceCertProfile(checked.profile, job_id, "template", now));
  ASSIGN_OR_RETURN(crypto::CertTemplate cert_template,
                   crypto::CertTemplate::Create(fixed, checked.device_ca_chain[0], checked.ca_key));
  auto state = std::unique_ptr<State>(new State{
      &hsm, job_id, job->package.group_id(), m->member_id(), job->package,
      std::move(checked.profile), std::move(checked.device_ca_chain), std::move(checked.ca_key),
      std::move(cert_template), std::move(identity_key), std::move(record_chain), "", ""});
  if (!state->package.firmware().empty()) state->firmware_sha256 = state->package.firmware_sha256();
  if (!state->package.config().empty()) state->config_sha256 = state->package.config_sha256();
  return std::unique_ptr<Provisioner>(new Provisioner(std::move(state)));
}

// One device's provisioning data (patent [0048]).
absl::StatusOr<ProvisioningData> Provisioner::Provision(const DeviceRequest& req) {
  const State& s = *s_;
  const int64_t now = s.hsm->clock().Now();
  RETURN_IF_ERROR(CheckDeviceUid(req.uid));
  if (s.package.expires_at() != 0 && now > s.package.expires_at()) {
    return absl::PermissionDeniedError("package expired at " + FormatTime(s.package.expires_at()));
  }
  bool hsm_mode = s.profile.key_mode == DeviceKeyMode::kHsm;
  ProvisioningData out{{}, {}, s.device_ca_chain, {}, {}, {}, {}, {}};
  std::optional<crypto::PrivateKey> made_key;
  const crypto::PublicKey* subject_key = nullptr;
  if (hsm_mode) {
    if (req.device_key) {
      return absl::InvalidArgumentError("job " + s.job_id +
                                        " has the HSM make the device key; give --generate-key, "
                                        "not the device's public key");
    }
    ASSIGN_OR_RETURN(made_key, crypto::PrivateKey::Generate(crypto::Curve::kP256));
    subject_key = &made_key->Public();
  } else {
    if (!req.device_key) {
      return absl::InvalidArgumentError(
          "job " + s.job_id + " expects the device's own key: give --public-key or --csr");
    }
    subject_key = &*req.device_key;
  }
  ASSIGN_OR_RETURN(crypto::CertProfile cp, DeviceCertProfile(s.profile, s.job_id, req.uid, now));
  ASSIGN_OR_RETURN(auto issued,
                   s.cert_template.Issue(cp.subject, cp.not_before, cp.not_after, *subject_key));
  out.device_cert_der = std::move(issued.der);
  out.cert_serial = std::move(issued.serial_hex);

  bool plain = false;
  if (made_key) {
    if (req.transport_cert || req.transport_key) {
      std::optional<crypto::Certificate> recipient = req.transport_cert;
      if (!recipient) {
        ASSIGN_OR_RETURN(recipient, CarrierCert(*req.transport_key, now));
      }
      // The member-made key is wrapped for the device alone (patent [0045], [0048]).
      crypto::SecretBytes der = made_key->ToPkcs8Der();
      ASSIGN_OR_RETURN(out.key_envelope, crypto::CmsEncrypt(der.RevealSecret(), *recipient));
    } else if (s.profile.allow_plain_keys) {
      out.plain_key = made_key->ToPkcs8Pem();
      plain = true;
    } else {
      return absl::InvalidArgumentError(
          "job " + s.job_id +
          " requires --transport-key: its profile does not allow plain device keys");
    }
  }

  v1::ProvisioningRecord rec;
  rec.set_group_id(s.group_id);
  rec.set_member_id(s.member_id);
  rec.set_job_id(s.job_id);
  rec.set_device_uid(req.uid);
  rec.set_cert_serial(out.cert_serial);
  rec.set_cert_sha256(Bytes(crypto::Sha256(out.device_cert_der)));
  rec.set_key_mode(hsm_mode ? "hsm" : "device");
  if (!out.key_envelope.empty())
    rec.set_key_envelope_sha256(Bytes(crypto::Sha256(out.key_envelope)));
  rec.set_firmware_sha256(s.firmware_sha256);
  rec.set_config_sha256(s.config_sha256);
  rec.set_provisioned_at(now);
  rec.set_reissue(req.reissue);
  rec.set_plain_key(plain);
  std::string payload = rec.SerializeAsString();
  ASSIGN_OR_RETURN(out.record, wire::SealMessage(kProvisioningRecordType, crypto::AsBytes(payload),
                                                 s.identity_key, s.record_chain));

  std::string device_key = internal::JobKey(s.group_id, s.job_id) + "/" + req.uid;
  RETURN_IF_ERROR(s.hsm->state().Update([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto earlier, tx.Get(internal::kDeviceNs, device_key));
    if (earlier && !req.reissue) {
      ASSIGN_OR_RETURN(auto old,
                       internal::ParseStoredRow<v1::ProvisioningRecord>(*earlier, "device record"));
      return absl::AlreadyExistsError("device uid " + req.uid +
                                      " was already provisioned for job " + s.job_id + " (serial " +
                                      old.cert_serial() + "); use --reissue to issue it again");
    }
    if (!earlier && req.reissue) {
      return absl::FailedPreconditionError("device uid " + req.uid +
                                           " was never provisioned for job " + s.job_id +
                                           "; --reissue replaces an earlier certificate only");
    }
    RETURN_IF_ERROR(tx.Put(internal::kDeviceNs, device_key, crypto::AsBytes(payload)));
    ASSIGN_OR_RETURN(uint64_t count, internal::DeviceCount(tx, s.group_id, s.job_id));
    if (!earlier) {
      RETURN_IF_ERROR(tx.PutString(internal::kJobCountNs, internal::JobKey(s.group_id, s.job_id),
                                   std::to_string(count + 1)));
    }
    std::string subject =
        s.job_id + "/" + req.uid + " serial " + rec.cert_serial() + (plain ? " plain-key" : "");
    return internal::AppendAudit(
        tx, s.identity_key,
        AuditEvent{s.group_id, s.member_id, req.reissue ? audit_op::kReissue : audit_op::kProvision,
                   subject},
        now);
  }));
  out.firmware = crypto::AsBytes(s.package.firmware());
  out.config = crypto::AsBytes(s.package.config());
  return out;
}

absl::StatusOr<VerifiedRecord> VerifyProvisioningRecord(
    std::span<const uint8_t> record, const std::vector<crypto::Certificate>& group_ca_chain,
    const crypto::Certificate& supplier_root, const Clock& clock) {
  ASSIGN_OR_RETURN(auto opened, wire::OpenMessageAs<v1::ProvisioningRecord>(record));
  const wire::Envelope& env = opened.envelope;
  const v1::ProvisioningRecord& rec = opened.message;
  const int64_t now = clock.Now();
  ASSIGN_OR_RETURN(auto group, internal::VerifyGroupCaChain(group_ca_chain, supplier_root, now));
  const crypto::Certificate& member = env.signer_chain.front();
  absl::Status issued =
      internal::VerifyIssuedByGroup(member, CertKind::kMember, group, supplier_root, now);
  if (!issued.ok()) {
    return absl::PermissionDeniedError("provisioning record is not signed by a member of group " +
                                       group.group_id + ": " + std::string(issued.message()));
  }
  ASSIGN_OR_RETURN(MemberId id, internal::MemberIdOf(member));
  if (id.ToString() != rec.member_id() || rec.group_id() != group.group_id) {
    return absl::PermissionDeniedError("provisioning record claims member " + rec.member_id() +
                                       " of group " + rec.group_id() + ", the signer is " +
                                       id.ToString() + " of group " + group.group_id);
  }
  VerifiedRecord out{rec.group_id(),
                     rec.member_id(),
                     rec.job_id(),
                     rec.device_uid(),
                     rec.cert_serial(),
                     rec.key_mode(),
                     std::vector<uint8_t>(rec.cert_sha256().begin(), rec.cert_sha256().end())};
  out.firmware_sha256.assign(rec.firmware_sha256().begin(), rec.firmware_sha256().end());
  out.provisioned_at = rec.provisioned_at();
  out.config_sha256.assign(rec.config_sha256().begin(), rec.config_sha256().end());
  return out;
}

}  // namespace clade::hsm
