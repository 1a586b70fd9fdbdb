// Groups (docs/design.md, "PKI", "Member ids"): the founder's group context — group CA (issued by
// the founder's HSM identity key), group encryption, group signing and symmetric keys, the group id
// derived from the group CA key — and each member's own record (member id, member cert, role, child
// counter). An HSM may belong to several groups (one per OEM); each is stored apart and its secrets
// are sealed to its own rows.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/x509.h"
#include "hsm/hsm.h"

namespace clade::hsm {

inline constexpr size_t kMaxGroupName = 64;

struct GroupSummary {
  std::string group_id;  // 32 hex characters
  std::string name;
  std::string member_id;  // this HSM's id in the group
  std::string role;       // "founder" or "member"
  uint32_t children_enrolled = 0;
  std::string encryption_key_fingerprint;  // SHA-256 of the group encryption SPKI, hex
  std::optional<std::string> oem_root_fingerprint;
  std::vector<std::string> allow_serials;
  std::vector<std::string> deny_serials;
};

// Group id = hex of the first 16 bytes of SHA-256 over the group CA's SubjectPublicKeyInfo.
std::string GroupIdOf(const crypto::PublicKey& group_ca_key);

// Founds a group on this HSM, which becomes member "1" (role founder). `oem_root`, if given, is the
// OEM root the group accepts job packages from. The group CA validity ends with the founder's
// identity certificate.
absl::StatusOr<GroupSummary> CreateGroup(Hsm& hsm, const std::string& name,
                                         const std::optional<crypto::Certificate>& oem_root);

absl::StatusOr<std::vector<GroupSummary>> ListGroups(Hsm& hsm);

// Finds a group of this HSM by full id, unique id prefix (≥ 4 characters) or exact name.
// NotFound "this HSM is not a member of group 'x'"; InvalidArgument if ambiguous.
absl::StatusOr<std::string> ResolveGroup(Hsm& hsm, const std::string& id_prefix_or_name);

// What an OEM or auditor needs to check and use a group.
struct GroupExport {
  std::vector<crypto::Certificate> group_ca_chain;  // group CA, founder identity, supplier issuing
  crypto::Certificate encryption;
  crypto::Certificate signing;
  crypto::Certificate supplier_root;
  crypto::Certificate member;  // this HSM's member certificate
};
absl::StatusOr<GroupExport> ExportGroup(Hsm& hsm, const std::string& group_id);
// Writes DIR/group-ca-chain.pem, group-enc.crt, group-sign.crt, supplier-root.crt, member.crt.
absl::Status WriteGroupExport(const GroupExport& g, const std::string& dir);

// A group export directory read back: the one reader of what WriteGroupExport writes, for the OEM
// (`oem package`), the auditor (`audit verify`, `line reconcile`) and `record verify`. Open reads
// group-ca-chain.pem and supplier-root.crt (bounded reads; errors name the file); the encryption
// certificate is read when asked for. The export's supplier-root.crt is only a copy: it proves
// nothing until compared with a root the reader pinned apart from the export (RequirePinnedRoot).
class GroupExportDir {
 public:
  static absl::StatusOr<GroupExportDir> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  // Group CA, founder identity, supplier issuing CA, as written.
  const std::vector<crypto::Certificate>& group_ca_chain() const { return group_ca_chain_; }
  const crypto::Certificate& supplier_root() const { return supplier_root_; }
  // Reads DIR/group-enc.crt.
  absl::StatusOr<crypto::Certificate> ReadEncryptionCert() const;
  // PermissionDenied unless the export's supplier root is `pinned`: "the group export's supplier
  // root (DIR/supplier-root.crt, SHA-256 F) is not the supplier root you pinned (SHA-256 P, …)".
  absl::Status RequirePinnedRoot(const crypto::Certificate& pinned) const;
  // RequirePinnedRoot, then VerifyGroupEncryptionCert under `pinned`: the group id, or
  // PermissionDenied "the group in DIR is not genuine: …".
  absl::StatusOr<std::string> VerifyGroupUnder(const crypto::Certificate& pinned) const;

 private:
  GroupExportDir(std::string dir, std::vector<crypto::Certificate> chain, crypto::Certificate root)
      : dir_(std::move(dir)), group_ca_chain_(std::move(chain)), supplier_root_(std::move(root)) {}
  std::string dir_;
  std::vector<crypto::Certificate> group_ca_chain_;
  crypto::Certificate supplier_root_;
};

// What an OEM checks before wrapping for a group: the group CA chain (group CA, founder identity,
// supplier issuing) is genuine under `supplier_root` and `encryption` is the group's encryption
// certificate. Returns the group id.
absl::StatusOr<std::string> VerifyGroupEncryptionCert(
    const std::vector<crypto::Certificate>& group_ca_chain, const crypto::Certificate& encryption,
    const crypto::Certificate& supplier_root, const Clock& clock = SystemClock());

enum class PolicyList { kAllow, kDeny };
// Adds an HSM serial to the allow or deny list of this member's copy of the policy.
absl::Status AddToPolicy(Hsm& hsm, const std::string& group_id, PolicyList list,
                         const std::string& serial);
// Sets (or replaces) the OEM root the group accepts.
absl::Status TrustOem(Hsm& hsm, const std::string& group_id, const crypto::Certificate& oem_root);

}  // namespace clade::hsm
