#include "hsm/hsm.h"

#include <utility>

#include "base/clock.h"
#include "base/files.h"

namespace clade::hsm {
namespace {

constexpr char kNs[] = "hsm";
constexpr char kIdentityKey[] = "identity.key";
constexpr char kWrapKey[] = "wrap.key";

CertSummary Summarize(const crypto::Certificate& c) {
  return CertSummary{c.Subject(), c.Fingerprint(), c.SubjectKey().Fingerprint(), c.NotBefore(),
                     c.NotAfter()};
}

absl::Status PutCert(store::Transaction& tx, const std::string& name,
                     const crypto::Certificate& c) {
  return tx.Put(kNs, name, c.Der());
}

absl::StatusOr<crypto::Certificate> GetCert(store::Transaction& tx, const std::string& name) {
  ASSIGN_OR_RETURN(auto der, tx.Get(kNs, name));
  if (!der) return absl::DataLossError("HSM state lacks " + name);
  return crypto::Certificate::FromDer(*der);
}

// The supplier's answer must certify exactly what we asked for.
absl::StatusOr<GenuineHsm> CheckAnswer(const IdentityRequest& req,
                                       const IdentityCertificates& certs, int64_t now) {
  ASSIGN_OR_RETURN(GenuineHsm genuine,
                   VerifyGenuineHsm(certs.identity, certs.issuing, certs.root, now));
  if (!certs.identity.SubjectKey().Equals(req.identity_key)) {
    return absl::PermissionDeniedError(
        "the supplier's identity certificate does not certify this HSM's identity key");
  }
  if (!certs.wrap.SubjectKey().Equals(req.wrap_key)) {
    return absl::PermissionDeniedError(
        "the supplier's wrap certificate does not certify this HSM's wrap key");
  }
  if (genuine.serial != req.serial) {
    return absl::PermissionDeniedError("the supplier certified serial " + genuine.serial +
                                       ", not " + req.serial);
  }
  RETURN_IF_ERROR(VerifyHsmWrapCert(certs.wrap, genuine, certs.root, now));
  return genuine;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Hsm>> Hsm::Init(const std::string& state_dir,
                                               const store::KekConfig& kek,
                                               const std::string& serial, const Certifier& certify,
                                               const Clock& clock) {
  RETURN_IF_ERROR(CheckSerialSyntax(serial));
  if (PathExists(state_dir + "/state.db")) {
    return absl::AlreadyExistsError(state_dir +
                                    " already holds an HSM state; refusing to overwrite");
  }
  ASSIGN_OR_RETURN(crypto::PrivateKey identity_key,
                   crypto::PrivateKey::Generate(crypto::Curve::kP256));
  ASSIGN_OR_RETURN(crypto::PrivateKey wrap_key, crypto::PrivateKey::Generate(crypto::Curve::kP256));
  IdentityRequest req{serial, identity_key.Public(), wrap_key.Public()};
  ASSIGN_OR_RETURN(IdentityCertificates certs, certify(req));
  const int64_t now = clock.Now();
  ASSIGN_OR_RETURN(GenuineHsm genuine, CheckAnswer(req, certs, now));

  ASSIGN_OR_RETURN(
      auto state,
      store::StateStore::Create(state_dir, kek, [&](store::Transaction& tx) -> absl::Status {
        RETURN_IF_ERROR(tx.PutString(kNs, "serial", serial));
        RETURN_IF_ERROR(tx.PutString(kNs, "created_at", std::to_string(now)));
        RETURN_IF_ERROR(PutCert(tx, "identity.crt", certs.identity));
        RETURN_IF_ERROR(PutCert(tx, "wrap.crt", certs.wrap));
        RETURN_IF_ERROR(PutCert(tx, "issuing.crt", certs.issuing));
        RETURN_IF_ERROR(PutCert(tx, "root.crt", certs.root));
        RETURN_IF_ERROR(tx.PutSecret(kNs, kIdentityKey, identity_key.ToPkcs8Der()));
        return tx.PutSecret(kNs, kWrapKey, wrap_key.ToPkcs8Der());
      }));
  return std::unique_ptr<Hsm>(
      new Hsm(std::move(state), std::move(genuine), certs.wrap, certs.root, now, clock));
}

absl::StatusOr<std::unique_ptr<Hsm>> Hsm::Open(const std::string& state_dir, const Clock& clock) {
  ASSIGN_OR_RETURN(auto state, store::StateStore::Open(state_dir));
  std::optional<crypto::Certificate> identity, wrap, issuing, root;
  int64_t created_at = 0;
  RETURN_IF_ERROR(state->Read([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(identity, GetCert(tx, "identity.crt"));
    ASSIGN_OR_RETURN(wrap, GetCert(tx, "wrap.crt"));
    ASSIGN_OR_RETURN(issuing, GetCert(tx, "issuing.crt"));
    ASSIGN_OR_RETURN(root, GetCert(tx, "root.crt"));
    ASSIGN_OR_RETURN(auto created, tx.GetString(kNs, "created_at"));
    if (created) created_at = std::stoll(*created);
    return absl::OkStatus();
  }));
  auto genuine = VerifyGenuineHsm(*identity, *issuing, *root, clock.Now());
  if (!genuine.ok()) {
    return Annotate(genuine.status(), "the HSM state in " + state_dir + " is not a genuine HSM");
  }
  return std::unique_ptr<Hsm>(new Hsm(std::move(state), *std::move(genuine), *std::move(wrap),
                                      *std::move(root), created_at, clock));
}

HsmInfo Hsm::Info() const {
  HsmInfo info;
  info.serial = identity_.serial;
  info.identity = Summarize(identity_.identity);
  info.wrap = Summarize(wrap_);
  info.supplier_root = Summarize(root_);
  info.kek = store_->KekDescription();
  info.created_at = created_at_;
  return info;
}

absl::Status Hsm::ExportIdentity(const std::string& out_dir) const {
  RETURN_IF_ERROR(MakeDirs(out_dir));
  RETURN_IF_ERROR(WriteFileAtomic(out_dir + "/identity-chain.pem",
                                  crypto::Certificate::ChainToPem(IdentityChain())));
  return WriteFileAtomic(out_dir + "/wrap.crt", wrap_.Pem());
}

absl::StatusOr<crypto::PrivateKey> Hsm::LoadKey(const std::string& name) const {
  std::optional<crypto::PrivateKey> key;
  RETURN_IF_ERROR(store_->Read([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(crypto::SecretBytes der, tx.GetSecret(kNs, name));
    ASSIGN_OR_RETURN(key, crypto::PrivateKey::FromPkcs8Der(der));
    return absl::OkStatus();
  }));
  return *std::move(key);
}

absl::StatusOr<crypto::PrivateKey> Hsm::IdentityKey() const {
  ASSIGN_OR_RETURN(crypto::PrivateKey key, LoadKey(kIdentityKey));
  if (!key.Public().Equals(identity_.identity.SubjectKey())) {
    return absl::DataLossError("the sealed identity key does not match the identity certificate");
  }
  return key;
}

absl::StatusOr<crypto::PrivateKey> Hsm::WrapKey() const {
  ASSIGN_OR_RETURN(crypto::PrivateKey key, LoadKey(kWrapKey));
  if (!key.Public().Equals(wrap_.SubjectKey())) {
    return absl::DataLossError("the sealed wrap key does not match the wrap certificate");
  }
  return key;
}

}  // namespace clade::hsm
