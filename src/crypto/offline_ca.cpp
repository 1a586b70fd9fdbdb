#include "crypto/offline_ca.h"

#include "base/files.h"
#include "crypto/pem_files.h"

namespace clade::crypto {
namespace {

CertProfile ProfileOf(const OfflineCaSpec& spec, const OfflineCaLevel& level, int64_t now) {
  CertProfile p;
  p.subject = {{"CN", spec.owner + " " + level.common_name}, {"O", spec.owner}};
  p.not_after = now + level.lifetime_seconds;
  p.is_ca = true;
  p.path_len = level.path_len;
  p.key_usage = level.key_usage;
  p.policies = level.policies;
  return p;
}

}  // namespace

absl::StatusOr<OfflineCa> CreateOfflineCa(const std::string& dir, const OfflineCaSpec& spec,
                                          int64_t now) {
  if (spec.owner.empty() || spec.owner.size() > 64) {
    return absl::InvalidArgumentError(spec.noun + " name must be 1 to 64 characters");
  }
  for (const char* f : {"/root.crt", "/issuing.crt", "/root.key", "/issuing.key"}) {
    if (PathExists(dir + f)) {
      return absl::AlreadyExistsError(dir + f + " already exists; refusing to overwrite " +
                                      spec.role);
    }
  }
  RETURN_IF_ERROR(MakeDirs(dir, 0700));
  ASSIGN_OR_RETURN(auto root_key, PrivateKey::Generate(spec.curve));
  ASSIGN_OR_RETURN(auto issuing_key, PrivateKey::Generate(spec.curve));
  ASSIGN_OR_RETURN(auto root, IssueCertificate(ProfileOf(spec, spec.root, now), root_key.Public(),
                                               nullptr, root_key));
  ASSIGN_OR_RETURN(auto issuing, IssueCertificate(ProfileOf(spec, spec.issuing, now),
                                                  issuing_key.Public(), &root, root_key));
  RETURN_IF_ERROR(WritePrivateKeyFile(dir + "/root.key", root_key));
  RETURN_IF_ERROR(WritePrivateKeyFile(dir + "/issuing.key", issuing_key));
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/root.crt", root.Pem(), 0644, true));
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/issuing.crt", issuing.Pem(), 0644, true));
  return OfflineCa{std::move(root), std::move(issuing)};
}

absl::StatusOr<OfflineCa> LoadOfflineCa(const std::string& dir, const Clock& clock) {
  ASSIGN_OR_RETURN(auto root, ReadCertificateFile(dir + "/root.crt"));
  ASSIGN_OR_RETURN(auto issuing, ReadCertificateFile(dir + "/issuing.crt"));
  auto path = VerifyChain(issuing, {}, root, VerifyOptions(clock.Now()));
  if (!path.ok()) return Annotate(path.status(), dir + "/issuing.crt");
  return OfflineCa{std::move(root), std::move(issuing)};
}

absl::StatusOr<PrivateKey> LoadIssuingKey(const std::string& dir, const OfflineCa& ca) {
  ASSIGN_OR_RETURN(auto key, ReadPrivateKeyFile(dir + "/issuing.key"));
  if (!key.Public().Equals(ca.issuing.SubjectKey())) {
    return absl::InvalidArgumentError(dir + "/issuing.key does not match " + dir + "/issuing.crt");
  }
  return key;
}

}  // namespace clade::crypto
