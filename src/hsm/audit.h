// The audit log (docs/state.md, "Audit log"): append-only and hash-chained — each entry carries the
// SHA-256 of the previous one — with every entry naming the group and the member id that acted;
// checkpoints signed by the HSM's identity key (which each member certificate binds) at least every
// kCheckpointInterval entries and at every export. An exported log is checked offline against a
// group export: chain intact, every checkpoint signature by a member of that group, ids as claimed.
// Entry, checkpoint and export times are the HSM's clock (Hsm::clock()).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/key.h"
#include "crypto/x509.h"
#include "hsm/group.h"
#include "hsm/hsm.h"
#include "store/state_store.h"

namespace clade::hsm {

inline constexpr char kAuditExportType[] = "clade.v1.AuditExport";
inline constexpr uint64_t kCheckpointInterval = 64;
// Exports can be large (one entry per device); a bounded limit all the same.
inline constexpr size_t kMaxAuditExport = 256 * 1024 * 1024;

// Operations as written in the log.
namespace audit_op {
inline constexpr char kGroupCreate[] = "group.create";
inline constexpr char kAnnounce[] = "group.announce";
inline constexpr char kRequest[] = "group.request";
inline constexpr char kAdmit[] = "group.admit";
inline constexpr char kJoin[] = "group.join";
inline constexpr char kPolicy[] = "group.policy";
inline constexpr char kTrustOem[] = "group.trust-oem";
inline constexpr char kJobImport[] = "job.import";
inline constexpr char kProvision[] = "provision";
inline constexpr char kReissue[] = "provision.reissue";
}  // namespace audit_op

struct AuditEvent {
  std::string group_id;   // empty for HSM-level events
  std::string member_id;  // this HSM's id in that group ("" if none yet, e.g. a request)
  std::string operation;  // one of audit_op
  std::string subject;    // what it was about: a serial, a member id, a job/device uid …
};

namespace internal {
// Appends one entry inside the caller's transaction (so the entry and the state change commit
// together), and a signed checkpoint when the interval is reached. `identity_key` is the HSM's
// identity key, unsealed by the caller before its transaction began; `now` is the instant the
// caller read from the HSM's clock at its start.
absl::Status AppendAudit(store::Transaction& tx, const crypto::PrivateKey& identity_key,
                         const AuditEvent& event, int64_t now);

// Store layout: records "audit"/<seq> hold the entries, "audit-checkpoint"/<seq> the checkpoints
// (seq zero-padded to 20 digits, so List returns them in order), "audit-head"/"head" the last seq
// and digest.
inline constexpr char kAuditNs[] = "audit";
inline constexpr char kAuditCheckpointNs[] = "audit-checkpoint";
inline constexpr char kAuditHeadNs[] = "audit-head";
// The DSSE type checkpoint signatures are made for.
inline constexpr char kAuditCheckpointType[] = "clade.v1.AuditCheckpoint";
std::string AuditKey(uint64_t seq);
// The serialized CheckpointBody a checkpoint signature covers.
std::vector<uint8_t> CheckpointBodyBytes(uint64_t seq, std::span<const uint8_t> entry_digest,
                                         int64_t time, const std::string& hsm_serial);
}  // namespace internal

// Writes a signed checkpoint over the whole log and returns the export: a SignedMessage of type
// clade.v1.AuditExport signed by the identity key, holding every entry and checkpoint, the HSM
// identity chain, and this HSM's member certificates. For the HSM's holder (offline CLI).
absl::StatusOr<std::vector<uint8_t>> ExportAudit(Hsm& hsm);
// The same, as group `group_id` may see it (an operator of that group, online): its entries whole;
// each entry of another group, or of the HSM alone, only as its seq, prev_digest and digest, so
// that the chain and every checkpoint still verify; only its member certificate. NotFound if this
// HSM is not a member of the group.
absl::StatusOr<std::vector<uint8_t>> ExportGroupAudit(Hsm& hsm, const std::string& group_id);

struct AuditReport {
  std::string hsm_serial;
  std::string group_id;   // the group checked
  std::string member_id;  // the exporting HSM's member id in it, from its member certificate
  uint64_t entries = 0;   // positions of the log, elided ones included
  uint64_t elided = 0;    // entries of other groups, shown only as digests (filtered export)
  uint64_t checkpoints = 0;
  // member id → operation → count, for the group checked.
  std::map<std::string, std::map<std::string, uint64_t>> counts;
  // Every entry of the group checked, in log order (what `counts` counts), for reconciling a
  // line's devices against what each member says it issued.
  std::vector<AuditEvent> events;
};
// Checks an export, whole or filtered, against a group (`group_ca_chain` = group CA, founder
// identity, supplier issuing; `supplier_root` the trust anchor). Refusals name the entry: "audit
// entry 17: previous digest does not match entry 16", "audit entry 5 is out of order", "checkpoint
// at entry 64 is not signed by a member of group …", "audit entry 9 claims member id 1.2, the
// signer is 1.1". Certificates are checked at `clock`'s time.
// With a `statement` of the group (hsm/group_statement.h), an entry by a member it revokes, dated
// at or after the revocation, fails: "audit entry 40 (provision) by member 1.2 at … is after its
// revocation at …".
struct VerifiedStatement;
absl::StatusOr<AuditReport> VerifyAuditExport(
    std::span<const uint8_t> export_bytes, const std::vector<crypto::Certificate>& group_ca_chain,
    const crypto::Certificate& supplier_root, const Clock& clock = SystemClock(),
    const VerifiedStatement* statement = nullptr);

}  // namespace clade::hsm
