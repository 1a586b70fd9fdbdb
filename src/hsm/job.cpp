#include "hsm/job.h"

#include "base/clock.h"
#include "clade/v1/job.pb.h"
#include "crypto/cms.h"
#include "crypto/digest.h"
#include "hsm/internal/group_records.h"
#include "hsm/internal/jobs.h"
#include "wire/envelope.h"
#include "wire/strict.h"

namespace clade::hsm {
namespace internal {

absl::StatusOr<crypto::PrivateKey> KeyFromPkcs8DerOrPem(const crypto::SecretBytes& bytes) {
  std::string_view text = bytes.RevealSecretAsString();
  if (text.starts_with("-----BEGIN")) return crypto::PrivateKey::FromPem(bytes);
  return crypto::PrivateKey::FromPkcs8Der(bytes);
}

absl::StatusOr<OpenedJob> OpenJob(std::span<const uint8_t> package) {
  ASSIGN_OR_RETURN(auto opened, wire::OpenMessageAs<v1::JobPackage>(package, kMaxJobPackage));
  return OpenedJob{std::move(opened.message), opened.envelope.signer_chain.front()};
}

absl::StatusOr<VerifiedJobPackage> VerifyOpenedJob(const OpenedJob& job,
                                                   const crypto::Certificate& oem_root,
                                                   const std::string& group_id, int64_t now) {
  const v1::JobPackage& pkg = job.package;
  if (pkg.group_id() != group_id) {
    return absl::PermissionDeniedError("package is for group " + pkg.group_id() + ", not group " +
                                       group_id);
  }
  if (!(job.signer == oem_root)) {
    return absl::PermissionDeniedError("package is not signed by the OEM root group " + group_id +
                                       " trusts ('" + oem_root.Subject() + "')");
  }
  if (pkg.expires_at() != 0 && now > pkg.expires_at()) {
    return absl::PermissionDeniedError("package expired at " + FormatTime(pkg.expires_at()));
  }
  RETURN_IF_ERROR(
      CheckSerialSyntax(pkg.job_id()).ok()
          ? absl::OkStatus()
          : absl::InvalidArgumentError("job id '" + pkg.job_id() +
                                       "' must be 1 to 64 letters, digits, '.', '_' or '-'"));
  ASSIGN_OR_RETURN(DeviceProfile profile, ParseProfile(pkg.profile_json()));
  RETURN_IF_ERROR(CheckProfileIssues(profile, pkg.job_id(), now));
  ASSIGN_OR_RETURN(auto chain, ChainFromBytes(pkg.device_ca_chain(), "device CA chain"));
  if (chain.size() != 2 || !(chain[1] == oem_root)) {
    return absl::PermissionDeniedError(
        "device CA chain must be the device-issuing CA and the OEM root the group trusts");
  }
  crypto::VerifyOptions opts(now);
  auto path = crypto::VerifyChain(chain[0], {}, oem_root, opts);
  if (!path.ok()) {
    return absl::PermissionDeniedError("device-issuing CA is not issued by the OEM root: " +
                                       std::string(path.status().message()));
  }
  if (!chain[0].IsCa()) {
    return absl::PermissionDeniedError("device-issuing CA '" + chain[0].Subject() +
                                       "' is not a CA");
  }
  auto digest_ok = [](const std::string& data, const std::string& digest) {
    auto d = crypto::Sha256(data);
    return digest == std::string(d.begin(), d.end());
  };
  if ((!pkg.firmware().empty() || !pkg.firmware_sha256().empty()) &&
      !digest_ok(pkg.firmware(), pkg.firmware_sha256())) {
    return absl::PermissionDeniedError("firmware digest does not match the firmware");
  }
  if ((!pkg.config().empty() || !pkg.config_sha256().empty()) &&
      !digest_ok(pkg.config(), pkg.config_sha256())) {
    return absl::PermissionDeniedError("config digest does not match the config");
  }
  VerifiedJobPackage out;
  out.job_id = pkg.job_id();
  out.group_id = pkg.group_id();
  out.profile = std::move(profile);
  out.device_ca_chain = std::move(chain);
  out.expires_at = pkg.expires_at();
  auto bytes = [](const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); };
  if (!pkg.firmware().empty()) out.firmware_sha256 = bytes(pkg.firmware_sha256());
  if (!pkg.config().empty()) out.config_sha256 = bytes(pkg.config_sha256());
  return out;
}

absl::StatusOr<CheckedJob> CheckJob(const OpenedJob& job, const v1::GroupMembership& m,
                                    const crypto::PrivateKey& group_encryption_key, int64_t now) {
  const v1::JobPackage& pkg = job.package;
  const std::string& group_id = m.group().group_id();
  if (m.group().oem_root().empty()) {
    return absl::FailedPreconditionError("group " + group_id +
                                         " trusts no OEM root yet (clade group trust-oem)");
  }
  ASSIGN_OR_RETURN(auto oem_root, CertFromBytes(m.group().oem_root(), "the group's OEM root"));
  ASSIGN_OR_RETURN(VerifiedJobPackage verified, VerifyOpenedJob(job, oem_root, group_id, now));
  DeviceProfile& profile = verified.profile;
  std::vector<crypto::Certificate>& chain = verified.device_ca_chain;
  ASSIGN_OR_RETURN(auto enc_cert,
                   CertFromBytes(m.group().encryption_cert(), "group encryption certificate"));
  auto ca_key_bytes =
      crypto::CmsDecrypt(crypto::AsBytes(pkg.wrapped_ca_key()), group_encryption_key, enc_cert);
  if (!ca_key_bytes.ok()) {
    return absl::PermissionDeniedError(
        "the device CA key is not wrapped for this group's encryption key: " +
        std::string(ca_key_bytes.status().message()));
  }
  auto ca_key = KeyFromPkcs8DerOrPem(*ca_key_bytes);
  if (!ca_key.ok()) {
    return absl::InvalidArgumentError("the wrapped device CA key is not a private key: " +
                                      std::string(ca_key.status().message()));
  }
  if (!ca_key->Public().Equals(chain[0].SubjectKey())) {
    return absl::PermissionDeniedError(
        "the wrapped device CA key does not match the device-issuing CA certificate");
  }
  return CheckedJob{std::move(profile), std::move(chain), *std::move(ca_key)};
}

}  // namespace internal

