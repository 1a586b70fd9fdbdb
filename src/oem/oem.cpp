#include "oem/oem.h"

#include "base/clock.h"
#include "base/files.h"
#include "clade/v1/job.pb.h"
#include "crypto/cms.h"
#include "crypto/digest.h"
#include "crypto/offline_ca.h"
#include "crypto/pem_files.h"
#include "crypto/signature.h"
#include "hsm/group.h"
#include "hsm/job.h"
#include "hsm/pki.h"
#include "hsm/profile.h"
#include "wire/envelope.h"

namespace clade::oem {
namespace {

constexpr int64_t kYear = 365 * 86400;

std::string Str(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

}  // namespace

absl::StatusOr<Oem> Oem::Init(const std::string& dir, const std::string& name, const Clock& clock) {
  crypto::OfflineCaSpec spec{.owner = name,
                             .noun = "OEM",
                             .role = "an OEM",
                             .curve = crypto::Curve::kP256,
                             .root = {.common_name = "Root CA",
                                      .lifetime_seconds = 30 * kYear,
                                      .key_usage = {"keyCertSign", "cRLSign", "digitalSignature"},
                                      .policies = {},
                                      .path_len = -1},
                             .issuing = {.common_name = "Device Issuing CA",
                                         .lifetime_seconds = 25 * kYear,
                                         .key_usage = {"keyCertSign", "cRLSign"},
                                         .policies = {},
                                         .path_len = 0}};
  ASSIGN_OR_RETURN(auto ca, crypto::CreateOfflineCa(dir, spec, clock.Now()));
  return Oem(dir, std::move(ca.root), std::move(ca.issuing));
}

absl::StatusOr<Oem> Oem::Load(const std::string& dir) {
  ASSIGN_OR_RETURN(auto ca, crypto::LoadOfflineCa(dir));
  return Oem(dir, std::move(ca.root), std::move(ca.issuing));
}

absl::StatusOr<PackageSummary> Oem::Package(const PackageOptions& o, const Clock& clock) const {
  const int64_t now = clock.Now();
  if (hsm::CheckSerialSyntax(o.job_id).ok() == false) {
    return absl::InvalidArgumentError("job id '" + o.job_id +
                                      "' must be 1 to 64 letters, digits, '.', '_' or '-'");
  }
  if (o.expires_at != 0 && o.expires_at <= now) {
    return absl::InvalidArgumentError("--expires is in the past");
  }
  // The group: verified up to the pinned supplier root before anything is wrapped for it. The
  // export's own supplier-root.crt comes with the export, so it proves nothing by itself: a
  // group forged under another supplier would bring that supplier's root along.
  if (!o.pinned_supplier_root) {
    return absl::PermissionDeniedError(
        "no supplier root pinned: give the HSM supplier's root certificate you trust "
        "(--supplier-root), obtained apart from the group export");
  }
  const crypto::Certificate& pinned = *o.pinned_supplier_root;
  ASSIGN_OR_RETURN(auto group_export, hsm::GroupExportDir::Open(o.group_export_dir));
  ASSIGN_OR_RETURN(auto group_id, group_export.VerifyGroupUnder(pinned));
  ASSIGN_OR_RETURN(auto enc, group_export.ReadEncryptionCert());
  ASSIGN_OR_RETURN(hsm::DeviceProfile profile, hsm::ParseProfile(o.profile_json));
  RETURN_IF_ERROR(hsm::CheckProfileIssues(profile, o.job_id, now));

  v1::JobPackage pkg;
  pkg.set_job_id(o.job_id);
  pkg.set_group_id(group_id);
  pkg.set_profile_json(o.profile_json);
  pkg.add_device_ca_chain(Str(issuing_.Der()));
  pkg.add_device_ca_chain(Str(root_.Der()));
  if (o.wrapped_ca_key) {
    if (o.wrapped_ca_key->empty()) return absl::InvalidArgumentError("--wrapped-ca-key is empty");
    // A PEM envelope ("-----BEGIN CMS-----") is kept as is; the HSM reads both forms.
    pkg.set_wrapped_ca_key(Str(*o.wrapped_ca_key));
  } else {
    ASSIGN_OR_RETURN(auto issuing_key,
                     crypto::LoadIssuingKey(dir_, crypto::OfflineCa{root_, issuing_}));
    crypto::SecretBytes der = issuing_key.ToPkcs8Der();
    ASSIGN_OR_RETURN(auto wrapped, crypto::CmsEncrypt(der.RevealSecret(), enc));
    pkg.set_wrapped_ca_key(Str(wrapped));
  }
  if (!o.firmware.empty()) {
    pkg.set_firmware(Str(o.firmware));
    pkg.set_firmware_sha256(Str(crypto::Sha256(o.firmware)));
  }
  if (!o.config.empty()) {
    pkg.set_config(Str(o.config));
    pkg.set_config_sha256(Str(crypto::Sha256(o.config)));
  }
  pkg.set_issued_at(now);
  pkg.set_expires_at(o.expires_at);
  ASSIGN_OR_RETURN(auto root_key, crypto::ReadPrivateKeyFile(dir_ + "/root.key"));
  std::string payload = pkg.SerializeAsString();
  ASSIGN_OR_RETURN(auto sealed, wire::SealMessage(hsm::kJobPackageType, crypto::AsBytes(payload),
                                                  root_key, {root_}));
  return PackageSummary{std::move(sealed), group_id, pinned.Fingerprint()};
}

}  // namespace clade::oem
