// One HSM: its identity (docs/pki.md) and its sealed state (docs/state.md). The identity signing
// key and the wrap key are generated inside and stored only sealed under the KEK; the supplier
// certifies their public halves at manufacture. Every operation is a plain call that the CLI and a
// daemon both use.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/key.h"
#include "crypto/x509.h"
#include "hsm/pki.h"
#include "store/kek.h"
#include "store/state_store.h"

namespace clade::hsm {

// What a new HSM asks its supplier to certify.
struct IdentityRequest {
  std::string serial;
  crypto::PublicKey identity_key;  // P-256 ECDSA
  crypto::PublicKey wrap_key;      // P-256 ECDH
};

// What the supplier answers.
struct IdentityCertificates {
  crypto::Certificate identity;
  crypto::Certificate wrap;
  crypto::Certificate issuing;
  crypto::Certificate root;
};

using Certifier = std::function<absl::StatusOr<IdentityCertificates>(const IdentityRequest&)>;

struct CertSummary {
  std::string subject;
  std::string fingerprint;      // SHA-256 of the certificate DER
  std::string key_fingerprint;  // SHA-256 of the SubjectPublicKeyInfo
  int64_t not_before = 0;
  int64_t not_after = 0;
};

struct HsmInfo {
  std::string serial;
  CertSummary identity;
  CertSummary wrap;
  CertSummary supplier_root;
  std::string kek;  // e.g. "key file /var/lib/clade/kek.key"
  int64_t created_at = 0;
  std::vector<std::string> groups;  // none until groups exist
};

class Hsm {
 public:
  // Manufactures a new HSM in `state_dir`: generates its keys inside, has `certify` issue their
  // certificates, checks that the answer binds exactly these keys and this serial and is genuine
  // (supplier root → issuing CA → identity, right kinds), installs the root as trust anchor, and
  // stores it all — keys sealed — in one transaction. Refuses a directory that holds a state.
  // `clock` is the HSM's clock: every operation on this Hsm decides by it (validity, expiry,
  // audit time). The Hsm keeps a reference, so the clock must outlive it.
  static absl::StatusOr<std::unique_ptr<Hsm>> Init(const std::string& state_dir,
                                                   const store::KekConfig& kek,
                                                   const std::string& serial,
                                                   const Certifier& certify,
                                                   const Clock& clock = SystemClock());
  // Opens an HSM state and re-checks that its identity is genuine under its own trust anchor.
  // `clock` as for Init: kept by reference, must outlive the Hsm.
  static absl::StatusOr<std::unique_ptr<Hsm>> Open(const std::string& state_dir,
                                                   const Clock& clock = SystemClock());

  HsmInfo Info() const;
  // Writes DIR/identity-chain.pem (identity cert, supplier issuing CA) and DIR/wrap.crt (PEM).
  absl::Status ExportIdentity(const std::string& out_dir) const;

  const GenuineHsm& identity() const { return identity_; }
  const crypto::Certificate& wrap_cert() const { return wrap_; }
  const crypto::Certificate& supplier_root() const { return root_; }
  // The identity chain a signed message carries: identity, issuing CA.
  std::vector<crypto::Certificate> IdentityChain() const {
    return {identity_.identity, identity_.issuing};
  }

  // Unseals a key for one operation. Callers keep it no longer than that operation.
  absl::StatusOr<crypto::PrivateKey> IdentityKey() const;
  absl::StatusOr<crypto::PrivateKey> WrapKey() const;

  store::StateStore& state() { return *store_; }
  // The HSM's clock; operations read it once at their start.
  const Clock& clock() const { return clock_; }

 private:
  Hsm(std::unique_ptr<store::StateStore> store, GenuineHsm identity, crypto::Certificate wrap,
      crypto::Certificate root, int64_t created_at, const Clock& clock)
      : clock_(clock),
        store_(std::move(store)),
        identity_(std::move(identity)),
        wrap_(std::move(wrap)),
        root_(std::move(root)),
        created_at_(created_at) {}
  absl::StatusOr<crypto::PrivateKey> LoadKey(const std::string& name) const;

  const Clock& clock_;
  std::unique_ptr<store::StateStore> store_;
  GenuineHsm identity_;
  crypto::Certificate wrap_;
  crypto::Certificate root_;
  int64_t created_at_;
};

}  // namespace clade::hsm