namespace {

JobSummary Summarize(const v1::JobPackage& pkg, const DeviceProfile& profile,
                     const std::string& ca_subject, uint64_t count) {
  JobSummary s;
  s.job_id = pkg.job_id();
  s.group_id = pkg.group_id();
  s.product = profile.product;
  s.key_mode = profile.key_mode == DeviceKeyMode::kHsm ? "hsm" : "device";
  s.device_ca_subject = ca_subject;
  s.expires_at = pkg.expires_at();
  s.devices_provisioned = count;
  s.has_firmware = !pkg.firmware().empty();
  s.has_config = !pkg.config().empty();
  return s;
}

}  // namespace

absl::StatusOr<JobSummary> ImportJob(Hsm& hsm, std::span<const uint8_t> package) {
  const int64_t now = hsm.clock().Now();
  ASSIGN_OR_RETURN(internal::OpenedJob job, internal::OpenJob(package));
  const v1::JobPackage& pkg = job.package;
  std::optional<v1::GroupMembership> m;
  std::optional<internal::GroupKeys> keys;
  RETURN_IF_ERROR(hsm.state().Read([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(m, internal::LoadMembership(tx, pkg.group_id()));
    if (!m) return absl::OkStatus();
    ASSIGN_OR_RETURN(keys, internal::LoadGroupKeys(tx, pkg.group_id()));
    return absl::OkStatus();
  }));
  if (!m) {
    return absl::PermissionDeniedError("package is for group " + pkg.group_id() +
                                       "; this HSM is not a member of it");
  }
  ASSIGN_OR_RETURN(internal::CheckedJob checked,
                   internal::CheckJob(job, *m, keys->encryption, now));
  ASSIGN_OR_RETURN(auto identity_key, hsm.IdentityKey());
  uint64_t count = 0;
  RETURN_IF_ERROR(hsm.state().Update([&](store::Transaction& tx) -> absl::Status {
    const std::string key = internal::JobKey(pkg.group_id(), pkg.job_id());
    ASSIGN_OR_RETURN(auto existing, tx.Get(internal::kJobNs, key));
    if (existing) {
      // The same content again — even re-signed (ECDSA signatures differ each time) — is a no-op.
      ASSIGN_OR_RETURN(internal::OpenedJob earlier, internal::OpenJob(*existing));
      if (earlier.package.SerializeAsString() == pkg.SerializeAsString()) {
        ASSIGN_OR_RETURN(count, internal::DeviceCount(tx, pkg.group_id(), pkg.job_id()));
        return absl::OkStatus();  // the same package again: nothing to do
      }
      return absl::AlreadyExistsError("job " + pkg.job_id() +
                                      " is already imported with other content");
    }
    RETURN_IF_ERROR(tx.Put(internal::kJobNs, key, package));
    return internal::AppendAudit(
        tx, identity_key,
        AuditEvent{pkg.group_id(), m->member_id(), audit_op::kJobImport, pkg.job_id()}, now);
  }));
  return Summarize(pkg, checked.profile, checked.device_ca_chain[0].Subject(), count);
}

absl::StatusOr<VerifiedJobPackage> VerifyJobPackage(std::span<const uint8_t> package,
                                                    const crypto::Certificate& oem_root,
                                                    const std::string& group_id,
                                                    const Clock& clock) {
  const int64_t now = clock.Now();
  ASSIGN_OR_RETURN(internal::OpenedJob job, internal::OpenJob(package));
  ASSIGN_OR_RETURN(VerifiedJobPackage out, internal::VerifyOpenedJob(job, oem_root, group_id, now));
  const std::string& fw = job.package.firmware();
  const std::string& cfg = job.package.config();
  out.firmware.assign(fw.begin(), fw.end());
  out.config.assign(cfg.begin(), cfg.end());
  return out;
}

absl::StatusOr<JobImageDigests> ReadJobImageDigests(std::span<const uint8_t> package,
                                                    const crypto::Certificate& oem_root) {
  ASSIGN_OR_RETURN(internal::OpenedJob job, internal::OpenJob(package));
  if (!(job.signer == oem_root)) {
    return absl::PermissionDeniedError("job package is not signed by the OEM root '" +
                                       oem_root.Subject() + "' (signed by '" +
                                       job.signer.Subject() + "')");
  }
  JobImageDigests d;
  d.job_id = job.package.job_id();
  const std::string& f = job.package.firmware_sha256();
  const std::string& c = job.package.config_sha256();
  d.firmware_sha256.assign(f.begin(), f.end());
  d.config_sha256.assign(c.begin(), c.end());
  return d;
}

absl::StatusOr<std::optional<crypto::Certificate>> AcceptedOemRoot(Hsm& hsm,
                                                                   const std::string& group_id) {
  std::optional<v1::GroupMembership> m;
  RETURN_IF_ERROR(hsm.state().Read([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(m, internal::LoadMembership(tx, group_id));
    return absl::OkStatus();
  }));
  if (!m) return absl::NotFoundError("this HSM is not a member of group " + group_id);
  if (m->group().oem_root().empty()) return std::optional<crypto::Certificate>();
  ASSIGN_OR_RETURN(auto root,
                   internal::CertFromBytes(m->group().oem_root(), "the group's OEM root"));
  return std::optional<crypto::Certificate>(std::move(root));
}

absl::StatusOr<std::vector<JobSummary>> ListJobs(Hsm& hsm, const std::string& group_id) {
  std::vector<JobSummary> out;
  RETURN_IF_ERROR(hsm.state().Read([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto rows, tx.List(internal::kJobNs));
    for (const auto& [key, bytes] : rows) {
      ASSIGN_OR_RETURN(internal::OpenedJob job, internal::OpenJob(bytes));
      const v1::JobPackage& pkg = job.package;
      // The row's key is the identity the package claims; a row under another key is not it.
      if (key != internal::JobKey(pkg.group_id(), pkg.job_id())) {
        return absl::DataLossError("the HSM state holds job row " + key + " with job " +
                                   pkg.job_id() + " of group " + pkg.group_id());
      }
      if (!group_id.empty() && pkg.group_id() != group_id) continue;
      ASSIGN_OR_RETURN(auto profile, ParseProfile(pkg.profile_json()));
      ASSIGN_OR_RETURN(auto ca,
                       internal::CertFromBytes(pkg.device_ca_chain(0), "device-issuing CA"));
      ASSIGN_OR_RETURN(uint64_t count, internal::DeviceCount(tx, pkg.group_id(), pkg.job_id()));
      out.push_back(Summarize(pkg, profile, ca.Subject(), count));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::string> GroupOfJob(Hsm& hsm, const std::string& job_id) {
  ASSIGN_OR_RETURN(auto jobs, ListJobs(hsm));
  std::vector<std::string> groups;
  for (const auto& j : jobs) {
    if (j.job_id == job_id) groups.push_back(j.group_id);
  }
  if (groups.empty()) return absl::NotFoundError("job " + job_id + " is not imported on this HSM");
  if (groups.size() > 1) {
    std::string names;
    for (const auto& g : groups) names += (names.empty() ? "" : ", ") + g;
    return absl::InvalidArgumentError("job " + job_id + " is imported for several groups (" +
                                      names + "); name the group (--group)");
  }
  return groups.front();
}

absl::StatusOr<std::vector<uint8_t>> JobPackageBytes(Hsm& hsm, const std::string& group_id,
                                                     const std::string& job_id) {
  std::optional<std::vector<uint8_t>> package;
  RETURN_IF_ERROR(hsm.state().Read([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(package, tx.Get(internal::kJobNs, internal::JobKey(group_id, job_id)));
    return absl::OkStatus();
  }));
  if (!package) {
    return absl::NotFoundError("job " + job_id + " is not imported on this HSM for group " +
                               group_id);
  }
  return *std::move(package);
}

}  // namespace clade::hsm
